"""The evaluator networks: SyncNet (ours or the official syncnet_v2) and LipNet.

Each loader turns a checkpoint into the plain callables the evaluator
plug-ins take (a2v_jax/evaluation/evaluators.py), together with a one-line
description for the report (which network, trained where, which step):

- `load_syncnet(path)`: a checkpoint directory of the 'syncnet' pretraining
  task (a2v_jax/pretrain.py, trained here), or a syncnet_v2 weights file
  (`.model` / `.safetensors` / `.npz`, see syncnet_v2_convert). Gives a
  `SyncNetSpec`: the embedders, the face preparation and the per-frame audio
  windows that network reads.
- `load_lipnet(path)`: a checkpoint directory of the 'lipnet' pretraining
  task. Gives a `LipReader`: `read(frames, landmarks) -> transcript`.
- `syncnet_options` / `lipnet_options`: the `options` entries of
  `evaluators.create_evaluators` for 'lip_sync' and 'wer' (also for the
  training loop, which holds the SyncNet variables in memory).
"""
from __future__ import annotations

import dataclasses
import functools
import os
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from a2v_jax import networks as a2v_networks
from a2v_jax.models import lipnet as lipnet_lib
from a2v_jax.models import syncnet as syncnet_lib


class NetworkError(ValueError):
  """An evaluator network that cannot be loaded."""


def load_pretrained(path: str, task: str) -> tuple[dict, dict, int]:
  """(variables, config dict, step) of a pretraining checkpoint directory.

  Args:
    path: `<workdir>/checkpoints` of a pretraining run, or its workdir.
    task: the pretraining task the checkpoint must come from.
  """
  from a2v_jax import checkpointing  # pylint: disable=g-import-not-at-top
  path = os.path.abspath(os.fspath(path))
  if os.path.isdir(os.path.join(path, "checkpoints")):
    path = os.path.join(path, "checkpoints")
  try:
    tree, metadata = checkpointing.load_state_tree(path)
  except (checkpointing.CheckpointError, OSError, ValueError) as e:
    raise NetworkError(f"cannot load the {task} checkpoint at {path}: "
                       f"{' '.join(str(e).split())[:200]}") from None
  if metadata.get("task") != task:
    raise NetworkError(
        f"{path} holds a {metadata.get('task')!r} checkpoint, not {task!r}; "
        f"pass the checkpoints of a `{task}` pretraining run")
  return tree["variables"], dict(metadata.get("config") or {}), int(
      metadata.get("step", 0))


# ------------------------------------------------------------------ SyncNet --


@dataclasses.dataclass(frozen=True)
class SyncNetSpec:
  """A SyncNet ready for LSE.

  Attributes:
    embed_video: [B, 5, h, w, 3] -> [B, E] numpy.
    embed_audio: [B, 20, 13] -> [B, E] numpy.
    prepare_faces: uint8 [T, H, W, 3] aligned faces -> [T, h, w, 3] inputs.
    audio_windows: (audio float32 [N] 16 kHz, fps, T) -> [T, 20, 13], the
      window of frame t centred on it (what lip_sync.make_sync_windows pairs
      with the 5 frames around t).
    description: one line for the report.
  """
  embed_video: Callable[[np.ndarray], np.ndarray]
  embed_audio: Callable[[np.ndarray], np.ndarray]
  prepare_faces: Callable[[np.ndarray], np.ndarray]
  audio_windows: Callable[[np.ndarray, float, int], np.ndarray]
  description: str


def _mfcc_windows(audio: np.ndarray, fps: float, num_frames: int
                  ) -> np.ndarray:
  from a2v_jax.audio import features  # pylint: disable=g-import-not-at-top
  return features.mfcc_windows(np.asarray(audio, np.float32), 16000, fps,
                               num_frames=num_frames)


def syncnet_options(model: syncnet_lib.SyncNet, variables: Any
                    ) -> dict[str, Any]:
  """LipSyncEvaluator kwargs for our SyncNet (e.g. the training run's).

  Faces: the lower half of the aligned crops, resized to model.input_hw, in
  [-1, 1], as pretraining and the contrastive loss feed them.
  """
  video = jax.jit(functools.partial(model.apply, variables,
                                    method=syncnet_lib.SyncNet.embed_video))
  audio = jax.jit(functools.partial(model.apply, variables,
                                    method=syncnet_lib.SyncNet.embed_audio))
  hw = tuple(model.input_hw)

  def prepare(frames):
    faces = np.asarray(frames, np.float32) / 127.5 - 1.0
    return np.asarray(syncnet_lib.lower_half(faces, hw))

  return {"embed_video": lambda v: np.asarray(video(jnp.asarray(v))),
          "embed_audio": lambda a: np.asarray(audio(jnp.asarray(a))),
          "prepare_faces": prepare}


def _official_windows(audio: np.ndarray, fps: float, num_frames: int
                      ) -> np.ndarray:
  """syncnet_python's audio windows, re-indexed per frame.

  syncnet_python pairs video frames i..i+4 with the 20 MFCC steps (100 Hz)
  starting at frame i's time; lip_sync pairs them with the window of frame
  i + 2, so frame t gets the steps from (t - 2) / fps on (zeros outside).
  """
  from a2v_jax.models import syncnet_v2  # pylint: disable=g-import-not-at-top
  cc = syncnet_v2.compute_speech_mfcc(np.asarray(audio, np.float32))
  steps_per_frame = 100.0 / fps
  out = np.zeros((num_frames, 20, 13), np.float32)
  for t in range(num_frames):
    start = int(round((t - 2) * steps_per_frame))
    lo, hi = max(start, 0), min(start + 20, len(cc))
    if hi > lo:
      out[t, lo - start:hi - start] = cc[lo:hi]
  return out


