"""Synthetic talking faces: speakers from a real portrait, visemes, blinks, head motion.

Speaker 1 is scikit-image's `astronaut` portrait (a real photograph). Every other
speaker is the same photograph after an identity-changing thin-plate-spline warp
driven by its dlib landmarks (face width, jaw width, face length, eye spacing,
nose and mouth shape, brow height), a mirror flip, new skin, hair and clothes
colours, and an optional beard shadow. Because every face is a warped real face,
the dlib HOG detector and 68-point predictor find it like a real one.

Per frame (tracks from `face_motion`), one `cv2.remap` with precomputed displacement fields moves the face:

* mouth: the jaw and lower lip drop below the lip line (a tear that is filled
  with a mouth cavity and the speaker's own teeth), and the mouth widens or
  narrows, following a phoneme-to-viseme table with coarticulation smoothing;
* eyes: the upper lids slide down over the eyes for blinks of 3-5 frames every
  2-6 s;
* head: a small smooth similarity transform (translation, rotation, scale).

All randomness comes from numpy Generators the caller seeds, so rendering is
deterministic.
"""
from __future__ import annotations

import contextlib
import dataclasses
import functools

import cv2
import numpy as np
import scipy.ndimage

# The face (jaw 0 to jaw 16) spans this fraction of the frame height, and its
# landmark centroid sits at this height: GRID-like head-and-shoulders framing.
FACE_WIDTH_FRACTION = 0.42
FACE_CENTER_Y = 0.55
# Widest jaw drop (inner-lip gap) as a fraction of the mouth width.
MAX_OPEN_FRACTION = 0.5
# Largest relative change of the mouth width for spread / rounded visemes.
MAX_WIDTH_CHANGE = 0.12


class FaceRenderError(ValueError):
  """A speaker face could not be built."""


@dataclasses.dataclass(frozen=True)
class Identity:
  """How one speaker's face differs from the source portrait."""
  mirror: bool = False
  scale: float = 1.0
  shift: tuple[float, float] = (0.0, 0.0)  # fraction of frame (x, y)
  face_width: float = 1.0
  jaw_width: float = 1.0
  face_length: float = 1.0
  eye_spacing: float = 0.0  # fraction of the inter-ocular distance
  nose_width: float = 1.0
  nose_length: float = 0.0  # fraction of the face height
  mouth_width: float = 1.0
  brow_raise: float = 0.0  # fraction of the face height
  skin: tuple[float, float, float] = (1.0, 0.0, 0.0)  # L scale, a shift, b shift
  hair: tuple[float, float, float, float] = (1.0, 1.0, 0.0, 0.0)  # L, chroma, a, b
  hue_shift: float = 0.0  # degrees, clothes and background
  beard: float = 0.0  # 0..1 strength of a beard shadow


def sample_identity(rng: np.random.Generator, index: int) -> Identity:
  """Identity of speaker `index` (0-based); index 0 is the unchanged portrait."""
  if index == 0:
    return Identity()
  male = index % 2 == 1
  u = rng.uniform
  skins = [(1.06, -1.0, -4.0), (1.0, 0.0, 0.0), (0.93, 2.0, 8.0), (0.84, 5.0, 12.0),
           (0.74, 7.0, 14.0), (0.64, 8.0, 12.0)]
  hairs = [(0.45, 0.35, 0.0, 0.0), (0.65, 0.8, 2.0, 2.0), (1.2, 1.2, 2.0, 14.0),
           (0.95, 1.4, 14.0, 6.0), (1.15, 0.15, 0.0, 0.0), (0.8, 1.0, 0.0, 0.0)]
  return Identity(
      mirror=bool(rng.integers(2)),
      scale=u(0.92, 1.08),
      shift=(u(-0.06, 0.06), u(-0.03, 0.03)),
      face_width=u(1.0, 1.12) if male else u(0.9, 1.04),
      jaw_width=u(1.0, 1.14) if male else u(0.88, 1.02),
      face_length=u(0.95, 1.08),
      eye_spacing=u(-0.07, 0.07),
      nose_width=u(0.85, 1.3),
      nose_length=u(-0.02, 0.03),
      mouth_width=u(0.88, 1.1),
      brow_raise=u(-0.025, 0.02) if male else u(-0.01, 0.03),
      skin=skins[int(rng.integers(len(skins)))],
      hair=hairs[int(rng.integers(len(hairs)))],
      hue_shift=u(20.0, 340.0),
      beard=u(0.4, 0.9) if male and rng.uniform() < 0.5 else 0.0)


