"""Pretraining of the frozen helper networks that OneShotA2V training loads.

- 'ds2_ctc': the DeepSpeech2 audio encoder with CTC on the transcripts
  (whole utterances, characters of models/vocab.py); paper §3.1.1.
- 'syncnet': SyncNet with the contrastive loss on genuine pairs (5 frames of
  the lower face + the MFCC window centred on them) against time-shifted
  pairs (the audio window 2..max_shift frames away); paper §3.2.3.
- 'eye': EyeLandmarkNet regressing the 12 eye landmarks of the dlib
  68-point landmarks stored in the dataset (crop px -> [0, 1]).
- 'lipnet': the LipNet lip reader of the WER evaluator (not a training
  helper): CTC on the transcripts from mouth crops of whole utterances,
  cut from the aligned frames with the dataset's landmarks
  (a2v_jax/evaluation/networks.py loads it for `a2v_jax.evaluate`).

Each writes `<workdir>/checkpoints` with the item state = {'variables',
'opt_state', 'step'}; the main run loads 'variables' by path
(config.pretrained.{ds2,syncnet,eye}_ckpt). Runs resume like the main run.
"""

from __future__ import annotations

import functools
import json
import os
import time
from typing import Any, Iterator

from absl import logging
import grain
import jax
import jax.numpy as jnp
from jax.sharding import NamedSharding, PartitionSpec as P
import ml_collections
import numpy as np
import optax

from a2v_jax import checkpointing
from a2v_jax import config_validation
from a2v_jax import curriculum
from a2v_jax import data_sources
from a2v_jax import losses
from a2v_jax import metrics_writer
from a2v_jax import networks
from a2v_jax import parallel
from a2v_jax import progress
from a2v_jax.models import deepspeech2
from a2v_jax.models import eye
from a2v_jax.models import lipnet
from a2v_jax.models import syncnet
from a2v_jax.models import vocab

# Helper name (config.pretrained key) -> pretraining task.
HELPER_TASKS = {'ds2': 'ds2_ctc', 'syncnet': 'syncnet', 'eye': 'eye'}
MAX_LABEL_CHARS = 80
# Whole-utterance batches are prepared by 2 threads, 2 batches ahead. grain's
# default (16 threads, 500 elements ahead; here an element is a batch) spent
# ~45 s of the 2 cores filling the buffer while the first steps compiled: the
# DS2 helper's start-up took 60 s instead of 20.
_READ_OPTIONS = grain.ReadOptions(num_threads=2, prefetch_buffer_size=2)


def _ctc_batches(source, config, batch_size: int, seed: int) -> Iterator:
  """Whole-utterance MFCC windows + character labels, shuffled, forever."""
  from a2v_jax.audio import features  # pylint: disable=g-import-not-at-top
  t_max = config.pretrain.num_frames

  def to_example(ex):
    fps = float(ex.get('fps', 25.0))
    t = min(t_max, len(ex['frames']))
    windows = np.zeros([t_max, 20, 13], np.float32)
    windows[:t] = features.mfcc_windows(np.asarray(ex['audio'], np.float32),
                                        16000, fps, num_frames=t)
    paddings = np.ones([t_max], np.float32)
    paddings[:t] = 0.0
    text = ' '.join(w.decode() if isinstance(w, bytes) else str(w)
                    for w in ex['words'])
    labels, label_paddings = vocab.encode_batch([text], MAX_LABEL_CHARS)
    return {'windows': windows, 'paddings': paddings, 'labels': labels[0],
            'label_paddings': label_paddings[0]}

  ds = (grain.MapDataset.source(source).seed(seed).shuffle().repeat()
        .map(to_example).batch(batch_size, drop_remainder=True))
  return iter(ds.to_iter_dataset(_READ_OPTIONS))


def lipnet_config(config) -> ml_collections.ConfigDict:
  """LipNet hyper-parameters: lipnet.default_config() + config.pretrain.lipnet
  (module attributes and mouth_hw, the crop size)."""
  c = lipnet.default_config()
  c.update(dict(config.pretrain.lipnet))
  return c


