"""Blink rate and duration from the eye aspect ratio (EAR) over time.

EAR (Soukupova & Cech 2016) from dlib's 68-point landmarks, averaged over
both eyes (a2v_jax.models.eye holds the one EAR definition the project uses).
A blink is a run of at least `min_frames` consecutive frames whose EAR is
below an adaptive threshold, `relative_threshold` x the clip's median EAR:
people keep their eyes open most of the time, so the median is the open-eye
level of that face, and 0.7 x a typical open EAR of ~0.3 gives the classic
fixed threshold of ~0.2 while adapting to eye shape and crop.

Real videos give the reference rate: people blink ~0.2-0.5 times/s with
blinks of ~0.1-0.4 s.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from a2v_jax.models import eye

RELATIVE_THRESHOLD = 0.7
MIN_FRAMES = 2


class BlinkError(ValueError):
  """Series that blinks cannot be measured on."""


@dataclasses.dataclass(frozen=True)
class BlinkStats:
  """Blinks of one clip.

  Attributes:
    count: number of blinks.
    rate_per_s: blinks per second of video.
    mean_duration_s: mean blink length in seconds (NaN without blinks).
    events: (start, end) frame index pairs, end exclusive.
  """
  count: int
  rate_per_s: float
  mean_duration_s: float
  events: tuple[tuple[int, int], ...]


def compute_ear_series(landmarks: np.ndarray) -> np.ndarray:
  """Mean EAR of both eyes per frame, gaps filled.

  Args:
    landmarks: [T, 68, 2] float; NaN rows where no face was found.

  Returns:
    float64 [T]; frames without landmarks are linearly interpolated from
    their neighbours (all-NaN input stays NaN).
  """
  landmarks = np.asarray(landmarks, np.float32)
  ear = np.asarray(eye.ear_from_landmarks68(landmarks), np.float64).mean(-1)
  ok = np.isfinite(ear)
  if ok.any() and not ok.all():
    t = np.arange(len(ear))
    ear = np.interp(t, t[ok], ear[ok])
  return ear


def find_runs(mask: np.ndarray, min_length: int = 1) -> list[tuple[int, int]]:
  """(start, end) of the runs of True in a bool [T] mask, end exclusive."""
  mask = np.asarray(mask, bool).reshape(-1)
  edges = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
  starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
  return [(int(s), int(e)) for s, e in zip(starts, ends) if e - s >= min_length]


def detect_blinks(ear: np.ndarray, relative_threshold: float = RELATIVE_THRESHOLD,
                  min_frames: int = MIN_FRAMES) -> list[tuple[int, int]]:
  """Blink events of an EAR series.

  Args:
    ear: [T] float EAR per frame.
    relative_threshold: closed when EAR < this x median(EAR).
    min_frames: shortest run counted as a blink.

  Returns:
    list of (start, end) frame pairs, end exclusive.
  """
  ear = np.asarray(ear, np.float64).reshape(-1)
  finite = ear[np.isfinite(ear)]
  if finite.size == 0:
    return []
  threshold = relative_threshold * float(np.median(finite))
  return find_runs(np.isfinite(ear) & (ear < threshold), min_frames)


def summarize_blinks(events: list[tuple[int, int]], num_frames: int,
                     fps: float) -> BlinkStats:
  """Rate and mean duration of blink events in a clip of num_frames."""
  if num_frames <= 0 or fps <= 0:
    raise BlinkError(f"need a positive frame count and fps, got {num_frames} "
                     f"frames at {fps} fps")
  durations = [(e - s) / fps for s, e in events]
  return BlinkStats(
      count=len(events), rate_per_s=len(events) * fps / num_frames,
      mean_duration_s=float(np.mean(durations)) if durations else float("nan"),
      events=tuple(events))


def measure_blinks(landmarks: np.ndarray, fps: float,
                   relative_threshold: float = RELATIVE_THRESHOLD,
                   min_frames: int = MIN_FRAMES) -> BlinkStats:
  """Blinks of a clip from its landmarks: [T, 68, 2] -> BlinkStats."""
  ear = compute_ear_series(landmarks)
  return summarize_blinks(detect_blinks(ear, relative_threshold, min_frames),
                          len(ear), fps)


def blinks_from_ground_truth(blink_gt: np.ndarray, fps: float,
                             min_frames: int = 1) -> BlinkStats:
  """Blinks of the synthetic corpus' per-frame 0/1 labels."""
  blink_gt = np.asarray(blink_gt).reshape(-1)
  return summarize_blinks(find_runs(blink_gt > 0, min_frames), len(blink_gt),
                          fps)
