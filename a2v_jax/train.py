"""OneShotA2V training: the loop around the GAN step.

`train_and_evaluate(config, workdir)` is the whole run: data, networks
(a2v_jax/networks.py), the state (a2v_jax/train_state.py), the jitted GAN
step (a2v_jax/gan_step.py), the curriculum, checkpoints, samples and
evaluations. A config whose task is a helper network's goes to
a2v_jax/pretrain.py instead.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any, Callable, Sequence

from absl import logging
import jax
from jax.sharding import Mesh
from etils import epath
import ml_collections
import numpy as np

from a2v_jax import checkpointing
from a2v_jax import config_validation
from a2v_jax import curriculum
from a2v_jax import data_sources
from a2v_jax import gan_step
from a2v_jax import losses
from a2v_jax import metrics_writer
from a2v_jax import networks
from a2v_jax import parallel
from a2v_jax import pretrain
from a2v_jax import run_errors
from a2v_jax import progress
from a2v_jax import run_plan
from a2v_jax import sample_writer
from a2v_jax import train_state as train_state_lib
from a2v_jax.data import pipeline

# Errors whose message names the problem and the fix (a2v_jax.main prints
# them as one line).
INPUT_ERRORS = run_errors.INPUT_ERRORS

# Called as hook(step, checkpointer) after each step's checkpoint is saved.
StepHook = Callable[[int, checkpointing.Checkpointer], None]


def create_mesh(config: ml_collections.ConfigDict | None = None) -> Mesh:
  """The ('data', 'fsdp') mesh of `config.mesh` over every device of every
  process (all on 'data' when config is None); see a2v_jax/parallel.py."""
  return parallel.create_mesh(None if config is None else config.mesh)


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
      raise losses.NonFiniteLossError(
          f'loss term {name!r} is {float(value)} at step {step}; stopping. '
          f'The last good checkpoint (step {last}) is untouched; lower the '
          f'learning rate or the term\'s weight and resume.')


def _step_batch(batch, audio_features: str) -> dict[str, Any]:
  """The train step's inputs of a loader batch: the audio windows go under
  'audio' whichever features they are."""
  return {'frames': batch['frames'], 'reference': batch['reference'],
          'audio': batch[audio_features]}


def _put_batch(batch, sharding, audio_features: str):
  """Global arrays of the train step's inputs from this process's batch."""
  return {k: jax.make_array_from_process_local_data(sharding, np.asarray(v))
          for k, v in _step_batch(batch, audio_features).items()}


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
  that it overlaps the helpers' pretraining and the state's init. XLA's
  compiles use more than one thread, so they overlap only partly."""

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


def _data(config, workdir: str, per_process_batch: int):
  """(loader iterator, one example batch, steps per epoch, total steps)."""
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
      batch_size=per_process_batch,
      num_frames=d.num_frames, seed=config.seed, shuffle=True,
      num_epochs=None, worker_count=d.worker_count,
      shard_index=jax.process_index(), shard_count=jax.process_count(),
      audio_features=d.audio_features, flip=d.flip, color=d.color_jitter)
  data_iter = iter(pipeline.create_loader(source, **loader_kwargs))
  example = next(iter(pipeline.create_loader(source, **loader_kwargs)))
  return data_iter, example, steps_per_epoch, num_steps


def _set_up_state(config, workdir, nets, example, steps_per_epoch, mesh,
                  global_batch: int):
  """(state, frozen, compiled step): the step compiles in the background
  while the helpers are loaded (or pretrained) and the state initialised."""
  perceptual_vars = networks.load_perceptual_vars(config)
  tx = train_state_lib.create_optimizer(config.optimizer, steps_per_epoch)
  abstract = train_state_lib.abstract_train_state(
      config, nets, example, steps_per_epoch, mesh, perceptual_vars, tx)
  step_fn = gan_step.jit_train_step(
      nets, config, mesh, jax.tree.map(lambda x: x.sharding, abstract[0]))
  compiled_step = _BackgroundCompile(
      step_fn, abstract, example, parallel.batch_sharding(mesh), global_batch,
      curriculum.phase_weights(config.curriculum,
                               config.curriculum.start_phase))
  state, frozen = train_state_lib.create_train_state(
      config, nets, example, steps_per_epoch,
      pretrain.load_pretrained(config, workdir), mesh=mesh,
      perceptual_vars=perceptual_vars, tx=tx)
  return state, frozen, compiled_step