@dataclasses.dataclass
class SpeakerFace:
  """A speaker's neutral (closed-mouth) face plus fields for fast animation.

  Attributes:
    image: uint8 [H, W, 3] RGB neutral face, mouth closed.
    teeth: uint8 [H, W, 3] the face before the mouth was closed (teeth source).
    landmarks: float32 [68, 2] dlib landmarks of `teeth` (x, y px).
    open_field: float32 [H, W] downward displacement per pixel of jaw drop.
    width_field: float32 [H, W] horizontal displacement per unit width change.
    eyelids: per eye (x0, y0, x1, y1, upper-lid y per column, opening per column).
    lip_x, lip_y: float32 [K] the upper inner lip line (sorted by x).
    gap_x, gap: float32 [K] the teeth band height of `teeth` along the line.
    mouth_box: (x0, y0, x1, y1) region the cavity can cover.
    max_open_px: jaw drop at mouth_open = 1.
    center: (x, y) face centre, the pivot of head motion.
    face_width: jaw-to-jaw distance in px.
  """
  image: np.ndarray
  teeth: np.ndarray
  landmarks: np.ndarray
  open_field: np.ndarray
  width_field: np.ndarray
  eyelids: list
  lip_x: np.ndarray
  lip_y: np.ndarray
  gap_x: np.ndarray
  gap: np.ndarray
  mouth_box: tuple[int, int, int, int]
  max_open_px: float
  center: tuple[float, float]
  face_width: float


@functools.lru_cache(maxsize=2)
def _portrait(mirror: bool) -> tuple[np.ndarray, np.ndarray]:
  import skimage.data  # pylint: disable=g-import-not-at-top
  image = skimage.data.astronaut()
  if mirror:
    image = np.ascontiguousarray(image[:, ::-1])
  points = _detector().detect(image)
  if points is None:
    raise FaceRenderError("dlib found no face in skimage's astronaut portrait;"
                          " reinstall scikit-image and dlib-bin")
  return image, points


@functools.lru_cache(maxsize=1)
def _detector():
  from a2v_jax.face import landmarks as face_landmarks  # pylint: disable=g-import-not-at-top
  return face_landmarks.LandmarkDetector()


def _one_blas_thread():
  """Limits BLAS to one thread: a tiny solve on a busy machine is otherwise slow."""
  try:
    import threadpoolctl  # pylint: disable=g-import-not-at-top
    return threadpoolctl.threadpool_limits(1)
  except ImportError:
    return contextlib.nullcontext()


def _smoothstep(x):
  x = np.clip(x, 0.0, 1.0)
  return x * x * (3.0 - 2.0 * x)


def _tps_kernel(a, b):
  d2 = ((a[:, None, :] - b[None, :, :]) ** 2).sum(-1)
  return np.where(d2 > 0, d2 * np.log(np.maximum(d2, 1e-12)), 0.0)


