"""ACD (dlib embeddings), blinks from EAR, and mouth opening on known inputs."""
import functools

import cv2
import numpy as np
import pytest
import skimage.data

from a2v_jax.evaluation import blink
from a2v_jax.evaluation import identity
from a2v_jax.evaluation import mouth
from a2v_jax.face import landmarks as face_landmarks


@functools.lru_cache(maxsize=None)
def _embedder():
  return identity.FaceEmbedder()


def _face(size=128):
  face = skimage.data.astronaut()[0:256, 128:384]
  return cv2.resize(face, (size, size), interpolation=cv2.INTER_AREA)


@functools.lru_cache(maxsize=None)
def _astronaut_landmarks():
  points = face_landmarks.LandmarkDetector().detect(_face(256))
  assert points is not None
  return points.astype(np.float64)


def test_distances_on_known_vectors():
  a = np.array([[1.0, 0.0], [1.0, 1.0]])
  b = np.array([[0.0, 2.0], [2.0, 2.0]])
  np.testing.assert_allclose(identity.cosine_distance(a, b), [1.0, 0.0],
                             atol=1e-12)
  np.testing.assert_allclose(identity.euclidean_distance(a, b),
                             [np.sqrt(5.0), np.sqrt(2.0)])


def test_acd_zero_for_identical_and_grows_with_corruption():
  face = _face(128)
  frames = np.stack([face, face[:, ::-1]])
  rng = np.random.default_rng(0)
  noisy = np.clip(frames + rng.normal(0, 40, frames.shape), 0, 255
                  ).astype(np.uint8)
  gray = np.full_like(frames, 128)
  same = identity.compute_acd(frames, frames, _embedder(), frame_stride=1)
  corrupted = identity.compute_acd(noisy, frames, _embedder(), frame_stride=1)
  blank = identity.compute_acd(gray, frames, _embedder(), frame_stride=1)
  assert same.num_frames == 2
  assert same.acd_euclidean < 1e-6 and same.acd_cosine < 1e-6
  assert 0 < corrupted.acd_euclidean < blank.acd_euclidean
  assert 0 < corrupted.acd_cosine < blank.acd_cosine


def test_same_person_mirrored_is_within_dlib_threshold():
  face = _face(128)
  a = _embedder().embed(face)
  b = _embedder().embed(np.ascontiguousarray(face[:, ::-1]))
  other = _embedder().embed(cv2.resize(skimage.data.chelsea(), (128, 128)))
  assert a.shape == (128,)
  assert identity.euclidean_distance(a, b) < 0.6  # dlib: same person
  assert identity.euclidean_distance(a, other) > 0.6


def test_acd_rejects_mismatched_frames():
  with pytest.raises(identity.IdentityError, match="same size"):
    identity.compute_acd(np.zeros((2, 64, 64, 3), np.uint8),
                         np.zeros((3, 64, 64, 3), np.uint8), _embedder())


def _close_eyes(points, amount):
  """Moves the eyelid points (p2, p3, p5, p6 of both eyes) toward each other
  by `amount` (0 = as detected, 1 = lids meet)."""
  points = points.copy()
  for upper, lower in ((37, 41), (38, 40), (43, 47), (44, 46)):
    mid = (points[upper] + points[lower]) / 2
    points[upper] += amount * (mid - points[upper])
    points[lower] += amount * (mid - points[lower])
  return points


def test_blinks_found_in_landmark_sequence():
  base = _astronaut_landmarks()
  closed = np.zeros(100, bool)
  closed[[10, 11, 12, 40, 41, 70, 71, 72, 73]] = True
  closed[90] = True  # a single frame: shorter than min_frames, not a blink
  seq = np.stack([_close_eyes(base, 0.85 if c else 0.0) for c in closed])
  seq[55] = np.nan  # a frame without a face is interpolated over
  stats = blink.measure_blinks(seq, fps=25.0)
  assert stats.events == ((10, 13), (40, 42), (70, 74))
  assert stats.rate_per_s == pytest.approx(3 / 4.0)
  assert stats.mean_duration_s == pytest.approx((3 + 2 + 4) / 3 / 25.0)
  ear = blink.compute_ear_series(seq)
  assert 0.2 < ear[0] < 0.45 and ear[10] < 0.1


def test_blink_ground_truth_and_no_blinks():
  gt = np.zeros(50, np.int32)
  gt[5:8] = 1
  gt[20:22] = 1
  stats = blink.blinks_from_ground_truth(gt, fps=25.0)
  assert stats.count == 2 and stats.rate_per_s == pytest.approx(1.0)
  assert stats.mean_duration_s == pytest.approx(2.5 / 25.0)
  none = blink.summarize_blinks([], 25, 25.0)
  assert none.count == 0 and np.isnan(none.mean_duration_s)
  assert blink.detect_blinks(np.full(30, 0.3)) == []


def _open_mouth(points, amount):
  points = points.copy()
  points[[65, 66, 67, 56, 57, 58]] += [0.0, amount]
  return points


def test_mouth_opening_and_correlation():
  base = _astronaut_landmarks()
  gt = 0.5 + 0.5 * np.sin(np.linspace(0, 6 * np.pi, 75))
  seq = np.stack([_open_mouth(base, 12.0 * g) for g in gt])
  opening = mouth.measure_mouth_opening(seq)
  width = np.linalg.norm(base[60] - base[64])
  gap0 = np.linalg.norm(base[62] - base[66])
  assert opening[0] == pytest.approx(
      np.linalg.norm(base[62] - base[66] - [0, 12 * gt[0]]) / width)
  assert gap0 / width < 0.2  # astronaut's mouth is closed
  assert mouth.mouth_correlation(seq, gt) > 0.99
  assert mouth.mouth_correlation(seq, gt, "interocular") > 0.99
  assert mouth.mouth_correlation(seq, -gt) < -0.99
  assert mouth.mouth_correlation(seq[::-1], gt) < 0.5
  assert np.isnan(mouth.pearson_correlation(np.ones(10), np.arange(10)))
  with pytest.raises(mouth.MouthError, match="normalize_by"):
    mouth.measure_mouth_opening(seq, "nose")
