"""The GAN train state: one pytree for the generator, every discriminator, EMA.

MAGVIT-style: a single `flax.struct.dataclass` holds all trainable state, and
the optimisers sit in static fields, so the whole state is one argument of the
jitted step (donated) and one item of a checkpoint. `create_train_state`
initialises it (in place on the mesh) with the frozen networks' variables;
`abstract_train_state` gives its shapes without initialising anything.
"""

from __future__ import annotations

from typing import Any, Sequence

from absl import logging
import flax
import jax
import jax.numpy as jnp
from jax.sharding import Mesh
import numpy as np
import optax

from a2v_jax import checkpointing
from a2v_jax import config_validation
from a2v_jax import networks
from a2v_jax import parallel
from a2v_jax.models import syncnet

# The discriminators of the paper (§3.2), in a fixed order.
DISCRIMINATORS = ('frame', 'temporal', 'sync')


@flax.struct.dataclass
class TrainState:
  """Everything a training step reads and writes.

  Attributes:
    step: int32 [] number of optimiser steps taken.
    rng: uint32 [2] base key; step k uses fold_in(rng, k).
    g_params: generator variables ({'params': ...}).
    g_opt_state: the generator optimiser's state.
    ema_g_params: exponential moving average of g_params (used for samples).
    d_params: {name: variables} for name in DISCRIMINATORS.
    d_opt_state: {name: optimiser state} for name in DISCRIMINATORS.
    g_tx: the generator optimiser (static).
    d_tx: the discriminators' optimiser (static; one instance, separate states).
  """
  step: jax.Array
  rng: jax.Array
  g_params: Any
  g_opt_state: Any
  ema_g_params: Any
  d_params: dict[str, Any]
  d_opt_state: dict[str, Any]
  g_tx: optax.GradientTransformation = flax.struct.field(pytree_node=False)
  d_tx: optax.GradientTransformation = flax.struct.field(pytree_node=False)

  @classmethod
  def create(cls, *, rng: jax.Array, g_params: Any, d_params: dict[str, Any],
             g_tx: optax.GradientTransformation,
             d_tx: optax.GradientTransformation) -> 'TrainState':
    """A fresh state at step 0; the EMA starts equal to the generator."""
    return cls(
        step=jnp.zeros([], jnp.int32),
        rng=rng,
        g_params=g_params,
        g_opt_state=g_tx.init(g_params['params']),
        ema_g_params=jax.tree.map(jnp.array, g_params),
        d_params=dict(d_params),
        d_opt_state={k: d_tx.init(v['params']) for k, v in d_params.items()},
        g_tx=g_tx,
        d_tx=d_tx,
    )


def create_learning_rate_schedule(optimizer_cfg: Any,
                                  steps_per_epoch: int) -> optax.Schedule:
  """The paper's schedule (§6.1): constant, then linear decay to 0.

  Args:
    optimizer_cfg: `config.optimizer` with `lr`, `constant_epochs` and
      `decay_epochs`.
    steps_per_epoch: optimiser steps per pass over the training split.

  Returns:
    step -> learning rate.
  """
  constant_steps = int(optimizer_cfg.constant_epochs * steps_per_epoch)
  decay_steps = max(1, int(optimizer_cfg.decay_epochs * steps_per_epoch))
  return optax.join_schedules(
      [optax.constant_schedule(optimizer_cfg.lr),
       optax.linear_schedule(optimizer_cfg.lr, 0.0, decay_steps)],
      boundaries=[constant_steps])


def create_optimizer(optimizer_cfg: Any,
                     steps_per_epoch: int) -> optax.GradientTransformation:
  """Adam(lr schedule, b1, b2, eps) as in the paper: lr 0.002, b1 0.0, b2 0.9.

  eps (optax's 1e-8 in the base config) also bounds how far float
  noise moves a parameter: with b1 = 0 a gradient g makes a step of
  lr * g / (sqrt(1 - b2) |g| + eps), about +-3 lr for any |g| >> eps, true
  gradients of 1e-9 included.
  """
  return optax.adam(
      create_learning_rate_schedule(optimizer_cfg, steps_per_epoch),
      b1=optimizer_cfg.b1, b2=optimizer_cfg.b2,
      eps=optimizer_cfg.eps)


def update_ema(ema: Any, params: Any, decay: float) -> Any:
  """ema <- decay * ema + (1 - decay) * params, leaf by leaf."""
  return jax.tree.map(lambda e, p: decay * e + (1.0 - decay) * p, ema, params)


