"""Video read and write through the ffmpeg binary bundled with imageio-ffmpeg.

Every video the project reads or writes goes through this module, so that the
same ffmpeg build (with libx264, aac, mpeg1video and mp2) is used everywhere and
no system ffmpeg or ffprobe is needed.
"""
from __future__ import annotations

import os
import re
import subprocess
import tempfile
from typing import NamedTuple

import imageio_ffmpeg
import numpy as np
import soundfile as sf

# Codecs chosen from the container suffix. GRID ships MPEG-1 video with MP2
# audio; Lombard GRID ships H.264 in QuickTime; our outputs are H.264 + AAC mp4.
_CODECS = {
    ".mp4": ("libx264", "aac"),
    ".mov": ("libx264", "aac"),
    ".mkv": ("libx264", "aac"),
    ".mpg": ("mpeg1video", "mp2"),
    ".mpeg": ("mpeg1video", "mp2"),
    ".avi": ("mpeg4", "mp3"),
}
# Sample rates the MPEG-1/2 layer II encoder accepts.
_MP2_RATES = (16000, 22050, 24000, 32000, 44100, 48000)


class VideoError(ValueError):
  """A video could not be read or written; the message names the fix."""


class VideoClip(NamedTuple):
  frames: np.ndarray  # uint8 [T, H, W, 3] RGB
  fps: float


def ffmpeg_exe() -> str:
  """Path of the bundled ffmpeg binary."""
  return imageio_ffmpeg.get_ffmpeg_exe()


def read_video(path: str | os.PathLike, max_frames: int | None = None) -> VideoClip:
  """Decodes every frame of a video file.

  Args:
    path: any container ffmpeg reads (mpg, mov, mp4, avi, ...).
    max_frames: stop after this many frames.

  Returns:
    VideoClip(frames uint8 [T, H, W, 3] RGB, fps float).
  """
  path = os.fspath(path)
  if not os.path.isfile(path):
    raise VideoError(f"video file not found: {path}; check the path")
  try:
    reader = imageio_ffmpeg.read_frames(path, pix_fmt="rgb24")
    meta = next(reader)
  except (RuntimeError, OSError, StopIteration) as e:
    raise VideoError(
        f"cannot decode video {path} ({_first_line(e)}); the file is corrupt or"
        " has no video stream: re-download or re-encode it") from None
  width, height = meta["size"]
  fps = float(meta.get("fps") or 0.0)
  frames = []
  try:
    for buf in reader:
      frames.append(np.frombuffer(buf, np.uint8).reshape(height, width, 3))
      if max_frames is not None and len(frames) >= max_frames:
        break
  except (RuntimeError, OSError) as e:
    raise VideoError(f"video {path} is truncated or corrupt ({_first_line(e)});"
                     " re-download or re-encode it") from None
  finally:
    reader.close()
  if not frames:
    raise VideoError(f"video {path} has no decodable frames; re-encode it")
  return VideoClip(np.stack(frames), fps)


