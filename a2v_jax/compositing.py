"""Putting generated faces back into their photo, at the photo's resolution.

The generator works on an aligned crop of 64-256 px; the photo may be 4K.
Two compositors undo the alignment (`AlignedPhoto.matrix`, photo px -> crop
px) for every frame:

- `ChangeComposite` (the default, output 'photo'): only what the generator
  changed is transferred. The change of frame t is its difference from the
  generator's own rendering of the still reference (the frame it makes for
  silence), d_t = G_t - G_still, computed in the crop, restricted to a
  feathered lower-face mask built from the photo's landmarks, warped into
  the photo and added to it: out_t = photo + warp(mask * d_t). The photo
  keeps every pixel the generator did not change (bit for bit) and its own
  sharpness and colour everywhere; a colour cast or blur of the generator
  is in both G_t and G_still and cancels.
- `WholeFacePaste` (output 'photo_whole_face'): the generated face itself,
  upscaled, replaces the photo's face (jaw line to forehead, feathered
  inwards), its colour matched to the photo. It is softer than the photo,
  but it is the one to use for a model that moves the whole head or the
  eyes (a pure difference of a moved head would show double edges) and for
  looking at the model's own rendering in context.

Both masks are 0 on the face's contour and beyond it, and a few pixels
inside the crop's border. The paste this replaced used an ellipse reaching
below the chin whose weight was still 0.8 on the crop's bottom row: the
generator's bottom rows, where the aligned crop cuts through the neck and
its border padding acts, change with the audio (by +16 to +34 levels on
average on the astronaut), and were pasted as a teal line along the crop's
edge (the top of her collar) over a grey smear under her chin.
"""
from __future__ import annotations

import cv2
import numpy as np

from a2v_jax.face import align

# dlib / iBUG 68-point indices (0-based).
_FACE_OUTLINE = slice(0, 17)  # ear to ear along the jaw
_BROWS = slice(17, 27)
_JAW = slice(1, 16)  # the jaw line below the cheekbones
_CHIN = slice(4, 13)  # the part of the jaw that drops when the mouth opens
_NOSE_BRIDGE_LOW = 29
_LOWER_LIP_BOTTOM = 57
_CHIN_TIP = 8

# In crop widths: the mask is 0 within BORDER_ZERO of the crop's edge and
# reaches 1 BORDER_RAMP further in.
BORDER_ZERO = 0.03
BORDER_RAMP = 0.05
# The lower-face mask's feather (Gaussian sigma, crop widths; the ramp is
# about twice as wide) and the room below the chin for the jaw to drop (a
# fraction of the lip-to-chin span).
LOWER_FACE_FEATHER = 0.03
CHIN_ROOM = 0.15
# Changes smaller than this (uint8 levels) are rounding noise, not motion:
# they are dropped (soft threshold), so a still region stays bit-identical.
CHANGE_THRESHOLD = 1.5
# The whole-face mask: the face outline and the brows raised by this
# fraction of the brow-to-chin height (the forehead), feathered inwards.
FOREHEAD = 0.2
FACE_FEATHER = 0.04
# Output chunks hold at most this many bytes (a 4K frame is 25 MB).
MAX_CHUNK_BYTES = 256 * 2**20


def border_taper(crop: int) -> np.ndarray:
  """float32 [crop, crop]: 0 near the crop's edge, 1 inside, a smooth ramp."""
  px = np.arange(crop, dtype=np.float32) + 0.5
  dist = np.minimum(px, crop - px) / crop  # to the nearer edge, crop widths
  ramp = np.clip((dist - BORDER_ZERO) / BORDER_RAMP, 0.0, 1.0)
  ramp = ramp * ramp * (3.0 - 2.0 * ramp)  # smoothstep
  return np.minimum(ramp[:, None], ramp[None, :])


def _hull_mask(crop: int, points: np.ndarray, feather: float) -> np.ndarray:
  """The points' convex hull, feathered inwards: float32 [crop, crop] in [0, 1].

  0 on the hull's outline and outside it, 1 about 2 * feather * crop
  inside, and 0 near the crop's border (`border_taper`).
  """
  hull = cv2.convexHull(np.round(np.asarray(points) * 16).astype(np.int32))
  mask = np.zeros((crop, crop), np.float32)
  cv2.fillConvexPoly(mask, hull, 1.0, lineType=cv2.LINE_AA, shift=4)
  # A Gaussian blur is 0.5 on the outline; 2 * blur - 1 puts the ramp inside.
  sigma = max(feather * crop, 0.5)
  mask = cv2.GaussianBlur(mask, (0, 0), sigmaX=sigma,
                          borderType=cv2.BORDER_CONSTANT)
  mask = np.clip(2.0 * mask - 1.0, 0.0, 1.0)
  mask = mask * mask * (3.0 - 2.0 * mask)  # smoothstep
  return mask * border_taper(crop)