def _tps_backward_map(dst, src, height, width, step=4):
  """Thin-plate-spline map from output pixels (dst control points) to source.

  Solved on a grid every `step` px and upsampled (the map is smooth).

  Returns:
    (map_x, map_y) float32 [H, W] for cv2.remap.
  """
  dst = dst.astype(np.float64)
  src = src.astype(np.float64)
  n = len(dst)
  system = np.zeros((n + 3, n + 3))
  system[:n, :n] = _tps_kernel(dst, dst) + 1e-3 * np.eye(n)
  system[:n, n] = 1.0
  system[:n, n + 1:] = dst
  system[n, :n] = 1.0
  system[n + 1:, :n] = dst.T
  rhs = np.zeros((n + 3, 2))
  rhs[:n] = src
  gy, gx = np.mgrid[0:height + step:step, 0:width + step:step].astype(np.float64)
  pts = np.stack([gx.ravel(), gy.ravel()], -1)
  with _one_blas_thread():
    coef = np.linalg.solve(system, rhs)
    out = _tps_kernel(pts, dst) @ coef[:n] + coef[n] + pts @ coef[n + 1:]
  coarse = out.reshape(gy.shape + (2,)).astype(np.float32)
  full = cv2.resize(coarse, (coarse.shape[1] * step, coarse.shape[0] * step),
                    interpolation=cv2.INTER_LINEAR)[:height, :width]
  return np.ascontiguousarray(full[..., 0]), np.ascontiguousarray(full[..., 1])


def _place_portrait(identity: Identity, height: int, width: int):
  """Portrait scaled and shifted into the frame; returns image and landmarks."""
  image, points = _portrait(identity.mirror)
  face_w = np.linalg.norm(points[16] - points[0])
  scale = FACE_WIDTH_FRACTION * height * identity.scale / face_w
  center = points.mean(0)
  target = np.array([width * (0.5 + identity.shift[0]),
                     height * (FACE_CENTER_Y + identity.shift[1])])
  matrix = np.array([[scale, 0.0, target[0] - scale * center[0]],
                     [0.0, scale, target[1] - scale * center[1]]], np.float32)
  placed = cv2.warpAffine(image, matrix, (width, height), flags=cv2.INTER_CUBIC,
                          borderMode=cv2.BORDER_REFLECT101)
  moved = points @ matrix[:, :2].T + matrix[:, 2]
  return placed, moved.astype(np.float32)


def _reshape_landmarks(points: np.ndarray, identity: Identity) -> np.ndarray:
  """Target landmarks after the identity's shape changes."""
  p = points.astype(np.float64).copy()
  center = p.mean(0)
  eye_l, eye_r = p[36:42].mean(0), p[42:48].mean(0)
  interocular = np.linalg.norm(eye_r - eye_l)
  face_h = p[8, 1] - (p[19, 1] + p[24, 1]) / 2
  eye_y = (eye_l[1] + eye_r[1]) / 2
  jaw = np.arange(17)
  p[jaw, 0] = center[0] + (p[jaw, 0] - center[0]) * identity.face_width
  lower = np.clip((p[jaw, 1] - eye_y) / max(p[8, 1] - eye_y, 1.0), 0.0, 1.0)
  p[jaw, 0] = center[0] + (p[jaw, 0] - center[0]) * (1 + (identity.jaw_width - 1) * lower)
  below_eyes = np.arange(68)[p[:, 1] > eye_y]
  p[below_eyes, 1] = eye_y + (p[below_eyes, 1] - eye_y) * identity.face_length
  side = np.sign(p[:, 0] - center[0])
  for idx in (np.r_[36:42, 17:22], np.r_[42:48, 22:27]):
    p[idx, 0] += side[idx] * identity.eye_spacing * interocular / 2
  nose = np.arange(31, 36)
  nose_c = p[nose, 0].mean()
  p[nose, 0] = nose_c + (p[nose, 0] - nose_c) * identity.nose_width
  p[30:36, 1] += identity.nose_length * face_h
  mouth = np.arange(48, 68)
  mouth_c = p[mouth, 0].mean()
  p[mouth, 0] = mouth_c + (p[mouth, 0] - mouth_c) * identity.mouth_width
  p[17:27, 1] -= identity.brow_raise * face_h
  return p.astype(np.float32)


def _anchor_points(points, height, width):
  """Fixed control points: frame border and a ring around the head."""
  border = []
  for t in np.linspace(0, 1, 5):
    border += [(t * (width - 1), 0), (t * (width - 1), height - 1),
               (0, t * (height - 1)), (width - 1, t * (height - 1))]
  center = points.mean(0)
  radius = np.linalg.norm(points[16] - points[0]) * 1.05
  ring = [center + radius * np.array([np.cos(a), 1.25 * np.sin(a)])
          for a in np.linspace(0, 2 * np.pi, 16, endpoint=False)]
  return np.concatenate([np.array(border, np.float32), np.array(ring, np.float32)])


