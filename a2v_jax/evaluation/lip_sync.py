"""LSE-C and LSE-D: lip-sync error from a SyncNet, as Wav2Lip evaluates it.

Wav2Lip (Prajwal et al. 2020) scores lip sync with syncnet_python
(Chung & Zisserman 2016): every 5-frame video window and every 200 ms audio
window are embedded; for each video window i the embedding is compared, by
Euclidean distance, with the audio embeddings of windows i - vshift ..
i + vshift (zero vectors past either end, as `calc_pdist` pads them), with
vshift = 15. The distances are averaged over the windows for each offset:
- LSE-D = min over offsets of the mean distance (lower = better sync);
- LSE-C = median over offsets - that minimum (higher = more confident);
- offset = argmin - vshift: audio window i + offset matches video window i
  (syncnet_python prints the opposite sign, vshift - argmin, as "AV offset").

The networks are passed in as callables, so the same code scores our trained
SyncNet (a2v_jax/models/syncnet.py) and the official syncnet_v2 weights
(a2v_jax/models/syncnet_v2.py via syncnet_v2_convert).
"""
from __future__ import annotations

import dataclasses
from typing import Callable

import numpy as np

VSHIFT = 15
WINDOW_FRAMES = 5
# torch.nn.functional.pairwise_distance adds eps to the difference.
PAIRWISE_EPS = 1e-6

EmbedFn = Callable[[np.ndarray], np.ndarray]


class LipSyncError(ValueError):
  """Inputs LSE cannot be computed on."""


@dataclasses.dataclass(frozen=True)
class LSEResult:
  """Lip-sync scores of one clip.

  Attributes:
    lse_d: minimum over offsets of the mean embedding distance.
    lse_c: median minus minimum of the mean distances.
    offset: argmin - vshift, in video frames (audio lag behind the video).
    mean_distances: float64 [2 vshift + 1], mean distance per offset.
  """
  lse_d: float
  lse_c: float
  offset: int
  mean_distances: np.ndarray


def compute_offset_distances(video_emb: np.ndarray, audio_emb: np.ndarray,
                             vshift: int = VSHIFT) -> np.ndarray:
  """Distances of each video window to the audio windows around it.

  Args:
    video_emb: [N, E] float embeddings of the N video windows.
    audio_emb: [N, E] float embeddings of the N audio windows.
    vshift: largest offset tried, in frames.

  Returns:
    float64 [N, 2 vshift + 1]; column j compares video window i with audio
    window i + j - vshift (a zero vector past the ends).
  """
  video_emb = np.asarray(video_emb, np.float64)
  audio_emb = np.asarray(audio_emb, np.float64)
  if video_emb.ndim != 2 or video_emb.shape != audio_emb.shape:
    raise LipSyncError(
        f"video and audio embeddings must both be [N, E], got "
        f"{video_emb.shape} and {audio_emb.shape}; embed the same windows")
  n = len(video_emb)
  padded = np.pad(audio_emb, ((vshift, vshift), (0, 0)))
  window = np.arange(2 * vshift + 1)
  neighbours = padded[np.arange(n)[:, None] + window[None, :]]  # [N, W, E]
  diff = video_emb[:, None, :] - neighbours + PAIRWISE_EPS
  return np.sqrt(np.sum(diff * diff, axis=-1))


def compute_lse(video_emb: np.ndarray, audio_emb: np.ndarray,
                vshift: int = VSHIFT) -> LSEResult:
  """LSE-D, LSE-C and the best offset from paired window embeddings.

  Args:
    video_emb: [N, E] float, one row per 5-frame video window.
    audio_emb: [N, E] float, the audio windows of the same instants.
    vshift: offsets -vshift..vshift are searched (Wav2Lip: 15).

  Returns:
    LSEResult.
  """
  if len(video_emb) == 0:
    raise LipSyncError("no windows to score; the clip needs at least "
                       f"{WINDOW_FRAMES} frames")
  distances = compute_offset_distances(video_emb, audio_emb, vshift)
  mean = distances.mean(axis=0)
  best = int(np.argmin(mean))
  return LSEResult(lse_d=float(mean[best]),
                   lse_c=float(np.median(mean) - mean[best]),
                   offset=best - vshift, mean_distances=mean)


def make_sync_windows(faces: np.ndarray, mfcc: np.ndarray,
                      window_frames: int = WINDOW_FRAMES
                      ) -> tuple[np.ndarray, np.ndarray]:
  """Slices a clip into SyncNet's paired windows.

  Window i holds video frames i .. i + 4 and the 200 ms MFCC window centred
  on its middle frame i + 2 (`mfcc_windows` centres one on every frame).

  Args:
    faces: [T, h, w, 3] face crops (any dtype the embedder expects).
    mfcc: [T, 20, 13] float32 per-frame MFCC windows.
    window_frames: frames per video window (5).

  Returns:
    (video_windows [N, 5, h, w, 3], audio_windows [N, 20, 13]), N = T - 4.
  """
  faces = np.asarray(faces)
  mfcc = np.asarray(mfcc)
  if len(faces) != len(mfcc):
    raise LipSyncError(
        f"{len(faces)} frames but {len(mfcc)} MFCC windows; compute the MFCC "
        "windows with num_frames equal to the video's frame count")
  n = len(faces) - window_frames + 1
  if n < 1:
    raise LipSyncError(f"clip has {len(faces)} frames; LSE needs at least "
                       f"{window_frames}")
  index = np.arange(n)[:, None] + np.arange(window_frames)[None, :]
  return faces[index], mfcc[np.arange(n) + window_frames // 2]


def lower_half(frames: np.ndarray) -> np.ndarray:
  """[..., H, W, C] -> [..., H - H // 2, W, C], the mouth half of aligned crops."""
  frames = np.asarray(frames)
  return frames[..., frames.shape[-3] // 2:, :, :]


def _embed_batched(fn: EmbedFn, inputs: np.ndarray, batch_size: int
                   ) -> np.ndarray:
  out = [np.asarray(fn(inputs[i:i + batch_size]))
         for i in range(0, len(inputs), batch_size)]
  return np.concatenate(out, axis=0)


def evaluate_lip_sync(faces: np.ndarray, mfcc: np.ndarray,
                      embed_video: EmbedFn, embed_audio: EmbedFn,
                      vshift: int = VSHIFT, batch_size: int = 32
                      ) -> LSEResult:
  """LSE of one clip with the given SyncNet embedders.

  Args:
    faces: [T, h, w, 3] crops as `embed_video` expects them (e.g. the lower
      half of aligned faces in [-1, 1] for our SyncNet).
    mfcc: [T, 20, 13] float32 per-frame MFCC windows.
    embed_video: [B, 5, h, w, 3] -> [B, E].
    embed_audio: [B, 20, 13] -> [B, E].
    vshift: largest offset searched, in frames.
    batch_size: windows per embedder call.

  Returns:
    LSEResult.
  """
  video_windows, audio_windows = make_sync_windows(faces, mfcc)
  video_emb = _embed_batched(embed_video, video_windows, batch_size)
  audio_emb = _embed_batched(embed_audio, audio_windows, batch_size)
  return compute_lse(video_emb, audio_emb, vshift)
