"""Per-video-frame audio features: 13 MFCCs (or log-mel) over 200 ms windows.

The paper (section 3.1, "Audio") feeds the network one 200 ms audio window per
video frame, centred on that frame, with stride = sample_rate / fps and zero
padding before and after the signal, and uses 13 MFCCs per window.

Window geometry (16 kHz, 25 fps, the defaults):
  * video frame t covers [t, t + 1) / fps seconds; its window is centred on
    (t + 0.5) * stride samples, i.e. samples [640 t - 1280, 640 t + 1920).
    Samples outside the signal are zeros. A clip of N = 640 T samples gives
    exactly T windows.
  * inside each window, `frames_per_window` = 200 ms / 10 ms = 20 short-time
    frames with a 10 ms hop: frame k is centred on window_start + 80 + 160 k,
    i.e. on the middle of the k-th 10 ms slice of the window, and analysed with
    a 25 ms (400-sample) periodic Hann window in a 512-point FFT. The 25 ms
    analysis windows reach 7.5 ms past both window edges; those samples come
    from the neighbouring audio (or zero padding), so every frame sees real
    context and none is cut at the window edge.
  * power spectrum -> Slaney mel filterbank (40 mels for MFCC by default) ->
    10 log10(max(S, 1e-10)) dB, floored at (window max - 80 dB) per window ->
    orthonormal DCT-II, first 13 coefficients.

With these choices the MFCCs of window t equal, to float32 rounding,
`librosa.feature.mfcc(y=segment, sr=16000, n_mfcc=13, n_fft=512,
hop_length=160, win_length=400, center=False, n_mels=40)` on that window's
segment (tests/test_features.py checks this). This module uses only numpy and
scipy: librosa (and its numba JIT start-up) is never imported here, so the data
loader can call it per example. Short-time frames shared by overlapping windows
are transformed once.
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np
import scipy.fft

DEFAULT_SAMPLE_RATE = 16000
# The kinds of audio windows a network may be fed (`mfcc_windows`,
# `log_mel_windows`): config.dataset.audio_features, an export's
# preprocessing and the loader's batch keys all name one of these.
AUDIO_FEATURES = ("mfcc", "log_mel")
# Per-coefficient mean and std of `mfcc_windows`' 13 MFCCs (librosa's
# dB-scaled MFCCs of 16 kHz speech), measured on the synthetic corpus's
# training split. The audio networks standardise their input with them:
# raw c0 sits near -270 with a std of 118, ten times the others. Only the
# order of magnitude matters, so they serve GRID's speech as well. Fixed
# constants keep a window's features independent of its neighbours, unlike
# per-clip CMVN over a few frames (see models/deepspeech2.py).
MFCC_MEAN = (-270.6, 32.9, 7.7, 24.0, -7.5, -1.2, -6.8, -7.3, 3.1, -7.3, 1.8,
             -4.8, 0.8)
MFCC_STD = (117.9, 37.6, 21.0, 32.7, 20.4, 16.6, 14.8, 15.1, 11.5, 11.3, 7.9,
            8.5, 7.1)
DEFAULT_FPS = 25.0
HOP_S = 0.010  # short-time hop inside a window
WIN_S = 0.025  # short-time analysis window
AMIN = 1e-10  # power floor before log (librosa.power_to_db's amin)
TOP_DB = 80.0  # dynamic range kept per 200 ms window (librosa's default)


@dataclasses.dataclass(frozen=True)
class WindowGeometry:
  """Sample-level layout of the per-video-frame windows.

  Attributes:
    sample_rate: audio rate in Hz.
    fps: video frame rate.
    stride: samples per video frame (sample_rate / fps, may be fractional).
    window_samples: samples per feature window (window_s * sample_rate).
    hop_length: short-time hop in samples (10 ms).
    win_length: short-time analysis window in samples (25 ms).
    n_fft: FFT size (next power of two >= win_length).
    frames_per_window: short-time frames per window (window_samples // hop).
  """

  sample_rate: int
  fps: float
  stride: float
  window_samples: int
  hop_length: int
  win_length: int
  n_fft: int
  frames_per_window: int


@functools.lru_cache(maxsize=32)
def window_geometry(sample_rate: int = DEFAULT_SAMPLE_RATE, fps: float = DEFAULT_FPS,
                    window_s: float = 0.2) -> WindowGeometry:
  """The window layout for a sample rate, video frame rate and window length."""
  if sample_rate <= 0 or fps <= 0 or window_s <= 0:
    raise ValueError(f"sample_rate, fps and window_s must be positive, got {sample_rate}, {fps}, {window_s}.")
  hop = int(round(HOP_S * sample_rate))
  win_length = int(round(WIN_S * sample_rate))
  window_samples = int(round(window_s * sample_rate))
  if window_samples < hop:
    raise ValueError(f"window_s={window_s} is shorter than the {HOP_S * 1000:.0f} ms hop; use >= {HOP_S} s.")
  return WindowGeometry(
      sample_rate=int(sample_rate),
      fps=float(fps),
      stride=sample_rate / fps,
      window_samples=window_samples,
      hop_length=hop,
      win_length=win_length,
      n_fft=1 << (win_length - 1).bit_length(),
      frames_per_window=window_samples // hop,
  )


def num_video_frames(num_samples: int, sample_rate: int = DEFAULT_SAMPLE_RATE, fps: float = DEFAULT_FPS) -> int:
  """Video frames that `num_samples` of audio span (rounded, at least 1)."""
  return max(1, int(np.floor(num_samples * fps / sample_rate + 0.5)))


def hz_to_mel(hz):
  """Slaney mel scale (linear below 1 kHz, logarithmic above), as librosa's htk=False."""
  hz = np.asarray(hz, dtype=np.float64)
  f_sp = 200.0 / 3.0
  min_log_hz = 1000.0
  min_log_mel = min_log_hz / f_sp
  logstep = np.log(6.4) / 27.0
  return np.where(hz >= min_log_hz, min_log_mel + np.log(np.maximum(hz, 1e-12) / min_log_hz) / logstep,
                  hz / f_sp)


def mel_to_hz(mel):
  """Inverse of `hz_to_mel`."""
  mel = np.asarray(mel, dtype=np.float64)
  f_sp = 200.0 / 3.0
  min_log_hz = 1000.0
  min_log_mel = min_log_hz / f_sp
  logstep = np.log(6.4) / 27.0
  return np.where(mel >= min_log_mel, min_log_hz * np.exp(logstep * (mel - min_log_mel)), f_sp * mel)


@functools.lru_cache(maxsize=16)
def mel_filterbank(sample_rate: int, n_fft: int, n_mels: int, fmin: float = 0.0,
                   fmax: float | None = None) -> np.ndarray:
  """Slaney-normalised triangular mel filters.

  Returns:
    float32 [n_mels, n_fft // 2 + 1], equal to librosa.filters.mel(sr=sample_rate,
    n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax) (htk=False, norm='slaney').
  """
  fmax = sample_rate / 2.0 if fmax is None else fmax
  fft_freqs = np.linspace(0.0, sample_rate / 2.0, n_fft // 2 + 1)
  mel_f = mel_to_hz(np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels + 2))
  fdiff = np.diff(mel_f)
  ramps = mel_f[:, None] - fft_freqs[None, :]
  lower = -ramps[:-2] / fdiff[:-1, None]
  upper = ramps[2:] / fdiff[1:, None]
  weights = np.maximum(0.0, np.minimum(lower, upper))
  weights *= (2.0 / (mel_f[2:] - mel_f[:-2]))[:, None]
  weights = weights.astype(np.float32)
  weights.setflags(write=False)
  return weights


@functools.lru_cache(maxsize=16)
def dct_matrix(n_out: int, n_in: int) -> np.ndarray:
  """Orthonormal DCT-II basis: float32 [n_out, n_in] (scipy.fft.dct(type=2, norm='ortho') rows)."""
  n = np.arange(n_in)
  k = np.arange(n_out)[:, None]
  basis = np.cos(np.pi * k * (2 * n + 1) / (2 * n_in)) * np.sqrt(2.0 / n_in)
  basis[0] *= np.sqrt(0.5)
  basis = basis.astype(np.float32)
  basis.setflags(write=False)
  return basis


@functools.lru_cache(maxsize=8)
def _analysis_window(win_length: int, n_fft: int) -> np.ndarray:
  """Periodic Hann of `win_length`, zero-padded to `n_fft` and centred (librosa's layout)."""
  n = np.arange(win_length)
  hann = 0.5 - 0.5 * np.cos(2.0 * np.pi * n / win_length)
  out = np.zeros(n_fft, np.float32)
  left = (n_fft - win_length) // 2
  out[left:left + win_length] = hann
  out.setflags(write=False)
  return out


def frame_starts(geometry: WindowGeometry, start_frame: int, num_frames: int) -> np.ndarray:
  """First sample of each FFT frame, relative to the (unpadded) signal.

  Returns:
    int64 [num_frames, frames_per_window]; may be negative or past the end
    (those samples are zero padding).
  """
  t = np.arange(start_frame, start_frame + num_frames, dtype=np.float64)
  window_start = np.floor((t + 0.5) * geometry.stride - geometry.window_samples / 2.0 + 0.5).astype(np.int64)
  k = np.arange(geometry.frames_per_window, dtype=np.int64)
  centre = window_start[:, None] + geometry.hop_length // 2 + geometry.hop_length * k[None, :]
  return centre - geometry.n_fft // 2


def _resolve_num_frames(audio: np.ndarray, geometry: WindowGeometry, num_frames: int | None,
                        start_frame: int) -> int:
  if num_frames is None:
    num_frames = num_video_frames(audio.shape[0], geometry.sample_rate, geometry.fps) - start_frame
  if num_frames <= 0:
    raise ValueError(f"num_frames must be positive, got {num_frames} (start_frame={start_frame}, "
                     f"{audio.shape[0]} samples).")
  return int(num_frames)


def mel_power_windows(audio: np.ndarray, geometry: WindowGeometry, n_mels: int, *, start_frame: int = 0,
                      num_frames: int) -> np.ndarray:
  """Mel power spectrogram of each video frame's window.

  Args:
    audio: float [N] mono samples at geometry.sample_rate.
    geometry: from `window_geometry`.
    n_mels: mel bands.
    start_frame: first video frame.
    num_frames: number of video frames.

  Returns:
    float32 [num_frames, frames_per_window, n_mels] power (not dB).
  """
  audio = np.asarray(audio, dtype=np.float32)
  if audio.ndim != 1:
    raise ValueError(f"audio must be mono [N], got shape {audio.shape}; average the channels first.")
  starts = frame_starts(geometry, start_frame, num_frames)
  # Overlapping windows share short-time frames: transform each one once.
  unique_starts, inverse = np.unique(starts, return_inverse=True)
  lo, hi = int(unique_starts[0]), int(unique_starts[-1]) + geometry.n_fft
  segment = np.zeros(hi - lo, np.float32)
  src_lo, src_hi = max(lo, 0), min(hi, audio.shape[0])
  if src_hi > src_lo:
    segment[src_lo - lo:src_hi - lo] = audio[src_lo:src_hi]
  frames = np.lib.stride_tricks.sliding_window_view(segment, geometry.n_fft)[unique_starts - lo]
  spectrum = scipy.fft.rfft(frames * _analysis_window(geometry.win_length, geometry.n_fft), axis=-1)
  power = spectrum.real ** 2 + spectrum.imag ** 2
  mel = power @ mel_filterbank(geometry.sample_rate, geometry.n_fft, n_mels).T
  return mel[inverse.reshape(starts.shape)].astype(np.float32, copy=False)


def _to_db(mel_power: np.ndarray, top_db: float | None) -> np.ndarray:
  """10 log10 of power, floored at `top_db` below each window's maximum. [T, F, M] -> same."""
  db = 10.0 * np.log10(np.maximum(mel_power, AMIN))
  if top_db is not None:
    db = np.maximum(db, db.max(axis=(1, 2), keepdims=True) - top_db)
  return db.astype(np.float32, copy=False)


def log_mel_windows(audio: np.ndarray, sample_rate: int = DEFAULT_SAMPLE_RATE, fps: float = DEFAULT_FPS,
                    num_frames: int | None = None, n_mels: int = 80, window_s: float = 0.2, *,
                    start_frame: int = 0, top_db: float | None = TOP_DB) -> np.ndarray:
  """Log-mel spectrogram windows, one per video frame (for a DeepSpeech2-style encoder).

  Args:
    audio: float [N] mono at `sample_rate`.
    sample_rate: audio rate in Hz.
    fps: video frame rate; stride = sample_rate / fps.
    num_frames: video frames to produce; default: round(N * fps / sample_rate).
    n_mels: mel bands.
    window_s: window length in seconds (200 ms in the paper).
    start_frame: first video frame (the loader asks for a slice of a clip).
    top_db: dynamic range kept per window in dB; None keeps all.

  Returns:
    float32 [num_frames, frames_per_window (20), n_mels] in dB (power, ref 1.0).
  """
  geometry = window_geometry(sample_rate, fps, window_s)
  num_frames = _resolve_num_frames(np.asarray(audio), geometry, num_frames, start_frame)
  power = mel_power_windows(audio, geometry, n_mels, start_frame=start_frame, num_frames=num_frames)
  return _to_db(power, top_db)


def mfcc_windows(audio: np.ndarray, sample_rate: int = DEFAULT_SAMPLE_RATE, fps: float = DEFAULT_FPS,
                 num_frames: int | None = None, n_mfcc: int = 13, window_s: float = 0.2, *,
                 start_frame: int = 0, n_mels: int = 40, top_db: float | None = TOP_DB) -> np.ndarray:
  """MFCC windows, one per video frame (the paper's audio input).

  Args:
    audio: float [N] mono at `sample_rate`.
    sample_rate: audio rate in Hz.
    fps: video frame rate; stride = sample_rate / fps.
    num_frames: video frames to produce; default: round(N * fps / sample_rate).
    n_mfcc: cepstral coefficients kept (13 in the paper).
    window_s: window length in seconds (200 ms in the paper).
    start_frame: first video frame (the loader asks for a slice of a clip).
    n_mels: mel bands before the DCT.
    top_db: dynamic range kept per window in dB; None keeps all.

  Returns:
    float32 [num_frames, frames_per_window (20), n_mfcc].
  """
  if not 0 < n_mfcc <= n_mels:
    raise ValueError(f"n_mfcc must be in [1, n_mels={n_mels}], got {n_mfcc}.")
  db = log_mel_windows(audio, sample_rate, fps, num_frames, n_mels, window_s, start_frame=start_frame,
                       top_db=top_db)
  return db @ dct_matrix(n_mfcc, n_mels).T


def centred_windows(windows: np.ndarray, window_frames: int) -> np.ndarray:
  """Stacks per-frame windows into the encoder's W-frame inputs.

  Args:
    windows: [count + W - 1, S, F], per-frame windows from `mfcc_windows`
      or `log_mel_windows` with start_frame=start - W // 2 and
      num_frames=count + W - 1.
    window_frames: W.

  Returns:
    [count, W, S, F]: frame start + i at the centre of row i.
  """
  view = np.lib.stride_tricks.sliding_window_view(
      windows, window_frames, axis=0)  # [count, S, F, W]
  return np.ascontiguousarray(np.moveaxis(view, -1, 1))