def _face_masks(points, height, width):
  """Soft masks (float32 [H, W] in 0..1): skin to recolour, and the person's
  face, head and neck, which keep their hue when clothes and background change."""
  face_w = np.linalg.norm(points[16] - points[0])
  face_h = points[8, 1] - points[19:25, 1].mean()
  sigma = max(face_w * 0.03, 1.0)
  brows = points[26:16:-1].copy()
  brows[:, 1] -= 0.28 * face_h
  hull = np.concatenate([points[:17], brows]).astype(np.int32)
  neck = np.concatenate([points[4:13], [[points[11, 0], points[8, 1] + 0.7 * face_h],
                                        [points[5, 0], points[8, 1] + 0.7 * face_h]]])
  face = np.zeros((height, width), np.float32)
  cv2.fillPoly(face, [hull, neck.astype(np.int32)], 1.0)
  skin = face.copy()
  for idx in (np.r_[36:42], np.r_[42:48], np.r_[60:68]):
    cv2.fillPoly(skin, [cv2.convexHull(points[idx].astype(np.int32))], 0.0)
  skin = cv2.GaussianBlur(skin, (0, 0), sigma)
  head = np.zeros((height, width), np.float32)
  center = points.mean(0)
  axes = (int(face_w * 0.78), int(face_h * 1.05))
  cv2.ellipse(head, (int(center[0]), int(center[1] - 0.25 * face_h)), axes, 0, 0,
              360, 1.0, -1)
  head[int(points[30, 1]):] = 0.0
  head = cv2.GaussianBlur(np.maximum(head, face), (0, 0), sigma * 2)
  return skin, np.maximum(head, cv2.GaussianBlur(face, (0, 0), sigma))


def _recolour(image, points, identity: Identity):
  """Skin tone, hair colour, beard shadow, clothes and background hue."""
  height, width = image.shape[:2]
  skin, head = _face_masks(points, height, width)
  lab = cv2.cvtColor(image.astype(np.float32) / 255.0, cv2.COLOR_RGB2Lab)
  lum, chroma_a, chroma_b = lab[..., 0], lab[..., 1], lab[..., 2]
  chroma = np.hypot(chroma_a, chroma_b)
  hair = (head - cv2.GaussianBlur(skin, (0, 0), 3.0) * 1.5).clip(0, 1) * _smoothstep((72.0 - lum) / 12.0) \
      * _smoothstep((chroma - 6.0) / 10.0)
  out = lab.copy()
  ls, da, db = identity.skin
  out[..., 0] = lum + skin * (lum * (ls - 1.0))
  out[..., 1] = chroma_a + skin * da
  out[..., 2] = chroma_b + skin * db
  hl, hc, ha, hb = identity.hair
  out[..., 0] += hair * (lum * (hl - 1.0))
  out[..., 1] += hair * (chroma_a * (hc - 1.0) + ha)
  out[..., 2] += hair * (chroma_b * (hc - 1.0) + hb)
  if identity.beard > 0:
    beard = np.zeros((height, width), np.float32)
    region = np.concatenate([points[3:14], points[[54, 55, 56, 57, 58, 59, 48]][::-1]])
    cv2.fillPoly(beard, [region.astype(np.int32)], 1.0)
    upper = np.concatenate([points[[48, 49, 50, 51, 52, 53, 54]],
                            points[[35, 34, 33, 32, 31]]])
    cv2.fillPoly(beard, [upper.astype(np.int32)], 0.6)
    face_w = np.linalg.norm(points[16] - points[0])
    beard = cv2.GaussianBlur(beard, (0, 0), face_w * 0.025)
    grain = np.random.default_rng(0).uniform(0.6, 1.0, (height, width)).astype(np.float32)
    out[..., 0] -= beard * grain * identity.beard * 22.0
  rgb = cv2.cvtColor(out, cv2.COLOR_Lab2RGB)
  rgb = (np.clip(rgb, 0, 1) * 255.0 + 0.5).astype(np.uint8)
  hsv = cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV)
  hsv[..., 0] = ((hsv[..., 0].astype(np.int32) + int(identity.hue_shift / 2)) % 180
                 ).astype(np.uint8)
  shifted = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB).astype(np.float32)
  keep = head[..., None]
  return (rgb * keep + shifted * (1.0 - keep) + 0.5).astype(np.uint8)


