"""Mouth opening from 68-point landmarks, and its correlation with a target.

On the synthetic corpus every frame has a ground-truth mouth opening
(`mouth_open_gt`, 0..1); the Pearson correlation between it and the opening
measured on generated frames says how well the model moves the mouth with
the audio, independent of any learned evaluator. Real data has no such
ground truth: its target is the opening of the real video itself, measured
by `real_mouth_opening` from the dlib landmarks the dataset builder stored.
"""
from __future__ import annotations

import numpy as np

# dlib / iBUG 68-point indices (0-based).
INNER_UPPER_LIP = 62
INNER_LOWER_LIP = 66
INNER_MOUTH_CORNERS = (60, 64)
OUTER_EYE_CORNERS = (36, 45)
NORMALIZERS = ("mouth_width", "interocular")


class MouthError(ValueError):
  """Landmarks or series that cannot be compared."""


def measure_mouth_opening(landmarks: np.ndarray,
                          normalize_by: str = "mouth_width") -> np.ndarray:
  """Inner-lip gap |p62 - p66| divided by a size of the face.

  Args:
    landmarks: [..., 68, 2] float (x, y); NaN rows give NaN.
    normalize_by: "mouth_width" (inner corners 60-64) or "interocular"
      (outer eye corners 36-45, which does not change as the mouth opens).

  Returns:
    float64 [...] opening ratio (0 = closed).
  """
  landmarks = np.asarray(landmarks, np.float64)
  if landmarks.shape[-2:] != (68, 2):
    raise MouthError(f"expected 68-point landmarks [..., 68, 2], got "
                     f"{landmarks.shape}")
  if normalize_by not in NORMALIZERS:
    raise MouthError(f"unknown normalize_by {normalize_by!r}; use one of "
                     f"{NORMALIZERS}")
  gap = np.linalg.norm(landmarks[..., INNER_UPPER_LIP, :]
                       - landmarks[..., INNER_LOWER_LIP, :], axis=-1)
  a, b = INNER_MOUTH_CORNERS if normalize_by == "mouth_width" else OUTER_EYE_CORNERS
  size = np.linalg.norm(landmarks[..., a, :] - landmarks[..., b, :], axis=-1)
  with np.errstate(invalid="ignore", divide="ignore"):
    return np.where(size > 0, gap / size, np.nan)


def pearson_correlation(x: np.ndarray, y: np.ndarray) -> float:
  """Pearson r over the positions where both series are finite.

  Returns:
    r in [-1, 1]; NaN when fewer than 3 pairs or either series is constant.
  """
  x = np.asarray(x, np.float64).reshape(-1)
  y = np.asarray(y, np.float64).reshape(-1)
  if x.shape != y.shape:
    raise MouthError(f"series differ in length: {x.shape[0]} vs {y.shape[0]};"
                     " compare the same frames")
  ok = np.isfinite(x) & np.isfinite(y)
  if ok.sum() < 3:
    return float("nan")
  x = x[ok] - x[ok].mean()
  y = y[ok] - y[ok].mean()
  denom = np.sqrt(np.sum(x * x) * np.sum(y * y))
  return float(np.sum(x * y) / denom) if denom > 0 else float("nan")


def mouth_correlation(landmarks: np.ndarray, mouth_open_gt: np.ndarray,
                      normalize_by: str = "mouth_width") -> float:
  """Correlation of the measured opening with the ground truth.

  Args:
    landmarks: [T, 68, 2] landmarks of the generated frames.
    mouth_open_gt: [T] ground-truth opening.

  Returns:
    Pearson r (NaN if undefined).
  """
  return pearson_correlation(measure_mouth_opening(landmarks, normalize_by),
                             mouth_open_gt)


def real_mouth_opening(landmarks: np.ndarray,
                       detected: np.ndarray | None = None,
                       normalize_by: str = "mouth_width") -> np.ndarray:
  """The real video's opening from the landmarks a dataset stores.

  The builder fits dlib on the full-resolution frames, before alignment, and
  fills frames without a face by interpolation; those frames are measured
  as NaN here (so they drop out of every correlation), not guessed. The
  opening is a ratio of two distances, so the similarity transform into
  crop pixels does not change it.

  Args:
    landmarks: [T, 68, 2] landmarks of the real frames (any pixel frame).
    detected: bool [T], whether dlib found the face on that frame (None:
      every frame).

  Returns:
    float64 [T], NaN where not detected.
  """
  opening = measure_mouth_opening(landmarks, normalize_by)
  if detected is not None:
    detected = np.asarray(detected, bool).reshape(-1)
    if detected.shape != opening.shape:
      raise MouthError(f"{detected.shape[0]} detection flags for "
                       f"{opening.shape[0]} frames of landmarks")
    opening = np.where(detected, opening, np.nan)
  return opening
