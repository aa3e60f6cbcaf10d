"""Shared tiny model and inputs for the inference, export and CLI tests.

The model is a randomly initialised 32x32 SPADE generator and a one-layer
DeepSpeech2 encoder, written as a real export; the jitted inference functions
(and the adaptation step) are cached by module equality, so every test of a
process shares one compile. `shared_export()` writes that export once per
process for every test module that only reads it.
"""
from __future__ import annotations

import atexit
import functools
import os
import shutil
import tempfile

import numpy as np
import skimage.data
import soundfile as sf

from a2v_jax import export
from a2v_jax import networks

CROP = 32
CHUNK_FRAMES = 16
SAMPLE_RATE = 16000
# One VGG16 layer keeps the adaptation step's compile short.
PERCEPTUAL = dict(layers=("relu1_1",), layer_weights=(1.0,))


def generator_config(spectral_norm: bool = False) -> dict:
  return networks.network_config('generator', dict(
      ngf=2, spade_hidden=4, spectral_norm=spectral_norm))


def ds2_config() -> dict:
  return networks.network_config('ds2', dict(
      conv_features=(4, 4), rnn_hidden=8, rnn_layers=1))


def write_export(path: str, *, spectral_norm: bool = False, seed: int = 0) -> str:
  """A tiny random export at `path`."""
  return export.export_random_model(
      path, generator_config=generator_config(spectral_norm),
      ds2_config=ds2_config(),
      preprocessing=export.default_preprocessing(CROP),
      train_config={"model": {"perceptual": PERCEPTUAL}}, seed=seed)


@functools.lru_cache(maxsize=1)
def shared_export() -> str:
  """The default tiny export, written once per process (read-only use)."""
  folder = tempfile.mkdtemp(prefix="a2v-test-export-")
  atexit.register(shutil.rmtree, folder, ignore_errors=True)
  return write_export(os.path.join(folder, "model"))


def astronaut() -> np.ndarray:
  """uint8 [512, 512, 3], one face."""
  return skimage.data.astronaut()


def speech_like(seconds: float, sample_rate: int = SAMPLE_RATE,
                channels: int = 1, seed: int = 0) -> np.ndarray:
  """Syllable-rate modulated harmonic tones plus noise: float32 [N(, C)]."""
  rng = np.random.default_rng(seed)
  t = np.arange(int(seconds * sample_rate)) / sample_rate
  pitch = 120 + 20 * np.sin(2 * np.pi * 0.7 * t)
  phase = 2 * np.pi * np.cumsum(pitch) / sample_rate
  voiced = sum(np.sin(k * phase) / k for k in range(1, 6))
  envelope = np.clip(np.sin(2 * np.pi * 4.0 * t), 0, None) ** 2
  x = 0.3 * envelope * voiced + 0.01 * rng.standard_normal(t.shape)
  x = x.astype(np.float32)
  if channels > 1:
    x = np.stack([x * (1.0 - 0.2 * c) for c in range(channels)], axis=1)
  return x


def write_wav(path: str | os.PathLike, audio: np.ndarray,
              sample_rate: int = SAMPLE_RATE) -> str:
  sf.write(os.fspath(path), audio, sample_rate, subtype="PCM_16")
  return os.fspath(path)