def _lipnet_batches(source, config, batch_size: int, seed: int) -> Iterator:
  """Whole-utterance mouth crops + character labels, shuffled, forever.

  Mouth boxes come from the dataset's landmarks of the aligned frames (one
  box per clip, lipnet.crop_mouths); half the clips are mirrored
  (LipNet's augmentation).
  """
  t_max = config.pretrain.num_frames
  hw = tuple(lipnet_config(config).mouth_hw)

  def to_example(ex, rng):
    t = min(t_max, len(ex['frames']))
    frames = np.stack([data_sources.decode_jpeg(f) for f in ex['frames'][:t]])
    crops = lipnet.crop_mouths(frames, np.asarray(ex['landmarks'])[:t], hw)
    if rng.random() < 0.5:
      crops = crops[:, :, ::-1]
    mouths = np.zeros((t_max,) + hw + (3,), np.float32)
    mouths[:t] = crops.astype(np.float32) / 127.5 - 1.0
    paddings = np.ones([t_max], np.float32)
    paddings[:t] = 0.0
    text = ' '.join(w.decode() if isinstance(w, bytes) else str(w)
                    for w in ex['words'])
    labels, label_paddings = vocab.encode_batch([text], MAX_LABEL_CHARS)
    return {'mouths': mouths, 'paddings': paddings, 'labels': labels[0],
            'label_paddings': label_paddings[0]}

  ds = (grain.MapDataset.source(source).seed(seed).shuffle().repeat()
        .random_map(to_example).batch(batch_size, drop_remainder=True))
  return iter(ds.to_iter_dataset(_READ_OPTIONS))


def _window_batches(source, config, batch_size: int, seed: int,
                    num_frames: int) -> Iterator:
  from a2v_jax.data import pipeline  # pylint: disable=g-import-not-at-top
  return iter(pipeline.create_loader(
      source, batch_size=batch_size, num_frames=num_frames, seed=seed,
      worker_count=config.dataset.worker_count,
      shard_index=jax.process_index(), shard_count=jax.process_count()))


def _ds2_loss(model, variables, batch, rng):
  del rng
  _, logits = model.apply(variables, batch['windows'], train=False,
                          paddings=batch['paddings'])
  loss, parts = losses.ctc_loss(logits, batch['labels'],
                                batch['label_paddings'], batch['paddings'])
  return loss, parts


def _lipnet_loss(model, variables, batch, rng):
  lengths = jnp.sum(1.0 - batch['paddings'], axis=1).astype(jnp.int32)
  logits = model.apply(variables, batch['mouths'], lengths, train=True,
                       rngs={'dropout': rng})
  return losses.ctc_loss(logits, batch['labels'], batch['label_paddings'],
                         batch['paddings'])


def _pick(x: jax.Array, index: jax.Array) -> jax.Array:
  """x[i, index[i]] for each batch item i: [B, N, ...] x [B] -> [B, ...]."""
  return jnp.take_along_axis(
      x, index.reshape((-1,) + (1,) * (x.ndim - 1)), axis=1)[:, 0]