def _polyline(points, idx):
  pts = points[list(idx)]
  order = np.argsort(pts[:, 0], kind="stable")
  return pts[order, 0].astype(np.float32), pts[order, 1].astype(np.float32)


def _inner_lips(image, points):
  """Where the lips end and teeth (or mouth interior) begin, per column.

  dlib's inner-lip points are coarse on a toothy smile, so the lip edges are
  found from colour: lips are redder (Lab a*) than teeth and the mouth interior.

  Returns:
    (cols float32 [K], upper float32 [K], gap float32 [K]): the lower edge of the
    upper lip and the height of the visible teeth band, from corner to corner.
  """
  top_x, top_y = _polyline(points, (48, 49, 50, 51, 52, 53, 54))
  bot_x, bot_y = _polyline(points, (48, 59, 58, 57, 56, 55, 54))
  up_x, up_y = _polyline(points, (48, 60, 61, 62, 63, 64, 54))
  lo_x, lo_y = _polyline(points, (48, 60, 67, 66, 65, 64, 54))
  cols = np.arange(np.ceil(points[48, 0]), np.floor(points[54, 0]) + 1, dtype=np.float32)
  top = np.interp(cols, top_x, top_y)
  bot = np.interp(cols, bot_x, bot_y)
  up0 = np.interp(cols, up_x, up_y)
  lo0 = np.interp(cols, lo_x, lo_y)
  redness = cv2.cvtColor(image.astype(np.float32) / 255.0, cv2.COLOR_RGB2Lab)[..., 1]
  height = image.shape[0]

  def sample(ys):
    yi = np.clip(np.round(ys).astype(int), 0, height - 1)
    return redness[yi, cols.astype(int)]

  lip_a = np.median(np.concatenate([sample((top + up0) / 2), sample((lo0 + bot) / 2)]))
  inner = [sample(up0 + f * (lo0 - up0)) for f in (0.3, 0.5, 0.7)]
  inner_a = np.median(np.concatenate(inner)[np.repeat(lo0 - up0 > 1.5, 3)]) \
      if np.any(lo0 - up0 > 1.5) else lip_a - 20.0
  threshold = min((lip_a + inner_a) / 2, lip_a - 5.0)
  upper = up0.copy()
  lower = up0.copy()
  for k, c in enumerate(cols.astype(int)):
    # Search from mid upper lip to mid lower lip, away from the skin.
    y0 = max(int(np.floor((top[k] + up0[k]) / 2)), 0)
    y1 = int(np.ceil((lo0[k] + bot[k]) / 2)) + 1
    inside = np.nonzero(redness[y0:min(y1, height), c] < threshold)[0]
    if len(inside):
      # The first run of non-lip pixels (a 1 px break is allowed).
      breaks = np.nonzero(np.diff(inside) > 2)[0]
      end = inside[breaks[0]] if len(breaks) else inside[-1]
      upper[k] = y0 + inside[0]
      lower[k] = y0 + end + 1
  smooth = lambda a: cv2.GaussianBlur(
      scipy.ndimage.median_filter(a.astype(np.float32), 9, mode="nearest")[None],
      (0, 0), 1.0)[0]
  upper = np.clip(smooth(upper), (top + up0) / 2, np.maximum((up0 + lo0) / 2, up0))
  lower = np.clip(smooth(lower), upper, bot)
  # Corners: the lips meet.
  taper = np.clip(np.minimum(cols - cols[0], cols[-1] - cols) / 2.0, 0.0, 1.0)
  upper = np.where(taper < 1, up0 + (upper - up0) * taper, upper)
  return cols, upper.astype(np.float32), ((lower - upper) * taper).astype(np.float32)


