"""The GAN train step of OneShotA2V: losses, gradients and updates.

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

import functools
from typing import Any

import jax
from jax import lax
import jax.numpy as jnp
from jax.sharding import Mesh
import ml_collections
import numpy as np

from a2v_jax import curriculum
from a2v_jax import losses
from a2v_jax import networks
from a2v_jax import parallel
from a2v_jax import train_state as train_state_lib
from a2v_jax.face import align
from a2v_jax.models import syncnet

# Incremented each time `train_step` is traced: a phase change must not add
# a trace (tests read it; the loop logs it).
TRAIN_STEP_TRACES = 0


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


def perceptual_frame_indices(num_frames: int, k: int) -> tuple[int, ...]:
  """k evenly spaced frame indices of a window of `num_frames` (all when k
  is 0 or >= num_frames), for config.loss.perceptual_frames."""
  if k <= 0 or k >= num_frames:
    return tuple(range(num_frames))
  return tuple(int(i) for i in np.linspace(0, num_frames - 1, k + 2)[1:-1]
               .round())


def _generator_loss_fn(nets: networks.Networks, lc, w, d_vars, frozen, real,
                       feats, audio_centre):
  """fake [b, T, H, W, 3] -> (weighted total, (terms, parts)): every
  generator loss term, scored by the discriminators' current parameters."""
  gate = bool(lc.gate_inactive_terms)
  b, t, h, wd, _ = real.shape
  s0 = networks.sync_window(t)[0]
  sync_hw = tuple(nets.syncnet.input_hw)
  real_flat = real.reshape(b * t, h, wd, 3)
  real_frame_out = lax.stop_gradient(
      networks.apply_net(nets.frame_d, d_vars['frame'], real_flat)[0])

  def g_loss_fn(fake):
    fake_flat = fake.reshape(b * t, h, wd, 3)
    out = {}
    fake_out = networks.apply_net(nets.frame_d, d_vars['frame'], fake_flat)[0]
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
            networks.apply_net(nets.temporal_d, d_vars['temporal'], fake,
                               feats)[0],
            lc.gan_mode))

    def contrastive():
      faces = syncnet.lower_half(fake[:, s0:s0 + 5], sync_hw)
      v, a = networks.apply_net(nets.syncnet, d_vars['sync'], faces,
                                audio_centre)[0]
      return losses.contrastive_loss(v, a, jnp.ones([b]),
                                     lc.contrastive_margin)
    out['contrastive'] = _gated(gate, w['contrastive'], contrastive)
    out['reconstruction'] = losses.lower_half_l1_loss(real, fake)
    out['mouth'] = losses.mouth_l1_loss(real, fake, align.MOUTH_BOX)

    def blink():
      eyes = lambda x: networks.apply_net(nets.eye, frozen['eye'], x)[0]
      return losses.blink_loss(eyes(real_flat), eyes(fake_flat))
    out['blink'] = _gated(gate, w['blink'], blink)
    terms = {k: v[0] for k, v in out.items()}
    parts = {f'{k}/{p}': v for k, (_, ps) in out.items() for p, v in ps.items()}
    total = sum(w[k] * terms[k] for k in curriculum.LOSS_TERMS)
    return total, (terms, parts)

  return g_loss_fn


