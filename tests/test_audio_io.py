"""Tests for a2v_jax.audio.io on real files made here with soundfile and the bundled ffmpeg."""

import os
import subprocess

import imageio_ffmpeg
import numpy as np
import pytest
import soundfile

from a2v_jax.audio import io as audio_io

_SR = 16000
_DURATION_S = 0.5
_TONE_HZ = 440.0


def _tone(rate, duration_s=_DURATION_S, hz=_TONE_HZ, amplitude=0.5):
  t = np.arange(int(round(rate * duration_s))) / rate
  return (amplitude * np.sin(2 * np.pi * hz * t)).astype(np.float32)


def _ffmpeg(*args):
  cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-nostdin", "-hide_banner", "-v", "error", "-y", *args]
  subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _expected_16k():
  return _tone(_SR)


def _assert_tone(audio, duration_s=_DURATION_S, atol=0.02, codec_delay_ok=False):
  """The decoded audio is 16 kHz mono float32 and matches the 440 Hz tone."""
  assert audio.dtype == np.float32 and audio.ndim == 1
  assert np.all(np.abs(audio) <= 1.0)
  if codec_delay_ok:
    # Lossy codecs add priming delay and padding: check length and spectrum.
    assert abs(audio.shape[0] - duration_s * _SR) < 0.06 * _SR
    spectrum = np.abs(np.fft.rfft(audio))
    peak_hz = np.argmax(spectrum) * _SR / audio.shape[0]
    assert abs(peak_hz - _TONE_HZ) < 5.0
    assert 0.3 < np.max(np.abs(audio)) < 0.7
  else:
    expected = _expected_16k()
    assert audio.shape == expected.shape
    # Ignore the resampler's edge transients.
    np.testing.assert_allclose(audio[200:-200], expected[200:-200], atol=atol)


@pytest.fixture(scope="module")
def media_dir(tmp_path_factory):
  return tmp_path_factory.mktemp("audio_io")


@pytest.mark.parametrize("rate", [8000, 16000, 44100, 48000])
def test_wav_stereo_any_rate(media_dir, rate):
  tone = _tone(rate)
  stereo = np.stack([tone, tone], axis=1)
  path = media_dir / f"tone_{rate}.wav"
  soundfile.write(path, stereo, rate, subtype="PCM_16")
  audio = audio_io.load_audio(path)
  # 8 kHz has no content above 4 kHz; a 440 Hz tone survives every rate.
  _assert_tone(audio, atol=0.01)


def test_stereo_channels_are_averaged(media_dir):
  tone = _tone(_SR)
  path = media_dir / "left_only.wav"
  soundfile.write(path, np.stack([tone, np.zeros_like(tone)], axis=1), _SR, subtype="FLOAT")
  audio = audio_io.load_audio(path)
  np.testing.assert_allclose(audio, 0.5 * tone, atol=1e-6)


def test_other_sample_rate_out(media_dir):
  path = media_dir / "tone_for_22k.wav"
  soundfile.write(path, _tone(_SR), _SR, subtype="FLOAT")
  audio = audio_io.load_audio(path, sample_rate=22050)
  assert audio.shape == (int(_DURATION_S * 22050),)


def test_flac(media_dir):
  path = media_dir / "tone.flac"
  soundfile.write(path, _tone(48000), 48000, format="FLAC")
  _assert_tone(audio_io.load_audio(path))


@pytest.mark.parametrize("suffix,codec", [(".mp3", "libmp3lame"), (".m4a", "aac")])
def test_lossy_formats_via_ffmpeg(media_dir, suffix, codec):
  src = media_dir / f"src_{codec}.wav"
  soundfile.write(src, _tone(44100), 44100, subtype="PCM_16")
  path = media_dir / f"tone{suffix}"
  _ffmpeg("-i", str(src), "-ac", "2", "-c:a", codec, "-b:a", "128k", str(path))
  _assert_tone(audio_io.load_audio(path), codec_delay_ok=True)


def test_video_sound_track(media_dir):
  src = media_dir / "src_video.wav"
  soundfile.write(src, _tone(_SR), _SR, subtype="PCM_16")
  path = media_dir / "clip.mpg"
  _ffmpeg("-f", "lavfi", "-i", "color=c=gray:s=64x48:r=25:d=0.5", "-i", str(src),
          "-c:v", "mpeg1video", "-c:a", "mp2", "-ar", "32000", "-shortest", str(path))
  _assert_tone(audio_io.load_audio(path), codec_delay_ok=True)


def test_video_without_audio_stream(media_dir):
  path = media_dir / "silent_film.mp4"
  _ffmpeg("-f", "lavfi", "-i", "color=c=gray:s=64x48:r=25:d=0.2", "-c:v", "libx264", str(path))
  with pytest.raises(audio_io.AudioError, match="no audio stream"):
    audio_io.load_audio(path)


def test_silence_is_valid(media_dir):
  path = media_dir / "silence.wav"
  soundfile.write(path, np.zeros((8000, 2), np.float32), 8000)
  audio = audio_io.load_audio(path)
  assert audio.shape == (16000,) and audio.dtype == np.float32
  assert not np.any(audio)
  info = audio_io.check_audio(path)
  assert info.is_silent and info.duration_s == pytest.approx(1.0)


def test_missing_file(media_dir):
  with pytest.raises(audio_io.AudioError, match="no such file"):
    audio_io.load_audio(media_dir / "does_not_exist.wav")


def test_empty_file(media_dir):
  path = media_dir / "empty.wav"
  path.write_bytes(b"")
  with pytest.raises(audio_io.AudioError, match="empty"):
    audio_io.load_audio(path)


@pytest.mark.parametrize("name", ["corrupt.wav", "corrupt.m4a"])
def test_corrupt_file(media_dir, name):
  path = media_dir / name
  path.write_bytes(np.random.default_rng(0).bytes(4096))
  with pytest.raises(audio_io.AudioError, match="cannot decode|no audio") as info:
    audio_io.load_audio(path)
  assert "\n" not in str(info.value)


def test_zero_samples_is_an_error(media_dir):
  path = media_dir / "zero_samples.wav"
  soundfile.write(path, np.zeros((0,), np.float32), _SR)
  with pytest.raises(audio_io.AudioError, match="no samples"):
    audio_io.load_audio(path)


def test_errors_are_value_errors():
  assert issubclass(audio_io.AudioError, ValueError)


def test_save_wav_round_trip(media_dir):
  path = media_dir / "saved.wav"
  tone = _tone(_SR)
  audio_io.save_wav(path, tone, _SR, subtype="FLOAT")
  np.testing.assert_array_equal(audio_io.load_audio(path), tone)
  assert [p for p in os.listdir(media_dir) if p.startswith("tmp")] == []
  info = audio_io.check_audio(path)
  assert info.num_samples == tone.shape[0] and info.peak == pytest.approx(0.5, abs=1e-3)


def test_save_wav_failure_leaves_no_file(tmp_path):
  with pytest.raises(ValueError):
    audio_io.save_wav(tmp_path / "bad.wav", np.zeros(100, np.float32), _SR, subtype="NOT_A_SUBTYPE")
  assert list(tmp_path.iterdir()) == []