def init_variables(nets: networks.Networks, rng: jax.Array,
                   example: dict[str, Any]):
  """Random variables of every network for a batch shaped like `example`
  ({'frames', 'reference', 'audio'}, see gan_step.compute_grads)."""
  keys = dict(zip(('g', 'frame', 'temporal', 'sync', 'ds2', 'eye'),
                  jax.random.split(rng, 6)))
  ref = jnp.asarray(example['reference'])
  frames = jnp.asarray(example['frames'])
  audio = jnp.asarray(example['audio'])
  b, t = audio.shape[:2]
  ds2_vars = nets.ds2.init(keys['ds2'], audio, train=False)
  feats = jax.eval_shape(lambda: nets.ds2.apply(ds2_vars, audio)[0])
  feats = jnp.zeros(feats.shape, feats.dtype)
  g_vars = nets.generator.init(keys['g'], ref, feats[:, 0])
  s0, centre = networks.sync_window(t)
  faces = syncnet.lower_half(frames[:, s0:s0 + 5], nets.syncnet.input_hw)
  d_vars = {
      'frame': nets.frame_d.init(keys['frame'], frames[:, 0]),
      'temporal': nets.temporal_d.init(keys['temporal'], frames, feats),
      'sync': nets.syncnet.init(keys['sync'], faces, audio[:, centre]),
  }
  eye_vars = nets.eye.init(keys['eye'], frames[:, 0])
  return g_vars, d_vars, ds2_vars, eye_vars


def _init_fn(config, nets: networks.Networks, example: dict[str, Any],
             steps_per_epoch: int, tx=None):
  """() -> (fresh TrainState, {'ds2', 'eye'} random variables). The state
  holds `tx` as static metadata: compiled code is tied to that object."""
  if tx is None:
    tx = create_optimizer(config.optimizer, steps_per_epoch)
  shapes = {k: jax.ShapeDtypeStruct(np.shape(example[k]), jnp.float32)
            for k in ('frames', 'reference', 'audio')}

  def init():
    init_rng, state_rng = jax.random.split(jax.random.PRNGKey(config.seed))
    zeros = {k: jnp.zeros(s.shape, s.dtype) for k, s in shapes.items()}
    g_vars, d_vars, ds2_vars, eye_vars = init_variables(nets, init_rng, zeros)
    state = TrainState.create(
        rng=state_rng, g_params=g_vars, d_params=d_vars, g_tx=tx, d_tx=tx)
    return state, {'ds2': ds2_vars, 'eye': eye_vars}

  return init


def abstract_train_state(config, nets: networks.Networks,
                         example: dict[str, Any], steps_per_epoch: int,
                         mesh: Mesh, perceptual_vars: Any, tx
                         ) -> tuple[Any, dict[str, Any]]:
  """ShapeDtypeStructs of create_train_state's (state, frozen), the state's
  carrying its shardings: enough to compile the train step before any
  network is initialised or pretrained. Pass create_train_state the same
  `tx`."""
  state, helpers = jax.eval_shape(
      _init_fn(config, nets, example, steps_per_epoch, tx))
  state = parallel.abstract_with_shardings(
      state, parallel.state_shardings(state, mesh))
  frozen = dict(helpers, perceptual=jax.tree.map(
      lambda x: jax.ShapeDtypeStruct(np.shape(x), np.asarray(x).dtype),
      perceptual_vars))
  return state, frozen


def create_train_state(config, nets: networks.Networks,
                       example: dict[str, Any], steps_per_epoch: int,
                       pretrained: dict[str, Any], mesh: Mesh | None = None,
                       perceptual_vars: Any = None, tx=None
                       ) -> tuple[TrainState, dict[str, Any]]:
  """A fresh TrainState plus the frozen networks' variables.

  Args:
    config: the run config.
    nets: from `networks.create_networks`.
    example: a batch (numpy) fixing the shapes (values are not read).
    steps_per_epoch: for the learning-rate schedule.
    pretrained: {'ds2', 'syncnet', 'eye'} -> variables or None (random init).
    mesh: the training mesh; None = the host's default device.
    perceptual_vars: the perceptual network's variables; None loads them.
    tx: the optimizer (`create_optimizer`); None makes one.

  Returns:
    (state, frozen): on `mesh`, the state sharded by
    `parallel.state_shardings` (initialised in place, so an FSDP-sharded
    generator never has to fit one device) and frozen replicated.
  """
  init = _init_fn(config, nets, example, steps_per_epoch, tx)
  # One compiled init instead of hundreds of eagerly dispatched ops. It runs
  # once, so it is compiled unoptimised: 4-8x faster to compile on CPU.
  options = networks.INIT_COMPILER_OPTIONS
  if mesh is None:
    state, helpers = jax.jit(init, compiler_options=options)()
  else:
    abstract_state, abstract_helpers = jax.eval_shape(init)
    shardings = parallel.state_shardings(abstract_state, mesh)
    rep = parallel.replicated(mesh)
    state, helpers = jax.jit(init, out_shardings=(
        shardings, jax.tree.map(lambda _: rep, abstract_helpers)),
                             compiler_options=options)()
  for name, ref in (('ds2', helpers['ds2']),
                    ('syncnet', state.d_params['sync']),
                    ('eye', helpers['eye'])):
    _check_pretrained(name, ref, pretrained.get(name))
  if pretrained.get('syncnet') is not None:
    sync = pretrained['syncnet']
    if mesh is not None:
      sync = parallel.put_global(
          sync, parallel.state_shardings(state, mesh).d_params['sync'])
    state = state.replace(d_params={**state.d_params, 'sync': sync})
  if perceptual_vars is None:
    perceptual_vars = networks.load_perceptual_vars(config)
  frozen = {
      'ds2': pretrained.get('ds2') or helpers['ds2'],
      'eye': pretrained.get('eye') or helpers['eye'],
      'perceptual': perceptual_vars,
  }
  if mesh is not None:
    frozen = parallel.put_global(frozen, parallel.replicated(mesh))
  return state, frozen