def write_video(path: str | os.PathLike,
                frames: np.ndarray,
                fps: float,
                audio: np.ndarray | None = None,
                sample_rate: int | None = None,
                vcodec: str | None = None,
                acodec: str | None = None,
                quality: int | None = None,
                audio_sample_rate: int | None = None) -> None:
  """Encodes frames (and optional audio) into a video file, atomically.

  The file appears at `path` only when ffmpeg has finished: a failure never
  leaves a partial file behind.

  Args:
    path: output file; the suffix picks the container and default codecs
      (.mp4/.mov: H.264 + AAC, .mpg: MPEG-1 + MP2).
    frames: uint8 [T, H, W, 3] RGB (or float in [0, 1]).
    fps: frames per second.
    audio: optional float32 [N] or [N, C] in [-1, 1].
    sample_rate: sample rate of `audio` in Hz.
    vcodec, acodec: override the default codecs.
    quality: codec quality (CRF for x264, qscale for MPEG); None = default.
    audio_sample_rate: resample the audio track to this rate in the file.
  """
  path = os.fspath(path)
  frames = np.asarray(frames)
  if frames.ndim != 4 or frames.shape[-1] != 3 or len(frames) == 0:
    raise VideoError(f"frames must be [T, H, W, 3] with T > 0, got {frames.shape}")
  if frames.dtype != np.uint8:
    frames = (np.clip(frames, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
  _, height, width, _ = frames.shape
  suffix = os.path.splitext(path)[1].lower()
  if suffix not in _CODECS and (vcodec is None or (audio is not None and acodec is None)):
    raise VideoError(f"unknown video suffix {suffix!r} for {path}; use one of "
                     f"{sorted(_CODECS)}")
  default_v, default_a = _CODECS.get(suffix, (None, None))
  vcodec = vcodec or default_v
  acodec = acodec or default_a
  if vcodec in ("libx264", "mpeg1video") and (height % 2 or width % 2):
    raise VideoError(f"{vcodec} needs even frame sizes, got {width}x{height};"
                     " crop or pad the frames by one pixel")
  out_dir = os.path.dirname(os.path.abspath(path))
  if not os.path.isdir(out_dir) or not os.access(out_dir, os.W_OK):
    raise VideoError(f"cannot write {path}: folder {out_dir} does not exist or"
                     " is not writable; create it or choose another --out")

  fd, tmp_path = tempfile.mkstemp(prefix=".partial-", suffix=suffix, dir=out_dir)
  os.close(fd)
  wav_path = None
  try:
    cmd = [ffmpeg_exe(), "-y", "-loglevel", "error",
           "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{width}x{height}",
           "-r", f"{fps}", "-i", "pipe:0"]
    if audio is not None:
      if not sample_rate:
        raise VideoError("audio given without sample_rate; pass sample_rate=")
      fd, wav_path = tempfile.mkstemp(prefix=".partial-", suffix=".wav", dir=out_dir)
      os.close(fd)
      sf.write(wav_path, np.asarray(audio, np.float32), int(sample_rate),
               subtype="PCM_16")
      cmd += ["-i", wav_path]
    cmd += ["-map", "0:v:0", "-c:v", vcodec, "-pix_fmt", "yuv420p", "-r", f"{fps}"]
    if vcodec == "libx264":
      cmd += ["-preset", "veryfast", "-crf", str(18 if quality is None else quality)]
    elif quality is not None:
      cmd += ["-q:v", str(quality)]
    elif vcodec in ("mpeg1video", "mpeg4"):
      cmd += ["-q:v", "3"]
    if audio is not None:
      rate = audio_sample_rate or int(sample_rate)
      if acodec == "mp2" and rate not in _MP2_RATES:
        rate = 44100
      cmd += ["-map", "1:a:0", "-c:a", acodec, "-ar", str(rate)]
      if acodec == "aac":
        cmd += ["-b:a", "128k"]
    if suffix in (".mp4", ".mov"):
      cmd += ["-movflags", "+faststart"]
    if suffix in (".mpg", ".mpeg"):
      cmd += ["-f", "mpeg"]
    cmd.append(tmp_path)
    proc = subprocess.run(cmd, input=np.ascontiguousarray(frames).tobytes(),
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                          check=False)
    if proc.returncode != 0:
      raise VideoError(f"ffmpeg failed to write {path}: "
                       f"{_first_line(proc.stderr.decode(errors='replace'))}")
    make_public(tmp_path)
    os.replace(tmp_path, path)
  finally:
    for p in (tmp_path, wav_path):
      if p and os.path.exists(p):
        os.remove(p)


class StreamInfo(NamedTuple):
  video_frames: int
  video_duration_s: float
  audio_duration_s: float | None
  video_codec: str | None = None  # ffmpeg's decoder name, e.g. 'h264'
  audio_codec: str | None = None  # e.g. 'aac'; None without an audio stream


def probe_streams(path: str | os.PathLike) -> StreamInfo:
  """Measures the decoded length and codec of the video and audio streams.

  There is no ffprobe in the bundled ffmpeg, so this decodes both streams to
  the null muxer and reads ffmpeg's progress report and stream listing.
  """
  path = os.fspath(path)
  if not os.path.isfile(path):
    raise VideoError(f"video file not found: {path}; check the path")
  video = _null_decode(path, "0:v:0")
  if video is None:
    raise VideoError(f"{path} has no video stream")
  frames, v_time, listing = video
  audio = _null_decode(path, "0:a:0")
  inputs = listing.split("Output #", 1)[0]  # the input's streams only
  codecs = {}
  for kind, codec in re.findall(r"Stream #0:\d+\S*: (Video|Audio): (\w+)",
                                inputs):
    codecs.setdefault(kind, codec)
  return StreamInfo(frames, v_time, None if audio is None else audio[1],
                    codecs.get("Video"),
                    None if audio is None else codecs.get("Audio"))


def _null_decode(path: str, stream: str) -> tuple[int, float, str] | None:
  """(frames, seconds, ffmpeg's log) of one decoded stream, None if absent."""
  proc = subprocess.run([ffmpeg_exe(), "-nostdin", "-i", path, "-map", stream,
                         "-f", "null", "-"], stdout=subprocess.DEVNULL,
                        stderr=subprocess.PIPE, check=False)
  err = proc.stderr.decode(errors="replace")
  if proc.returncode != 0:
    return None
  times = re.findall(r"time=(\d+):(\d+):(\d+(?:\.\d+)?)", err)
  if not times:
    return None
  h, m, s = times[-1]
  frames = re.findall(r"frame=\s*(\d+)", err)
  return ((int(frames[-1]) if frames else 0),
          int(h) * 3600 + int(m) * 60 + float(s), err)


def _umask() -> int:
  mask = os.umask(0)
  os.umask(mask)
  return mask


def make_public(path: str) -> None:
  """Gives a finished temporary file the mode a plain open() would have
  (0666 minus the umask): tempfile.mkstemp makes files private (0600)."""
  os.chmod(path, 0o666 & ~_umask())


def _first_line(e) -> str:
  text = str(e).strip()
  return text.splitlines()[-1] if text else type(e).__name__
