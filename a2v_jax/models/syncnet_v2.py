"""The official SyncNet v2 (joonson/syncnet_python, `syncnet_v2.model`) in Flax.

This reproduces syncnet_python's `SyncNetModel.S` layer for layer, so that a
user's official weights, converted by a2v_jax.evaluation.syncnet_v2_convert,
give the same embeddings and thus LSE-C / LSE-D comparable with Wav2Lip-era
papers. Our own trained discriminator is a2v_jax/models/syncnet.py.

Layers (PyTorch names kept: params[<stream>][<index>]; BN = BatchNorm, eps 1e-5,
used with its running statistics; every BN is followed by a ReLU):
- netcnnaud (input 13 MFCCs x 20 steps, 1 channel): 0 conv3x3-64 p1, 1 BN,
  [3 maxpool 1x1 = identity], 4 conv3x3-192 p1, 5 BN, 7 maxpool 3x3 s(1,2),
  8 conv3x3-384 p1, 9 BN, 11 conv3x3-256 p1, 12 BN, 14 conv3x3-256 p1, 15 BN,
  17 maxpool 3x3 s2, 18 conv5x4-512, 19 BN -> [N, 512].
- netcnnlip (input 5 frames x 224 x 224 x 3, BGR 0..255 as cv2 reads them):
  0 conv3d 5x7x7-96 s(1,2,2), 1 BN, 3 maxpool 1x3x3 s(1,2,2),
  4 conv3d 1x5x5-256 s(1,2,2) p(0,1,1), 5 BN, 7 maxpool 1x3x3 s(1,2,2)
  p(0,1,1), 8/11/14 conv3d 1x3x3-256 p(0,1,1) each with BN 9/12/15,
  17 maxpool 1x3x3 s(1,2,2), 18 conv3d 1x6x6-512, 19 BN -> [N, 512].
- netfcaud / netfclip: 0 linear 512-512, 1 BN, 3 linear 512-1024.

Inputs follow syncnet_python: the lip stream sees uint8-range BGR values
(no normalisation), the audio stream python_speech_features' MFCCs of the
int16-scaled waveform (`compute_speech_mfcc` reproduces those), a window of
20 MFCC steps (10 ms hop) per 5 video frames (40 ms each).
"""
from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from scipy import fft as scipy_fft

EMBED_DIM = 1024
FACE_SIZE = 224
NUM_FRAMES = 5
MFCC_STEPS = 20
NUM_MFCC = 13
BN_EPS = 1e-5


class SyncNetV2InputError(ValueError):
  """Inputs whose shape the official SyncNet cannot take."""


def _bn(name: str) -> nn.BatchNorm:
  return nn.BatchNorm(use_running_average=True, epsilon=BN_EPS, momentum=0.9,
                      name=name)


class AudioCNN(nn.Module):
  """netcnnaud: [B, 13, 20, 1] MFCC image -> [B, 512]."""

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    same = ((1, 1), (1, 1))
    block = lambda x, f, k, pad, i: nn.relu(_bn(str(i + 1))(
        nn.Conv(f, k, padding=pad, name=str(i))(x)))
    x = block(x, 64, (3, 3), same, 0)
    x = block(x, 192, (3, 3), same, 4)
    x = nn.max_pool(x, (3, 3), strides=(1, 2))
    x = block(x, 384, (3, 3), same, 8)
    x = block(x, 256, (3, 3), same, 11)
    x = block(x, 256, (3, 3), same, 14)
    x = nn.max_pool(x, (3, 3), strides=(2, 2))
    x = block(x, 512, (5, 4), "VALID", 18)
    return x.reshape(x.shape[0], -1)


class LipCNN(nn.Module):
  """netcnnlip: [B, 5, 224, 224, 3] BGR 0..255 -> [B, 512]."""

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    hw1 = ((0, 0), (1, 1), (1, 1))
    block = lambda x, f, k, s, pad, i: nn.relu(_bn(str(i + 1))(
        nn.Conv(f, k, strides=s, padding=pad, name=str(i))(x)))
    x = block(x, 96, (5, 7, 7), (1, 2, 2), "VALID", 0)
    x = nn.max_pool(x, (1, 3, 3), strides=(1, 2, 2))
    x = block(x, 256, (1, 5, 5), (1, 2, 2), hw1, 4)
    x = nn.max_pool(x, (1, 3, 3), strides=(1, 2, 2), padding=hw1)
    for i in (8, 11, 14):
      x = block(x, 256, (1, 3, 3), (1, 1, 1), hw1, i)
    x = nn.max_pool(x, (1, 3, 3), strides=(1, 2, 2))
    x = block(x, 512, (1, 6, 6), (1, 1, 1), "VALID", 18)
    return x.reshape(x.shape[0], -1)