def _discriminator_loss_fns(nets: networks.Networks, lc, real, fake, feats,
                            audio_centre, audio_other):
  """{name: (params, collections) -> (loss, collections)} of each
  discriminator on real vs the (stop-gradient) generated frames."""
  b, t, h, wd, _ = real.shape
  s0 = networks.sync_window(t)[0]
  sync_hw = tuple(nets.syncnet.input_hw)
  real_flat = real.reshape(b * t, h, wd, 3)
  fake_flat = fake.reshape(b * t, h, wd, 3)
  sync_real_faces = syncnet.lower_half(real[:, s0:s0 + 5], sync_hw)
  sync_fake_faces = syncnet.lower_half(fake[:, s0:s0 + 5], sync_hw)

  def frame_loss(p, coll):
    v = {'params': p, **coll}
    r, coll = networks.apply_net(nets.frame_d, v, real_flat,
                                 update_stats=True)
    f, coll = networks.apply_net(nets.frame_d, {'params': p, **coll},
                                 fake_flat, update_stats=True)
    return losses.discriminator_loss(r, f, lc.gan_mode)[0], coll

  def temporal_loss(p, coll):
    v = {'params': p, **coll}
    r, coll = networks.apply_net(nets.temporal_d, v, real, feats,
                                 update_stats=True)
    f, coll = networks.apply_net(nets.temporal_d, {'params': p, **coll}, fake,
                                 feats, update_stats=True)
    return losses.temporal_discriminator_loss(r, f, lc.gan_mode)[0], coll

  def sync_loss(p, coll):
    v = {'params': p, **coll}
    faces = jnp.concatenate([sync_real_faces, sync_fake_faces,
                             sync_real_faces])
    audio = jnp.concatenate([audio_centre, audio_centre, audio_other])
    labels = jnp.concatenate([jnp.ones([b]), jnp.zeros([b]), jnp.zeros([b])])
    (ve, ae), coll = networks.apply_net(nets.syncnet, v, faces, audio)
    return losses.contrastive_loss(ve, ae, labels,
                                   lc.contrastive_margin)[0], coll

  return {'frame': frame_loss, 'temporal': temporal_loss, 'sync': sync_loss}


def _discriminator_grads(loss_fns, d_vars, w, gate: bool):
  """(losses, grads, collections) of each discriminator; with `gate`, one
  whose terms all weigh 0 is skipped under lax.cond."""
  d_losses, d_grads, d_colls = {}, {}, {}
  for name in train_state_lib.DISCRIMINATORS:
    active = sum(w[k] for k in curriculum.DISCRIMINATOR_TERMS[name]) > 0
    dv = d_vars[name]
    coll = {k: v for k, v in dv.items() if k != 'params'}
    grad_fn = jax.value_and_grad(loss_fns[name], has_aux=True)

    def run(dv=dv, coll=coll, grad_fn=grad_fn):
      return grad_fn(dv['params'], coll)

    def skip(dv=dv, coll=coll):
      return (jnp.zeros([], jnp.float32), coll), jax.tree.map(
          jnp.zeros_like, dv['params'])
    (d_losses[name], d_colls[name]), d_grads[name] = (
        lax.cond(active, run, skip) if gate else run())
  return d_losses, d_grads, d_colls