def _restore(config, state, mesh, ckpt, data_iter, controller):
  """The state to start from: the workdir's latest checkpoint (with the
  loader and the curriculum), else config.init_from, else `state`."""
  state_sharding = parallel.state_shardings(state, mesh)
  latest = ckpt.latest_step()
  if latest is not None:
    # Collective: every process reads its own shards of the same step.
    state, meta = ckpt.restore(
        latest, parallel.abstract_with_shardings(state, state_sharding),
        data_iter)
    controller.load_state_dict(meta['curriculum'])
    logging.info('Resuming at step %d, phase %d.', latest, controller.phase)
  elif config.init_from:
    # A SyncNet named for this run wins over the other run's sync D.
    keep = ('sync',) if config.pretrained.get('syncnet_ckpt') else ()
    state = train_state_lib.init_from_checkpoint(state, config.init_from,
                                                 state_sharding, keep)
  return state


def _scalars(metrics, lr: float, phase: int, rate: float,
             frames_per_step: int) -> dict[str, Any]:
  """TensorBoard scalars of one logged step."""
  scalars = {f'loss/{k}': v for k, v in metrics['terms'].items()}
  scalars.update({f'loss_parts/{k}': v for k, v in metrics['parts'].items()})
  scalars.update({f'loss_weighted/{k}': v
                  for k, v in metrics['weighted'].items()})
  scalars.update({f'd_loss/{k}': v for k, v in metrics['d_loss'].items()})
  scalars.update({'g_total': metrics['g_total'], 'lr/generator': lr,
                  # The phase this step trained in (the controller may just
                  # have advanced to the next one).
                  'lr/discriminators': lr, 'curriculum/phase': phase,
                  'throughput/steps_per_s': rate,
                  'throughput/frames_per_s': rate * frames_per_step})
  return scalars


def _phase_weights(config, controller, step: int) -> np.ndarray:
  """The loss weights of the controller's phase; config.debug.nan_term makes
  one of them NaN at config.debug.nan_at_step (the NaN stop's fire drill)."""
  weights = curriculum.phase_weights(config.curriculum, controller.phase)
  if config.debug.nan_term and step + 1 == config.debug.nan_at_step:
    weights = weights.copy()
    weights[curriculum.term_index(config.debug.nan_term)] = np.nan
  return weights


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str,
                       hooks: Sequence[StepHook] = ()):
  """Trains (resuming from `workdir` if it has a checkpoint).

  Args:
    config: a validated-at-start config (the keys of a2v_jax/base_config.py).
    workdir: checkpoints, TensorBoard events and samples (may be gs://).
    hooks: called as hook(step, checkpointer) after each step's save.

  Returns:
    The final TrainState (helper tasks: pretrain.train_and_evaluate's).
  """
  config_validation.validate_config(config)
  if jax.process_index() == 0:
    logging.info('%s', run_plan.plan(config, workdir,
                                     pretrain.unused_helpers(config)))
  if config.task != 'a2v':
    return pretrain.train_and_evaluate(config, workdir)
  # Batch sizes and mesh first: a mismatch with the devices fails at once.
  sizes = parallel.check_batch_sizes(config, jax.device_count(),
                                     jax.process_count())
  mesh = create_mesh(config)
  # The workdir may be remote (gs://...): orbax and epath take it as is.
  workdir = checkpointing.resolve_path(workdir)
  epath.Path(workdir).mkdir(parents=True, exist_ok=True)
  data_iter, example, steps_per_epoch, num_steps = _data(
      config, workdir, sizes.per_process)
  nets = networks.create_networks(config)
  traces_before = gan_step.TRAIN_STEP_TRACES
  example = _step_batch(example, config.dataset.audio_features)
  state, frozen, compiled_step = _set_up_state(
      config, workdir, nets, example, steps_per_epoch, mesh,
      sizes.global_batch)
  ckpt = checkpointing.Checkpointer(os.path.join(workdir, 'checkpoints'),
                                    max_to_keep=config.max_to_keep,
                                    keep_steps=_phase_end_steps(config))
  controller = curriculum.PhaseController.from_config(config.curriculum)
  loop = None
  # The checkpointer is closed however this ends: a bad init_from or resume
  # raised with its threads still open used to abort the process at exit.
  try:
    state = _restore(config, state, mesh, ckpt, data_iter, controller)
    loop = _Loop(config, workdir, nets, mesh, ckpt, controller, num_steps,
                 steps_per_epoch, hooks)
    start = int(jax.device_get(state.step))
    logging.info('Training steps %d..%d (%d steps/epoch), phase %d; global '
                 'batch %d = %d per device x %d devices x %d accumulation '
                 'steps; mesh %s over %d process(es).', start, num_steps,
                 steps_per_epoch, controller.phase, sizes.global_batch,
                 sizes.per_device, jax.device_count(),
                 sizes.grad_accum_steps, dict(mesh.shape),
                 jax.process_count())
    state = loop.run(compiled_step.result((state, frozen)), state, frozen,
                     data_iter, start)
  finally:
    ckpt.close()
    if loop is not None:
      loop.writer.close()
  logging.info('Done at step %d, phase %d; the train step was traced %d '
               'time(s).', num_steps, controller.phase,
               gan_step.TRAIN_STEP_TRACES - traces_before)
  return state


