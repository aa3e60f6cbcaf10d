"""Face alignment: one similarity transform per clip onto a canonical template.

A clip is aligned with a single transform, fitted to the median landmarks of
the clip, so head motion inside the clip stays in the frames (the generator
must learn it) while every clip of the corpus is framed the same way.

Short runs of frames where no face was found are filled by linear
interpolation of the landmarks; a clip with too many missing frames raises
`MissingFacesError`, so a builder can skip it and log the reason.
"""
from __future__ import annotations

import cv2
import numpy as np

# Canonical 68-point face in the unit square (x right, y down), iBUG 300-W
# order. Made for this project from the landmarks of scikit-image's astronaut
# portrait: rotated upright, mirror-symmetrised, inner lips closed, and scaled
# so the eye centre sits at (0.5, 0.44) and the mouth centre 0.26 below it.
# The whole face, brows to chin, spans x 0.22-0.78 and y 0.36-0.90.
CANONICAL_TEMPLATE = np.array([
    [0.2165, 0.4590], [0.2256, 0.5322], [0.2348, 0.5992], [0.2469, 0.6726],
    [0.2712, 0.7398], [0.3109, 0.7978], [0.3687, 0.8466], [0.4299, 0.8895],
    [0.5000, 0.8988], [0.5701, 0.8895], [0.6313, 0.8466], [0.6891, 0.7978],
    [0.7288, 0.7398], [0.7531, 0.6726], [0.7652, 0.5992], [0.7744, 0.5322],
    [0.7835, 0.4590], [0.2589, 0.4012], [0.2925, 0.3615], [0.3412, 0.3555],
    [0.3902, 0.3615], [0.4390, 0.3767], [0.5610, 0.3767], [0.6098, 0.3615],
    [0.6588, 0.3555], [0.7075, 0.3615], [0.7411, 0.4012], [0.5000, 0.4345],
    [0.5000, 0.4896], [0.5000, 0.5382], [0.5000, 0.5869], [0.4390, 0.6146],
    [0.4696, 0.6237], [0.5000, 0.6298], [0.5304, 0.6237], [0.5610, 0.6146],
    [0.3168, 0.4410], [0.3476, 0.4166], [0.3902, 0.4166], [0.4236, 0.4533],
    [0.3839, 0.4562], [0.3444, 0.4563], [0.5764, 0.4533], [0.6098, 0.4166],
    [0.6524, 0.4166], [0.6832, 0.4410], [0.6556, 0.4563], [0.6161, 0.4562],
    [0.3628, 0.6665], [0.4116, 0.6634], [0.4633, 0.6633], [0.5000, 0.6724],
    [0.5367, 0.6633], [0.5884, 0.6634], [0.6372, 0.6665], [0.5914, 0.7305],
    [0.5395, 0.7581], [0.5000, 0.7643], [0.4605, 0.7581], [0.4086, 0.7305],
    [0.3812, 0.6756], [0.4635, 0.7060], [0.5000, 0.7123], [0.5365, 0.7060],
    [0.6188, 0.6756], [0.5365, 0.7060], [0.5000, 0.7123], [0.4635, 0.7060],
], dtype=np.float32)
CANONICAL_TEMPLATE.setflags(write=False)

# The mouth's box in every aligned crop, as fractions (y0, y1, x0, x1): the
# template's lips (x 0.36-0.64, y 0.66-0.76) with room for an open mouth and
# for one clip's pose drifting from its median (on GRID s1 the lips of 99% of
# frames lie in x 0.38-0.62, y 0.67-0.80). The mouth loss is an L1 in here.
MOUTH_BOX = (0.60, 0.86, 0.30, 0.70)

# Defaults for gap filling: a blink of the detector (a few frames) is filled,
# a face lost for most of a clip is not.
MAX_GAP_FRAMES = 6
MAX_MISSING_FRACTION = 0.2


class MissingFacesError(ValueError):
  """Too few frames of a clip have a detected face to align it."""


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
  """Least-squares similarity transform (Umeyama, 1991) mapping src onto dst.

  Args:
    src: float [N, 2] points (x, y).
    dst: float [N, 2] points (x, y), same order.

  Returns:
    float32 [2, 3] matrix M with dst ~= src @ M[:, :2].T + M[:, 2]: rotation,
    uniform scale and translation, no reflection.
  """
  src = np.asarray(src, np.float64)
  dst = np.asarray(dst, np.float64)
  if src.shape != dst.shape or src.ndim != 2 or src.shape[1] != 2:
    raise ValueError(f"src and dst must both be [N, 2], got {src.shape} and "
                     f"{dst.shape}")
  if not (np.isfinite(src).all() and np.isfinite(dst).all()):
    raise ValueError("similarity_transform got NaN or inf points")
  mu_src, mu_dst = src.mean(0), dst.mean(0)
  src_c, dst_c = src - mu_src, dst - mu_dst
  var_src = (src_c**2).sum() / len(src)
  if var_src <= 0:
    raise ValueError("similarity_transform needs src points that are not all"
                     " equal")
  cov = dst_c.T @ src_c / len(src)
  u, s, vt = np.linalg.svd(cov)
  d = np.ones(2)
  if np.linalg.det(u) * np.linalg.det(vt) < 0:
    d[-1] = -1.0
  rot = u @ np.diag(d) @ vt
  scale = (s * d).sum() / var_src
  trans = mu_dst - scale * rot @ mu_src
  return np.concatenate([scale * rot, trans[:, None]], axis=1).astype(np.float32)


