"""Streaming, atomic video writer: frames go to ffmpeg's stdin chunk by chunk.

`a2v_jax.media.video.write_video` takes every frame at once, which for ten
minutes of 256x256 video is 3 GB of RAM. `StreamingVideoWriter` keeps one
ffmpeg process open and feeds it frames as they are made, so memory stays flat
however long the audio is. The encoding settings are those of `write_video`
(H.264 yuv420p, CRF 18, preset veryfast, AAC 128 kb/s, +faststart for .mp4).

Like `write_video` it is atomic: ffmpeg writes to a hidden temporary file in
the destination folder, which is renamed onto the destination only after
ffmpeg has exited cleanly. An exception, a kill of the writing process's
context, or an ffmpeg failure removes the temporary file, so a partial mp4 is
never left behind looking whole.

Usage:
  with StreamingVideoWriter("out.mp4", width=256, height=256, fps=25,
                            audio_path="speech.wav") as writer:
    for chunk in frame_chunks:      # uint8 [n, 256, 256, 3]
      writer.write(chunk)
"""
from __future__ import annotations

import os
import subprocess
import tempfile

from absl import logging
import numpy as np
import soundfile as sf

from a2v_jax.media import video

# Containers this writer makes, with their (video, audio) codecs.
_CODECS = {
    ".mp4": ("libx264", "aac"),
    ".mov": ("libx264", "aac"),
    ".mkv": ("libx264", "aac"),
}
# Sample rates the native AAC encoder accepts; another rate is resampled to
# the next higher one of these (48 kHz when the rate is unknown).
_AAC_RATES = (96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000,
              12000, 11025, 8000, 7350)
# ffmpeg's AAC coder: 'twoloop' (its default, best quality) or 'fast' (about
# three times faster, for long test clips where only timing matters).
AAC_CODER = "twoloop"


class StreamWriterError(video.VideoError):
  """A streamed video could not be written; the message names the fix."""


def check_output_path(path: str | os.PathLike) -> str:
  """Checks that `path` can be written as a video, before any work is done.

  Args:
    path: the destination file (.mp4, .mov or .mkv).

  Returns:
    The path as a string.

  Raises:
    StreamWriterError: unknown suffix, a directory, a missing or read-only
      folder, or an existing file that cannot be replaced.
  """
  path = os.fspath(path)
  suffix = os.path.splitext(path)[1].lower()
  if suffix not in _CODECS:
    raise StreamWriterError(
        f"cannot write {path}: unknown video suffix {suffix!r}; use one of "
        f"{sorted(_CODECS)}")
  if os.path.isdir(path):
    raise StreamWriterError(f"cannot write {path}: it is a directory; pass a"
                            " file name such as out.mp4")
  folder = os.path.dirname(os.path.abspath(path))
  if not os.path.isdir(folder):
    raise StreamWriterError(f"cannot write {path}: folder {folder} does not"
                            " exist; create it or choose another --out")
  if not os.access(folder, os.W_OK | os.X_OK):
    raise StreamWriterError(f"cannot write {path}: folder {folder} is not"
                            " writable; choose another --out")
  if os.path.exists(path) and not os.access(path, os.W_OK):
    raise StreamWriterError(f"cannot write {path}: the file exists and is"
                            " read-only; remove it or choose another --out")
  return path


