"""The input photo of one-shot inference: load, detect, align.

`prepare_photo` finds the face and aligns it exactly as the dataset builders
align a clip (`a2v_jax.face.landmarks.LandmarkDetector` for the 68 landmarks,
`a2v_jax.face.align.align_clip` with one similarity transform onto the
canonical template), so the generator sees a reference framed like its
training data. `a2v_jax.compositing` undoes that transform to put generated
faces back into the photo.
"""
from __future__ import annotations

import dataclasses
import io
import os

from absl import logging
import numpy as np
from PIL import Image
from PIL import ImageOps
from PIL import UnidentifiedImageError

from a2v_jax.face import align
from a2v_jax.face import landmarks as landmarks_lib


class PhotoError(ValueError):
  """The photo cannot be used; the message names the problem and the fix."""


@dataclasses.dataclass(frozen=True)
class AlignedPhoto:
  """A photo prepared for the generator.

  Attributes:
    image: uint8 [H, W, 3] RGB, the original photo (H, W cut to even sizes).
    face: uint8 [crop, crop, 3] RGB, the aligned face.
    matrix: float32 [2, 3], photo px -> crop px similarity transform.
    landmarks: float32 [68, 2] (x, y) landmarks in photo px.
    num_faces: how many faces the detector found (the largest is used).
    name: where the photo came from (a path or '<array>').
  """
  image: np.ndarray
  face: np.ndarray
  matrix: np.ndarray
  landmarks: np.ndarray
  num_faces: int
  name: str = "<array>"

  @property
  def crop(self) -> int:
    return int(self.face.shape[0])


def load_image(image: str | os.PathLike | bytes | np.ndarray) -> tuple[np.ndarray, str]:
  """Reads a photo as uint8 [H, W, 3] RGB.

  Args:
    image: a file path (any format Pillow reads; EXIF rotation applied), the
      encoded bytes of one, or an array uint8/float [H, W], [H, W, 3] or
      [H, W, 4] (float in [0, 1]).

  Returns:
    (rgb uint8 [H, W, 3], name).

  Raises:
    PhotoError: missing, empty or corrupt file, or an array of another shape.
  """
  if isinstance(image, np.ndarray):
    return _to_rgb(image, "<array>"), "<array>"
  if isinstance(image, (bytes, bytearray)):
    return _decode(io.BytesIO(image), "<bytes>"), "<bytes>"
  path = os.fspath(image)
  if not os.path.isfile(path):
    raise PhotoError(f"photo {path} does not exist; check the --image path")
  if os.path.getsize(path) == 0:
    raise PhotoError(f"photo {path} is empty (0 bytes); pass a JPEG or PNG "
                     "portrait")
  return _decode(path, path), path


def _decode(source, name: str) -> np.ndarray:
  try:
    with Image.open(source) as img:
      img = ImageOps.exif_transpose(img)
      img.load()
      return _to_rgb(np.asarray(img.convert("RGB")), name)
  except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
    if isinstance(e, PhotoError):
      raise
    raise PhotoError(f"photo {name} is corrupt or not an image "
                     f"({' '.join(str(e).split())[:120]}); re-save it as JPEG "
                     "or PNG") from None


def _to_rgb(array: np.ndarray, name: str) -> np.ndarray:
  array = np.asarray(array)
  if np.issubdtype(array.dtype, np.floating):
    array = (np.clip(array, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
  elif array.dtype != np.uint8:
    raise PhotoError(f"photo {name} has dtype {array.dtype}; pass uint8 RGB or"
                     " float in [0, 1]")
  if array.ndim == 2:
    array = np.repeat(array[..., None], 3, axis=-1)
  if array.ndim != 3 or array.shape[-1] not in (3, 4):
    raise PhotoError(f"photo {name} has shape {array.shape}; pass an RGB image"
                     " [H, W, 3]")
  return np.ascontiguousarray(array[..., :3])


def prepare_photo(image: str | os.PathLike | bytes | np.ndarray, crop: int,
                  detector: landmarks_lib.LandmarkDetector | None = None,
                  template: np.ndarray | None = None) -> AlignedPhoto:
  """Detects the face and aligns it as the dataset does.

  Args:
    image: see `load_image`.
    crop: side of the aligned face in px (the export's crop).
    detector: a LandmarkDetector to reuse (made if None).
    template: [68, 2] unit-square template; must be the dataset's
      (align.CANONICAL_TEMPLATE), other templates are refused.

  Returns:
    AlignedPhoto.

  Raises:
    PhotoError: corrupt image, photo smaller than the crop, or no face.
  """
  rgb, name = load_image(image)
  height, width = rgb.shape[:2]
  if min(height, width) < crop:
    raise PhotoError(
        f"photo {name} is {width}x{height} px, smaller than the model's "
        f"{crop}x{crop} face crop; pass a photo at least {crop} px on each "
        "side")
  if template is not None and not np.allclose(template,
                                              align.CANONICAL_TEMPLATE,
                                              atol=1e-4):
    raise PhotoError("the export was trained with another alignment template"
                     " than this version's; re-export the model")
  rgb = rgb[:height - height % 2, :width - width % 2]
  detector = detector or landmarks_lib.LandmarkDetector()
  faces = detector.detect_all(rgb)
  if not faces:
    raise PhotoError(
        f"no face found in photo {name}; pass a photo with one frontal, "
        "well-lit face at least 80 px wide")
  if len(faces) > 1:
    logging.warning("photo %s shows %d faces; using the largest one.", name,
                    len(faces))
  points = faces[0][1]
  aligned, _, matrix = align.align_clip(rgb[None], points[None], crop)
  return AlignedPhoto(image=rgb, face=aligned[0], matrix=matrix,
                      landmarks=points, num_faces=len(faces), name=name)


def face_to_float(face: np.ndarray) -> np.ndarray:
  """uint8 [..., H, W, 3] -> float32 in [-1, 1] (the generator's range)."""
  return np.asarray(face, np.float32) / 127.5 - 1.0
