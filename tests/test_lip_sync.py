"""LSE-C / LSE-D: offsets of synthetic shifted streams are found exactly."""
import numpy as np
import pytest

from a2v_jax.evaluation import lip_sync


def _stream(n, dim=16, seed=0):
  return np.random.default_rng(seed).normal(size=(n, dim))


def _shift(x, k):
  """y[i] = x[i - k] (y lags x by k frames); fresh noise where undefined."""
  y = _stream(len(x), x.shape[1], seed=99)
  if k >= 0:
    y[k:] = x[:len(x) - k]
  else:
    y[:k] = x[-k:]
  return y


@pytest.mark.parametrize("k", [-7, -1, 0, 3, 15])
def test_finds_offset_of_shifted_audio(k):
  video = _stream(60)
  result = lip_sync.compute_lse(video, _shift(video, k))
  assert result.offset == k
  assert result.mean_distances.shape == (31,)
  assert result.lse_d == pytest.approx(result.mean_distances.min())
  assert result.lse_c > 0


def test_matches_loop_reference_of_calc_pdist():
  # syncnet_python's calc_pdist written as plain loops, with torch's
  # pairwise_distance eps, for an independent check of the vectorised form.
  rng = np.random.default_rng(3)
  video, audio, vshift = rng.normal(size=(12, 4)), rng.normal(size=(12, 4)), 5
  padded = np.concatenate([np.zeros((vshift, 4)), audio, np.zeros((vshift, 4))])
  want = np.zeros((12, 2 * vshift + 1))
  for i in range(12):
    for j in range(2 * vshift + 1):
      want[i, j] = np.linalg.norm(video[i] - padded[i + j] + 1e-6)
  got = lip_sync.compute_offset_distances(video, audio, vshift)
  np.testing.assert_allclose(got, want, rtol=1e-12)
  result = lip_sync.compute_lse(video, audio, vshift)
  mean = want.mean(axis=0)
  assert result.lse_d == pytest.approx(mean.min())
  assert result.lse_c == pytest.approx(np.median(mean) - mean.min())
  assert result.offset == int(np.argmin(mean)) - vshift


def test_in_sync_scores_better_than_unrelated_audio():
  video = _stream(50)
  synced = lip_sync.compute_lse(video, video + 0.1 * _stream(50, seed=1))
  unrelated = lip_sync.compute_lse(video, _stream(50, seed=2))
  assert synced.lse_d < unrelated.lse_d
  assert synced.lse_c > unrelated.lse_c


@pytest.mark.parametrize("k", [-4, 2])
def test_end_to_end_windows_and_embedders_find_shift(k):
  # Each frame and each MFCC window carries the same random code; the
  # "SyncNet" reads the middle frame / the window back, so the only thing
  # that can make them agree is the alignment of the two streams.
  t, h, w = 40, 4, 4
  codes = _stream(t, dim=8, seed=5)
  faces = np.broadcast_to(codes[:, None, None, :3], (t, h, w, 3)).copy()
  faces = np.concatenate([faces, np.broadcast_to(
      codes[:, None, None, 3:6], (t, h, w, 3))], axis=-1)
  mfcc = np.zeros((t, 20, 13))
  mfcc[:, 0, :6] = _shift(codes, k)[:, :6]

  embed_video = lambda v: v[:, 2, 0, 0, :]  # middle frame's code
  embed_audio = lambda a: a[:, 0, :6]
  result = lip_sync.evaluate_lip_sync(faces, mfcc, embed_video, embed_audio,
                                      batch_size=7)
  assert result.offset == k


def test_windows_shapes_and_errors():
  faces = np.zeros((10, 6, 8, 3))
  video, audio = lip_sync.make_sync_windows(faces, np.arange(10.0)[:, None, None]
                                            * np.ones((10, 20, 13)))
  assert video.shape == (6, 5, 6, 8, 3)
  np.testing.assert_array_equal(audio[:, 0, 0], np.arange(2, 8))
  assert lip_sync.lower_half(faces).shape == (10, 3, 8, 3)
  with pytest.raises(lip_sync.LipSyncError, match="MFCC windows"):
    lip_sync.make_sync_windows(faces, np.zeros((9, 20, 13)))
  with pytest.raises(lip_sync.LipSyncError, match="at least 5"):
    lip_sync.make_sync_windows(faces[:3], np.zeros((3, 20, 13)))
  with pytest.raises(lip_sync.LipSyncError, match=r"\[N, E\]"):
    lip_sync.compute_lse(np.zeros((4, 3)), np.zeros((5, 3)))