def _load_official(path: str) -> SyncNetSpec:
  from a2v_jax.evaluation import syncnet_v2_convert  # pylint: disable=g-import-not-at-top
  from a2v_jax.models import syncnet_v2  # pylint: disable=g-import-not-at-top
  try:
    model, variables = syncnet_v2_convert.load_syncnet_v2(path)
  except (OSError, ValueError, ImportError) as e:
    raise NetworkError(f"cannot load syncnet_v2 weights from {path}: "
                       f"{' '.join(str(e).split())[:200]}") from None
  video = jax.jit(functools.partial(model.apply, variables,
                                    method=syncnet_v2.SyncNetV2.embed_video))
  audio = jax.jit(functools.partial(model.apply, variables,
                                    method=syncnet_v2.SyncNetV2.embed_audio))

  def prepare(frames):
    import cv2  # pylint: disable=g-import-not-at-top
    size = (syncnet_v2.FACE_SIZE, syncnet_v2.FACE_SIZE)
    faces = np.stack([cv2.resize(np.ascontiguousarray(f), size,
                                 interpolation=cv2.INTER_LINEAR)
                      for f in np.asarray(frames)])
    return syncnet_v2.rgb_to_syncnet_input(faces)

  return SyncNetSpec(
      embed_video=lambda v: np.asarray(video(jnp.asarray(v))),
      embed_audio=lambda a: np.asarray(audio(jnp.asarray(a))),
      prepare_faces=prepare, audio_windows=_official_windows,
      description=f"official syncnet_v2 weights ({os.path.basename(path)})")


def load_syncnet(path: str) -> SyncNetSpec:
  """Our pretrained SyncNet (a directory) or syncnet_v2 weights (a file)."""
  path = os.fspath(path)
  if os.path.isfile(path):
    return _load_official(path)
  variables, config, step = load_pretrained(path, "syncnet")
  model = syncnet_lib.SyncNet(**a2v_networks.lists_to_tuples(
      (config.get("model") or {}).get("syncnet") or {}))
  options = syncnet_options(model, variables)
  dataset = (config.get("dataset") or {}).get("name", "?")
  return SyncNetSpec(
      audio_windows=_mfcc_windows,
      description=(f"SyncNet trained here (pretrain task syncnet on {dataset},"
                   f" step {step}); not the official weights"), **options)


# ------------------------------------------------------------------- LipNet --


def mouth_crops(frames: np.ndarray, landmarks: np.ndarray | None,
                mouth_hw) -> np.ndarray:
  """float32 [T, h, w, 3] in [-1, 1] mouth crops of aligned frames.

  Frames without landmarks (NaN rows) are cropped with the box of the
  frames that have them; a clip with none (e.g. a generated face the
  detector misses) uses the canonical template's mouth, since every frame
  is aligned to that template.
  """
  from a2v_jax.face import align  # pylint: disable=g-import-not-at-top
  frames = np.asarray(frames)
  t, h = frames.shape[0], frames.shape[1]
  if landmarks is None or not np.isfinite(np.asarray(landmarks)).all(
      axis=(1, 2)).any():
    landmarks = np.broadcast_to(align.CANONICAL_TEMPLATE * np.float32(h),
                                (t, 68, 2))
  crops = lipnet_lib.crop_mouths(frames, landmarks, tuple(mouth_hw))
  return crops.astype(np.float32) / 127.5 - 1.0 if crops.dtype == np.uint8 \
      else crops.astype(np.float32)


@dataclasses.dataclass(frozen=True)
class LipReader:
  """A trained LipNet as a function from a clip to its transcript.

  Attributes:
    model: the LipNet module.
    variables: its variables.
    mouth_hw: (h, w) of its mouth crops.
    description: one line for the report.
  """
  model: lipnet_lib.LipNet
  variables: Any
  mouth_hw: tuple[int, int]
  description: str = ""

  @functools.cached_property
  def _logits(self):
    return jax.jit(lambda v, x: self.model.apply(v, x, train=False))

  def read(self, frames: np.ndarray, landmarks: np.ndarray | None) -> str:
    """uint8 [T, H, W, 3] aligned frames + [T, 68, 2] landmarks -> text."""
    from a2v_jax.evaluation import wer  # pylint: disable=g-import-not-at-top
    mouths = mouth_crops(frames, landmarks, self.mouth_hw)
    logits = self._logits(self.variables, jnp.asarray(mouths[None]))
    return wer.decode_ctc_greedy(np.asarray(logits))[0]


def load_lipnet(path: str) -> LipReader:
  """LipReader from a 'lipnet' pretraining checkpoint directory."""
  variables, config, step = load_pretrained(path, "lipnet")
  cfg = lipnet_lib.default_config()
  cfg.update(a2v_networks.lists_to_tuples(
      (config.get("pretrain") or {}).get("lipnet") or {}))
  dataset = (config.get("dataset") or {}).get("name", "?")
  return LipReader(
      lipnet_lib.create_model(cfg), jax.device_put(variables),
      tuple(cfg.mouth_hw),
      f"LipNet trained here (pretrain task lipnet on {dataset} training "
      f"speakers, step {step}); not the published LipNet")


def lipnet_options(reader: LipReader) -> dict[str, Any]:
  """WEREvaluator kwargs for a LipReader."""
  return {"read_lips": reader.read}