def lower_face_mask(crop: int, landmarks: np.ndarray) -> np.ndarray:
  """Mask of the lower face, feathered inwards from its outline.

  The outline is the jaw line (below the cheekbones) closed below the nose
  bridge, with a little room under the chin for the jaw to drop. The mask
  is 0 on the face's contour and beyond it: the generator's rendering of the
  neck and of the crop's border changes with the audio too, without
  meaning (the grey smear under the astronaut's chin).

  Args:
    crop: side of the aligned crop in px.
    landmarks: float [68, 2] (x, y) in crop px.

  Returns:
    float32 [crop, crop] in [0, 1]; 0 at the eyes and above, beyond the jaw
    line and near the crop's border.
  """
  pts = np.asarray(landmarks, np.float32)
  room = CHIN_ROOM * np.linalg.norm(pts[_CHIN_TIP] - pts[_LOWER_LIP_BOTTOM])
  down = np.array([0.0, room], np.float32)
  poly = np.concatenate([pts[_JAW], pts[_CHIN] + down,
                         pts[_NOSE_BRIDGE_LOW][None]])
  return _hull_mask(crop, poly, LOWER_FACE_FEATHER)


def face_mask(crop: int, landmarks: np.ndarray) -> np.ndarray:
  """Mask of the whole face, jaw line to forehead, feathered inwards.

  Args:
    crop: side of the aligned crop in px.
    landmarks: float [68, 2] (x, y) in crop px.

  Returns:
    float32 [crop, crop] in [0, 1]; 0 beyond the jaw line, above the
    forehead and near the crop's border.
  """
  pts = np.asarray(landmarks, np.float32)
  lift = FOREHEAD * (pts[_CHIN_TIP, 1] - pts[_BROWS, 1].mean())
  poly = np.concatenate([pts[_FACE_OUTLINE],
                         pts[_BROWS] - np.array([0.0, lift], np.float32)])
  return _hull_mask(crop, poly, FACE_FEATHER)


