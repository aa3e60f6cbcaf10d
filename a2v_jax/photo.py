"""The input photo of one-shot inference: load, detect, align, paste back.

`prepare_photo` finds the face and aligns it exactly as the dataset builders
align a clip (`a2v_jax.face.landmarks.LandmarkDetector` for the 68 landmarks,
`a2v_jax.face.align.align_clip` with one similarity transform onto the
canonical template), so the generator sees a reference framed like its
training data. `paste_back` undoes that transform to put generated faces into
the original photo through a feathered elliptical mask.
"""
from __future__ import annotations

import dataclasses
import io
import os

from absl import logging
import cv2
import numpy as np
from PIL import Image
from PIL import ImageOps
from PIL import UnidentifiedImageError

from a2v_jax.face import align
from a2v_jax.face import landmarks as landmarks_lib

# Feathered paste-back mask in aligned-crop units: an ellipse around the
# template face (brows to chin span y 0.36-0.90, x 0.22-0.78), its edge
# blurred with a Gaussian of this many crop widths.
MASK_CENTRE = (0.5, 0.6)
MASK_AXES = (0.31, 0.37)
MASK_FEATHER = 0.045


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


def paste_mask(crop: int) -> np.ndarray:
  """Feathered face mask in the aligned crop: float32 [crop, crop] in [0, 1]."""
  mask = np.zeros((crop, crop), np.float32)
  centre = (int(round(MASK_CENTRE[0] * crop)), int(round(MASK_CENTRE[1] * crop)))
  axes = (int(round(MASK_AXES[0] * crop)), int(round(MASK_AXES[1] * crop)))
  cv2.ellipse(mask, centre, axes, 0, 0, 360, 1.0, thickness=-1)
  sigma = max(MASK_FEATHER * crop, 0.5)
  return cv2.GaussianBlur(mask, (0, 0), sigmaX=sigma)


class PasteBack:
  """Pastes generated aligned faces back into their photo.

  The generated crop and the mask are warped into the photo with the inverse
  of the alignment transform (only over the face's bounding box), then
  blended: out = mask * face + (1 - mask) * photo.

  Args:
    aligned: the AlignedPhoto the faces were generated from.
  """

  def __init__(self, aligned: AlignedPhoto):
    self.image = aligned.image
    crop = aligned.crop
    height, width = self.image.shape[:2]
    inverse = cv2.invertAffineTransform(aligned.matrix.astype(np.float64))
    corners = np.array([[0, 0], [crop, 0], [0, crop], [crop, crop]], np.float64)
    photo_corners = corners @ inverse[:, :2].T + inverse[:, 2]
    x0, y0 = np.floor(photo_corners.min(0)).astype(int) - 1
    x1, y1 = np.ceil(photo_corners.max(0)).astype(int) + 1
    self.x0, self.y0 = max(x0, 0), max(y0, 0)
    self.x1, self.y1 = min(x1, width), min(y1, height)
    # The transform from box px to crop px, for warpAffine's inverse map.
    shift = np.array([[1, 0, self.x0], [0, 1, self.y0], [0, 0, 1]], np.float64)
    self.box_matrix = (np.vstack([aligned.matrix, [0, 0, 1]]) @ shift)[:2]
    self.size = (self.x1 - self.x0, self.y1 - self.y0)
    mask = cv2.warpAffine(paste_mask(crop), self.box_matrix, self.size,
                          flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=0.0)
    self.mask = mask[..., None]
    self.background = self.image[self.y0:self.y1, self.x0:self.x1].astype(
        np.float32)

  def __call__(self, faces: np.ndarray) -> np.ndarray:
    """faces: uint8 [n, crop, crop, 3] -> uint8 [n, H, W, 3] (photo size)."""
    faces = np.asarray(faces)
    out = np.repeat(self.image[None], len(faces), axis=0)
    if self.size[0] <= 0 or self.size[1] <= 0:
      return out
    for i, face in enumerate(faces):
      warped = cv2.warpAffine(face, self.box_matrix, self.size,
                              flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                              borderMode=cv2.BORDER_REPLICATE)
      blend = self.mask * warped + (1.0 - self.mask) * self.background
      out[i, self.y0:self.y1, self.x0:self.x1] = np.clip(
          blend + 0.5, 0, 255).astype(np.uint8)
    return out


def paste_back(aligned: AlignedPhoto, faces: np.ndarray) -> np.ndarray:
  """Generated faces uint8 [n, crop, crop, 3] -> photos uint8 [n, H, W, 3]."""
  return PasteBack(aligned)(faces)