def _syncnet_loss(model, variables, batch, rng, max_shift: int,
                  margin: float, objective: str = 'multiway',
                  temperature: float = 0.1):
  """SyncNet pretraining loss on windows of 5 + 2 * max_shift frames.

  objective:
    'contrastive': the paper's loss (§3.2.3) on genuine pairs against pairs
      whose audio window is 2..max_shift frames away.
    'multiway': Chung et al. 2019 ("Perfect Match"): each video sample picks
      its audio among the 2 * max_shift + 1 windows at offsets -max_shift..
      max_shift, a softmax over -distance / temperature. Every step sees
      all offsets, which is what LSE's offset search asks of the network;
      the contrastive-only objective learned far slower here.
    'multiway_clip': the mean of 'multiway' and an in-batch term: each
      video picks its own aligned audio window among the batch's (CLIP's
      softmax over other clips). On real GRID s1 the offset task alone gave
      no gradient to start from; the in-batch term did.
  All log the mean contrastive loss and pair_accuracy (genuine closer than
  a random shifted pair); 'multiway' also logs offset_accuracy (the genuine
  window is the nearest of all 2 * max_shift + 1), 'multiway_clip' also
  clip_accuracy (the own clip is the nearest of the batch's).
  """
  frames, mfcc = batch['frames'], batch['mfcc']
  b, t = mfcc.shape[:2]
  centre = t // 2
  faces = syncnet.lower_half(frames[:, centre - 2:centre + 3],
                             model.input_hw)
  # False pairs: the audio window 2..max_shift frames before or after.
  shift = jax.random.randint(rng, [b], 2, max_shift + 1)
  sign = jnp.where(jax.random.bernoulli(jax.random.fold_in(rng, 1), 0.5,
                                        [b]), 1, -1)
  v = model.apply(variables, faces, method=syncnet.SyncNet.embed_video)
  candidates = mfcc[:, centre - max_shift:centre + max_shift + 1]
  true_idx = jnp.full([b], max_shift)
  false_idx = max_shift + sign * shift
  if objective == 'contrastive':   # embed only the two windows the pair needs
    candidates = jnp.stack([_pick(candidates, true_idx),
                            _pick(candidates, false_idx)], axis=1)
    true_idx, false_idx = jnp.zeros([b], jnp.int32), jnp.ones([b], jnp.int32)
  a = model.apply(variables, candidates.reshape((-1,) + mfcc.shape[2:]),
                  method=syncnet.SyncNet.embed_audio).reshape(
                      candidates.shape[:2] + (-1,))
  a_true, a_false = _pick(a, true_idx), _pick(a, false_idx)
  contrastive, parts = losses.contrastive_loss(
      jnp.concatenate([v, v]), jnp.concatenate([a_true, a_false]),
      jnp.concatenate([jnp.ones([b]), jnp.zeros([b])]), margin)
  d_true = syncnet.sync_distance(v, a_true)
  d_false = syncnet.sync_distance(v, a_false)
  parts['pair_accuracy'] = jnp.mean((d_true < d_false).astype(jnp.float32))
  parts['contrastive'] = contrastive
  if objective == 'contrastive':
    return contrastive, parts
  d = jnp.sqrt(jnp.sum(jnp.square(v[:, None] - a), -1) + 1e-12)   # [b, n]
  multiway = jnp.mean(optax.softmax_cross_entropy_with_integer_labels(
      -d / temperature, true_idx))
  parts['multiway'] = multiway
  parts['offset_accuracy'] = jnp.mean(
      (jnp.argmin(d, -1) == true_idx).astype(jnp.float32))
  if objective == 'multiway':
    return multiway, parts
  # 'multiway_clip': each video also picks its own clip's aligned audio among
  # the batch's (other utterances and times: easy negatives, which carry
  # the gradient while the offset task is still at chance).
  d_batch = jnp.sqrt(jnp.sum(jnp.square(
      v[:, None] - a[None, :, max_shift]), -1) + 1e-12)    # [b, b]
  clip = jnp.mean(optax.softmax_cross_entropy_with_integer_labels(
      -d_batch / temperature, jnp.arange(b)))
  parts['clip'] = clip
  parts['clip_accuracy'] = jnp.mean(
      (jnp.argmin(d_batch, -1) == jnp.arange(b)).astype(jnp.float32))
  return 0.5 * (multiway + clip), parts


def _eye_loss(model, variables, batch, rng, crop: int):
  del rng
  frames = batch['frames']
  faces = frames.reshape((-1,) + frames.shape[2:])
  target = eye.eye_targets_from_landmarks68(
      batch['landmarks'].reshape((-1, 68, 2)), crop)
  pred = model.apply(variables, faces)
  loss = jnp.mean(jnp.abs(pred - target))
  ear_err = jnp.mean(jnp.abs(eye.ear_from_eye_landmarks(pred)
                             - eye.ear_from_eye_landmarks(target)))
  return loss, {'landmark_l1': loss, 'landmark_px': loss * crop,
                'ear_abs_error': ear_err}


def _setup(config):
  """(model, example-batch iterator factory, loss fn) for config.task."""
  task = config.task
  m = config.model
  if task == 'ds2_ctc':
    model = networks.build('ds2', m.ds2)
    return model, lambda src, bs, seed: _ctc_batches(src, config, bs, seed), (
        _ds2_loss)
  if task == 'lipnet':
    model = lipnet.create_model(lipnet_config(config))
    return model, lambda src, bs, seed: _lipnet_batches(src, config, bs,
                                                        seed), _lipnet_loss
  if task == 'syncnet':
    model = networks.build('syncnet', m.syncnet)
    length = 5 + 2 * config.pretrain.max_shift
    return model, lambda src, bs, seed: _window_batches(
        src, config, bs, seed, length), functools.partial(
            _syncnet_loss, max_shift=config.pretrain.max_shift,
            margin=config.loss.contrastive_margin,
            objective=config.pretrain.syncnet_objective,
            temperature=config.pretrain.syncnet_temperature)
  model = networks.build('eye', m.eye)
  return model, lambda src, bs, seed: _window_batches(
      src, config, bs, seed, config.dataset.num_frames), functools.partial(
          _eye_loss, crop=config.dataset.crop)