class _Loop:
  """The steps of one run, with their logging, samples, evaluations and
  checkpoints."""

  def __init__(self, config, workdir, nets, mesh, ckpt, controller,
               num_steps: int, steps_per_epoch: int,
               hooks: Sequence[StepHook]):
    self.config, self.mesh, self.ckpt = config, mesh, ckpt
    self.controller, self.num_steps, self.hooks = controller, num_steps, hooks
    self.writer = metrics_writer.MetricsWriter(
        os.path.join(workdir, 'tensorboard'))
    self.schedule = train_state_lib.create_learning_rate_schedule(
        config.optimizer, steps_per_epoch)
    self.sampler = sample_writer.SampleWriter(config, nets, workdir,
                                              self.writer)
    self.frames_per_step = config.batch_size * config.dataset.num_frames
    self.is_chief = jax.process_index() == 0
    self.batch_sharding = parallel.batch_sharding(mesh)

  def run(self, step_fn, state, frozen, data_iter, start: int):
    """Steps start..num_steps; returns the last state."""
    config = self.config
    self._t_last, self._step_last = time.time(), start
    self.bar = progress.stage_bar('GAN', self.num_steps, start)
    try:
      return self._run(step_fn, state, frozen, data_iter, start)
    finally:
      self.bar.close()

  def _run(self, step_fn, state, frozen, data_iter, start: int):
    config = self.config
    for step in range(start, self.num_steps):
      host_batch = next(data_iter)
      batch = _put_batch(host_batch, self.batch_sharding,
                         config.dataset.audio_features)
      weights = _phase_weights(config, self.controller, step)
      state, metrics = step_fn(state, batch, weights, frozen)
      metrics = jax.device_get(metrics)
      done = step + 1
      check_finite(metrics, done, self.ckpt)
      phase_before = self.controller.phase
      advanced = self.controller.update(done, weights, metrics['terms'])
      last = done == self.num_steps
      if done % config.log_every_steps == 0 or last or advanced:
        self._log(done, phase_before, metrics)
      # Samples and evaluations read the EMA generator on process 0 only;
      # with FSDP every process first takes part in gathering it.
      if done % config.sample_every_steps == 0 or last:
        self.sampler.write(done, _chief_view(state, self.mesh), frozen,
                           host_batch)
      if config.evals and (done % config.eval_every_steps == 0 or last):
        view = _chief_view(state, self.mesh)
        if self.is_chief:
          self.writer.write_scalars(done, self.sampler.evaluate(view, frozen))
      if done % config.ckpt_every_steps == 0 or last or advanced:
        self.ckpt.save(done, state, {
            'config': config.to_dict(), 'step': done,
            'curriculum': self.controller.state_dict(),
            'phase': self.controller.phase,
            'phase_reason': self.controller.reason,
        }, data_iter)
      for hook in self.hooks:
        hook(done, self.ckpt)
      self.bar.update(1)
    return state

  def _log(self, done: int, phase: int, metrics) -> None:
    now = time.time()
    rate = (done - self._step_last) / max(now - self._t_last, 1e-9)
    self._t_last, self._step_last = now, done
    if self.is_chief and self.bar.disable:
      _log_progress(done, self.num_steps, phase, rate,
                    rate * self.frames_per_step, metrics)
    elif self.is_chief:
      # Short enough for one line; every term goes to TensorBoard.
      self.bar.set_postfix_str(
          f'phase {phase}, G loss {float(metrics["g_total"]):.3f}',
          refresh=False)
    self.writer.write_scalars(done, _scalars(
        metrics, float(self.schedule(done - 1)), phase, rate,
        self.frames_per_step))


def _chief_view(state, mesh: Mesh):
  """`state` with its EMA generator fully replicated (a collective)."""
  return state.replace(ema_g_params=parallel.gather_replicated(
      state.ema_g_params, mesh))


def _log_progress(step, num_steps, phase, steps_per_s, frames_per_s, metrics):
  eta = (num_steps - step) / max(steps_per_s, 1e-9)
  logging.info('step %d/%d | phase %d | %.2f steps/s %.1f frames/s | ETA '
               '%dh%02dm%02ds | %s', step, num_steps, phase, steps_per_s,
               frames_per_s, eta // 3600, eta % 3600 // 60, eta % 60,
               _loss_text(metrics))


def _loss_text(metrics) -> str:
  """The weighted generator terms and the discriminator losses."""
  terms = ' '.join(f'{k}={float(v):.3f}' for k, v in metrics['terms'].items()
                   if metrics['weighted'][k] != 0)
  d = ' '.join(f'D_{k}={float(v):.3f}' for k, v in metrics['d_loss'].items())
  return f'{terms} | {d}'
