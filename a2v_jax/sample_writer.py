"""Samples during training: image grids, clips with audio, evaluator runs.

Generation uses the EMA generator (what inference uses). Clips come from the
first utterances of config.dataset.eval_split, decoded whole with their
audio, so the TensorBoard clip and the .mp4 beside it play with sound.
"""

from __future__ import annotations

import functools

from absl import logging
import jax
import jax.numpy as jnp
import numpy as np

from a2v_jax import data_sources
from a2v_jax import metrics_writer
from a2v_jax import networks
from a2v_jax.audio import features


def _generate_frames(nets, g_vars, ds2_vars, reference, windows):
  """reference [B, H, W, 3], windows [B, T, S, F] -> frames [B, T, H, W, 3]
  (as in training: each frame's features from the item's one window)."""
  return networks.generate_frames(nets, g_vars, ds2_vars, reference,
                                  windows)[0]


def _generate_clip(nets, g_vars, ds2_vars, reference, windows):
  """reference [1, H, W, 3], windows [T, W, S, F] (clip_windows) -> frames
  [T, H, W, 3]: each frame's features from the centre of its own window."""
  feats = networks.centre_features(nets.ds2, ds2_vars, windows)
  return networks.render_frames(nets.generator, g_vars, reference,
                                feats[None])[0][0]


def clip_windows(clip: dict, window_frames: int,
                 audio_features: str) -> np.ndarray:
  """The encoder's inputs for every frame of a clip, as inference feeds it
  (a2v_jax.inference): frame t at the centre of the window_frames-frame
  window around it, audio zero-padded past both ends.

  Args:
    clip: from data_sources.load_clip ('audio', 'fps', 'frames').
    window_frames: W, the frames per window in training.

  Returns:
    float32 [T, W, 20, F].
  """
  t = len(clip['frames'])
  fn = (features.mfcc_windows if audio_features == 'mfcc'
        else features.log_mel_windows)
  windows = fn(np.asarray(clip['audio'], np.float32), data_sources.SAMPLE_RATE,
               clip['fps'], num_frames=t + window_frames - 1,
               start_frame=-(window_frames // 2))
  return features.centred_windows(windows, window_frames).astype(np.float32)


class SampleWriter:
  """Writes image grids (reference / real / generated), clips with audio,
  and runs config.evals on generated clips."""

  def __init__(self, config, nets, workdir: str, writer):
    self.config, self.nets, self.writer = config, nets, writer
    self.workdir = workdir
    self._clip = None
    self._generate = jax.jit(functools.partial(_generate_frames, nets))
    self._generate_clip = jax.jit(functools.partial(_generate_clip, nets))

  def _frames(self, state, frozen, reference, windows):
    return np.asarray(self._generate(
        jax.device_get(state.ema_g_params), jax.device_get(frozen['ds2']),
        jnp.asarray(reference), jnp.asarray(windows)))

  def _clip_frames(self, state, frozen, clip) -> np.ndarray:
    """[T, H, W, 3] of a whole clip (load_clip), its audio windowed as in
    training and inference."""
    if 'ds2_windows' not in clip:
      clip['ds2_windows'] = clip_windows(
          clip, self.config.dataset.num_frames,
          self.config.dataset.audio_features)
    return np.asarray(self._generate_clip(
        jax.device_get(state.ema_g_params), jax.device_get(frozen['ds2']),
        jnp.asarray(clip['frames'][:1]), jnp.asarray(clip['ds2_windows'])))

  def _eval_clips(self):
    if not hasattr(self, '_clips'):
      source = data_sources.create_source(
          self.config, self.workdir, self.config.dataset.eval_split)
      self._clips = [data_sources.load_clip(
          source, i, self.config.sample_clip_frames,
          self.config.dataset.audio_features)
                     for i in range(min(self.config.eval_num_clips,
                                        len(source)))]
    return self._clips

  def _evaluator_options(self) -> dict:
    """Networks of the evaluators that need one: the frozen pretrained
    SyncNet (not the sync discriminator, which keeps training) for
    'lip_sync', and config.pretrained.lipnet_ckpt for 'wer'."""
    from a2v_jax.evaluation import networks as eval_networks  # pylint: disable=g-import-not-at-top
    evals, pre = tuple(self.config.evals), self.config.pretrained
    options = {}
    if 'lip_sync' in evals:
      if self.config.dataset.audio_features != 'mfcc':
        raise ValueError("config.evals has 'lip_sync', which scores MFCC "
                         "windows; set dataset.audio_features='mfcc' or drop "
                         "it")
      if not pre.syncnet_ckpt:
        raise ValueError("config.evals has 'lip_sync' but "
                         "config.pretrained.syncnet_ckpt is empty; give a "
                         "SyncNet checkpoint or drop 'lip_sync'")
      s = eval_networks.load_syncnet(pre.syncnet_ckpt)
      options['lip_sync'] = dict(embed_video=s.embed_video,
                                 embed_audio=s.embed_audio,
                                 prepare_faces=s.prepare_faces)
    if 'wer' in evals:
      if not pre.get('lipnet_ckpt'):
        raise ValueError("config.evals has 'wer' but "
                         "config.pretrained.lipnet_ckpt is empty; train one "
                         "with configs/lipnet_grid.py or drop 'wer'")
      options['wer'] = eval_networks.lipnet_options(
          eval_networks.load_lipnet(pre.lipnet_ckpt))
    return options

  def evaluate(self, state, frozen) -> dict[str, float]:
    """Runs config.evals on generated eval clips -> {'eval/<metric>': v}."""
    from a2v_jax.evaluation import evaluators  # pylint: disable=g-import-not-at-top
    if not hasattr(self, '_evaluators'):
      self._evaluators = evaluators.create_evaluators(
          self.config.evals, self._evaluator_options())
    clips = []
    for c in self._eval_clips():
      fake = self._clip_frames(state, frozen, c)
      clips.append(evaluators.Clip(
          utterance=c['utterance'], generated=metrics_writer.to_uint8(fake),
          fps=c['fps'], real=metrics_writer.to_uint8(c['frames']),
          mfcc=c['features'], mouth_open_gt=(
              c['mouth_open_gt'] if c['has_ground_truth'] else None)))
    out = {}
    for evaluator in self._evaluators:
      out.update({f'eval/{k}': v for k, v in evaluator.run(clips)})
    logging.info('Evaluation: %s', ' '.join(
        f'{k}={v:.4f}' for k, v in out.items()))
    return out

  def write(self, step, state, frozen, host_batch):
    if not self.writer.enabled:
      return
    n = min(4, len(host_batch['reference']))
    ref, real = host_batch['reference'][:n], host_batch['frames'][:n]
    fake = self._frames(state, frozen, ref,
                        host_batch[self.config.dataset.audio_features][:n])
    mid = real.shape[1] // 2
    grid = metrics_writer.make_grid({'reference': ref, 'real': real[:, mid],
                                     'generated': fake[:, mid]})
    self.writer.write_images(step, {'samples/reference_real_generated': grid})
    try:
      if self._clip is None:
        source = data_sources.create_source(
            self.config, self.workdir, self.config.dataset.eval_split)
        self._clip = data_sources.load_clip(
            source, 0, self.config.sample_clip_frames,
            self.config.dataset.audio_features)
      clip = self._clip
      frames = self._clip_frames(state, frozen, clip)
      self.writer.write_clip(step, 'samples/clip',
                             metrics_writer.to_uint8(frames), clip['fps'],
                             clip['audio'])
    except (OSError, ValueError, IndexError) as e:
      logging.warning('No sample clip at step %d: %s', step, e)
    self.writer.flush()
