"""Face detection and 68-point landmarks with dlib (HOG detector + predictor).

The 68-point shape predictor ships in the `face-recognition-models` wheel, so
nothing is downloaded. `import face_recognition_models` needs pkg_resources,
so the model file is found through the package's import spec instead.

Landmark indices follow iBUG 300-W: jaw 0-16, brows 17-26, nose 27-35,
eyes 36-47, mouth 48-67.
"""
from __future__ import annotations

import importlib.util
import os

import dlib
import numpy as np

_PREDICTOR_FILE = "shape_predictor_68_face_landmarks.dat"
# Tracking: the next frame is searched in a square window this many times the
# previous landmarks' extent, shrunk so that extent is about this many pixels
# (the HOG detector's window is 80 px; landmarks span a bit less than it).
_TRACK_WINDOW = 1.8
_TRACK_FACE_PX = 90.0
# A tracked box must still look like the detected face (normalised
# correlation of 24x24 grey patches); speaking and blinking keep it above 0.8
# on the synthetic corpus, a vanished or swapped face drops it far lower.
_TRACK_MIN_NCC = 0.7


class LandmarkModelError(ValueError):
  """The dlib model files could not be found."""


def find_model_file(name: str = _PREDICTOR_FILE) -> str:
  """Path of a model file shipped in the face-recognition-models package."""
  spec = importlib.util.find_spec("face_recognition_models")
  if spec is None or not spec.submodule_search_locations:
    raise LandmarkModelError(
        "face-recognition-models is not installed; run `pip install"
        " face-recognition-models`")
  path = os.path.join(spec.submodule_search_locations[0], "models", name)
  if not os.path.isfile(path):
    raise LandmarkModelError(
        f"{name} is missing from face-recognition-models; reinstall it with"
        " `pip install --force-reinstall face-recognition-models`")
  return path


def _rect_area(rect) -> int:
  return rect.width() * rect.height()


def _shape_to_array(shape, scale: float = 1.0) -> np.ndarray:
  pts = np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float32)
  return pts * np.float32(scale) if scale != 1.0 else pts