class StreamingVideoWriter:
  """Writes a video from frames given chunk by chunk, muxing an audio track.

  Args:
    path: destination (.mp4, .mov, .mkv); H.264 + AAC.
    width, height: frame size in pixels; both must be even (yuv420p).
    fps: frames per second.
    audio_path: optional file whose first audio stream is muxed as is
      (re-encoded to AAC at its own rate and channel count, so the original
      audio is kept, stereo and odd rates included).
    audio, sample_rate: alternatively, float32 [N] or [N, C] samples in
      [-1, 1] and their rate; written to a temporary WAV next to the output.
    quality: x264 CRF (18 by default, as write_video).
  """

  def __init__(self, path: str | os.PathLike, *, width: int, height: int,
               fps: float, audio_path: str | os.PathLike | None = None,
               audio: np.ndarray | None = None, sample_rate: int | None = None,
               quality: int = 18):
    self.path = check_output_path(path)
    if width % 2 or height % 2 or width <= 0 or height <= 0:
      raise StreamWriterError(
          f"H.264 needs even frame sizes, got {width}x{height}; crop or pad"
          " the frames by one pixel")
    if audio_path is not None and audio is not None:
      raise StreamWriterError("pass audio_path or audio, not both")
    if audio is not None and not sample_rate:
      raise StreamWriterError("audio given without sample_rate; pass"
                              " sample_rate=")
    self.width, self.height, self.fps = int(width), int(height), float(fps)
    self.num_frames = 0
    self._proc = None
    self._tmp_path = None
    self._wav_path = None
    self._stderr = None
    suffix = os.path.splitext(self.path)[1].lower()
    vcodec, acodec = _CODECS[suffix]
    folder = os.path.dirname(os.path.abspath(self.path))
    try:
      fd, self._tmp_path = tempfile.mkstemp(prefix=".partial-", suffix=suffix,
                                            dir=folder)
      os.close(fd)
      cmd = [video.ffmpeg_exe(), "-y", "-nostdin", "-loglevel", "error",
             "-f", "rawvideo", "-pix_fmt", "rgb24",
             "-s", f"{self.width}x{self.height}", "-r", f"{self.fps}",
             "-i", "pipe:0"]
      rate = None
      if audio is not None:
        fd, self._wav_path = tempfile.mkstemp(prefix=".partial-",
                                              suffix=".wav", dir=folder)
        os.close(fd)
        sf.write(self._wav_path, np.clip(np.asarray(audio, np.float32), -1, 1),
                 int(sample_rate), subtype="PCM_16")
        audio_path, rate = self._wav_path, int(sample_rate)
      elif audio_path is not None:
        audio_path = os.fspath(audio_path)
        rate = _native_rate(audio_path)
      if audio_path is not None:
        cmd += ["-i", audio_path]
      cmd += ["-map", "0:v:0", "-c:v", vcodec, "-pix_fmt", "yuv420p",
              "-preset", "veryfast", "-crf", str(quality), "-r", f"{self.fps}"]
      if audio_path is not None:
        cmd += ["-map", "1:a:0", "-c:a", acodec, "-b:a", "128k",
                "-aac_coder", AAC_CODER]
        if rate not in _AAC_RATES:
          cmd += ["-ar", str(aac_rate(rate))]
      if suffix in (".mp4", ".mov"):
        cmd += ["-movflags", "+faststart"]
      cmd.append(self._tmp_path)
      # stderr goes to a file: a pipe nobody reads could fill and block ffmpeg.
      self._stderr = tempfile.TemporaryFile()
      self._proc = subprocess.Popen(cmd, stdin=subprocess.PIPE,
                                    stdout=subprocess.DEVNULL,
                                    stderr=self._stderr)
    except BaseException:
      self.abort()
      raise
    logging.debug("StreamingVideoWriter: started %s", " ".join(cmd))

  def write(self, frames: np.ndarray) -> None:
    """Appends frames: uint8 [n, height, width, 3] RGB (or one [H, W, 3])."""
    if self._proc is None:
      raise StreamWriterError(f"writer for {self.path} is closed")
    frames = np.asarray(frames)
    if frames.ndim == 3:
      frames = frames[None]
    if frames.shape[1:] != (self.height, self.width, 3):
      self.abort()
      raise StreamWriterError(
          f"frames of shape {frames.shape[1:]} do not match the writer's "
          f"{(self.height, self.width, 3)}")
    if frames.dtype != np.uint8:
      frames = (np.clip(frames, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    try:
      self._proc.stdin.write(np.ascontiguousarray(frames).tobytes())
    except (BrokenPipeError, OSError):
      message = self._ffmpeg_message()
      self.abort()
      raise StreamWriterError(f"ffmpeg stopped while writing {self.path}: "
                              f"{message}") from None
    self.num_frames += len(frames)

  def close(self) -> None:
    """Finishes the file and renames it onto the destination."""
    if self._proc is None:
      return
    if self.num_frames == 0:
      self.abort()
      raise StreamWriterError(f"no frames were written to {self.path}")
    try:
      self._proc.stdin.close()
    except (BrokenPipeError, OSError):
      pass
    code = self._proc.wait()
    if code != 0:
      message = self._ffmpeg_message()
      self.abort()
      raise StreamWriterError(f"ffmpeg failed to write {self.path}: {message}")
    self._proc = None
    video.make_public(self._tmp_path)
    os.replace(self._tmp_path, self.path)
    self._tmp_path = None
    self._cleanup()

  def abort(self) -> None:
    """Stops ffmpeg and removes every temporary file; the output is untouched."""
    if self._proc is not None:
      try:
        self._proc.stdin.close()
      except (BrokenPipeError, OSError):
        pass
      if self._proc.poll() is None:
        self._proc.kill()
      self._proc.wait()
      self._proc = None
    self._cleanup()

  def _cleanup(self) -> None:
    for p in (self._tmp_path, self._wav_path):
      if p and os.path.exists(p):
        os.remove(p)
    self._tmp_path = self._wav_path = None
    if self._stderr is not None:
      self._stderr.close()
      self._stderr = None

  def _ffmpeg_message(self) -> str:
    if self._stderr is None:
      return "unknown error"
    if self._proc is not None and self._proc.poll() is None:
      try:
        self._proc.wait(timeout=10)
      except subprocess.TimeoutExpired:
        pass
    self._stderr.seek(0)
    text = self._stderr.read().decode(errors="replace").strip()
    return text.splitlines()[-1] if text else "unknown error"

  def __enter__(self) -> "StreamingVideoWriter":
    return self

  def __exit__(self, exc_type, exc, tb) -> None:
    if exc_type is None:
      self.close()
    else:
      self.abort()

  def __del__(self):
    if getattr(self, "_proc", None) is not None:
      self.abort()


def aac_rate(rate: int | None) -> int:
  """The AAC sample rate for audio at `rate` Hz: itself or the next higher."""
  if rate is None:
    return 48000
  higher = [r for r in _AAC_RATES if r >= rate]
  return min(higher) if higher else max(_AAC_RATES)


def _native_rate(path: str) -> int | None:
  """Sample rate of a file's audio if libsndfile can read its header."""
  try:
    return int(sf.info(path).samplerate)
  except (RuntimeError, TypeError, ValueError, sf.LibsndfileError):
    return None
