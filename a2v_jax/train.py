"""OneShotA2V training: networks, the GAN train step and the training loop.

One jitted function does a whole GAN step (paper §4): the generator makes every
frame of the batch's windows from (reference, audio features of that frame),
the generator is updated against all its loss terms, then each discriminator
(frame, temporal, sync) is updated on real vs generated frames. The loss
weights of the curriculum phase come in as a float32 vector argument, so a
phase change reuses the compiled step.

Parallelism: one `jax.jit` over a Mesh with a 'data' axis and an optional
'fsdp' axis (a2v_jax/parallel.py); the batch is sharded over both, the state
is replicated, or sharded along 'fsdp', and donated. Gradients can be
accumulated over micro-batches inside the step. The same code runs on one
CPU, on simulated devices and on N hosts (jax.distributed).
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import os
import threading
import time
from typing import Any

from absl import logging
import jax
from jax import lax
import jax.numpy as jnp
from jax.sharding import Mesh
from etils import epath
import ml_collections
import numpy as np

from a2v_jax import checkpointing
from a2v_jax import config_validation
from a2v_jax import curriculum
from a2v_jax import losses
from a2v_jax import metrics_writer
from a2v_jax import parallel
from a2v_jax import sample_writer
from a2v_jax import train_state as train_state_lib
from a2v_jax.models import deepspeech2
from a2v_jax.models import eye
from a2v_jax.models import patchgan
from a2v_jax.models import spade
from a2v_jax.models import syncnet
from a2v_jax.models import temporal
from a2v_jax.models import vgg

# Incremented each time `train_step` is traced: a phase change must not add
# a trace (tests read it; the loop logs it).
TRAIN_STEP_TRACES = 0


# Variables are initialised once per run: compile that unoptimised.
INIT_COMPILER_OPTIONS = {'xla_backend_optimization_level': 0}


class NonFiniteLossError(FloatingPointError):
  """A loss term became NaN or Inf; the run stops."""


@dataclasses.dataclass(frozen=True, eq=False)
class Networks:
  """The flax modules of one run (no parameters)."""
  generator: spade.SPADEGenerator
  frame_d: patchgan.MultiScalePatchGAN
  temporal_d: temporal.MultiScaleTemporalDiscriminator
  syncnet: syncnet.SyncNet
  ds2: deepspeech2.DeepSpeech2
  eye: eye.EyeLandmarkNet
  perceptual: vgg.VGG
  perceptual_layer_weights: tuple[float, ...]


def create_networks(config: ml_collections.ConfigDict) -> Networks:
  """Builds every module from `config.model` (attributes, see common.py).

  `config.compute_dtype` is the compute dtype of the generator, the frame
  and temporal discriminators (unless their own section sets one) and the
  perceptual VGG.
  """
  m = config.model
  pcfg = vgg.default_config()
  pcfg.update(dict(m.perceptual))
  dtype = config.get('compute_dtype', 'float32')
  return Networks(
      generator=spade.SPADEGenerator(**{'dtype': dtype, **m.generator}),
      frame_d=patchgan.MultiScalePatchGAN(**{'dtype': dtype, **m.frame_d}),
      temporal_d=temporal.MultiScaleTemporalDiscriminator(
          **{'dtype': dtype, **m.temporal_d}),
      syncnet=syncnet.SyncNet(**dict(m.syncnet)),
      ds2=deepspeech2.DeepSpeech2(**dict(m.ds2)),
      eye=eye.EyeLandmarkNet(**dict(m.eye)),
      perceptual=vgg.create_model(pcfg, dtype),
      perceptual_layer_weights=tuple(pcfg.layer_weights),
  )


def _takes_update_stats(module) -> bool:
  return 'update_stats' in inspect.signature(module.__call__).parameters


def apply_net(module, variables, *args, update_stats: bool = False):
  """Applies `module`; returns (outputs, non-'params' collections after).

  Spectral-norm modules keep power-iteration vectors in 'batch_stats'; they
  advance only when `update_stats` is True (the networks' own update step).
  """
  extra = [k for k in variables if k != 'params']
  if extra and _takes_update_stats(module):
    out, mutated = module.apply(variables, *args, update_stats=update_stats,
                                mutable=extra)
    return out, dict(mutated)
  kwargs = {'update_stats': False} if _takes_update_stats(module) else {}
  return module.apply(variables, *args, **kwargs), {
      k: variables[k] for k in extra}


def sync_window(num_frames: int) -> tuple[int, int]:
  """(first frame, centre frame) of the 5-frame SyncNet window in T frames."""
  centre = num_frames // 2
  return max(0, centre - syncnet.NUM_FRAMES // 2), centre


def generate_frames(nets: Networks, g_vars, ds2_vars, reference, mfcc,
                    update_stats: bool = False):
  """Generates every frame of a window, one SPADE call per frame.

  Args:
    reference: [B, H, W, 3] float32 in [-1, 1].
    mfcc: [B, T, 20, 13] float32 windows (one per frame).

  Returns:
    (frames [B, T, H, W, 3] float32 in [-1, 1], audio features [B, T, D],
     generator collections after the call).
  """
  b, t = mfcc.shape[:2]
  feats, _ = nets.ds2.apply(ds2_vars, mfcc, train=False)
  feats = lax.stop_gradient(feats)
  h, w = reference.shape[1:3]
  ref = jnp.broadcast_to(reference[:, None], (b, t, h, w, 3))
  out, collections = apply_net(
      nets.generator, g_vars, ref.reshape(b * t, h, w, 3),
      feats.reshape(b * t, -1), update_stats=update_stats)
  return out.reshape(b, t, h, w, 3), feats, collections


def _gated(enabled, weight, fn):
  """fn() -> (loss, parts) when weight > 0, else zeros of the same structure.

  With `enabled` False the term is always computed (and weighted by 0 when
  inactive); lax.cond keeps one compiled step for every phase either way.
  """
  if not enabled:
    return fn()
  zeros = lambda: jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype),
                               jax.eval_shape(fn))
  return lax.cond(weight > 0, fn, zeros)


def compute_grads(nets: Networks, config: ml_collections.ConfigDict,
                  state: train_state_lib.TrainState, batch: dict[str, jax.Array],
                  w: dict[str, jax.Array], frozen: dict[str, Any]):
  """Gradients and losses of one (micro-)batch; no parameter changes.

  Args:
    nets, config, state, frozen: as for `train_step`.
    batch: {'frames' [b, T, H, W, 3], 'reference' [b, H, W, 3], 'mfcc'
      [b, T, 20, 13], 'mfcc_other' [b, 20, 13] (another clip's audio of the
      centre frame, the sync discriminator's false pairs)}.
    w: loss term -> float32 [] weight.

  Returns:
    (grads, collections, metrics): grads {'g': G params, 'd': {name: D
    params}}; collections the networks' non-param variables after the
    forward passes (spectral-norm vectors; they depend on the parameters
    only, so every micro-batch gives the same); metrics {'terms', 'parts',
    'g_total', 'd_loss'}, each a batch mean.

  The generator and its discriminator updates share one generator forward
  (jax.vjp, as in MAGVIT): the generator loss is differentiated w.r.t. the
  generated frames and pulled back through the saved vjp. The generator is
  scored by the discriminators' parameters before their update, and each
  discriminator then trains on those same (stop-gradient) frames.
  """
  lc = config.loss
  gate = bool(lc.gate_inactive_terms)
  real = batch['frames']
  b, t, h, wd, _ = real.shape
  mfcc = batch['mfcc']
  s0, centre = sync_window(t)
  sync_hw = tuple(nets.syncnet.input_hw)
  real_flat = real.reshape(b * t, h, wd, 3)

  g_other = {k: v for k, v in state.g_params.items() if k != 'params'}

  def generate(g_params):
    fake, feats, coll = generate_frames(
        nets, {'params': g_params, **g_other}, frozen['ds2'],
        batch['reference'], mfcc, update_stats=True)
    return fake, (feats, coll)

  fake, g_vjp, (feats, g_coll) = jax.vjp(
      generate, state.g_params['params'], has_aux=True)
  feats = lax.stop_gradient(feats)
  d_vars = state.d_params
  real_frame_out = lax.stop_gradient(
      apply_net(nets.frame_d, d_vars['frame'], real_flat)[0])
  sync_real_faces = syncnet.lower_half(real[:, s0:s0 + 5], sync_hw)
  mfcc_centre = mfcc[:, centre]

  def g_loss_fn(fake):
    fake_flat = fake.reshape(b * t, h, wd, 3)
    out = {}
    fake_out = apply_net(nets.frame_d, d_vars['frame'], fake_flat)[0]
    out['adversarial'] = losses.generator_adversarial_loss(
        fake_out, lc.gan_mode)
    out['feature_matching'] = losses.feature_matching_loss(
        real_frame_out, fake_out)

    def perceptual():
      pv = frozen['perceptual']
      # Optionally on k evenly spaced frames of each window only: the VGG
      # is by far the costliest network of a small CPU run.
      idx = perceptual_frame_indices(t, lc.get('perceptual_frames', 0))
      pick = lambda x: x[:, idx].reshape(b * len(idx), h, wd, 3)
      return losses.perceptual_loss(
          lax.stop_gradient(nets.perceptual.apply(pv, pick(real))),
          nets.perceptual.apply(pv, pick(fake)),
          nets.perceptual_layer_weights, nets.perceptual.layers)
    out['perceptual'] = _gated(gate, w['perceptual'], perceptual)
    out['temporal_adversarial'] = _gated(
        gate, w['temporal_adversarial'], lambda: losses.temporal_generator_loss(
            apply_net(nets.temporal_d, d_vars['temporal'], fake, feats)[0],
            lc.gan_mode))

    def contrastive():
      v, a = apply_net(nets.syncnet, d_vars['sync'], syncnet.lower_half(
          fake[:, s0:s0 + 5], sync_hw), mfcc_centre)[0]
      return losses.contrastive_loss(v, a, jnp.ones([b]),
                                     lc.contrastive_margin)
    out['contrastive'] = _gated(gate, w['contrastive'], contrastive)
    out['reconstruction'] = losses.lower_half_l1_loss(real, fake)

    def blink():
      eyes = lambda x: apply_net(nets.eye, frozen['eye'], x)[0]
      return losses.blink_loss(eyes(real_flat), eyes(fake_flat))
    out['blink'] = _gated(gate, w['blink'], blink)
    terms = {k: v[0] for k, v in out.items()}
    parts = {f'{k}/{p}': v for k, (_, ps) in out.items() for p, v in ps.items()}
    total = sum(w[k] * terms[k] for k in curriculum.LOSS_TERMS)
    return total, (terms, parts)

  (g_total, (terms, parts)), g_fake_grad = jax.value_and_grad(
      g_loss_fn, has_aux=True)(fake)
  (g_grads,) = g_vjp(g_fake_grad)

  # Discriminators: each on real vs the generated frames above.
  fake_sg = lax.stop_gradient(fake)
  fake_flat_sg = fake_sg.reshape(b * t, h, wd, 3)
  sync_fake_faces = syncnet.lower_half(fake_sg[:, s0:s0 + 5], sync_hw)
  mfcc_other = batch['mfcc_other']

  def frame_loss(p, coll):
    v = {'params': p, **coll}
    r, coll = apply_net(nets.frame_d, v, real_flat, update_stats=True)
    f, coll = apply_net(nets.frame_d, {'params': p, **coll}, fake_flat_sg,
                        update_stats=True)
    return losses.discriminator_loss(r, f, lc.gan_mode)[0], coll

  def temporal_loss(p, coll):
    v = {'params': p, **coll}
    r, coll = apply_net(nets.temporal_d, v, real, feats, update_stats=True)
    f, coll = apply_net(nets.temporal_d, {'params': p, **coll}, fake_sg, feats,
                        update_stats=True)
    return losses.temporal_discriminator_loss(r, f, lc.gan_mode)[0], coll

  def sync_loss(p, coll):
    v = {'params': p, **coll}
    faces = jnp.concatenate([sync_real_faces, sync_fake_faces,
                             sync_real_faces])
    audio = jnp.concatenate([mfcc_centre, mfcc_centre, mfcc_other])
    labels = jnp.concatenate([jnp.ones([b]), jnp.zeros([b]), jnp.zeros([b])])
    (ve, ae), coll = apply_net(nets.syncnet, v, faces, audio)
    return losses.contrastive_loss(ve, ae, labels,
                                   lc.contrastive_margin)[0], coll

  d_losses, d_grads, d_colls = {}, {}, {}
  for name, loss_fn in (('frame', frame_loss), ('temporal', temporal_loss),
                        ('sync', sync_loss)):
    active = sum(w[k] for k in curriculum.DISCRIMINATOR_TERMS[name]) > 0
    dv = d_vars[name]
    coll = {k: v for k, v in dv.items() if k != 'params'}
    grad_fn = jax.value_and_grad(loss_fn, has_aux=True)

    def run(dv=dv, coll=coll, grad_fn=grad_fn):
      return grad_fn(dv['params'], coll)

    def skip(dv=dv, coll=coll):
      return (jnp.zeros([], jnp.float32), coll), jax.tree.map(
          jnp.zeros_like, dv['params'])
    (d_losses[name], d_colls[name]), d_grads[name] = (
        lax.cond(active, run, skip) if gate else run())

  grads = {'g': g_grads, 'd': d_grads}
  collections = {'g': g_coll, 'd': d_colls}
  metrics = {'terms': terms, 'parts': parts, 'g_total': g_total,
             'd_loss': d_losses}
  return grads, collections, metrics


def accumulate_grads(grads_fn, batch: dict[str, jax.Array],
                     grad_accum_steps: int, mesh: Mesh | None = None):
  """Mean of `grads_fn` outputs over micro-batches of `batch` (lax.scan).

  Args:
    grads_fn: micro-batch -> (grads, collections, metrics), batch means.
    batch: arrays [B, ...] with B divisible by grad_accum_steps.
    grad_accum_steps: number of micro-batches.
    mesh: the training mesh, to keep micro-batches on the batch's devices.

  Returns:
    (grads, collections, metrics): grads and metrics averaged over the
    micro-batches (so equal to one pass over the whole batch, as every loss
    is a batch mean), collections of the last micro-batch.
  """
  if grad_accum_steps == 1:
    return grads_fn(batch)
  micro = parallel.split_microbatches(batch, grad_accum_steps, mesh)
  first = jax.tree.map(lambda x: x[0], micro)
  zeros = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype),
                       jax.eval_shape(grads_fn, first))

  def body(carry, micro_batch):
    grads, collections, metrics = grads_fn(micro_batch)
    acc_grads, _, acc_metrics = carry
    add = lambda a, x: jax.tree.map(jnp.add, a, x)
    return (add(acc_grads, grads), collections, add(acc_metrics, metrics)), None

  (grads, collections, metrics), _ = lax.scan(body, zeros, micro)
  mean = lambda tree: jax.tree.map(lambda x: x / grad_accum_steps, tree)
  return mean(grads), collections, mean(metrics)


def perceptual_frame_indices(num_frames: int, k: int) -> tuple[int, ...]:
  """k evenly spaced frame indices of a window of `num_frames` (all when k
  is 0 or >= num_frames), for config.loss.perceptual_frames."""
  if k <= 0 or k >= num_frames:
    return tuple(range(num_frames))
  return tuple(int(i) for i in np.linspace(0, num_frames - 1, k + 2)[1:-1]
               .round())


def train_step(nets: Networks, config: ml_collections.ConfigDict,
               state: train_state_lib.TrainState, batch: dict[str, jax.Array],
               weights: jax.Array, frozen: dict[str, Any],
               mesh: Mesh | None = None):
  """One GAN step: a generator update, then one update per discriminator.

  Args:
    nets: the modules (static).
    config: the run config (static; loss options and grad_accum_steps).
    state: the TrainState (donated).
    batch: loader batch (see a2v_jax.data.pipeline), the whole optimiser
      step's examples, sharded over the mesh's batch axes.
    weights: float32 [len(curriculum.LOSS_TERMS)], the phase's loss weights.
    frozen: variables of the frozen networks {'ds2', 'eye', 'perceptual'}.
    mesh: the training mesh (static), for micro-batch shardings.

  Returns:
    (new state, metrics): metrics['terms'][name] is the unweighted value of
    every loss term, metrics['weighted'][name] its weighted value (NaN when
    the term or its weight is not finite), plus discriminator losses.

  Gradients come from `compute_grads`, summed over config.grad_accum_steps
  micro-batches, so the update equals one pass over the whole batch.
  By default every term is computed and multiplied by its weight (no `if`
  on the phase, no recompilation). With config.loss.gate_inactive_terms the
  0-weighted terms and discriminator updates run under lax.cond(weight > 0)
  instead and cost nothing (see common.py for why that is off by default).
  A discriminator whose terms all have weight 0 keeps its parameters and
  optimiser state unchanged either way.
  """
  global TRAIN_STEP_TRACES
  TRAIN_STEP_TRACES += 1
  w = {name: weights[i] for i, name in enumerate(curriculum.LOSS_TERMS)}
  rng = jax.random.fold_in(state.rng, state.step)
  b, t = batch['mfcc'].shape[:2]
  centre = sync_window(t)[1]
  # False sync pairs take another clip's audio, drawn over the whole batch
  # before it is split into micro-batches (so accumulation changes nothing).
  shift = jax.random.randint(rng, [], 1, max(2, b))
  batch = {'frames': batch['frames'], 'reference': batch['reference'],
           'mfcc': batch['mfcc'],
           'mfcc_other': jnp.roll(batch['mfcc'][:, centre], shift, axis=0)}
  grads, colls, metrics = accumulate_grads(
      lambda mb: compute_grads(nets, config, state, mb, w, frozen), batch,
      int(config.grad_accum_steps), mesh)

  g_updates, g_opt_state = state.g_tx.update(
      grads['g'], state.g_opt_state, state.g_params['params'])
  g_params_new = jax.tree.map(jnp.add, state.g_params['params'], g_updates)
  new_g = {'params': g_params_new, **colls['g']}
  ema = train_state_lib.update_ema(
      state.ema_g_params['params'], g_params_new, config.ema_decay)
  new_ema = {'params': ema, **colls['g']}

  new_d_params, new_d_opt = {}, {}
  for name in train_state_lib.DISCRIMINATORS:
    active = sum(w[k] for k in curriculum.DISCRIMINATOR_TERMS[name]) > 0
    dv = state.d_params[name]
    upd, opt = state.d_tx.update(grads['d'][name], state.d_opt_state[name],
                                 dv['params'])
    updated = {'params': jax.tree.map(jnp.add, dv['params'], upd),
               **colls['d'][name]}
    keep = lambda new, old: jax.tree.map(
        lambda n, o: jnp.where(active, n, o), new, old)
    new_d_params[name] = keep(updated, dv)
    new_d_opt[name] = keep(opt, state.d_opt_state[name])

  new_state = state.replace(
      step=state.step + 1, g_params=new_g, g_opt_state=g_opt_state,
      ema_g_params=new_ema, d_params=new_d_params, d_opt_state=new_d_opt)
  terms = metrics['terms']
  metrics = dict(metrics, weighted={k: w[k] * terms[k]
                                    for k in curriculum.LOSS_TERMS})
  return new_state, metrics


def init_variables(nets: Networks, rng: jax.Array, example: dict[str, Any]):
  """Random variables of every network for a batch shaped like `example`."""
  keys = dict(zip(('g', 'frame', 'temporal', 'sync', 'ds2', 'eye'),
                  jax.random.split(rng, 6)))
  ref = jnp.asarray(example['reference'])
  frames = jnp.asarray(example['frames'])
  mfcc = jnp.asarray(example['mfcc'])
  b, t = mfcc.shape[:2]
  ds2_vars = nets.ds2.init(keys['ds2'], mfcc, train=False)
  feats = jax.eval_shape(lambda: nets.ds2.apply(ds2_vars, mfcc)[0])
  feats = jnp.zeros(feats.shape, feats.dtype)
  g_vars = nets.generator.init(keys['g'], ref, feats[:, 0])
  s0, centre = sync_window(t)
  faces = syncnet.lower_half(frames[:, s0:s0 + 5], nets.syncnet.input_hw)
  d_vars = {
      'frame': nets.frame_d.init(keys['frame'], frames[:, 0]),
      'temporal': nets.temporal_d.init(keys['temporal'], frames, feats),
      'sync': nets.syncnet.init(keys['sync'], faces, mfcc[:, centre]),
  }
  eye_vars = nets.eye.init(keys['eye'], frames[:, 0])
  return g_vars, d_vars, ds2_vars, eye_vars


def _init_fn(config, nets: Networks, example: dict[str, Any],
             steps_per_epoch: int, tx=None):
  """() -> (fresh TrainState, {'ds2', 'eye'} random variables). The state
  holds `tx` as static metadata: compiled code is tied to that object."""
  if tx is None:
    tx = train_state_lib.create_optimizer(config.optimizer, steps_per_epoch)
  shapes = {k: jax.ShapeDtypeStruct(np.shape(example[k]), jnp.float32)
            for k in ('frames', 'reference', 'mfcc')}

  def init():
    init_rng, state_rng = jax.random.split(jax.random.PRNGKey(config.seed))
    zeros = {k: jnp.zeros(s.shape, s.dtype) for k, s in shapes.items()}
    g_vars, d_vars, ds2_vars, eye_vars = init_variables(nets, init_rng, zeros)
    state = train_state_lib.TrainState.create(
        rng=state_rng, g_params=g_vars, d_params=d_vars, g_tx=tx, d_tx=tx)
    return state, {'ds2': ds2_vars, 'eye': eye_vars}

  return init


def abstract_train_state(config, nets: Networks, example: dict[str, Any],
                         steps_per_epoch: int, mesh: Mesh,
                         perceptual_vars: Any, tx) -> tuple[Any, dict[str, Any]]:
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


def create_train_state(config, nets: Networks, example: dict[str, Any],
                       steps_per_epoch: int, pretrained: dict[str, Any],
                       mesh: Mesh | None = None, perceptual_vars: Any = None,
                       tx=None
                       ) -> tuple[train_state_lib.TrainState, dict[str, Any]]:
  """A fresh TrainState plus the frozen networks' variables.

  Args:
    config: the run config.
    nets: from `create_networks`.
    example: a batch (numpy) fixing the shapes (values are not read).
    steps_per_epoch: for the learning-rate schedule.
    pretrained: {'ds2', 'syncnet', 'eye'} -> variables or None (random init).
    mesh: the training mesh; None = the host's default device.
    perceptual_vars: the perceptual network's variables; None loads them.
    tx: the optimizer (train_state.create_optimizer); None makes one.

  Returns:
    (state, frozen): on `mesh`, the state sharded by
    `parallel.state_shardings` (initialised in place, so an FSDP-sharded
    generator never has to fit one device) and frozen replicated.
  """
  init = _init_fn(config, nets, example, steps_per_epoch, tx)
  # One compiled init instead of hundreds of eagerly dispatched ops. It runs
  # once, so it is compiled unoptimised: 4-8x faster to compile on CPU.
  if mesh is None:
    state, helpers = jax.jit(init, compiler_options=INIT_COMPILER_OPTIONS)()
  else:
    abstract_state, abstract_helpers = jax.eval_shape(init)
    shardings = parallel.state_shardings(abstract_state, mesh)
    rep = parallel.replicated(mesh)
    state, helpers = jax.jit(init, out_shardings=(
        shardings, jax.tree.map(lambda _: rep, abstract_helpers)),
                             compiler_options=INIT_COMPILER_OPTIONS)()
  for name, ref in (('ds2', helpers['ds2']), ('syncnet', state.d_params['sync']),
                    ('eye', helpers['eye'])):
    _check_pretrained(name, ref, pretrained.get(name))
  if pretrained.get('syncnet') is not None:
    sync = pretrained['syncnet']
    if mesh is not None:
      sync = parallel.put_global(
          sync, parallel.state_shardings(state, mesh).d_params['sync'])
    state = state.replace(d_params={**state.d_params, 'sync': sync})
  if perceptual_vars is None:
    perceptual_vars = load_perceptual_vars(config)
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
        f'{ {"syncnet": "syncnet"}.get(name, name)}: its parameter shapes '
        f'differ; pretrain it with the same model settings as this config')


def load_perceptual_vars(config) -> dict[str, Any]:
  """The frozen perceptual network's pretrained variables."""
  return vgg.load_perceptual_network(_perceptual_cfg(config))[1]


def _perceptual_cfg(config):
  pcfg = vgg.default_config()
  pcfg.update(dict(config.model.perceptual))
  return pcfg


def create_mesh(config: ml_collections.ConfigDict | None = None) -> Mesh:
  """The ('data', 'fsdp') mesh of `config.mesh` over every device of every
  process (all on 'data' when config is None); see a2v_jax/parallel.py."""
  return parallel.create_mesh(None if config is None else config.mesh)


def compiler_options(config) -> dict[str, Any] | None:
  """XLA options of the train step from `config.xla_backend_optimization_level`
  (-1 = XLA's default). Level 0 compiles a GAN several times faster on CPU,
  which dominates short runs; see benchmarks/train_step.py."""
  level = config.get('xla_backend_optimization_level', -1)
  return None if level < 0 else {'xla_backend_optimization_level': int(level)}


def jit_train_step(nets: Networks, config, mesh: Mesh, state_sharding=None):
  """The sharded, donated train step: (state, batch, weights, frozen).

  Args:
    nets, config: as for `train_step`.
    mesh: the training mesh (a 1-D 'data' mesh works too).
    state_sharding: a TrainState of NamedShardings
      (`parallel.state_shardings`); None = replicated.
  """
  replicated = parallel.replicated(mesh)
  state_sharding = replicated if state_sharding is None else state_sharding
  return jax.jit(
      functools.partial(train_step, nets, config, mesh=mesh),
      in_shardings=(state_sharding, parallel.batch_sharding(mesh), replicated,
                    replicated),
      out_shardings=(state_sharding, replicated),
      donate_argnums=0,
      compiler_options={**(compiler_options(config) or {}),
                        **(parallel.compiler_options(mesh) or {})} or None)


def check_finite(metrics: dict[str, Any], step: int,
                 checkpointer: checkpointing.Checkpointer | None) -> None:
  """Raises NonFiniteLossError naming the step and the first bad term."""
  values = [('weighted ' + k, v) for k, v in metrics['weighted'].items()]
  values += list(metrics['terms'].items())
  values += [(f'discriminator {k}', v) for k, v in metrics['d_loss'].items()]
  for name, value in values:
    if not np.isfinite(value):
      last = None
      if checkpointer is not None:
        checkpointer.wait_until_finished()
        last = checkpointer.latest_step()
      raise NonFiniteLossError(
          f'loss term {name!r} is {float(value)} at step {step}; stopping. '
          f'The last good checkpoint (step {last}) is untouched; lower the '
          f'learning rate or the term\'s weight and resume.')


def load_pretrained(config, workdir: str) -> dict[str, Any]:
  """Variables of the frozen helper networks, by `config.pretrained` path.

  Returns:
    {'ds2', 'syncnet', 'eye'} -> variables, or None for random init.
  """
  # pretrain imports this module.
  from a2v_jax import pretrain as pretrain_lib  # pylint: disable=g-import-not-at-top
  out = {}
  for name in ('ds2', 'syncnet', 'eye'):
    path = config.pretrained[f'{name}_ckpt']
    mode = config.pretrained.missing
    if not path and mode == 'pretrain':
      from a2v_jax import data_sources  # pylint: disable=g-import-not-at-top
      path = pretrain_lib.pretrain_helper(
          name, config, os.path.join(workdir, 'pretrained', name),
          corpus_dir=data_sources.default_corpus_dir(config, workdir))
    if not path:
      if mode == 'error':
        raise config_validation.ConfigError(
            f'config.pretrained.{name}_ckpt is empty; pretrain it with '
            f'configs/{ {"ds2": "ds2_ctc"}.get(name, name)}_grid.py and give '
            f'its workdir/checkpoints path, or set pretrained.missing to '
            f"'pretrain' or 'random'")
      logging.warning('No pretrained %s: random init (smoke test only).', name)
      out[name] = None
      continue
    tree, meta = checkpointing.load_state_tree(path)
    if meta.get('task') == pretrain_lib.HELPER_TASKS[name]:
      pretrain_lib.check_saved_network(name, config, meta, path)
    out[name] = tree['variables']  # what pretrain.py saves
  return out


def _init_from(state, path: str, shardings):
  """Copies G, the EMA and the discriminators from another run's checkpoint.

  Optimiser states and the step start afresh (a new phase, a new schedule).
  Every process reads the checkpoint and keeps its own shards.
  """
  tree, meta = checkpointing.load_state_tree(path)
  logging.info('Initialising from %s (phase %s).', path,
               meta.get('curriculum', {}).get('phase'))
  cast = lambda ref, new, sh: parallel.put_global(jax.tree.map(
      lambda r, n: np.asarray(n, r.dtype).reshape(r.shape), ref, new), sh)
  d_params = {name: cast(state.d_params[name], tree['d_params'][name],
                         shardings.d_params[name]) for name in state.d_params}
  return state.replace(
      g_params=cast(state.g_params, tree['g_params'], shardings.g_params),
      ema_g_params=cast(state.ema_g_params, tree['ema_g_params'],
                        shardings.ema_g_params),
      d_params=d_params)


def _put_batch(batch, sharding, audio_features: str):
  """Global arrays from this process's batch; the audio windows go under
  'mfcc' whichever features they are."""
  host = {'frames': batch['frames'], 'reference': batch['reference'],
          'mfcc': batch[audio_features]}
  return {k: jax.make_array_from_process_local_data(sharding, np.asarray(v))
          for k, v in host.items()}


def _phase_end_steps(config: ml_collections.ConfigDict) -> tuple[int, ...]:
  """The steps whose checkpoints outlive max_to_keep: each phase's last
  state (the phase starts of a step-scheduled curriculum) when
  config.ckpt_keep_phase_ends, for the per-phase ablation (evaluate
  --ablation on `export --step=N`)."""
  cur = config.curriculum
  if not config.ckpt_keep_phase_ends or cur.advance == 'stable':
    return ()
  return tuple(int(s) for s in cur.phase_start_steps if 0 < s)


class _BackgroundCompile:
  """Compiles the train step from abstract inputs on a daemon thread, so
  that it overlaps the helpers' pretraining and the state's init (about a
  minute each on 2 CPU cores). XLA's compiles use more than one thread, so
  they overlap only partly: the demo's GAN set-up fell from 1:52 to 0:53."""

  def __init__(self, step_fn, abstract, example, batch_sharding,
               global_batch: int, weights: np.ndarray):
    state, frozen = abstract
    batch = {k: jax.ShapeDtypeStruct((global_batch,) + np.shape(v)[1:],
                                     np.asarray(v).dtype,
                                     sharding=batch_sharding)
             for k, v in example.items()}
    w = jax.ShapeDtypeStruct(np.shape(weights), np.asarray(weights).dtype)
    self._abstract = (state, frozen)
    self._step_fn = step_fn
    self._compiled = self._error = None
    self._thread = threading.Thread(
        target=self._run, args=(step_fn, (state, batch, w, frozen)),
        name='compile-train-step', daemon=True)
    self._thread.start()

  def _run(self, step_fn, args):
    try:
      self._compiled = step_fn.lower(*args).compile()
    except Exception as e:  # pylint: disable=broad-exception-caught
      self._error = e

  def result(self, actual):
    """The compiled step, or the jitted one (compiles on first call) when the
    actual (state, frozen) differ from the abstract ones in shape or dtype
    (e.g. a pretrained checkpoint saved in another dtype)."""
    self._thread.join()
    if self._error is not None:
      raise self._error
    sig = lambda tree: jax.tree.map(lambda x: (x.shape, x.dtype), tree)
    if sig(actual) != sig(self._abstract):
      logging.warning('The state or frozen networks differ from their '
                      'abstract shapes; compiling the train step again.')
      return self._step_fn
    return self._compiled


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str):
  """Trains (resuming from `workdir` if it has a checkpoint).

  Returns:
    The final TrainState.
  """
  config_validation.validate_config(config)
  if config.task != 'a2v':
    from a2v_jax import pretrain  # pylint: disable=g-import-not-at-top
    return pretrain.train_and_evaluate(config, workdir)
  from a2v_jax import data_sources  # pylint: disable=g-import-not-at-top
  from a2v_jax.data import pipeline  # pylint: disable=g-import-not-at-top
  # Batch sizes and mesh first: a mismatch with the devices fails at once.
  sizes = parallel.check_batch_sizes(config, jax.device_count(),
                                     jax.process_count())
  mesh = create_mesh(config)
  # The workdir may be remote (gs://...): orbax and epath take it as is.
  workdir = checkpointing.resolve_path(workdir)
  epath.Path(workdir).mkdir(parents=True, exist_ok=True)
  d = config.dataset
  source = data_sources.create_source(config, workdir, d.split)
  steps_per_epoch = config.optimizer.steps_per_epoch
  if steps_per_epoch <= 0:
    steps_per_epoch = max(1, len(source) // config.batch_size)
  num_steps = config.num_train_steps
  if num_steps <= 0:
    num_steps = int((config.optimizer.constant_epochs
                     + config.optimizer.decay_epochs) * steps_per_epoch)
  loader_kwargs = dict(
      batch_size=sizes.per_process,
      num_frames=d.num_frames, seed=config.seed, shuffle=True,
      num_epochs=None, worker_count=d.worker_count,
      shard_index=jax.process_index(), shard_count=jax.process_count(),
      audio_features=d.audio_features, flip=d.flip, color=d.color_jitter)
  data_iter = iter(pipeline.create_loader(source, **loader_kwargs))
  example = next(iter(pipeline.create_loader(source, **loader_kwargs)))

  nets = create_networks(config)
  batch_sharding = parallel.batch_sharding(mesh)
  example = {'frames': example['frames'], 'reference': example['reference'],
             'mfcc': example[d.audio_features]}
  traces_before = TRAIN_STEP_TRACES
  perceptual_vars = load_perceptual_vars(config)
  tx = train_state_lib.create_optimizer(config.optimizer, steps_per_epoch)
  abstract = abstract_train_state(config, nets, example, steps_per_epoch, mesh,
                                  perceptual_vars, tx)
  step_fn = jit_train_step(nets, config, mesh,
                           jax.tree.map(lambda x: x.sharding, abstract[0]))
  compiled_step = _BackgroundCompile(
      step_fn, abstract, example, batch_sharding, sizes.global_batch,
      curriculum.phase_weights(config.curriculum, config.curriculum.start_phase))
  state, frozen = create_train_state(
      config, nets, example, steps_per_epoch, load_pretrained(config, workdir),
      mesh=mesh, perceptual_vars=perceptual_vars, tx=tx)
  state_sharding = parallel.state_shardings(state, mesh)
  ckpt = checkpointing.Checkpointer(os.path.join(workdir, 'checkpoints'),
                                    max_to_keep=config.max_to_keep,
                                    keep_steps=_phase_end_steps(config))
  controller = curriculum.PhaseController.from_config(config.curriculum)
  latest = ckpt.latest_step()
  if latest is not None:
    # Collective: every process reads its own shards of the same step.
    state, meta = ckpt.restore(
        latest, parallel.abstract_with_shardings(state, state_sharding),
        data_iter)
    controller.load_state_dict(meta['curriculum'])
    logging.info('Resuming at step %d, phase %d.', latest, controller.phase)
  elif config.init_from:
    state = _init_from(state, config.init_from, state_sharding)
  step_fn = compiled_step.result((state, frozen))
  writer = metrics_writer.MetricsWriter(os.path.join(workdir, 'tensorboard'))
  schedule = train_state_lib.create_learning_rate_schedule(
      config.optimizer, steps_per_epoch)
  sampler = sample_writer.SampleWriter(config, nets, workdir, writer)
  frames_per_step = config.batch_size * d.num_frames
  is_chief = jax.process_index() == 0

  start = int(jax.device_get(state.step))
  logging.info('Training steps %d..%d (%d steps/epoch), phase %d; global '
               'batch %d = %d per device x %d devices x %d accumulation '
               'steps; mesh %s over %d process(es).', start, num_steps,
               steps_per_epoch, controller.phase, sizes.global_batch,
               sizes.per_device, jax.device_count(), sizes.grad_accum_steps,
               dict(mesh.shape), jax.process_count())
  t_last, step_last = time.time(), start
  try:
    for step in range(start, num_steps):
      host_batch = next(data_iter)
      batch = _put_batch(host_batch, batch_sharding, d.audio_features)
      weights = curriculum.phase_weights(config.curriculum, controller.phase)
      if config.debug.nan_term and step + 1 == config.debug.nan_at_step:
        weights = weights.copy()
        weights[curriculum.term_index(config.debug.nan_term)] = np.nan
      state, metrics = step_fn(state, batch, weights, frozen)
      metrics = jax.device_get(metrics)
      done = step + 1
      check_finite(metrics, done, ckpt)
      phase_before = controller.phase
      advanced = controller.update(done, weights, metrics['terms'])
      if done % config.log_every_steps == 0 or done == num_steps or advanced:
        now = time.time()
        rate = (done - step_last) / max(now - t_last, 1e-9)
        t_last, step_last = now, done
        if is_chief:
          _log_progress(done, num_steps, phase_before, rate,
                        rate * frames_per_step, metrics)
        scalars = {f'loss/{k}': v for k, v in metrics['terms'].items()}
        scalars.update({f'loss_parts/{k}': v
                        for k, v in metrics['parts'].items()})
        scalars.update({f'loss_weighted/{k}': v
                        for k, v in metrics['weighted'].items()})
        scalars.update({f'd_loss/{k}': v for k, v in metrics['d_loss'].items()})
        lr = float(schedule(done - 1))
        scalars.update({'g_total': metrics['g_total'], 'lr/generator': lr,
                        # The phase this step trained in (the controller
                        # may just have advanced to the next one).
                        'lr/discriminators': lr, 'curriculum/phase':
                        phase_before, 'throughput/steps_per_s': rate,
                        'throughput/frames_per_s': rate * frames_per_step})
        writer.write_scalars(done, scalars)
      # Samples and evaluations read the EMA generator on process 0 only;
      # with FSDP every process first takes part in gathering it.
      if done % config.sample_every_steps == 0 or done == num_steps:
        sampler.write(done, _chief_view(state, mesh), frozen, host_batch)
      if config.evals and (done % config.eval_every_steps == 0
                           or done == num_steps):
        view = _chief_view(state, mesh)
        if is_chief:
          writer.write_scalars(done, sampler.evaluate(view, frozen))
      if (done % config.ckpt_every_steps == 0 or done == num_steps
          or advanced):
        ckpt.save(done, state, {
            'config': config.to_dict(), 'step': done,
            'curriculum': controller.state_dict(),
            'phase': controller.phase, 'phase_reason': controller.reason,
        }, data_iter)
      if done == config.debug.hang_after_step:
        ckpt.wait_until_finished()
        logging.warning('debug.hang_after_step: step %d is committed; '
                        'blocking until killed.', done)
        while True:
          time.sleep(1)
  finally:
    ckpt.close()
    writer.close()
  retraces = TRAIN_STEP_TRACES - traces_before
  logging.info('Done at step %d, phase %d; the train step was traced %d '
               'time(s).', num_steps, controller.phase, retraces)
  return state


def _chief_view(state, mesh: Mesh):
  """`state` with its EMA generator fully replicated (a collective)."""
  return state.replace(ema_g_params=parallel.gather_replicated(
      state.ema_g_params, mesh))


def _log_progress(step, num_steps, phase, steps_per_s, frames_per_s, metrics):
  eta = (num_steps - step) / max(steps_per_s, 1e-9)
  terms = ' '.join(f'{k}={float(v):.3f}' for k, v in metrics['terms'].items()
                   if metrics['weighted'][k] != 0)
  d = ' '.join(f'D_{k}={float(v):.3f}' for k, v in metrics['d_loss'].items())
  logging.info('step %d/%d | phase %d | %.2f steps/s %.1f frames/s | ETA '
               '%dh%02dm%02ds | %s | %s', step, num_steps, phase, steps_per_s,
               frames_per_s, eta // 3600, eta % 3600 // 60, eta % 60, terms, d)