class LandmarkDetector:
  """dlib HOG face detector plus the 68-point shape predictor.

  Args:
    upsample: times the HOG detector upsamples the image; 1 finds faces down to
      about 40 px, 0 (default) needs about 80 px and is 4x faster.
    detect_width: if set and the image is wider, detection runs on a copy
      resized to this width (landmarks are still fitted at full resolution).
  """

  def __init__(self, upsample: int = 0, detect_width: int | None = None):
    self.upsample = int(upsample)
    self.detect_width = detect_width
    self._detector = dlib.get_frontal_face_detector()
    self._predictor = dlib.shape_predictor(find_model_file())

  def _detect_rects(self, image: np.ndarray) -> list:
    """Face rectangles in full-resolution pixel coordinates."""
    height, width = image.shape[:2]
    scale = 1.0
    small = image
    if self.detect_width and width > self.detect_width:
      import cv2  # pylint: disable=g-import-not-at-top
      scale = width / self.detect_width
      small = cv2.resize(image, (self.detect_width, round(height / scale)),
                         interpolation=cv2.INTER_AREA)
    rects = self._detector(np.ascontiguousarray(small), self.upsample)
    if scale == 1.0:
      return list(rects)
    return [dlib.rectangle(round(r.left() * scale), round(r.top() * scale),
                           round(r.right() * scale), round(r.bottom() * scale))
            for r in rects]

  def detect_all(self, image: np.ndarray) -> list[tuple[tuple[int, int, int, int], np.ndarray]]:
    """Every face in the image.

    Args:
      image: uint8 [H, W, 3] RGB.

    Returns:
      list of ((left, top, right, bottom) px, landmarks float32 [68, 2] (x, y)
      px), largest face first.
    """
    image = _check_image(image)
    rects = sorted(self._detect_rects(image), key=_rect_area, reverse=True)
    return [((r.left(), r.top(), r.right(), r.bottom()),
             _shape_to_array(self._predictor(image, r))) for r in rects]

  def detect(self, image: np.ndarray) -> np.ndarray | None:
    """Landmarks of the largest face.

    Args:
      image: uint8 [H, W, 3] RGB.

    Returns:
      float32 [68, 2] (x, y) pixel coordinates, or None when no face is found.
    """
    found = self._detect_largest(_check_image(image))
    return None if found is None else found[1]

  def _detect_largest(self, image: np.ndarray):
    """(dlib rect, landmarks [68, 2]) of the largest face, or None."""
    rects = self._detect_rects(image)
    if not rects:
      return None
    rect = max(rects, key=_rect_area)
    return rect, _shape_to_array(self._predictor(image, rect))

  def detect_clip(self, frames: np.ndarray, redetect_every: int = 5) -> np.ndarray:
    """Landmarks of the largest face in every frame of a clip.

    The HOG detector runs on every `redetect_every`-th frame (and on any frame
    after a miss or a jump); near a face found before, it searches only a
    window around it. On the frames between, the 68-point predictor starts
    from the last detector box moved with the face, which gives the same
    landmarks as detecting anew (0.1 px apart on the synthetic corpus) at a
    third of the cost.

    Args:
      frames: uint8 [T, H, W, 3] RGB.
      redetect_every: 1 runs the detector on every frame.

    Returns:
      float32 [T, 68, 2] (x, y) px; rows are NaN where no face was found.
    """
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3:
      raise ValueError(f"frames must be [T, H, W, 3], got shape {frames.shape}")
    out = np.full((len(frames), 68, 2), np.nan, dtype=np.float32)
    prev = rect = anchor = patch = None
    since_detect = 0
    for t, frame in enumerate(frames):
      frame = _check_image(frame)
      found = None
      if rect is not None and since_detect < redetect_every:
        shift = prev.mean(axis=0) - anchor
        moved = dlib.rectangle(round(rect.left() + shift[0]),
                               round(rect.top() + shift[1]),
                               round(rect.right() + shift[0]),
                               round(rect.bottom() + shift[1]))
        # The predictor always returns a shape, face or not: keep it only if
        # the box still looks like the detected face and did not jump.
        if _patch_similarity(_face_patch(frame, moved), patch) >= _TRACK_MIN_NCC:
          pts = _shape_to_array(self._predictor(frame, moved))
          if (np.abs(pts.mean(axis=0) - prev.mean(axis=0)).max()
              < 0.25 * rect.width()):
            found = None, pts
      if found is None:
        found = self._detect_near(frame, prev) if prev is not None else None
        if found is None:
          found = self._detect_largest(frame)
        if found is not None:
          rect, anchor, since_detect = found[0], found[1].mean(axis=0), 0
          patch = _face_patch(frame, rect)
      if found is None:
        prev = rect = None
        continue
      out[t] = prev = found[1]
      since_detect += 1
    return out

  def _detect_near(self, image: np.ndarray, prev: np.ndarray):
    """(rect, landmarks) found in a window around the previous face, shrunk so
    the face is about _TRACK_FACE_PX wide (HOG cost grows with its pixels)."""
    height, width = image.shape[:2]
    x0, y0 = prev.min(axis=0)
    x1, y1 = prev.max(axis=0)
    size = max(x1 - x0, y1 - y0)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    half = _TRACK_WINDOW * size / 2
    left, top = max(int(cx - half), 0), max(int(cy - half), 0)
    right, bottom = min(int(cx + half), width), min(int(cy + half), height)
    if right - left < 32 or bottom - top < 32:
      return None
    crop = image[top:bottom, left:right]
    scale = 1.0
    if self.upsample == 0 and size > _TRACK_FACE_PX:
      import cv2  # pylint: disable=g-import-not-at-top
      scale = size / _TRACK_FACE_PX
      crop = cv2.resize(crop, (max(round((right - left) / scale), 1),
                               max(round((bottom - top) / scale), 1)),
                        interpolation=cv2.INTER_AREA)
    rects = self._detector(np.ascontiguousarray(crop), self.upsample)
    if not rects:
      return None
    r = max(rects, key=_rect_area)
    full = dlib.rectangle(round(r.left() * scale) + left,
                          round(r.top() * scale) + top,
                          round(r.right() * scale) + left,
                          round(r.bottom() * scale) + top)
    return full, _shape_to_array(self._predictor(image, full))


def _face_patch(image: np.ndarray, rect) -> np.ndarray:
  """Zero-mean, unit-norm 24x24 grey patch of a box (for track checks)."""
  import cv2  # pylint: disable=g-import-not-at-top
  height, width = image.shape[:2]
  left, top = max(rect.left(), 0), max(rect.top(), 0)
  right, bottom = min(rect.right(), width), min(rect.bottom(), height)
  if right - left < 4 or bottom - top < 4:
    return np.zeros((24, 24), np.float32)
  grey = image[top:bottom, left:right].mean(axis=2, dtype=np.float32)
  patch = cv2.resize(grey, (24, 24), interpolation=cv2.INTER_AREA)
  patch -= patch.mean()
  return patch / max(float(np.linalg.norm(patch)), 1e-6)


def _patch_similarity(a: np.ndarray, b: np.ndarray) -> float:
  """Normalised cross-correlation of two _face_patch outputs, in [-1, 1]."""
  return float((a * b).sum())


def _check_image(image: np.ndarray) -> np.ndarray:
  image = np.asarray(image)
  if image.ndim != 3 or image.shape[-1] != 3 or image.dtype != np.uint8:
    raise ValueError("image must be uint8 [H, W, 3] RGB, got "
                     f"{image.dtype} {image.shape}")
  return np.ascontiguousarray(image)