def _check_pretrained(name: str, reference, loaded) -> None:
  """Raises ConfigError when a pretrained network's shapes differ from the
  network config.model builds."""
  if loaded is None:
    return
  want = jax.tree.map(lambda x: tuple(x.shape), reference)
  got = jax.tree.map(lambda x: tuple(np.shape(x)), loaded)
  if want != got:
    raise config_validation.ConfigError(
        f'the pretrained {name} checkpoint does not fit config.model.'
        f'{name}: its parameter shapes differ; pretrain it with the same '
        f'model settings as this config')


def init_from_checkpoint(state: TrainState, path: str, shardings,
                         keep: Sequence[str] = ()) -> TrainState:
  """Copies G, the EMA and the discriminators from another run's checkpoint.

  Optimiser states and the step start afresh (a new phase, a new schedule).
  Every process reads the checkpoint and keeps its own shards.

  keep: discriminators (DISCRIMINATORS) that stay as `state` has them, e.g.
    'sync' when a pretrained SyncNet was named for this run
    (config.pretrained.syncnet_ckpt): it wins over the other run's copy.
  """
  tree, meta = checkpointing.load_state_tree(path)
  logging.info('Initialising from %s (phase %s).', path,
               meta.get('curriculum', {}).get('phase'))
  cast = lambda ref, new, sh: parallel.put_global(jax.tree.map(
      lambda r, n: np.asarray(n, r.dtype).reshape(r.shape), ref, new), sh)
  for name, ref, new in (
      ('generator', state.g_params, tree.get('g_params')),
      *((name, state.d_params[name], tree.get('d_params', {}).get(name))
        for name in state.d_params if name not in keep)):
    _check_same_parameters(path, name, ref, new)
  d_params = {name: (state.d_params[name] if name in keep else
                     cast(state.d_params[name], tree['d_params'][name],
                          shardings.d_params[name]))
              for name in state.d_params}
  return state.replace(
      g_params=cast(state.g_params, tree['g_params'], shardings.g_params),
      ema_g_params=cast(state.ema_g_params, tree['ema_g_params'],
                        shardings.ema_g_params),
      d_params=d_params)


# The config section of each network init_from copies, for the error's fix.
_SECTIONS = {'generator': 'model.generator', 'frame': 'model.frame_d',
             'temporal': 'model.temporal_d', 'sync': 'model.syncnet'}


def _check_same_parameters(path: str, name: str, ref, new) -> None:
  """Raises CheckpointError naming what differs when the checkpoint's
  `name` network has other parameter paths or shapes than `ref`."""
  shapes = lambda t: {jax.tree_util.keystr(p): tuple(np.shape(x)) for p, x
                      in jax.tree_util.tree_flatten_with_path(t)[0]}
  mine, theirs = shapes(ref), shapes(new if new is not None else {})
  if mine == theirs:
    return
  only_mine = sorted(set(mine) - set(theirs))
  only_theirs = sorted(set(theirs) - set(mine))
  reshaped = sorted(k for k in set(mine) & set(theirs)
                    if mine[k] != theirs[k])
  parts = [f'{what}: {", ".join(keys[:3])}{" ..." if len(keys) > 3 else ""}'
           for what, keys in (('only in this config', only_mine),
                              ('only in the checkpoint', only_theirs),
                              ('other shapes', reshaped)) if keys]
  fix = (f'set {_SECTIONS.get(name, name)} as that run had it')
  if name == 'sync':
    fix += (', or name a SyncNet pretrained with this config '
            '(--config.pretrained.syncnet_ckpt=...)')
  raise checkpointing.CheckpointError(
      f'init_from={path}: its {name} network does not fit this config '
      f'({"; ".join(parts)}); {fix}')
