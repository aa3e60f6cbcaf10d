"""Generated faces back into the photo: only the change, no crop seams."""
import cv2
import numpy as np
import pytest

from a2v_jax import compositing
from a2v_jax import photo
from a2v_jax.face import align

import talking_head_testlib as lib

CROP = 64


@pytest.fixture(scope="module")
def aligned():
  return photo.prepare_photo(lib.astronaut(), CROP)


def _crop_landmarks(aligned):
  return align.apply_transform(aligned.matrix, aligned.landmarks)


def _generator_like_still(aligned):
  """A still rendering unlike the photo: blurred, colour cast, grey neck."""
  still = cv2.GaussianBlur(aligned.face, (0, 0), 1.5).astype(np.int16)
  still += np.array([-12, 10, 14], np.int16)  # teal cast
  chin = int(_crop_landmarks(aligned)[8, 1])
  still[chin + 1:, 20:44] = 128  # a grey band under the chin
  return np.clip(still, 0, 255).astype(np.uint8)


def _open_mouth(aligned, still):
  """still with a dark open mouth drawn between the lips."""
  frame = still.copy()
  centre = _crop_landmarks(aligned)[60:68].mean(0)
  cv2.ellipse(frame, tuple(int(round(v)) for v in centre), (6, 4), 0, 0, 360,
              (30, 10, 10), thickness=-1)
  return frame


def _with_teal_border(face, width):
  """face with its outer `width` px ring teal: a generator's padding rows."""
  out = face.copy()
  ring = np.ones(face.shape[:2], bool)
  ring[width:-width, width:-width] = False
  out[ring] = (0, 160, 160)
  return out


def _crop_outline_in_photo(aligned):
  """bool [H, W]: photo pixels within 1 px of the crop's border."""
  height, width = aligned.image.shape[:2]
  inverse = cv2.invertAffineTransform(aligned.matrix.astype(np.float64))
  corners = np.array([[0, 0], [CROP, 0], [CROP, CROP], [0, CROP]], np.float64)
  polygon = corners @ inverse[:, :2].T + inverse[:, 2]
  outline = np.zeros((height, width), np.uint8)
  cv2.polylines(outline, [np.round(polygon).astype(np.int32)], True, 1,
                thickness=3)
  return outline.astype(bool)


def test_still_frames_leave_the_photo_bit_identical(aligned):
  """What the generator did not change is the photo, whatever its rendering."""
  still = _generator_like_still(aligned)
  rng = np.random.default_rng(0)
  jitter = np.clip(still + rng.integers(-1, 2, (3,) + still.shape), 0, 255)
  flicker = np.clip(still.astype(int) + 6, 0, 255)  # brightness flicker
  frames = np.concatenate([still[None], jitter, flicker[None]]).astype(np.uint8)
  out = compositing.ChangeComposite(aligned, still)(frames)
  assert out.shape == (len(frames),) + aligned.image.shape
  for frame in out:
    np.testing.assert_array_equal(frame, aligned.image)


def test_only_the_lower_face_changes_and_at_full_resolution(aligned):
  still = _generator_like_still(aligned)
  out = compositing.ChangeComposite(aligned, still)(
      _open_mouth(aligned, still)[None])[0]
  changed = np.any(out != aligned.image, axis=-1)
  ys, xs = np.nonzero(changed)
  lm = aligned.landmarks
  mouth_lo, mouth_hi = lm[48:68].min(0), lm[48:68].max(0)
  # The mouth darkened ...
  inside = out[int(lm[62, 1]), int(lm[62, 0])].astype(int)
  assert (aligned.image[int(lm[62, 1]), int(lm[62, 0])] - inside).mean() > 40
  # ... and nothing else: not the eyes and above, not beside the face.
  assert ys.min() > lm[36:48, 1].max()
  assert xs.min() > lm[:, 0].min() and xs.max() < lm[:, 0].max()
  assert changed.sum() < 4 * np.prod(mouth_hi - mouth_lo)
  # Pixels outside the mouth keep the photo's own detail (not the blur of
  # the 64 px rendering): the upper face is untouched.
  top = int(lm[36:48, 1].max())
  np.testing.assert_array_equal(out[:top], aligned.image[:top])