def apply_transform(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
  """Applies a [2, 3] affine matrix to float [..., 2] points (x, y)."""
  matrix = np.asarray(matrix, np.float32)
  points = np.asarray(points, np.float32)
  return points @ matrix[:, :2].T + matrix[:, 2]


def interpolate_gaps(landmarks: np.ndarray,
                     max_gap_frames: int = MAX_GAP_FRAMES,
                     max_missing_fraction: float = MAX_MISSING_FRACTION
                     ) -> tuple[np.ndarray, np.ndarray]:
  """Fills frames without a face by linear interpolation in time.

  Frames before the first (after the last) detection copy the first (last)
  detected landmarks.

  Args:
    landmarks: float32 [T, 68, 2]; rows that are all NaN are missing.
    max_gap_frames: longest run of missing frames that is filled.
    max_missing_fraction: largest fraction of missing frames that is filled.

  Returns:
    (filled float32 [T, 68, 2], detected bool [T]).

  Raises:
    MissingFacesError: no face at all, too many missing frames, or a run of
      missing frames longer than max_gap_frames. The message says which.
  """
  landmarks = np.asarray(landmarks, np.float32)
  if landmarks.ndim != 3 or landmarks.shape[1:] != (68, 2):
    raise ValueError(f"landmarks must be [T, 68, 2], got {landmarks.shape}")
  num_frames = len(landmarks)
  detected = np.isfinite(landmarks).all(axis=(1, 2))
  num_missing = int(num_frames - detected.sum())
  if not detected.any():
    raise MissingFacesError(f"no face found in any of {num_frames} frames")
  if num_missing > max_missing_fraction * num_frames:
    raise MissingFacesError(
        f"no face in {num_missing} of {num_frames} frames (more than"
        f" {max_missing_fraction:.0%})")
  longest = _longest_run(~detected)
  if longest > max_gap_frames:
    raise MissingFacesError(
        f"no face in {longest} consecutive frames (more than {max_gap_frames})")
  if num_missing == 0:
    return landmarks.copy(), detected
  t_all = np.arange(num_frames)
  t_ok = t_all[detected]
  flat = landmarks[detected].reshape(len(t_ok), -1)
  filled = np.stack([np.interp(t_all, t_ok, flat[:, k])
                     for k in range(flat.shape[1])], axis=1)
  return filled.reshape(num_frames, 68, 2).astype(np.float32), detected


def _longest_run(mask: np.ndarray) -> int:
  longest = run = 0
  for m in mask:
    run = run + 1 if m else 0
    longest = max(longest, run)
  return longest


def clip_transform(landmarks: np.ndarray, crop: int) -> np.ndarray:
  """The one transform of a clip: median landmarks -> template * crop.

  Args:
    landmarks: float32 [T, 68, 2] px; NaN rows are ignored.
    crop: output side in pixels.

  Returns:
    float32 [2, 3] matrix from frame pixels to crop pixels.
  """
  landmarks = np.asarray(landmarks, np.float32)
  ok = np.isfinite(landmarks).all(axis=(1, 2))
  if not ok.any():
    raise MissingFacesError("no face found in any frame of the clip")
  median = np.median(landmarks[ok], axis=0)
  return similarity_transform(median, CANONICAL_TEMPLATE * np.float32(crop))


def align_clip(frames: np.ndarray,
               landmarks: np.ndarray,
               crop: int,
               max_gap_frames: int = MAX_GAP_FRAMES,
               max_missing_fraction: float = MAX_MISSING_FRACTION
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """Crops and aligns every frame of a clip with one similarity transform.

  Args:
    frames: uint8 [T, H, W, 3] RGB.
    landmarks: float32 [T, 68, 2] (x, y) px in the frames; NaN rows = missing.
    crop: output side in pixels (e.g. 64, 128, 256).
    max_gap_frames, max_missing_fraction: see `interpolate_gaps`.

  Returns:
    aligned: uint8 [T, crop, crop, 3] RGB.
    aligned_landmarks: float32 [T, 68, 2] in crop pixels, gaps interpolated.
    matrix: float32 [2, 3] frame px -> crop px, the same for every frame.

  Raises:
    MissingFacesError: too many frames without a face (see interpolate_gaps).
  """
  frames = np.asarray(frames)
  if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
    raise ValueError(f"frames must be uint8 [T, H, W, 3], got {frames.dtype} "
                     f"{frames.shape}")
  if len(frames) != len(landmarks):
    raise ValueError(f"{len(frames)} frames but {len(landmarks)} landmark rows")
  if crop < 8:
    raise ValueError(f"crop must be at least 8 px, got {crop}")
  filled, _ = interpolate_gaps(landmarks, max_gap_frames, max_missing_fraction)
  matrix = clip_transform(landmarks, crop)
  # Shrinking a lot with bilinear sampling aliases; INTER_AREA has no affine
  # form, so pre-blur in proportion to the scale before warping.
  scale = float(np.hypot(matrix[0, 0], matrix[0, 1]))
  aligned = np.empty((len(frames), crop, crop, 3), np.uint8)
  for t, frame in enumerate(frames):
    if scale < 0.5:
      sigma = 0.5 / scale * 0.5
      frame = cv2.GaussianBlur(frame, (0, 0), sigmaX=sigma)
    aligned[t] = cv2.warpAffine(frame, matrix, (crop, crop),
                                flags=cv2.INTER_LINEAR,
                                borderMode=cv2.BORDER_REFLECT)
  return aligned, apply_transform(matrix, filled), matrix