def _mouth_fields(image, points, height, width):
  """Jaw-drop and width fields plus the lip line and teeth band."""
  ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
  lip_x, lip_y, gap = _inner_lips(image, points)
  line = np.interp(xs, lip_x, lip_y).astype(np.float32)
  v = ys - line
  cx = (points[48, 0] + points[54, 0]) / 2
  half = max((points[54, 0] - points[48, 0]) / 2 * 0.92, 2.0)
  u = (xs - cx) / half
  shape = np.clip(1.0 - u * u, 0.0, 1.0)
  thickness = max(points[57, 1] - points[66, 1], 3.0)
  max_open = MAX_OPEN_FRACTION * (points[54, 0] - points[48, 0])
  ramp = _smoothstep(v / max(2.5 * thickness, 1.8 * max_open))
  jaw_half = max((points[16, 0] - points[0, 0]) / 2, half * 1.5)
  side = np.clip((np.abs(xs - cx) - half) / (1.25 * jaw_half - half), 0.0, 1.0)
  jawfall = 1.0 - _smoothstep(side)
  face_h = points[8, 1] - points[19:25, 1].mean()
  neck = 1.0 - _smoothstep((ys - points[8, 1]) / (0.45 * face_h))
  jaw = jawfall * neck
  open_field = np.where(v >= 0, (1.0 - ramp) * shape + ramp * jaw, 0.0)
  cy = (points[62, 1] + points[66, 1]) / 2
  bump = np.exp(-0.5 * ((xs - cx) / (1.5 * half)) ** 4
                - 0.5 * ((ys - cy) / (1.1 * half)) ** 2)
  width_field = (xs - cx) * bump
  mouth_w = points[54, 0] - points[48, 0]
  return (open_field.astype(np.float32), width_field.astype(np.float32),
          lip_x, lip_y, gap, float(MAX_OPEN_FRACTION * mouth_w))


def _close_mouth(image, points, lip_x, lip_y, gap):
  """Moves the lower lip up over the teeth so the neutral mouth is closed."""
  height, width = image.shape[:2]
  ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
  v = ys - np.interp(xs, lip_x, lip_y).astype(np.float32)
  shift = np.interp(xs, lip_x, gap).astype(np.float32)
  thickness = max(points[57, 1] - points[66, 1], 3.0)
  ramp = _smoothstep(v / (3.0 * thickness))
  lift = np.where(v >= 0, shift * (1.0 - ramp) + ramp * 0.3 * gap.max() *
                  np.exp(-0.5 * ((xs - points[62, 0]) / (points[54, 0] - points[48, 0])) ** 2)
                  * (1.0 - _smoothstep((ys - points[8, 1]) / 20.0)), 0.0)
  return cv2.remap(image, xs, ys + lift.astype(np.float32), cv2.INTER_LINEAR,
                   borderMode=cv2.BORDER_REFLECT101)


def _eyelids(points, height, width):
  """Per-eye boxes with the upper-lid line and eye opening of each column.

  Returns:
    list of (x0, y0, x1, y1, upper float32 [x1-x0], opening float32 [x1-x0]).
  """
  lids = []
  for a, up1, up2, b, lo1, lo2 in ((36, 37, 38, 39, 40, 41), (42, 43, 44, 45, 46, 47)):
    up_x, up_y = _polyline(points, (a, up1, up2, b))
    lo_x, lo_y = _polyline(points, (a, lo2, lo1, b))
    x0 = int(np.floor(up_x[0] - 3))
    x1 = int(np.ceil(up_x[-1] + 4))
    x0, x1 = max(x0, 0), min(x1, width)
    cols = np.arange(x0, x1, dtype=np.float32)
    upper = np.interp(cols, up_x, up_y).astype(np.float32) - 0.5
    opening = np.interp(cols, lo_x, lo_y) - upper
    # Round the lid ends past the landmark corners.
    u = np.clip((cols - (up_x[0] + up_x[-1]) / 2) / ((up_x[-1] - up_x[0]) / 2 + 3), -1, 1)
    opening = (np.maximum(opening, 0) * 1.15 + 1.5) * np.sqrt(1 - u * u)
    y0 = int(max(np.floor(upper.min()) - 1, 0))
    y1 = int(min(np.ceil((upper + opening).max()) + 2, height))
    lids.append((x0, y0, x1, y1, upper, opening.astype(np.float32)))
  return lids