@pytest.mark.parametrize("kind", ["change", "whole_face"])
def test_crop_border_artefacts_never_reach_the_photo(aligned, kind):
  """The teal collar line: a generator's border rows pasted with the face.

  Frames whose outermost rows are teal (conv padding artefacts) and whose
  still rendering has a grey band under the chin: the photo along the crop's
  outline stays as it was, and so does the neck under the chin.
  """
  still = _generator_like_still(aligned)
  frame = _with_teal_border(_open_mouth(aligned, still), width=2)
  if kind == "change":
    out = compositing.ChangeComposite(aligned, still)(frame[None])[0]
  else:
    out = compositing.WholeFacePaste(aligned, still)(frame[None])[0]
  outline = _crop_outline_in_photo(aligned)
  diff = np.abs(out.astype(int) - aligned.image).max(-1)
  assert diff[outline].max() == 0
  # The neck under the chin: untouched.
  chin = aligned.landmarks[8, 1]
  scale = np.hypot(*aligned.matrix[0, :2])
  assert diff[int(chin + 0.03 * CROP / scale):].max() == 0


def test_whole_face_paste_matches_the_photos_colour(aligned):
  """A colour cast of the generator is removed where face and photo meet."""
  still = _generator_like_still(aligned)
  box_casts = []
  for colour_still in (still, None):
    paste = compositing.WholeFacePaste(aligned, colour_still)
    out = paste(still[None])[0].astype(float)
    mask = paste.box_mask[..., 0]
    edge = (mask > 0.05) & (mask < 0.95)  # the feather, where they meet
    box = (slice(paste.y0, paste.y1), slice(paste.x0, paste.x1))
    diff = out[box][edge] - aligned.image[box][edge]
    box_casts.append(diff.sum(0) / mask[edge].sum())  # per unit of face
  matched, unmatched = box_casts
  assert np.abs(matched).max() < 3.0, matched
  assert np.abs(unmatched).max() > 8.0, unmatched  # what matching removed


def test_masks_vanish_at_the_crop_border():
  lm = align.CANONICAL_TEMPLATE * CROP
  chin = lm[8, 1]
  for mask in (compositing.lower_face_mask(CROP, lm),
               compositing.face_mask(CROP, lm)):
    assert mask.dtype == np.float32 and mask.shape == (CROP, CROP)
    assert mask.max() == pytest.approx(1.0, abs=0.02)
    zero = int(np.ceil(compositing.BORDER_ZERO * CROP))
    assert mask[:zero].max() == 0 and mask[-zero:].max() == 0
    assert mask[:, :zero].max() == 0 and mask[:, -zero:].max() == 0
    assert mask[int(np.ceil(chin + 0.03 * CROP)):].max() == 0  # no neck
  lower = compositing.lower_face_mask(CROP, lm)
  eyes_bottom = int(np.ceil(lm[36:48, 1].max()))
  assert lower[:eyes_bottom].max() == 0
  mouth = lm[48:68].mean(0).astype(int)
  assert lower[mouth[1], mouth[0]] > 0.99


def test_large_photos_come_in_bounded_pieces(aligned, monkeypatch):
  still = _generator_like_still(aligned)
  frames = np.stack([still, _open_mouth(aligned, still), still])
  paste = compositing.ChangeComposite(aligned, still)
  whole = paste(frames)
  monkeypatch.setattr(compositing, "MAX_CHUNK_BYTES", aligned.image.nbytes)
  pieces = list(paste.chunks(frames))
  assert [len(p) for p in pieces] == [1, 1, 1]
  np.testing.assert_array_equal(np.concatenate(pieces), whole)
  with pytest.raises(ValueError, match="faces must be"):
    paste(frames[:, :32])