def _init_inputs(task, model, batch):
  if task == 'ds2_ctc':
    return (batch['windows'],)
  if task == 'lipnet':
    return (batch['mouths'],)
  if task == 'syncnet':
    t = batch['mfcc'].shape[1]
    faces = syncnet.lower_half(batch['frames'][:, t // 2 - 2:t // 2 + 3],
                               model.input_hw)
    return faces, batch['mfcc'][:, t // 2]
  return (batch['frames'][:, 0],)


def _measure_faces(model, variables, first, batches, num_batches: int = 8):
  """A face_norm SyncNet's face statistics from the first training batches
  (a checkpoint, when one is resumed, brings its own)."""
  faces = [first['frames']] + [next(batches)['frames']
                               for _ in range(num_batches - 1)]
  faces = np.concatenate([np.asarray(f) for f in faces])
  t = faces.shape[1] // 2    # the 5 frames the loss shows the network
  faces = syncnet.lower_half(faces[:, t - 2:t + 3], model.input_hw)
  return syncnet.set_face_statistics(variables, faces, model.face_norm)


def _log(task: str, done: int, num_steps: int, steps_per_s: float, parts,
         writer, bar=None) -> None:
  """Logs (or shows on the stage's bar) and writes one step's loss parts;
  stops on a NaN or Inf."""
  parts = {k: float(v) for k, v in parts.items()}
  bad = [k for k, v in parts.items() if not np.isfinite(v)]
  if bad:
    raise losses.NonFiniteLossError(
        f'{task} pretraining: {bad[0]} is {parts[bad[0]]} at step {done}; '
        f'the last good checkpoint is untouched')
  text = ' '.join(f'{k}={v:.4f}' for k, v in parts.items())
  if bar is not None:
    bar.set_postfix_str(text, refresh=False)
  else:
    eta = (num_steps - done) / max(steps_per_s, 1e-9)
    logging.info('%s step %d/%d | %.2f steps/s | ETA %dm%02ds | %s', task,
                 done, num_steps, steps_per_s, eta // 60, eta % 60, text)
  writer.write_scalars(done, {f'{task}/{k}': v for k, v in parts.items()})


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str):
  """Pretrains the helper network of config.task into `workdir`.

  Returns:
    The trained variables (host numpy).
  """
  workdir = os.path.abspath(workdir)
  model, make_batches, loss_fn = _setup(config)
  source = data_sources.create_source(config, workdir, config.dataset.split)
  local_batch = config.batch_size // jax.process_count()
  batches = make_batches(source, local_batch, config.seed)
  first = next(batches)
  mesh = parallel.create_mesh()
  replicated = NamedSharding(mesh, P())
  data_sharding = NamedSharding(mesh, P('data'))
  rng = jax.random.PRNGKey(config.seed)
  # Compiled unoptimised, as the GAN state's init: it runs once.
  variables = jax.jit(model.init,
                      compiler_options=networks.INIT_COMPILER_OPTIONS)(
      rng, *_init_inputs(config.task, model, first))
  if config.task == 'syncnet' and model.face_norm != 'none':
    variables = _measure_faces(model, variables, first, batches)
  helper = {task: name for name, task in HELPER_TASKS.items()}.get(config.task)
  network_metadata = ({'network_config': network_config(
      helper, config.model[helper])} if helper else {})
  tx = optax.adam(config.pretrain.lr)
  state = {'variables': variables, 'opt_state': tx.init(variables),
           'step': jnp.zeros([], jnp.int32)}
  ckpt = checkpointing.Checkpointer(os.path.join(workdir, 'checkpoints'),
                                    max_to_keep=config.max_to_keep)
  latest = ckpt.latest_step()
  if latest is not None:
    abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(
        x.shape, x.dtype, sharding=replicated), state)
    state, _ = ckpt.restore(latest, abstract)
  state = jax.device_put(state, replicated)

  def step_fn(state, batch):
    step_rng = jax.random.fold_in(rng, state['step'])
    (loss, parts), grads = jax.value_and_grad(
        lambda v: loss_fn(model, v, batch, step_rng), has_aux=True)(
            state['variables'])
    updates, opt = tx.update(grads, state['opt_state'], state['variables'])
    return {'variables': optax.apply_updates(state['variables'], updates),
            'opt_state': opt, 'step': state['step'] + 1}, parts

  jitted = jax.jit(step_fn, in_shardings=(replicated, data_sharding),
                   out_shardings=(replicated, replicated), donate_argnums=0)
  writer = metrics_writer.MetricsWriter(os.path.join(workdir, 'tensorboard'))
  num_steps = config.num_train_steps if config.num_train_steps > 0 else 1000
  start = int(jax.device_get(state['step']))
  logging.info('Pretraining %s: steps %d..%d, batch %d.', config.task, start,
               num_steps, config.batch_size)
  t0, batch = time.time(), first
  bar = progress.stage_bar(f'helper {config.task}', num_steps, start)
  try:
    for step in range(start, num_steps):
      if step > start:
        batch = next(batches)
      keys = {'ds2_ctc': ('windows', 'paddings', 'labels', 'label_paddings'),
              'lipnet': ('mouths', 'paddings', 'labels', 'label_paddings')
              }.get(config.task, ('frames', 'mfcc', 'landmarks'))
      batch = {k: jax.make_array_from_process_local_data(
          data_sharding, np.asarray(batch[k])) for k in keys}
      state, parts = jitted(state, batch)
      done = step + 1
      if done % config.log_every_steps == 0 or done == num_steps:
        _log(config.task, done, num_steps, (done - start) / max(
            time.time() - t0, 1e-9), jax.device_get(parts), writer,
             None if bar.disable else bar)
      if done % config.ckpt_every_steps == 0 or done == num_steps:
        ckpt.save(done, state, {'config': config.to_dict(),
                                'task': config.task, 'step': done,
                                **network_metadata})
      bar.update(1)
  finally:
    bar.close()
    ckpt.close()
    writer.close()
  return jax.device_get(state['variables'])


def helper_config(name: str, config: ml_collections.ConfigDict
                  ) -> ml_collections.ConfigDict:
  """The pretraining config of helper `name` for main-run `config`: same
  data and network sizes, task and steps from config.pretrain."""
  c = ml_collections.ConfigDict(config.to_dict())
  c.task = HELPER_TASKS[name]
  c.num_train_steps = int(config.pretrain[f'{name}_steps'])
  c.batch_size = int(config.pretrain.batch_size)
  c.init_from = ''
  return c


# Module defaults that changed since checkpoints began to record their full
# network config: what an older checkpoint's omitted setting meant.
_LEGACY_DEFAULTS = {'ds2': {'normalize_input': True}}


def network_config(name: str, settings: Any, legacy: bool = False) -> dict:
  """Every constructor attribute of helper `name` built from config.model
  settings, as plain JSON (what a checkpoint records and reuse compares)."""
  settings = dict(settings)
  if legacy:
    settings = {**_LEGACY_DEFAULTS.get(name, {}), **settings}
  out = networks.network_config(name, settings)
  if name == 'ds2':
    out['normalize_input'] = deepspeech2.input_normalization(
        out['normalize_input'])
  return json.loads(json.dumps(out, sort_keys=True))


def check_saved_network(name: str, config: ml_collections.ConfigDict,
                        saved: dict, path: str) -> None:
  """Raises if the helper at `path` was trained with other settings than
  config.model.<name> gives (a reused encoder with another input
  normalisation would feed the generator silently different features)."""
  have = saved.get('network_config')
  if have is None:  # Written before checkpoints recorded it.
    have = network_config(
        name, saved.get('config', {}).get('model', {}).get(name, {}),
        legacy=True)
  want = network_config(name, config.model[name])
  diff = sorted(k for k in set(have) | set(want) if have.get(k) != want.get(k))
  if diff:
    raise ValueError(
        f'the pretrained {name} in {path} was trained with '
        + ', '.join(f'{k}={have.get(k)!r}' for k in diff)
        + ' but this config has '
        + ', '.join(f'{k}={want.get(k)!r}' for k in diff)
        + f'; set config.model.{name} to match, delete '
        f'{os.path.dirname(path)} to pretrain it again, or set '
        f'config.pretrained.{name}_ckpt to a matching checkpoint')


def pretrain_helper(name: str, config: ml_collections.ConfigDict,
                    workdir: str, corpus_dir: str = '') -> str:
  """Pretrains helper `name` ('ds2', 'syncnet', 'eye') into `workdir` unless
  it is already there; returns its checkpoint directory. `corpus_dir` points
  the helper at the main run's synthetic corpus, so it is not made twice."""
  path = os.path.join(workdir, 'checkpoints')
  if os.path.isdir(path):
    ckpt = checkpointing.Checkpointer(path)
    steps = ckpt.latest_step()
    ckpt.close()
    # load_pretrained checks its network config (check_saved_network).
    if steps is not None and steps >= config.pretrain[f'{name}_steps']:
      logging.info('Reusing pretrained %s from %s.', name, path)
      return path
  logging.info('Pretraining the %s helper network into %s.', name, workdir)
  helper = helper_config(name, config)
  if corpus_dir and not helper.dataset.corpus_dir:
    helper.dataset.corpus_dir = corpus_dir
  train_and_evaluate(helper, workdir)
  return path


# The loss term each optional helper serves, and the evaluator that uses it.
_HELPER_USES = {'syncnet': ('contrastive', 'lip_sync'), 'eye': ('blink', 'blink')}


def unused_helpers(config: ml_collections.ConfigDict) -> dict[str, str]:
  """{helper: why} for the helpers a run never uses: its loss term weighs 0
  in every phase the run trains and no configured evaluator needs it. Such a
  helper keeps its random init (its discriminator update is discarded) and
  is not pretrained."""
  cur = config.curriculum
  phases = curriculum.PHASE_NAMES[cur.start_phase - 1:cur.last_phase]
  out = {}
  for name, (term, evaluator) in _HELPER_USES.items():
    if (all(float(cur.weights[p].get(term, 0.0)) == 0 for p in phases)
        and evaluator not in tuple(config.get('evals', ()))):
      out[name] = (f'the {term} term weighs 0 in every phase and no '
                   f'{evaluator} evaluator runs')
  return out


def load_pretrained(config: ml_collections.ConfigDict, workdir: str
                    ) -> dict[str, Any]:
  """Variables of the frozen helper networks, by `config.pretrained` path.

  With config.pretrained.missing='pretrain', a helper without a path is
  pretrained into <workdir>/pretrained/<name> first (or reused from there).

  Returns:
    {'ds2', 'syncnet', 'eye'} -> variables, or None for random init.
  """
  out = {}
  unused = unused_helpers(config)
  for name in HELPER_TASKS:
    path = config.pretrained[f'{name}_ckpt']
    mode = config.pretrained.missing
    if not path and name in unused:
      logging.info('%s is not pretrained: %s.', name, unused[name])
      out[name] = None
      continue
    if not path and mode == 'pretrain':
      path = pretrain_helper(
          name, config, os.path.join(workdir, 'pretrained', name),
          corpus_dir=data_sources.default_corpus_dir(config, workdir))
    if not path:
      if mode == 'error':
        raise config_validation.ConfigError(
            f'config.pretrained.{name}_ckpt is empty; pretrain it with '
            f'configs/{HELPER_TASKS[name]}_grid.py and give its '
            f'workdir/checkpoints path, or set pretrained.missing to '
            f"'pretrain' or 'random'")
      logging.warning('No pretrained %s: random init (smoke test only).', name)
      out[name] = None
      continue
    tree, meta = checkpointing.load_state_tree(path)
    if meta.get('task') == HELPER_TASKS[name]:
      check_saved_network(name, config, meta, path)
    out[name] = tree['variables']  # what train_and_evaluate saves
  return out


def main(argv) -> None:
  """`python -m a2v_jax.pretrain --config=configs/lipnet_grid.py --workdir=DIR`
  (any pretraining config; the helper configs also run through a2v_jax.main)."""
  from absl import flags  # pylint: disable=g-import-not-at-top
  from a2v_jax import cli  # pylint: disable=g-import-not-at-top
  if len(argv) > 1:
    raise cli.InputError(f'unexpected arguments {" ".join(argv[1:])}; flags '
                         'take the form --name=value')
  config = flags.FLAGS.config
  if config.task not in ('ds2_ctc', 'syncnet', 'eye', 'lipnet'):
    raise cli.InputError(f"config.task={config.task!r} is not a pretraining "
                         "task; use python -m a2v_jax.main for 'a2v'")
  cli.check_dataset_dir(config)
  cli.check_writable_dir(flags.FLAGS.workdir, '--workdir')
  from a2v_jax import run_errors  # pylint: disable=g-import-not-at-top
  try:
    config_validation.validate_config(config)
    train_and_evaluate(config, flags.FLAGS.workdir)
  except run_errors.INPUT_ERRORS as e:  # bad input, a NaN loss: one line
    cli.fail(e)


if __name__ == '__main__':
  from absl import flags  # pylint: disable=g-import-not-at-top
  from ml_collections import config_flags  # pylint: disable=g-import-not-at-top
  from a2v_jax import cli  # pylint: disable=g-import-not-at-top
  config_flags.DEFINE_config_file('config', None, 'Pretraining config file.',
                                  lock_config=True)
  flags.DEFINE_string('workdir', None, 'Run directory.', required=True)
  cli.run(main)