def compute_grads(nets: networks.Networks, config: ml_collections.ConfigDict,
                  state: train_state_lib.TrainState,
                  batch: dict[str, jax.Array], w: dict[str, jax.Array],
                  frozen: dict[str, Any]):
  """Gradients and losses of one (micro-)batch; no parameter changes.

  Args:
    nets, config, state, frozen: as for `train_step`.
    batch: {'frames' [b, T, H, W, 3], 'reference' [b, H, W, 3], 'audio'
      [b, T, S, F] (one audio window per frame), 'audio_other' [b, S, F]
      (another clip's audio of the centre frame, the sync discriminator's
      false pairs)}.
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
  real, audio = batch['frames'], batch['audio']
  audio_centre = audio[:, networks.sync_window(real.shape[1])[1]]
  g_other = {k: v for k, v in state.g_params.items() if k != 'params'}

  def generate(g_params):
    fake, feats, coll = networks.generate_frames(
        nets, {'params': g_params, **g_other}, frozen['ds2'],
        batch['reference'], audio, update_stats=True)
    return fake, (feats, coll)

  fake, g_vjp, (feats, g_coll) = jax.vjp(
      generate, state.g_params['params'], has_aux=True)
  feats = lax.stop_gradient(feats)
  g_loss_fn = _generator_loss_fn(nets, lc, w, state.d_params, frozen, real,
                                 feats, audio_centre)
  (g_total, (terms, parts)), g_fake_grad = jax.value_and_grad(
      g_loss_fn, has_aux=True)(fake)
  (g_grads,) = g_vjp(g_fake_grad)

  # Discriminators: each on real vs the generated frames above.
  loss_fns = _discriminator_loss_fns(nets, lc, real, lax.stop_gradient(fake),
                                     feats, audio_centre, batch['audio_other'])
  d_losses, d_grads, d_colls = _discriminator_grads(
      loss_fns, state.d_params, w, bool(lc.gate_inactive_terms))
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


def _apply_updates(state: train_state_lib.TrainState, grads, colls, w,
                   ema_decay: float) -> train_state_lib.TrainState:
  """One optimiser update of G (and its EMA) and of each discriminator; a
  discriminator whose terms all weigh 0 keeps its parameters and state."""
  g_updates, g_opt_state = state.g_tx.update(
      grads['g'], state.g_opt_state, state.g_params['params'])
  g_params_new = jax.tree.map(jnp.add, state.g_params['params'], g_updates)
  new_g = {'params': g_params_new, **colls['g']}
  ema = train_state_lib.update_ema(
      state.ema_g_params['params'], g_params_new, ema_decay)
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

  return state.replace(
      step=state.step + 1, g_params=new_g, g_opt_state=g_opt_state,
      ema_g_params=new_ema, d_params=new_d_params, d_opt_state=new_d_opt)


def train_step(nets: networks.Networks, config: ml_collections.ConfigDict,
               state: train_state_lib.TrainState, batch: dict[str, jax.Array],
               weights: jax.Array, frozen: dict[str, Any],
               mesh: Mesh | None = None):
  """One GAN step: a generator update, then one update per discriminator.

  Args:
    nets: the modules (static).
    config: the run config (static; loss options and grad_accum_steps).
    state: the TrainState (donated).
    batch: {'frames', 'reference', 'audio'} (see `compute_grads`), the whole
      optimiser step's examples, sharded over the mesh's batch axes.
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
  instead and cost nothing (see base_config.py for why that is off by default).
  A discriminator whose terms all have weight 0 keeps its parameters and
  optimiser state unchanged either way.
  """
  global TRAIN_STEP_TRACES
  TRAIN_STEP_TRACES += 1
  w = {name: weights[i] for i, name in enumerate(curriculum.LOSS_TERMS)}
  rng = jax.random.fold_in(state.rng, state.step)
  b, t = batch['audio'].shape[:2]
  centre = networks.sync_window(t)[1]
  # False sync pairs take another clip's audio, drawn over the whole batch
  # before it is split into micro-batches (so accumulation changes nothing).
  shift = jax.random.randint(rng, [], 1, max(2, b))
  batch = {'frames': batch['frames'], 'reference': batch['reference'],
           'audio': batch['audio'],
           'audio_other': jnp.roll(batch['audio'][:, centre], shift, axis=0)}
  grads, colls, metrics = accumulate_grads(
      lambda mb: compute_grads(nets, config, state, mb, w, frozen), batch,
      int(config.grad_accum_steps), mesh)
  new_state = _apply_updates(state, grads, colls, w, config.ema_decay)
  terms = metrics['terms']
  metrics = dict(metrics, weighted={k: w[k] * terms[k]
                                    for k in curriculum.LOSS_TERMS})
  return new_state, metrics


def compiler_options(config) -> dict[str, Any] | None:
  """XLA options of the train step from `config.xla_backend_optimization_level`
  (-1 = XLA's default). Level 0 compiles a GAN several times faster on CPU,
  which dominates short runs; see benchmarks/train_step.py."""
  level = config.get('xla_backend_optimization_level', -1)
  return None if level < 0 else {'xla_backend_optimization_level': int(level)}


def jit_train_step(nets: networks.Networks, config, mesh: Mesh,
                   state_sharding=None):
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