def _close_lids(map_y, lids, closure):
  """Slides each upper lid down by `closure` of the eye opening (in place).

  Pixels between the lid line and its new edge show the lid skin just above
  it, shifted down, so the lashes end up at the new edge; nothing above the
  lid moves, so the brows stay still.

  Returns:
    list of (x0, y0, x1, y1, shade float32 [h, w]) multiplicative shading of
    the lid (the lid is in shadow and its lashes darken the edge).
  """
  shades = []
  for x0, y0, x1, y1, upper, opening in lids:
    ys = np.arange(y0, y1, dtype=np.float32)[:, None]
    edge = upper[None, :] + closure * opening[None, :]
    cover = np.clip(edge - ys, 0.0, 1.0) * (ys >= upper[None, :])
    map_y[y0:y1, x0:x1] -= (cover * closure * opening[None, :]).astype(np.float32)
    lashes = np.exp(-0.5 * ((ys - edge + 0.7) / 0.8) ** 2) * cover * min(closure * 2, 1.0)
    shade = 1.0 - 0.2 * cover - 0.45 * lashes
    shades.append((x0, y0, x1, y1, shade.astype(np.float32)))
  return shades


def build_speaker(index: int, height: int, width: int, seed: int = 0,
                  max_tries: int = 8) -> SpeakerFace:
  """Builds speaker `index` (0-based) for frames of height x width.

  The identity is drawn from `seed` and `index`; a draw whose face dlib cannot
  find (rare) is redrawn, deterministically.
  """
  rng = np.random.default_rng([int(seed), int(index), 1])
  for _ in range(max_tries):
    identity = sample_identity(rng, index)
    placed, points = _place_portrait(identity, height, width)
    target = _reshape_landmarks(points, identity)
    anchors = _anchor_points(points, height, width)
    map_x, map_y = _tps_backward_map(np.concatenate([target, anchors]),
                                     np.concatenate([points, anchors]), height, width)
    warped = cv2.remap(placed, map_x, map_y, cv2.INTER_LINEAR,
                       borderMode=cv2.BORDER_REFLECT101)
    face = _recolour(warped, target, identity)
    found = _detector().detect(face)
    if found is not None and np.linalg.norm(found.mean(0) - target.mean(0)) < \
        0.15 * np.linalg.norm(target[16] - target[0]):
      break
  else:
    raise FaceRenderError(f"could not build a detectable face for speaker {index + 1}"
                          f" at {width}x{height}; use a larger frame size")
  open_field, width_field, lip_x, lip_y, gap, max_open = _mouth_fields(
      face, found, height, width)
  closed = _close_mouth(face, found, lip_x, lip_y, gap)
  lids = _eyelids(found, height, width)
  pad = int(max_open) + 4
  x0 = int(max(found[48, 0] - 0.25 * (found[54, 0] - found[48, 0]), 0))
  x1 = int(min(found[54, 0] + 0.25 * (found[54, 0] - found[48, 0]) + 1, width))
  y0 = int(max(lip_y.min() - 4, 0))
  y1 = int(min(lip_y.max() + pad, height))
  center = found.mean(0)
  return SpeakerFace(
      image=closed, teeth=face, landmarks=found, open_field=open_field,
      width_field=width_field, eyelids=lids, lip_x=lip_x, lip_y=lip_y,
      gap_x=lip_x, gap=gap, mouth_box=(x0, y0, x1, y1), max_open_px=max_open,
      center=(float(center[0]), float(center[1])),
      face_width=float(np.linalg.norm(found[16] - found[0])))


