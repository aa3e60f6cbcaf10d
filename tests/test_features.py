"""Tests for a2v_jax.audio.features: window layout and parity with librosa.

librosa compiles its numba kernels on first import in a fresh environment
(~15-25 s on 2 cores, once); numba caches them next to librosa afterwards.
"""

import numpy as np
import pytest
import scipy.fft

from a2v_jax.audio import features

_SR = 16000
_T = 12


@pytest.fixture(scope="module")
def librosa():
  return pytest.importorskip("librosa")


@pytest.fixture(scope="module")
def signal():
  """Tone + noise spanning exactly _T video frames at 25 fps, loud at the ends."""
  rng = np.random.default_rng(0)
  n = _T * 640
  t = np.arange(n) / _SR
  y = 0.4 * np.sin(2 * np.pi * 220 * t) * np.hanning(n) + 0.05 * rng.standard_normal(n)
  return y.astype(np.float32)


def _window_segment(audio, geometry, t):
  """The samples librosa must see (center=False) to produce window t's 20 frames."""
  starts = features.frame_starts(geometry, t, 1)[0]
  length = geometry.n_fft + (geometry.frames_per_window - 1) * geometry.hop_length
  seg = np.zeros(length, np.float32)
  lo = starts[0]
  src_lo, src_hi = max(lo, 0), min(lo + length, audio.shape[0])
  seg[src_lo - lo:src_hi - lo] = audio[src_lo:src_hi]
  return seg


def test_geometry_defaults():
  g = features.window_geometry()
  assert (g.stride, g.window_samples, g.hop_length, g.win_length, g.n_fft, g.frames_per_window) == (
      640.0, 3200, 160, 400, 512, 20)
  starts = features.frame_starts(g, 0, 3)
  # Window t is centred on video frame t's centre, (t + 0.5) * 640 samples.
  centres = starts + g.n_fft // 2
  np.testing.assert_array_equal(centres.mean(axis=1), [320, 960, 1600])
  np.testing.assert_array_equal(np.diff(centres, axis=1), 160)


@pytest.mark.parametrize("n_mels", [40, 80])
def test_mel_filterbank_matches_librosa(librosa, n_mels):
  ref = librosa.filters.mel(sr=_SR, n_fft=512, n_mels=n_mels)
  np.testing.assert_allclose(features.mel_filterbank(_SR, 512, n_mels), ref, rtol=1e-5, atol=1e-8)


def test_dct_matrix_matches_scipy():
  x = np.random.default_rng(1).standard_normal((5, 40))
  ref = scipy.fft.dct(x, type=2, norm="ortho", axis=-1)[:, :13]
  np.testing.assert_allclose(x @ features.dct_matrix(13, 40).T.astype(np.float64), ref, atol=1e-5)


def test_mfcc_shape_and_dtype(signal):
  m = features.mfcc_windows(signal)
  assert m.shape == (_T, 20, 13) and m.dtype == np.float32
  assert np.all(np.isfinite(m))


@pytest.mark.parametrize("t", [0, 1, _T // 2, _T - 1])
def test_mfcc_matches_librosa_on_each_window(librosa, signal, t):
  """Edge windows include zero padding; all must equal librosa on the same samples."""
  g = features.window_geometry()
  ours = features.mfcc_windows(signal)[t]
  ref = librosa.feature.mfcc(y=_window_segment(signal, g, t), sr=_SR, n_mfcc=13, n_fft=512, hop_length=160,
                             win_length=400, center=False, n_mels=40).T
  assert ref.shape == ours.shape
  np.testing.assert_allclose(ours, ref, rtol=1e-4, atol=2e-3)


def test_log_mel_matches_librosa(librosa, signal):
  g = features.window_geometry()
  t = 3
  ours = features.log_mel_windows(signal, n_mels=80)[t]
  mel = librosa.feature.melspectrogram(y=_window_segment(signal, g, t), sr=_SR, n_fft=512, hop_length=160,
                                       win_length=400, center=False, n_mels=80)
  ref = librosa.power_to_db(mel).T
  np.testing.assert_allclose(ours, ref, rtol=1e-4, atol=2e-3)


def test_slice_equals_slice_of_full(signal):
  full = features.mfcc_windows(signal)
  part = features.mfcc_windows(signal, num_frames=4, start_frame=5)
  np.testing.assert_allclose(part, full[5:9], rtol=1e-5, atol=1e-4)


def test_window_is_centred_on_its_video_frame():
  """A click in the middle of video frame 6 lands in the middle of window 6."""
  y = np.zeros(_T * 640, np.float32)
  centre = int(6.5 * 640)
  y[centre - 20:centre + 20] = 1.0
  energy = features.log_mel_windows(y, top_db=None).max(axis=-1)  # [T, 20]
  # Window 6: click between its 10 ms frames 9 and 10; one video frame later it is 4 hops earlier.
  assert set(np.argsort(energy[6])[-2:]) == {9, 10}
  assert set(np.argsort(energy[7])[-2:]) == {5, 6}
  assert set(np.argsort(energy[5])[-2:]) == {13, 14}
  # Windows that do not reach the click (more than 100 ms + 12.5 ms away) see silence.
  assert energy[0].max() == pytest.approx(-100.0)


def test_silence_and_padding_are_finite():
  y = np.zeros(640 * 3, np.float32)
  m = features.mfcc_windows(y)
  assert m.shape == (3, 20, 13)
  np.testing.assert_allclose(m[..., 0], -100.0 * np.sqrt(40), rtol=1e-5)
  np.testing.assert_allclose(m[..., 1:], 0.0, atol=1e-3)


def test_num_frames_beyond_audio_is_zero_padded(signal):
  m = features.mfcc_windows(signal[:640 * 2], num_frames=6)
  assert m.shape == (6, 20, 13)
  np.testing.assert_allclose(m[-1, :, 0], -100.0 * np.sqrt(40), rtol=1e-5)


def test_other_frame_rate_and_default_length():
  # Lombard GRID video is ~24 fps: stride 666.67 samples, still 20 frames per window.
  y = np.random.default_rng(2).standard_normal(16000).astype(np.float32) * 0.1
  m = features.mfcc_windows(y, fps=24.0)
  assert m.shape == (24, 20, 13)
  assert features.log_mel_windows(y, fps=25.0, n_mels=64).shape == (25, 20, 64)


def test_bad_input():
  with pytest.raises(ValueError, match="mono"):
    features.mfcc_windows(np.zeros((640, 2), np.float32))
  with pytest.raises(ValueError, match="n_mfcc"):
    features.mfcc_windows(np.zeros(640, np.float32), n_mfcc=50)
  with pytest.raises(ValueError, match="num_frames"):
    features.mfcc_windows(np.zeros(640, np.float32), num_frames=0)
