"""Round trips through the bundled ffmpeg for every container the project uses."""
import os

import numpy as np
import pytest

from a2v_jax.media import video


def _frames(t=10, h=64, w=80):
  # Smooth content: chroma subsampling and lossy codecs keep it close.
  y, x = np.mgrid[0:h, 0:w].astype(np.float32)
  base = np.stack([x / w * 200, y / h * 200, (x + y) / (w + h) * 120], -1)
  shift = np.linspace(0, 50, t, dtype=np.float32)[:, None, None, None]
  return np.clip(base[None] + shift, 0, 255).astype(np.uint8)


@pytest.mark.parametrize("suffix", [".mp4", ".mpg", ".mov"])
def test_round_trip_with_audio(tmp_path, suffix):
  frames = _frames(t=25)
  sr = 16000
  audio = 0.3 * np.sin(2 * np.pi * 440 * np.arange(sr) / sr).astype(np.float32)
  path = tmp_path / f"clip{suffix}"
  video.write_video(path, frames, 25.0, audio=audio, sample_rate=sr)
  clip = video.read_video(path)
  assert clip.frames.shape == frames.shape
  assert clip.fps == pytest.approx(25.0)
  # Lossy codecs: the picture must still be close to what was written.
  assert np.abs(clip.frames.astype(float) - frames).mean() < 6
  info = video.probe_streams(path)
  assert info.video_frames == 25
  assert info.audio_duration_s == pytest.approx(1.0, abs=0.08)
  # No temporary files are left beside the output.
  assert sorted(os.listdir(tmp_path)) == [f"clip{suffix}"]


def test_failed_write_leaves_nothing(tmp_path):
  with pytest.raises(video.VideoError, match="even frame sizes"):
    video.write_video(tmp_path / "odd.mp4", _frames(h=63), 25.0)
  assert os.listdir(tmp_path) == []
  with pytest.raises(video.VideoError, match="not writable|does not exist"):
    video.write_video(tmp_path / "missing" / "x.mp4", _frames(), 25.0)


def test_corrupt_and_missing_video(tmp_path):
  bad = tmp_path / "bad.mp4"
  bad.write_bytes(b"\x00\x01not a video" * 100)
  with pytest.raises(video.VideoError, match="corrupt"):
    video.read_video(bad)
  with pytest.raises(video.VideoError, match="not found"):
    video.read_video(tmp_path / "nope.mp4")