def _paint_cavity(frame, face: SpeakerFace, map_x, map_y, drop):
  """Fills the tear below the upper lip with teeth and a dark mouth interior."""
  x0, y0, x1, y1 = face.mouth_box
  mx = map_x[y0:y1, x0:x1]
  my = map_y[y0:y1, x0:x1]
  ys, xs = np.mgrid[y0:y1, x0:x1].astype(np.float32)
  below = ys - np.interp(xs, face.lip_x, face.lip_y).astype(np.float32)
  lip_src = np.interp(mx, face.lip_x, face.lip_y).astype(np.float32)
  remaining = lip_src - my  # distance from this pixel to the lower lip
  alpha = np.clip(remaining, 0.0, 1.0) * np.clip(below + 0.5, 0.0, 1.0)
  alpha *= (mx > face.lip_x[0]) & (mx < face.lip_x[-1])
  if not alpha.any():
    return
  below = np.maximum(below, 0.0)
  opening = np.maximum(below + remaining, 1.0)
  # Upper teeth show in the top part of the opening only, as in real mouths.
  teeth_h = np.minimum(np.interp(mx, face.gap_x, face.gap).astype(np.float32) * 0.9,
                       0.3 * opening)
  teeth = cv2.remap(face.teeth, mx, lip_src + np.minimum(below, teeth_h),
                    cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT101).astype(np.float32)
  rel = np.clip((below - teeth_h) / np.maximum(opening - teeth_h, 1.0), 0.0, 1.0)
  dark = np.array([48.0, 16.0, 20.0], np.float32)
  tongue = np.array([140.0, 58.0, 62.0], np.float32)
  tongue_w = (_smoothstep((rel - 0.5) / 0.5) * np.clip(opening / max(drop, 1.0), 0, 1)
              * min(drop / 6.0, 1.0))[..., None]
  interior = dark + (tongue - dark) * tongue_w * 0.85
  is_teeth = _smoothstep(teeth_h - below + 0.5)[..., None]
  fill = teeth * is_teeth + interior * (1.0 - is_teeth)
  region = frame[y0:y1, x0:x1].astype(np.float32)
  a = alpha[..., None]
  frame[y0:y1, x0:x1] = (region * (1.0 - a) + fill * a + 0.5).astype(np.uint8)


def render_frames(face: SpeakerFace, mouth_open: np.ndarray, mouth_width: np.ndarray,
                  blink: np.ndarray, pose: np.ndarray) -> np.ndarray:
  """Renders an animated clip of a speaker.

  Args:
    face: the speaker.
    mouth_open: float32 [T] jaw opening in 0..1.
    mouth_width: float32 [T] in -1 (rounded) .. 1 (spread).
    blink: float32 [T] eyelid closure in 0..1.
    pose: float32 [T, 4] head motion (dx px, dy px, rotation degrees, scale).

  Returns:
    uint8 [T, H, W, 3] RGB frames.
  """
  height, width = face.image.shape[:2]
  ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
  frames = np.empty((len(mouth_open), height, width, 3), np.uint8)
  for t in range(len(mouth_open)):
    drop = float(mouth_open[t]) * face.max_open_px
    map_x = xs - np.float32(mouth_width[t] * MAX_WIDTH_CHANGE) * face.width_field
    map_y = ys - np.float32(drop) * face.open_field
    shades = _close_lids(map_y, face.eyelids, float(blink[t])) if blink[t] > 0 else ()
    frame = cv2.remap(face.image, map_x, map_y, cv2.INTER_LINEAR,
                      borderMode=cv2.BORDER_REFLECT101)
    for x0, y0, x1, y1, shade in shades:
      frame[y0:y1, x0:x1] = (frame[y0:y1, x0:x1] * shade[..., None] + 0.5).astype(np.uint8)
    if drop > 0.5:
      _paint_cavity(frame, face, map_x, map_y, drop)
    dx, dy, angle, scale = (float(p) for p in pose[t])
    matrix = cv2.getRotationMatrix2D(face.center, angle, scale)
    matrix[:, 2] += (dx, dy)
    frames[t] = cv2.warpAffine(frame, matrix, (width, height), flags=cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_REFLECT101)
  return frames
