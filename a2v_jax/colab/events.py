"""A training run's TensorBoard event files, read back without TensorFlow.

a2v_jax/metrics_writer.py writes them with tensorboardX; this reads the
scalar and image summaries (TFRecord framing, tensorboardX's Event proto) so
a notebook can plot the losses and show the samples inline.
"""
from __future__ import annotations

import dataclasses
import glob
import os
import struct
from typing import Mapping

import numpy as np

from a2v_jax.colab import runtime


@dataclasses.dataclass
class Events:
  """What a run's event files hold.

  Attributes:
    scalars: tag -> (steps int64 [N], values float64 [N]), by step.
    images: tag -> list of (step, encoded PNG bytes), by step.
  """
  scalars: dict[str, tuple[np.ndarray, np.ndarray]]
  images: dict[str, list[tuple[int, bytes]]]


def _records(path: str):
  """The payloads of a TFRecord file; a truncated tail (a writer still
  writing) ends the iteration."""
  with open(path, "rb") as f:
    while True:
      header = f.read(12)  # uint64 length + uint32 masked CRC of it
      if len(header) < 12:
        return
      (length,) = struct.unpack("<Q", header[:8])
      payload = f.read(length)
      if len(payload) < length or len(f.read(4)) < 4:
        return
      yield payload


def read_events(logdir: str) -> Events:
  """Reads the scalar and image summaries of the event files in `logdir`.

  Raises:
    runtime.NotebookError: no event files there.
  """
  from tensorboardX.proto import event_pb2  # pylint: disable=g-import-not-at-top
  paths = sorted(glob.glob(os.path.join(logdir, "events.out.tfevents.*")))
  if not paths:
    raise runtime.NotebookError(
        f"no TensorBoard event files in {logdir}; pass the "
        "run's <workdir>/tensorboard after training")
  scalars: dict[str, dict[int, float]] = {}
  images: dict[str, dict[int, bytes]] = {}
  for path in paths:
    for payload in _records(path):
      event = event_pb2.Event.FromString(payload)
      if not event.HasField("summary"):
        continue
      for value in event.summary.value:
        kind = value.WhichOneof("value")
        if kind == "simple_value":
          scalars.setdefault(value.tag, {})[event.step] = value.simple_value
        elif kind == "tensor" and value.tensor.float_val:
          scalars.setdefault(value.tag, {})[event.step] = (
              value.tensor.float_val[0])
        elif kind == "image":
          images.setdefault(value.tag, {})[event.step] = (
              value.image.encoded_image_string)
  return Events(
      scalars={t: (np.array(sorted(v), np.int64),
                   np.array([v[s] for s in sorted(v)], np.float64))
               for t, v in scalars.items()},
      images={t: sorted(v.items()) for t, v in images.items()})


def decode_png(data: bytes) -> np.ndarray:
  """PNG bytes -> uint8 [H, W, 3] RGB."""
  import cv2  # pylint: disable=g-import-not-at-top
  image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
  if image is None:
    raise runtime.NotebookError("an image summary is not a decodable PNG")
  return image[..., ::-1]


def _phase_term_sets(weights: Mapping[str, Mapping[str, float]] | None
                     ) -> dict[int, frozenset[str]]:
  """phase -> the loss terms with a non-zero weight in it."""
  if weights is None:
    from a2v_jax import curriculum  # pylint: disable=g-import-not-at-top
    weights = curriculum.paper_weights()
  return {int(name.removeprefix("phase")): frozenset(
      t for t, w in dict(ws).items() if w > 0) for name, ws in weights.items()}


def phase_of_steps(events: Events, steps: np.ndarray,
                   weights: Mapping[str, Mapping[str, float]] | None = None
                   ) -> np.ndarray:
  """The curriculum phase each logged step trained in: int [N].

  A step's phase is the one whose non-zero loss weights (`weights`:
  config.curriculum.weights, default the base config's paper curriculum)
  are exactly the terms with a non-zero 'loss_weighted/*' value at that
  step. Steps that match no phase fall back to 'curriculum/phase' logged
  at the previous logged step (the loop logs the phase after its update,
  so a step's own value may already be the next phase).
  """
  steps = np.asarray(steps)
  fallback = np.ones(len(steps), np.int64)
  if "curriculum/phase" in events.scalars:
    log_steps, phases = events.scalars["curriculum/phase"]
    before = np.concatenate([phases[:1], phases[:-1]]).astype(np.int64)
    fallback = before[np.clip(np.searchsorted(log_steps, steps), 0,
                              len(before) - 1)]
  prefix = "loss_weighted/"
  weighted = {tag[len(prefix):]: dict(zip(s.tolist(), v.tolist()))
              for tag, (s, v) in events.scalars.items()
              if tag.startswith(prefix)}
  if not weighted:
    return fallback
  by_terms = {terms: phase for phase, terms in
              _phase_term_sets(weights).items()}
  out = fallback.copy()
  for i, step in enumerate(steps.tolist()):
    active = frozenset(t for t, v in weighted.items()
                       if v.get(step, 0.0) != 0.0)
    out[i] = by_terms.get(active, fallback[i])
  return out


def latest_clip(workdir: str) -> str | None:
  """The newest sample clip (.mp4 with audio) a training run wrote."""
  clips = sorted(glob.glob(os.path.join(workdir, "tensorboard", "clips",
                                        "*.mp4")))
  return clips[-1] if clips else None
