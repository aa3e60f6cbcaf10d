"""Audio input and output: any file ffmpeg reads -> 16 kHz mono float32.

`load_audio` is the one entry point the rest of the project uses. It reads
wav/flac/ogg/mp3 with soundfile (libsndfile) when it can and falls back to the
bundled ffmpeg binary (`imageio_ffmpeg.get_ffmpeg_exe()`) for everything else:
m4a/aac, and the audio track of video containers (.mpg, .mp4, .mov, ...).
Channels are averaged to mono and the signal is resampled with soxr (high
quality polyphase filter) to the requested rate.

Every failure is an `AudioError` (a `ValueError`) with a one-line message that
names the file and what to do. Silent audio is valid and comes back as zeros.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import tempfile

from absl import logging
import numpy as np
import soundfile
import soxr

from a2v_jax.media import video

DEFAULT_SAMPLE_RATE = 16000

# Extensions libsndfile decodes reliably; anything else goes straight to ffmpeg.
_SOUNDFILE_SUFFIXES = frozenset({".wav", ".flac", ".ogg", ".oga", ".mp3", ".aiff", ".aif", ".au"})


class AudioError(ValueError):
  """An audio file is missing, unreadable, has no audio stream or is empty."""


@dataclasses.dataclass(frozen=True)
class AudioInfo:
  """What `check_audio` reports about a file after decoding it."""

  path: str
  num_samples: int
  sample_rate: int
  duration_s: float
  peak: float  # max |x| after conversion to mono at `sample_rate`.

  @property
  def is_silent(self) -> bool:
    return self.peak == 0.0


def _ffmpeg_exe() -> str:
  import imageio_ffmpeg  # pylint: disable=g-import-not-at-top

  return imageio_ffmpeg.get_ffmpeg_exe()


def _parse_wav_stream(data: bytes, path: str) -> tuple[np.ndarray, int]:
  """Parses the float32 WAV that ffmpeg writes to a pipe.

  ffmpeg cannot seek back on a pipe, so the RIFF and data sizes may be
  placeholders; the data chunk is taken to run to the end of the stream.

  Returns:
    (samples float32 [N, C], sample_rate).
  """
  if len(data) < 12 or data[:4] not in (b"RIFF", b"RF64") or data[8:12] != b"WAVE":
    raise AudioError(f"{path}: ffmpeg produced no audio; the file is not a readable audio/video file.")
  pos = 12
  channels = rate = bits = fmt_tag = None
  while pos + 8 <= len(data):
    chunk_id = data[pos:pos + 4]
    size = int.from_bytes(data[pos + 4:pos + 8], "little")
    body = pos + 8
    if chunk_id == b"fmt ":
      fmt_tag = int.from_bytes(data[body:body + 2], "little")
      channels = int.from_bytes(data[body + 2:body + 4], "little")
      rate = int.from_bytes(data[body + 4:body + 8], "little")
      bits = int.from_bytes(data[body + 14:body + 16], "little")
    elif chunk_id == b"data":
      if channels is None or rate is None:
        break
      if bits != 32 or fmt_tag not in (3, 0xFFFE):
        raise AudioError(f"{path}: unexpected PCM format from ffmpeg (tag {fmt_tag}, {bits} bits).")
      payload = data[body:]
      if size not in (0, 0xFFFFFFFF) and size <= len(payload):
        payload = payload[:size]
      usable = len(payload) - len(payload) % (4 * channels)
      samples = np.frombuffer(payload[:usable], dtype="<f4").reshape(-1, channels)
      return samples, rate
    pos = body + size + (size & 1)
  raise AudioError(f"{path}: ffmpeg output has no data chunk; the audio stream could not be decoded.")


def _decode_with_ffmpeg(path: str) -> tuple[np.ndarray, int]:
  """Decodes the first audio stream of `path` at its native rate.

  Returns:
    (samples float32 [N, C], sample_rate).
  """
  cmd = [
      _ffmpeg_exe(), "-nostdin", "-hide_banner", "-v", "error", "-i", path,
      "-map", "0:a:0", "-vn", "-sn", "-dn",
      "-c:a", "pcm_f32le", "-f", "wav", "-",
  ]
  proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=False)
  err = proc.stderr.decode("utf-8", "replace").strip()
  if proc.returncode != 0:
    if "matches no streams" in err or "does not contain any stream" in err:
      raise AudioError(f"{path}: the file has no audio stream; pass a file with a sound track.")
    last = err.splitlines()[-1] if err else f"exit code {proc.returncode}"
    raise AudioError(f"{path}: cannot decode audio ({last}); the file is corrupt or not an audio/video file.")
  return _parse_wav_stream(proc.stdout, path)


def _decode_with_soundfile(path: str) -> tuple[np.ndarray, int]:
  samples, rate = soundfile.read(path, dtype="float32", always_2d=True)
  return samples, int(rate)


def _resample(audio: np.ndarray, orig_rate: int, sample_rate: int) -> np.ndarray:
  """High-quality resampling of float32 [N] from `orig_rate` to `sample_rate`."""
  if orig_rate == sample_rate or audio.size == 0:
    return audio
  return soxr.resample(audio, orig_rate, sample_rate, quality="HQ").astype(np.float32, copy=False)


def load_audio(path: str | os.PathLike[str], sample_rate: int = DEFAULT_SAMPLE_RATE) -> np.ndarray:
  """Loads any audio file or video sound track as mono float32 at `sample_rate`.

  Args:
    path: a wav/flac/mp3/m4a/ogg file, or a video container with an audio
      stream (.mpg, .mp4, .mov, ...). The first audio stream is used.
    sample_rate: output rate in Hz.

  Returns:
    audio: float32 [N] in [-1, 1], channels averaged, resampled with soxr.

  Raises:
    AudioError: the file is missing, empty, corrupt, has no audio stream, or
      decodes to zero samples.
  """
  path = os.fspath(path)
  if sample_rate <= 0:
    raise AudioError(f"sample_rate must be positive, got {sample_rate}.")
  if not os.path.exists(path):
    raise AudioError(f"{path}: no such file; check the path.")
  if os.path.isdir(path):
    raise AudioError(f"{path}: is a directory, not an audio file.")
  if os.path.getsize(path) == 0:
    raise AudioError(f"{path}: the file is empty (0 bytes); re-export or re-download it.")

  samples = None
  if os.path.splitext(path)[1].lower() in _SOUNDFILE_SUFFIXES:
    try:
      samples, orig_rate = _decode_with_soundfile(path)
    except (soundfile.LibsndfileError, RuntimeError, TypeError, ValueError) as e:
      logging.debug("soundfile could not read %s (%s); trying ffmpeg.", path, e)
  if samples is None:
    samples, orig_rate = _decode_with_ffmpeg(path)

  if samples.shape[0] == 0:
    raise AudioError(f"{path}: the audio stream has no samples; pass a file with sound in it.")
  mono = samples.mean(axis=1, dtype=np.float32) if samples.shape[1] > 1 else samples[:, 0]
  mono = np.ascontiguousarray(mono, dtype=np.float32)
  if not np.all(np.isfinite(mono)):
    raise AudioError(f"{path}: the audio contains NaN or Inf samples; the file is corrupt.")
  mono = _resample(mono, orig_rate, sample_rate)
  return np.clip(mono, -1.0, 1.0).astype(np.float32, copy=False)


def save_wav(path: str | os.PathLike[str], audio: np.ndarray, sample_rate: int = DEFAULT_SAMPLE_RATE,
             subtype: str = "PCM_16") -> None:
  """Writes mono float audio [N] in [-1, 1] to a WAV file, atomically.

  Args:
    path: output .wav path; its folder must exist.
    audio: float [N] (or [N, C]) samples; values outside [-1, 1] are clipped.
    sample_rate: rate in Hz.
    subtype: soundfile subtype, e.g. "PCM_16" or "FLOAT".
  """
  path = os.fspath(path)
  audio = np.clip(np.asarray(audio, dtype=np.float32), -1.0, 1.0)
  folder = os.path.dirname(os.path.abspath(path))
  fd, tmp = tempfile.mkstemp(suffix=".wav", dir=folder)
  os.close(fd)
  try:
    soundfile.write(tmp, audio, sample_rate, subtype=subtype, format="WAV")
    video.make_public(tmp)
    os.replace(tmp, path)
  except BaseException:
    if os.path.exists(tmp):
      os.remove(tmp)
    raise


def check_audio(path: str | os.PathLike[str], sample_rate: int = DEFAULT_SAMPLE_RATE) -> AudioInfo:
  """Decodes `path` like `load_audio` and reports its duration and peak level.

  Raises:
    AudioError: as `load_audio`.
  """
  audio = load_audio(path, sample_rate)
  return AudioInfo(
      path=os.fspath(path),
      num_samples=int(audio.shape[0]),
      sample_rate=sample_rate,
      duration_s=audio.shape[0] / sample_rate,
      peak=float(np.max(np.abs(audio))),
  )