class _Compositor:
  """Shared geometry: the photo box a crop-space mask covers, and warps."""

  def __init__(self, aligned, mask: np.ndarray):
    self.image = aligned.image
    self.crop = aligned.crop
    self.mask = mask
    height, width = self.image.shape[:2]
    ys, xs = np.nonzero(mask > 0)
    if len(xs) == 0:
      self.x0 = self.y0 = self.x1 = self.y1 = 0
    else:
      left, top, right, bottom = xs.min(), ys.min(), xs.max() + 1, ys.max() + 1
      corners = np.array([[left, top], [right, top], [left, bottom],
                          [right, bottom]], np.float64)
      inverse = cv2.invertAffineTransform(aligned.matrix.astype(np.float64))
      photo = corners @ inverse[:, :2].T + inverse[:, 2]
      x0, y0 = np.floor(photo.min(0)).astype(int) - 2
      x1, y1 = np.ceil(photo.max(0)).astype(int) + 2
      self.x0, self.y0 = max(int(x0), 0), max(int(y0), 0)
      self.x1, self.y1 = min(int(x1), width), min(int(y1), height)
    self.size = (max(self.x1 - self.x0, 0), max(self.y1 - self.y0, 0))
    # Box px -> crop px, for warpAffine's inverse map.
    shift = np.array([[1, 0, self.x0], [0, 1, self.y0], [0, 0, 1]], np.float64)
    self.box_matrix = (np.vstack([aligned.matrix.astype(np.float64),
                                  [0, 0, 1]]) @ shift)[:2]
    self.background = self.image[self.y0:self.y1, self.x0:self.x1]

  @property
  def empty(self) -> bool:
    return self.size[0] == 0 or self.size[1] == 0

  def warp(self, crop_image: np.ndarray) -> np.ndarray:
    """float32 [crop, crop, C] -> [box h, box w, C], zero outside the crop."""
    out = cv2.warpAffine(crop_image, self.box_matrix, self.size,
                         flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                         borderMode=cv2.BORDER_CONSTANT, borderValue=0.0)
    return out.reshape(self.size[1], self.size[0], -1)

  def _blend(self, face: np.ndarray) -> np.ndarray:
    """The box for one frame: uint8 [box h, box w, 3]."""
    raise NotImplementedError

  def chunks(self, faces: np.ndarray):
    """Yields the photo-size frames of faces [n, crop, crop, 3] in pieces.

    Each piece is uint8 [m, H, W, 3] with m * H * W * 3 <= MAX_CHUNK_BYTES
    (at least one frame), so a chunk of 4K frames never sits in memory
    whole.
    """
    faces = np.asarray(faces)
    if faces.ndim != 4 or faces.shape[1:] != (self.crop, self.crop, 3):
      raise ValueError(f"faces must be [n, {self.crop}, {self.crop}, 3], got "
                       f"{faces.shape}")
    per = max(1, MAX_CHUNK_BYTES // self.image.nbytes)
    for s in range(0, len(faces), per):
      part = faces[s:s + per]
      out = np.repeat(self.image[None], len(part), axis=0)
      if not self.empty:
        for i, face in enumerate(part):
          out[i, self.y0:self.y1, self.x0:self.x1] = self._blend(face)
      yield out

  def __call__(self, faces: np.ndarray) -> np.ndarray:
    """faces: uint8 [n, crop, crop, 3] -> uint8 [n, H, W, 3] (photo size)."""
    return np.concatenate(list(self.chunks(faces)))


class ChangeComposite(_Compositor):
  """Adds what the generator changed to the photo (see the module docstring).

  Args:
    aligned: the AlignedPhoto the faces were generated from.
    still: uint8 [crop, crop, 3], the generator's frame for the still
      reference (silence); the zero of the change.
    mask: float32 [crop, crop] in [0, 1], where changes may be transferred;
      default `lower_face_mask` of the photo's landmarks.
    threshold: changes up to this many uint8 levels are dropped.
  """

  def __init__(self, aligned, still: np.ndarray, mask: np.ndarray | None = None,
               threshold: float = CHANGE_THRESHOLD):
    crop = aligned.crop
    still = np.asarray(still)
    if still.shape != (crop, crop, 3):
      raise ValueError(f"still must be [{crop}, {crop}, 3], got {still.shape}")
    if mask is None:
      mask = lower_face_mask(
          crop, align.apply_transform(aligned.matrix, aligned.landmarks))
    super().__init__(aligned, np.asarray(mask, np.float32))
    self.still = still.astype(np.float32)
    self.threshold = float(threshold)
    # The mask's outer feather: the change's median there is a shift of the
    # whole region (brightness or colour flicker), removed so the region
    # meets the untouched photo without a step.
    self.ring = (self.mask > 0.02) & (self.mask < 0.5)
    self.mask3 = self.mask[..., None]

  def change(self, face: np.ndarray) -> np.ndarray:
    """The transferred change of one face: float32 [crop, crop, 3] levels."""
    delta = face.astype(np.float32) - self.still
    if self.ring.any():
      delta -= np.median(delta[self.ring], axis=0)
    delta = np.sign(delta) * np.maximum(np.abs(delta) - self.threshold, 0.0)
    return delta * self.mask3

  def _blend(self, face):
    moved = self.warp(self.change(face)) + self.background
    return np.clip(np.rint(moved), 0, 255).astype(np.uint8)


class WholeFacePaste(_Compositor):
  """Replaces the photo's face with the generated one (see the docstring).

  out = m * (face + colour offset) + (1 - m) * photo, m = `face_mask` of the
  photo's landmarks; the offset is the mask-weighted mean of photo crop -
  still, per channel.

  Args:
    aligned: the AlignedPhoto the faces were generated from.
    still: uint8 [crop, crop, 3] generator frame for the still reference, or
      None to paste without colour matching.
  """

  def __init__(self, aligned, still: np.ndarray | None = None):
    super().__init__(aligned, face_mask(
        aligned.crop, align.apply_transform(aligned.matrix, aligned.landmarks)))
    if still is None:
      self.offset = np.zeros(3, np.float32)
    else:
      weight = self.mask[..., None]
      diff = aligned.face.astype(np.float32) - np.asarray(still, np.float32)
      self.offset = (diff * weight).sum((0, 1)) / max(weight.sum(), 1e-6)
    self.box_mask = self.warp(self.mask[..., None])

  def _blend(self, face):
    warped = self.warp(face.astype(np.float32) + self.offset)
    blend = self.box_mask * warped + (1.0 - self.box_mask) * self.background
    return np.clip(np.rint(blend), 0, 255).astype(np.uint8)
