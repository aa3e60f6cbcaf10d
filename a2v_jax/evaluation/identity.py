"""ACD: identity distance between generated and real faces (dlib embeddings).

The paper's ACD (average content distance, Vougioukas et al.) compares face
embeddings of the generated and the real frame: the cosine distance (ACD-C,
1 - cos) and the Euclidean distance (ACD-E). The paper used OpenFace, which
cannot be downloaded here; we use dlib's 128-d ResNet face descriptor
(`dlib_face_recognition_resnet_model_v1.dat`, shipped in the
face-recognition-models wheel), for which dlib states that Euclidean
distances below 0.6 mean the same person. Values are therefore not on the
paper's scale, only comparable between rows of our own report.

Faces are located once, on the real frame, and the same rectangle is used for
the generated frame, so a bad generated face cannot dodge the comparison by
failing detection. Aligned crops smaller than the HOG detector's minimum
(~40 px with one upsampling) fall back to the whole frame.
"""
from __future__ import annotations

import dataclasses
import importlib.util
import os

import dlib
import numpy as np

RECOGNITION_MODEL = "dlib_face_recognition_resnet_model_v1.dat"
SHAPE_PREDICTORS = {5: "shape_predictor_5_face_landmarks.dat",
                    68: "shape_predictor_68_face_landmarks.dat"}


class IdentityError(ValueError):
  """Missing model files or images that cannot be compared."""


def find_face_model(name: str) -> str:
  """Path of a dlib model shipped in the face-recognition-models wheel.

  `import face_recognition_models` needs pkg_resources, so the file is found
  through the package's import spec instead.
  """
  spec = importlib.util.find_spec("face_recognition_models")
  if spec is None or not spec.submodule_search_locations:
    raise IdentityError("face-recognition-models is not installed; run "
                        "`pip install face-recognition-models`")
  path = os.path.join(spec.submodule_search_locations[0], "models", name)
  if not os.path.isfile(path):
    raise IdentityError(f"{name} is missing from face-recognition-models; "
                        "run `pip install --force-reinstall "
                        "face-recognition-models`")
  return path


def _check_image(image: np.ndarray) -> np.ndarray:
  image = np.asarray(image)
  if image.ndim != 3 or image.shape[-1] != 3 or image.dtype != np.uint8:
    raise IdentityError(f"face images must be uint8 [H, W, 3] RGB, got "
                        f"{image.dtype} {image.shape}")
  return np.ascontiguousarray(image)


class FaceEmbedder:
  """dlib's 128-d face descriptor of the largest face in an image.

  Args:
    landmark_points: 5 (dlib's recommended predictor for the descriptor) or
      68.
    upsample: HOG detector upsampling (1 finds faces down to ~40 px).
    min_size: images smaller than this (px, shorter side) are enlarged
      bicubically first, so that 64x64 crops are still detected (on the
      astronaut, a 64 px crop is 0.77 from the full-size face without this,
      0.42 with it).
  """

  def __init__(self, landmark_points: int = 5, upsample: int = 1,
               min_size: int = 160):
    if landmark_points not in SHAPE_PREDICTORS:
      raise IdentityError(f"landmark_points must be 5 or 68, got "
                          f"{landmark_points}")
    self.upsample = upsample
    self.min_size = min_size
    self._detector = dlib.get_frontal_face_detector()
    self._predictor = dlib.shape_predictor(
        find_face_model(SHAPE_PREDICTORS[landmark_points]))
    self._model = dlib.face_recognition_model_v1(
        find_face_model(RECOGNITION_MODEL))

  def prepare(self, image: np.ndarray) -> np.ndarray:
    """Checks an image and enlarges it to `min_size` if it is smaller."""
    image = _check_image(image)
    short = min(image.shape[:2])
    if short >= self.min_size:
      return image
    import cv2  # pylint: disable=g-import-not-at-top
    scale = self.min_size / short
    size = (round(image.shape[1] * scale), round(image.shape[0] * scale))
    return np.ascontiguousarray(
        np.clip(cv2.resize(image, size, interpolation=cv2.INTER_CUBIC), 0, 255))

  def locate(self, image: np.ndarray) -> dlib.rectangle:
    """Largest detected face (in `prepare`d coordinates), else the image."""
    image = self.prepare(image)
    rects = list(self._detector(image, self.upsample))
    if rects:
      return max(rects, key=lambda r: r.width() * r.height())
    return dlib.rectangle(0, 0, image.shape[1] - 1, image.shape[0] - 1)

  def embed(self, image: np.ndarray, rect: dlib.rectangle | None = None
            ) -> np.ndarray:
    """Face descriptor.

    Args:
      image: uint8 [H, W, 3] RGB.
      rect: face rectangle from `locate` on an image of the same size;
        located in `image` when None.

    Returns:
      float32 [128] (not unit length; norms are ~1.4).
    """
    image = self.prepare(image)
    if rect is None:
      rect = self.locate(image)
    shape = self._predictor(image, rect)
    return np.asarray(self._model.compute_face_descriptor(image, shape),
                      np.float32)


def cosine_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
  """1 - cos(a, b) over the last axis: [..., D] x [..., D] -> [...]."""
  a = np.asarray(a, np.float64)
  b = np.asarray(b, np.float64)
  dot = np.sum(a * b, axis=-1)
  norm = np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1)
  return 1.0 - dot / np.maximum(norm, 1e-12)


def euclidean_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
  """||a - b|| over the last axis: [..., D] x [..., D] -> [...]."""
  return np.linalg.norm(np.asarray(a, np.float64) - np.asarray(b, np.float64),
                        axis=-1)


@dataclasses.dataclass(frozen=True)
class ACDResult:
  """Average content distance of one clip (means over the sampled frames)."""
  acd_cosine: float
  acd_euclidean: float
  num_frames: int


def compute_acd(generated: np.ndarray, real: np.ndarray,
                embedder: FaceEmbedder, frame_stride: int = 5) -> ACDResult:
  """ACD-C and ACD-E between paired generated and real frames.

  Args:
    generated: uint8 [T, H, W, 3].
    real: uint8 [T, H, W, 3], the ground-truth frames of the same instants.
    embedder: FaceEmbedder.
    frame_stride: embed every n-th frame (dlib's ResNet costs ~10-30 ms a
      face on a CPU; neighbouring frames carry the same identity).

  Returns:
    ACDResult.
  """
  generated = np.asarray(generated)
  real = np.asarray(real)
  if generated.shape != real.shape or generated.ndim != 4:
    raise IdentityError(
        f"generated {generated.shape} and real {real.shape} frames must both "
        "be [T, H, W, 3] of the same size; resize to the evaluation crop")
  cos, euc = [], []
  for t in range(0, len(real), max(1, frame_stride)):
    rect = embedder.locate(real[t])
    e_real = embedder.embed(real[t], rect)
    e_gen = embedder.embed(generated[t], rect)
    cos.append(cosine_distance(e_gen, e_real))
    euc.append(euclidean_distance(e_gen, e_real))
  return ACDResult(float(np.mean(cos)), float(np.mean(euc)), len(cos))