class EmbeddingFC(nn.Module):
  """netfcaud / netfclip: linear 512, BN, ReLU, linear embed_dim."""
  embed_dim: int = EMBED_DIM

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    x = nn.relu(_bn("1")(nn.Dense(512, name="0")(x)))
    return nn.Dense(self.embed_dim, name="3")(x)


class SyncNetV2(nn.Module):
  """syncnet_python's `S` with `num_layers_in_fc_layers` = embed_dim.

  Variables mirror the PyTorch keys: `netcnnaud.0.weight` is
  params['netcnnaud']['0']['kernel'], `netcnnaud.1.running_mean` is
  batch_stats['netcnnaud']['1']['mean'].
  """
  embed_dim: int = EMBED_DIM

  def setup(self):
    self.netcnnaud = AudioCNN()
    self.netcnnlip = LipCNN()
    self.netfcaud = EmbeddingFC(self.embed_dim)
    self.netfclip = EmbeddingFC(self.embed_dim)

  def embed_audio(self, mfcc: jax.Array) -> jax.Array:
    """Audio embedding.

    Args:
      mfcc: [B, 20, 13] float32, 20 steps of python_speech_features MFCCs.

    Returns:
      [B, embed_dim] float32.
    """
    if mfcc.shape[1:] != (MFCC_STEPS, NUM_MFCC):
      raise SyncNetV2InputError(
          f"audio windows must be [B, {MFCC_STEPS}, {NUM_MFCC}], got "
          f"{mfcc.shape}")
    # PyTorch's input is [B, 1, 13 (H), 20 (W)]; NHWC = [B, 13, 20, 1].
    x = jnp.swapaxes(jnp.asarray(mfcc, jnp.float32), 1, 2)[..., None]
    return self.netfcaud(self.netcnnaud(x))

  def embed_video(self, faces: jax.Array) -> jax.Array:
    """Lip-stream embedding.

    Args:
      faces: [B, 5, 224, 224, 3] float32 BGR face crops in 0..255.

    Returns:
      [B, embed_dim] float32.
    """
    if faces.shape[1:] != (NUM_FRAMES, FACE_SIZE, FACE_SIZE, 3):
      raise SyncNetV2InputError(
          f"faces must be [B, {NUM_FRAMES}, {FACE_SIZE}, {FACE_SIZE}, 3], got "
          f"{faces.shape}; resize the face crops to {FACE_SIZE}x{FACE_SIZE}")
    return self.netfclip(self.netcnnlip(jnp.asarray(faces, jnp.float32)))

  def __call__(self, faces: jax.Array, mfcc: jax.Array
               ) -> tuple[jax.Array, jax.Array]:
    """(video_emb [B, E], audio_emb [B, E]); see embed_video / embed_audio."""
    return self.embed_video(faces), self.embed_audio(mfcc)


def rgb_to_syncnet_input(faces: np.ndarray) -> np.ndarray:
  """uint8 RGB or float [-1, 1] RGB crops -> float32 BGR 0..255 (cv2 order)."""
  faces = np.asarray(faces)
  if faces.dtype != np.uint8:
    faces = np.clip((faces.astype(np.float32) + 1.0) * 127.5, 0, 255)
  return faces[..., ::-1].astype(np.float32)


def _hz_to_mel(hz):
  return 2595.0 * np.log10(1.0 + np.asarray(hz, np.float64) / 700.0)


def _mel_to_hz(mel):
  return 700.0 * (10.0 ** (np.asarray(mel, np.float64) / 2595.0) - 1.0)


