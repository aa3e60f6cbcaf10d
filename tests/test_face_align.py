"""Tests for a2v_jax.face.align and a2v_jax.face.landmarks."""
import cv2
import numpy as np
import pytest
import skimage.data

from a2v_jax.face import align
from a2v_jax.face import landmarks as landmarks_lib


@pytest.fixture(scope="module")
def detector():
  return landmarks_lib.LandmarkDetector()


@pytest.fixture(scope="module")
def astronaut():
  # The portrait's head, resized so the face is GRID-sized (about 100 px).
  return cv2.resize(skimage.data.astronaut()[30:250, 110:330], (256, 256),
                    interpolation=cv2.INTER_AREA)


def test_template_is_in_unit_square_and_symmetric():
  t = align.CANONICAL_TEMPLATE
  assert t.shape == (68, 2) and t.dtype == np.float32
  assert (t > 0).all() and (t < 1).all()
  assert abs(t[:, 0].mean() - 0.5) < 1e-3
  # Left eye (36-41) is left of the right eye (42-47); chin (8) is lowest.
  assert t[36:42, 0].mean() < t[42:48, 0].mean()
  assert t[:, 1].argmax() == 8


def test_similarity_transform_recovers_known_transform():
  rng = np.random.default_rng(0)
  src = rng.uniform(0, 100, (68, 2))
  angle, scale, shift = 0.3, 1.7, np.array([12.0, -5.0])
  rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
  dst = scale * src @ rot.T + shift
  m = align.similarity_transform(src, dst)
  assert m.shape == (2, 3) and m.dtype == np.float32
  np.testing.assert_allclose(m[:, :2], scale * rot, atol=1e-4)
  np.testing.assert_allclose(m[:, 2], shift, atol=1e-2)
  np.testing.assert_allclose(align.apply_transform(m, src), dst, atol=1e-2)


def test_similarity_transform_never_reflects():
  rng = np.random.default_rng(1)
  src = rng.uniform(0, 1, (68, 2))
  mirrored = src * np.array([-1.0, 1.0])
  m = align.similarity_transform(src, mirrored)
  assert np.linalg.det(m[:, :2]) > 0


def test_interpolate_gaps_fills_linearly_and_holds_edges():
  t = np.arange(10, dtype=np.float32)
  lm = np.broadcast_to(t[:, None, None], (10, 68, 2)).copy()
  lm[[0, 4, 5]] = np.nan
  filled, detected = align.interpolate_gaps(lm, max_gap_frames=2,
                                            max_missing_fraction=0.5)
  np.testing.assert_array_equal(detected, ~np.isin(np.arange(10), [0, 4, 5]))
  np.testing.assert_allclose(filled[4], 4.0)
  np.testing.assert_allclose(filled[5], 5.0)
  np.testing.assert_allclose(filled[0], 1.0)  # edge: copies the first found


@pytest.mark.parametrize("missing, fraction, reason", [
    (list(range(10)), 1.0, "any of"),
    ([1, 2, 3, 4], 0.5, "4 consecutive"),
    ([1, 3, 5, 7], 0.3, "4 of 10"),
])
def test_interpolate_gaps_rejects_bad_clips(missing, fraction, reason):
  lm = np.zeros((10, 68, 2), np.float32)
  lm[missing] = np.nan
  with pytest.raises(align.MissingFacesError, match=reason):
    align.interpolate_gaps(lm, max_gap_frames=3, max_missing_fraction=fraction)


def test_detector_finds_largest_face(detector, astronaut):
  pts = detector.detect(astronaut)
  assert pts.shape == (68, 2) and pts.dtype == np.float32
  assert detector.detect(np.zeros((120, 120, 3), np.uint8)) is None
  # Two faces: a small copy pasted beside a large one; detect keeps the large.
  canvas = np.zeros((256, 480, 3), np.uint8)
  canvas[:, :256] = astronaut
  small = cv2.resize(astronaut, (220, 220), interpolation=cv2.INTER_AREA)
  canvas[:220, 260:480] = small
  faces = detector.detect_all(canvas)
  assert len(faces) == 2
  (l0, t0, r0, b0), _ = faces[0]
  (l1, t1, r1, b1), _ = faces[1]
  assert (r0 - l0) * (b0 - t0) > (r1 - l1) * (b1 - t1)
  np.testing.assert_allclose(detector.detect(canvas), faces[0][1])
  assert faces[0][1][:, 0].max() < 256


def test_align_clip_maps_face_onto_template(detector, astronaut):
  # A clip of 6 frames with slight motion; frame 2 has no detected face.
  frames, shifts = [], [(0, 0), (2, 1), (4, 2), (3, 3), (1, 2), (0, 1)]
  for dx, dy in shifts:
    m = np.float32([[1, 0, dx], [0, 1, dy]])
    frames.append(cv2.warpAffine(astronaut, m, (256, 256),
                                 borderMode=cv2.BORDER_REFLECT))
  frames = np.stack(frames)
  lm = detector.detect_clip(frames)
  assert np.isfinite(lm).all()
  lm[2] = np.nan
  crop = 64
  aligned, aligned_lm, matrix = align.align_clip(frames, lm, crop)
  assert aligned.shape == (6, crop, crop, 3) and aligned.dtype == np.uint8
  assert aligned_lm.shape == (6, 68, 2) and np.isfinite(aligned_lm).all()
  assert matrix.shape == (2, 3)
  # One transform for the whole clip: landmarks move with the head (by the
  # scaled shift), and the median frame lands on the template.
  scale = np.hypot(*matrix[0, :2])
  step = aligned_lm[2].mean(0) - aligned_lm[0].mean(0)
  np.testing.assert_allclose(step, scale * np.array([4, 2]), atol=1.0)
  err = np.abs(np.median(aligned_lm, 0) - align.CANONICAL_TEMPLATE * crop)
  assert err.mean() < 1.5
  # The detector finds the face again in the upscaled aligned crop, where
  # the template says it should be.
  big = cv2.resize(aligned[0], (256, 256), interpolation=cv2.INTER_CUBIC)
  again = detector.detect(big)
  assert again is not None
  np.testing.assert_allclose(again.mean(0) / 4, aligned_lm[0].mean(0), atol=2.0)


def test_align_clip_raises_when_faces_missing():
  frames = np.zeros((8, 32, 32, 3), np.uint8)
  lm = np.full((8, 68, 2), np.nan, np.float32)
  with pytest.raises(align.MissingFacesError):
    align.align_clip(frames, lm, 16)


def test_detect_clip_tracks_loses_and_refinds_the_face(detector, astronaut):
  frames = np.stack([astronaut] * 9)
  frames[3:5] = 0  # the face vanishes for two frames
  for t in range(5, 9):  # and comes back shifted
    frames[t] = np.roll(astronaut, 6, axis=1)
  lm = detector.detect_clip(frames, redetect_every=5)
  found = np.isfinite(lm).all(axis=(1, 2))
  np.testing.assert_array_equal(found, [1, 1, 1, 0, 0, 1, 1, 1, 1])
  # Tracked frames agree with detecting every frame anew.
  every = detector.detect_clip(frames, redetect_every=1)
  np.testing.assert_allclose(lm[found], every[found], atol=2.0)
  np.testing.assert_allclose(lm[6].mean(0) - lm[0].mean(0), [6, 0], atol=1.5)
