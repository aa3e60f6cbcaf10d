"""TensorBoard output through tensorboardX: scalars, image grids, clips + audio.

`clu.metric_writers` would be the house choice, but it imports TensorFlow,
which the core install leaves out; tensorboardX writes the same event files.
Only process 0 writes; other processes get a writer that does nothing.

Clips go two ways: an .mp4 with its audio track beside the event files (in
`<logdir>/clips/`; TensorBoard cannot play sound with video), and in
TensorBoard as an image strip of the frames plus the audio as an audio summary.
"""

from __future__ import annotations

import os
from typing import Mapping

from absl import logging
import jax
import numpy as np


def to_uint8(images: np.ndarray) -> np.ndarray:
  """float [-1, 1] -> uint8 [0, 255], any leading shape, channels last."""
  images = np.asarray(images, np.float32)
  return np.clip(np.round((images + 1.0) * 127.5), 0, 255).astype(np.uint8)


def make_grid(rows: Mapping[str, np.ndarray], max_columns: int = 8) -> np.ndarray:
  """Stacks image batches as rows of one grid.

  Args:
    rows: name -> [N, H, W, 3] float32 in [-1, 1] (e.g. reference, real,
      generated); all the same H, W.
    max_columns: at most this many images per row.

  Returns:
    uint8 [rows*H, columns*W, 3].
  """
  lines = []
  n = min(min(len(v) for v in rows.values()), max_columns)
  for images in rows.values():
    lines.append(np.concatenate(list(to_uint8(images[:n])), axis=1))
  return np.concatenate(lines, axis=0)


class MetricsWriter:
  """Writes training summaries for TensorBoard into `logdir`."""

  def __init__(self, logdir: str, enabled: bool | None = None):
    self.logdir = logdir
    self.enabled = jax.process_index() == 0 if enabled is None else enabled
    self._writer = None
    if self.enabled:
      from tensorboardX import SummaryWriter  # pylint: disable=g-import-not-at-top
      os.makedirs(logdir, exist_ok=True)
      self._writer = SummaryWriter(logdir=logdir, flush_secs=30)

  def write_scalars(self, step: int, scalars: Mapping[str, float]) -> None:
    """One scalar summary per entry; names may use '/' to group."""
    if not self.enabled:
      return
    for name, value in scalars.items():
      self._writer.add_scalar(name, float(value), global_step=step)

  def write_images(self, step: int, images: Mapping[str, np.ndarray]) -> None:
    """images: name -> uint8 [H, W, 3]."""
    if not self.enabled:
      return
    for name, image in images.items():
      self._writer.add_image(name, np.asarray(image), global_step=step,
                             dataformats='HWC')

  def write_clip(self, step: int, name: str, frames: np.ndarray, fps: float,
                 audio: np.ndarray | None = None,
                 sample_rate: int = 16000) -> str | None:
    """Writes a clip: an .mp4 with audio beside the logs, and TB summaries.

    Args:
      step: global step (part of the file name).
      name: summary name, e.g. 'samples/clip'.
      frames: uint8 [T, H, W, 3].
      fps: frame rate.
      audio: optional float32 [N] mono in [-1, 1].
      sample_rate: of `audio`.

    Returns:
      The path of the .mp4, or None when nothing was written.
    """
    if not self.enabled:
      return None
    frames = np.asarray(frames, np.uint8)
    self._writer.add_image(f'{name}/frames', np.concatenate(list(frames), 1),
                           global_step=step, dataformats='HWC')
    if audio is not None:
      self._writer.add_audio(f'{name}/audio', np.asarray(audio, np.float32),
                             global_step=step, sample_rate=sample_rate)
    path = os.path.join(self.logdir, 'clips',
                        f'{name.replace("/", "_")}_{step:08d}.mp4')
    os.makedirs(os.path.dirname(path), exist_ok=True)
    try:
      from a2v_jax.media import video  # pylint: disable=g-import-not-at-top
      # libx264 needs even sizes; our crops (64, 128, 256) are even.
      video.write_video(path, frames, fps, audio=audio,
                        sample_rate=sample_rate if audio is not None else None)
    except (OSError, ValueError, RuntimeError) as e:
      logging.warning('Could not write clip %s: %s', path, e)
      return None
    return path

  def flush(self) -> None:
    if self.enabled:
      self._writer.flush()

  def close(self) -> None:
    if self.enabled:
      self._writer.close()