def compute_speech_mfcc(audio: np.ndarray, sample_rate: int = 16000,
                        win_s: float = 0.025, hop_s: float = 0.01,
                        num_filters: int = 26, n_fft: int = 512,
                        preemphasis: float = 0.97, lifter: int = 22
                        ) -> np.ndarray:
  """MFCCs as python_speech_features.mfcc computes them with its defaults.

  Rectangular 25 ms frames every 10 ms (the last one zero-padded), 0.97
  pre-emphasis, power spectrum |FFT_512|^2 / 512, 26 triangular mel filters
  on FFT bins over 0..sr/2, log, orthonormal DCT-II (13 kept), sinusoidal
  lifter 22, then c0 replaced by the log frame energy.

  Args:
    audio: [N] float waveform in [-1, 1] (scaled to int16 range inside, as
      syncnet_python reads 16-bit wav files).
    sample_rate: Hz (syncnet_python uses 16000).

  Returns:
    float32 [num_steps, 13].
  """
  signal = np.asarray(audio, np.float64).reshape(-1) * 32768.0
  if signal.size == 0:
    raise SyncNetV2InputError("audio is empty; SyncNet needs at least 200 ms")
  signal = np.append(signal[0], signal[1:] - preemphasis * signal[:-1])
  frame_len = int(round(win_s * sample_rate))
  hop = int(round(hop_s * sample_rate))
  if len(signal) <= frame_len:
    num_steps = 1
  else:
    num_steps = 1 + int(np.ceil((len(signal) - frame_len) / hop))
  padded = np.zeros((num_steps - 1) * hop + frame_len)
  padded[:len(signal)] = signal
  index = np.arange(frame_len)[None, :] + hop * np.arange(num_steps)[:, None]
  frames = padded[index]
  power = np.square(np.abs(np.fft.rfft(frames, n_fft))) / n_fft
  energy = power.sum(axis=1)
  energy = np.where(energy == 0, np.finfo(float).eps, energy)
  mel_points = np.linspace(_hz_to_mel(0.0), _hz_to_mel(sample_rate / 2),
                           num_filters + 2)
  bins = np.floor((n_fft + 1) * _mel_to_hz(mel_points) / sample_rate)
  bins = bins.astype(np.int64)
  bank = np.zeros((num_filters, n_fft // 2 + 1))
  for j in range(num_filters):
    lo, mid, hi = bins[j], bins[j + 1], bins[j + 2]
    for i in range(lo, mid):
      bank[j, i] = (i - lo) / (mid - lo)
    for i in range(mid, hi):
      bank[j, i] = (hi - i) / (hi - mid)
  feat = power @ bank.T
  feat = np.log(np.where(feat == 0, np.finfo(float).eps, feat))
  cep = scipy_fft.dct(feat, type=2, axis=1, norm="ortho")[:, :NUM_MFCC]
  n = np.arange(NUM_MFCC)
  cep = cep * (1.0 + (lifter / 2.0) * np.sin(np.pi * n / lifter))
  cep[:, 0] = np.log(energy)
  return cep.astype(np.float32)


def speech_mfcc_windows(audio: np.ndarray, num_frames: int,
                        sample_rate: int = 16000, fps: float = 25.0
                        ) -> np.ndarray:
  """Per-video-frame windows of 20 MFCC steps for SyncNet v2.

  Frame t gets the 20 steps centred on it, so that
  lip_sync.make_sync_windows (which takes window t + 2 for the 5-frame window
  starting at t) feeds steps 4t .. 4t + 19, as syncnet_python does.

  Returns:
    float32 [num_frames, 20, 13] (zeros past either end of the audio).
  """
  mfcc = compute_speech_mfcc(audio, sample_rate)
  steps_per_frame = int(round(1.0 / (fps * 0.01)))  # 4 at 25 fps
  first = steps_per_frame * (np.arange(num_frames) - NUM_FRAMES // 2)
  index = first[:, None] + np.arange(MFCC_STEPS)[None, :]
  valid = (index >= 0) & (index < len(mfcc))
  out = np.where(valid[..., None], mfcc[np.clip(index, 0, len(mfcc) - 1)], 0.0)
  return out.astype(np.float32)


def init_params(seed: int = 0, embed_dim: int = EMBED_DIM) -> dict:
  """Random {'params', 'batch_stats'} with the official shapes."""
  model = SyncNetV2(embed_dim)
  faces = jnp.zeros((1, NUM_FRAMES, FACE_SIZE, FACE_SIZE, 3))
  mfcc = jnp.zeros((1, MFCC_STEPS, NUM_MFCC))
  return model.init(jax.random.PRNGKey(seed), faces, mfcc)
