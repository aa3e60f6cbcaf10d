"""SyncNet synchronisation discriminator (paper §3.2.3, Fig. 2).

After Chung & Zisserman 2016, "Out of time: automated lip sync in the wild",
with layer sizes as in joonson/syncnet_python's SyncNetModel:
- audio stream ("netcnnaud"): 13 MFCCs x 20 steps (200 ms) as a 1-channel
  image [13, 20]; conv3x3-64, conv3x3-192, maxpool 3x3 stride (1, 2),
  conv3x3-384, conv3x3-256, conv3x3-256, maxpool 3x3 stride 2, then fc6 as a
  conv covering the whole remaining map (5x4) with 512 channels;
- video stream ("netcnnlip"): 5 RGB lower-half-face frames; the first layer
  is a 3-D conv with a 5x7x7 kernel (all 5 frames) stride (1, 2, 2), 96
  channels, then 2-D: maxpool 3 s2, conv5x5-256 s2 pad 1, maxpool 3 s2 pad 1,
  3 x conv3x3-256, maxpool 3 s2, then fc6 as a conv over the whole remaining
  map (6x6 at 224x224) with 512 channels;
- each stream ends in fc 512 -> fc7 `embed_dim` (1024).

Deviations, both for a batch-independent discriminator:
- BatchNorm is replaced by GroupNorm (convs) and LayerNorm (fc, and fc6,
  whose map is 1x1), so a batch of 1 gives the same embedding as the same
  item in a batch of 4. GroupNorm on fc6's 1x1 map would normalise each
  group of a few channels to +-1 and erase the input: the stream's output
  went constant and SyncNet pretraining collapsed.
- `face_norm` removes what does not move before the video stream (a
  stored, frozen scale; `set_face_statistics` measures it on training
  frames). On one speaker the frames of a corpus differ from their mean by
  a std of 0.135 (in [-1, 1] units) and, unnormalised, the video embeddings
  of all clips started within 0.015 of each other: the multi-way loss sat at
  chance (ln 13) for 450 steps on real GRID s1. 'temporal' subtracts each
  sample's mean over its 5 frames (what is left is the motion, for any
  face); 'mean_face' subtracts a stored mean lower face of the training
  corpus (one speaker's). With either the loss left chance within 100
  steps; 'temporal' learned faster (in-batch loss 2.21 vs 2.30 at step
  450 of an A/B) and needs no face of the speaker.
- The paper resizes the lower half to 224x224. The default here is 64x128,
  which is the lower half of a 128x128 crop at its own resolution, to keep
  CPU runs cheap; set `input_hw=(224, 224)` for the paper's size. The fc6
  kernel always spans the map that is left, so any input of at least 51 px in
  each direction works; the parameter count depends on `input_hw`.
"""
import math
from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from a2v_jax.audio import features

NUM_FRAMES = 5
FACE_NORMS = ("none", "temporal", "mean_face")
MFCC_STEPS = 20
NUM_MFCC = 13
# The audio stream standardises its input with these fixed statistics
# (audio/features.py): raw c0 swamped the first conv (on one batch, the
# stream fitted the mouth opening 100x slower without it).
MFCC_MEAN = features.MFCC_MEAN
MFCC_STD = features.MFCC_STD


class SyncNetInputError(ValueError):
  """Inputs whose shape does not match the SyncNet configuration."""


def lower_half(frames: jax.Array, out_hw: Sequence[int]) -> jax.Array:
  """Crops the lower half of aligned faces and resizes it.

  Args:
    frames: [..., H, W, 3] float images (any leading dims).
    out_hw: (h, w) output size.

  Returns:
    [..., h, w, 3] float32, bilinear (antialiased when shrinking).
  """
  frames = jnp.asarray(frames, jnp.float32)
  height = frames.shape[-3]
  crop = frames[..., height // 2:, :, :]
  out_shape = crop.shape[:-3] + (int(out_hw[0]), int(out_hw[1]),
                                 crop.shape[-1])
  if out_shape == crop.shape:
    return crop
  return jax.image.resize(crop, out_shape, method="linear", antialias=True)


def _pool_out(size: int, window: int, stride: int, pad: int) -> int:
  return (size + 2 * pad - window) // stride + 1


def video_map_size(input_hw: Sequence[int]) -> tuple[int, int]:
  """Spatial size of the video stream's map before fc6, for an input size."""
  sizes = []
  for s in input_hw:
    s = _pool_out(s, 7, 2, 0)   # conv1 (3-D, 5x7x7, stride 2)
    s = _pool_out(s, 3, 2, 0)   # pool1
    s = _pool_out(s, 5, 2, 1)   # conv2
    s = _pool_out(s, 3, 2, 1)   # pool2
    s = _pool_out(s, 3, 2, 0)   # pool5
    sizes.append(s)
  return tuple(sizes)


def _group_norm(channels: int, name: str) -> nn.GroupNorm:
  return nn.GroupNorm(num_groups=math.gcd(32, channels), name=name)


class AudioStream(nn.Module):
  """netcnnaud + netfcaud: mfcc [B, 20, 13] -> [B, embed_dim].

  standardize: scale 13-coefficient MFCCs by MFCC_MEAN / MFCC_STD first
  (other feature sizes pass through unchanged).
  """
  width: float = 1.0
  embed_dim: int = 1024
  standardize: bool = True

  def _ch(self, c: int) -> int:
    return max(8, int(round(c * self.width)))

  @nn.compact
  def __call__(self, mfcc: jax.Array) -> jax.Array:
    # syncnet_python feeds [N, 1, 13, 20]: coefficients are rows.
    x = mfcc.astype(jnp.float32)
    if self.standardize and x.shape[-1] == NUM_MFCC:
      x = (x - jnp.asarray(MFCC_MEAN)) / jnp.asarray(MFCC_STD)
    x = jnp.swapaxes(x, 1, 2)[..., None]
    for i, c in enumerate((64, 192, 384, 256, 256)):
      x = nn.Conv(self._ch(c), (3, 3), padding=1, name=f"conv{i + 1}")(x)
      x = _group_norm(self._ch(c), f"norm{i + 1}")(x)
      x = nn.relu(x)
      if i == 1:
        x = nn.max_pool(x, (3, 3), strides=(1, 2))
      elif i == 4:
        x = nn.max_pool(x, (3, 3), strides=(2, 2))
    # fc6 as a conv spanning the whole remaining map (5x4 for 13x20 input).
    x = nn.Conv(self._ch(512), x.shape[1:3], padding="VALID", name="fc6")(x)
    x = x.reshape((x.shape[0], -1))
    x = nn.relu(nn.LayerNorm(name="norm6")(x))
    x = nn.Dense(self._ch(512), name="fc_a")(x)
    x = nn.relu(nn.LayerNorm(name="norm_fc_a")(x))
    return nn.Dense(self.embed_dim, name="fc7")(x)


class FramesConv(nn.Module):
  """SyncNet's conv1: a 3-D conv whose kernel spans all T frames, VALID.

  [B, T, H, W, C] -> [B, H', W', features]. Time collapses to 1, so the 3-D
  conv is exactly a 2-D conv over the frames stacked on channels; that is
  how it is computed. The parameters keep nn.Conv's 3-D layout and
  initialisation (kernel [T, kh, kw, C, features], bias [features]), so
  checkpoints and the syncnet_v2 converter see the 3-D conv. Measured on a
  2-core CPU for [4, 5, 64, 64, 3] -> 12 channels: the gradient w.r.t. the
  frames (what the generator's sync loss pulls back) takes 8 ms as 2-D and
  2.2 s as 3-D (XLA:CPU's lhs-dilated 3-D convolution).
  """
  features: int
  kernel_size: Sequence[int] = (7, 7)
  strides: Sequence[int] = (2, 2)

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    b, t, h, w, c = x.shape
    kh, kw = self.kernel_size
    kernel = self.param("kernel", nn.initializers.lecun_normal(),
                        (t, kh, kw, c, self.features), jnp.float32)
    bias = self.param("bias", nn.initializers.zeros, (self.features,),
                      jnp.float32)
    stacked = x.transpose(0, 2, 3, 1, 4).reshape(b, h, w, t * c)
    kernel2d = kernel.transpose(1, 2, 0, 3, 4).reshape(kh, kw, t * c,
                                                       self.features)
    y = jax.lax.conv_general_dilated(
        stacked, kernel2d, tuple(self.strides), "VALID",
        dimension_numbers=("NHWC", "HWIO", "NHWC"))
    return y + bias


class VideoStream(nn.Module):
  """netcnnlip + netfclip: [B, 5, h, w, 3] -> [B, embed_dim]."""
  width: float = 1.0
  embed_dim: int = 1024

  def _ch(self, c: int) -> int:
    return max(8, int(round(c * self.width)))

  @nn.compact
  def __call__(self, lower_faces: jax.Array) -> jax.Array:
    x = lower_faces.astype(jnp.float32)
    x = FramesConv(self._ch(96), (7, 7), strides=(2, 2), name="conv1")(x)
    x = nn.relu(_group_norm(self._ch(96), "norm1")(x))
    x = nn.max_pool(x, (3, 3), strides=(2, 2))
    x = nn.Conv(self._ch(256), (5, 5), strides=(2, 2), padding=1,
                name="conv2")(x)
    x = nn.relu(_group_norm(self._ch(256), "norm2")(x))
    x = nn.max_pool(x, (3, 3), strides=(2, 2), padding=((1, 1), (1, 1)))
    for i in (3, 4, 5):
      x = nn.Conv(self._ch(256), (3, 3), padding=1, name=f"conv{i}")(x)
      x = nn.relu(_group_norm(self._ch(256), f"norm{i}")(x))
    x = nn.max_pool(x, (3, 3), strides=(2, 2))
    # fc6 as a conv spanning the whole remaining map (6x6 at 224x224).
    x = nn.Conv(self._ch(512), x.shape[1:3], padding="VALID", name="fc6")(x)
    x = x.reshape((x.shape[0], -1))
    x = nn.relu(nn.LayerNorm(name="norm6")(x))
    x = nn.Dense(self._ch(512), name="fc_v")(x)
    x = nn.relu(nn.LayerNorm(name="norm_fc_v")(x))
    return nn.Dense(self.embed_dim, name="fc7")(x)


class SyncNet(nn.Module):
  """Two-stream audio-visual sync network.

  Attributes:
    input_hw: (h, w) of the lower-half-face frames (paper: 224x224).
    num_frames: frames per video sample (5, i.e. 200 ms at 25 fps).
    width: multiplier on every conv/fc width (1.0 = syncnet_python sizes).
    embed_dim: size of the fc7 embeddings.
    normalize: scale both embeddings to unit length, so distances lie in
      [0, 2] and the contrastive margin has a fixed meaning (as in
      Wav2Lip's expert SyncNet). syncnet_python leaves them unnormalised;
      without this, contrastive pretraining here collapsed to all pairs at
      distance margin/2.
    face_norm: 'none'; 'temporal': subtract each sample's mean over its
      frames, divide by the `face_scale` parameter; 'mean_face': subtract
      the `face_mean` parameter [h, w, 3], divide by `face_scale`. Both are
      frozen (no gradient reaches them); `set_face_statistics` fills them
      from training frames. At their initial values (0 and 1) 'mean_face'
      passes the input unchanged.
  """
  input_hw: Sequence[int] = (64, 128)
  num_frames: int = NUM_FRAMES
  width: float = 1.0
  embed_dim: int = 1024
  normalize: bool = True
  face_norm: str = 'none'

  def setup(self):
    map_hw = video_map_size(self.input_hw)
    if min(map_hw) < 1:
      raise SyncNetInputError(
          f"SyncNet input_hw={tuple(self.input_hw)} is too small for the "
          "video stream; use at least 51x51")
    self.video_stream = VideoStream(self.width, self.embed_dim)
    self.audio_stream = AudioStream(self.width, self.embed_dim)
    if self.face_norm not in FACE_NORMS:
      raise SyncNetInputError(f"face_norm={self.face_norm!r}: use one of "
                              f"{FACE_NORMS}")
    if self.face_norm == "mean_face":
      self.face_mean = self.param("face_mean", nn.initializers.zeros,
                                  (*self.input_hw, 3), jnp.float32)
    if self.face_norm != "none":
      self.face_scale = self.param("face_scale", nn.initializers.ones, (),
                                   jnp.float32)

  def embed_video(self, lower_faces: jax.Array) -> jax.Array:
    """lower_faces: [B, 5, h, w, 3] float32 in [-1, 1] -> [B, E] float32."""
    expected = (self.num_frames, *self.input_hw, 3)
    if lower_faces.ndim != 5 or tuple(lower_faces.shape[1:]) != expected:
      raise SyncNetInputError(
          f"SyncNet video input has shape {lower_faces.shape}, expected "
          f"[B, {', '.join(map(str, expected))}]; crop with "
          "syncnet.lower_half(frames, input_hw)")
    if self.face_norm == "mean_face":
      lower_faces = lower_faces - jax.lax.stop_gradient(self.face_mean)
    elif self.face_norm == "temporal":
      lower_faces = lower_faces - jnp.mean(lower_faces, 1, keepdims=True)
    if self.face_norm != "none":
      lower_faces = lower_faces / jax.lax.stop_gradient(self.face_scale)
    return self._maybe_normalize(self.video_stream(lower_faces))

  def embed_audio(self, mfcc: jax.Array) -> jax.Array:
    """mfcc: [B, 20, 13] float32 (200 ms of MFCCs) -> [B, E] float32."""
    if mfcc.ndim != 3 or mfcc.shape[1] < 3 or mfcc.shape[2] < 3:
      raise SyncNetInputError(
          f"SyncNet audio input has shape {mfcc.shape}, expected "
          f"[B, {MFCC_STEPS}, {NUM_MFCC}] (one mfcc_windows entry)")
    return self._maybe_normalize(self.audio_stream(mfcc))

  def _maybe_normalize(self, emb: jax.Array) -> jax.Array:
    if not self.normalize:
      return emb
    return emb * jax.lax.rsqrt(jnp.sum(jnp.square(emb), -1, keepdims=True)
                               + 1e-12)

  def __call__(self, lower_faces: jax.Array, mfcc: jax.Array
               ) -> tuple[jax.Array, jax.Array]:
    """Returns (video_emb [B, E], audio_emb [B, E]) float32 fc7 vectors."""
    return self.embed_video(lower_faces), self.embed_audio(mfcc)


def set_face_statistics(variables, lower_faces, face_norm: str) -> dict:
  """`variables` with face_norm's statistics measured on `lower_faces`.

  Args:
    variables: a SyncNet's variables ({'params': ...}).
    lower_faces: [N, T, h, w, 3] float frames in [-1, 1] (lower halves at
      the model's input_hw, T frames a sample), e.g. a few hundred.
    face_norm: the model's face_norm ('temporal' or 'mean_face').

  Returns:
    A copy of `variables`. 'mean_face': face_mean is the frames' mean image,
    face_scale twice the std about it; 'temporal': face_scale is twice the
    std of the frames about their sample's mean. Either way the video
    stream's input lies about in [-1, 1].
  """
  faces = np.asarray(lower_faces, np.float32)
  params = dict(variables["params"])
  if face_norm == "mean_face":
    faces = faces.reshape((-1,) + faces.shape[-3:])
    mean = faces.mean(0)
    if params["face_mean"].shape != mean.shape:
      raise SyncNetInputError(
          f"face statistics of frames {mean.shape} for a SyncNet whose "
          f"face_mean is {params['face_mean'].shape}")
    params["face_mean"] = jnp.asarray(mean)
    deviation = faces - mean
  elif face_norm == "temporal":
    deviation = faces - faces.mean(1, keepdims=True)
  else:
    raise SyncNetInputError(f"face_norm={face_norm!r} has no statistics")
  scale = max(2.0 * float(deviation.std()), 1e-3)
  params["face_scale"] = jnp.asarray(scale, jnp.float32)
  return {**variables, "params": params}


def sync_distance(video_emb: jax.Array, audio_emb: jax.Array) -> jax.Array:
  """Euclidean distance d = ||v - a||_2 per pair: [B, E] x2 -> [B].

  For scoring (e.g. offset search); no gradient is needed here.
  """
  return jnp.linalg.norm(video_emb - audio_emb, axis=-1)


def default_config() -> ml_collections.ConfigDict:
  """SyncNet sizes for CPU runs (input 64x128, full syncnet_python widths)."""
  return ml_collections.ConfigDict(dict(
      input_hw=(64, 128), num_frames=NUM_FRAMES, width=1.0, embed_dim=1024,
      face_norm="none"))


def create_model(config: ml_collections.ConfigDict | None = None) -> SyncNet:
  """Builds a SyncNet from `config` (default_config() when None)."""
  config = default_config() if config is None else config
  return SyncNet(**config.to_dict())


def make_example_inputs(batch_size: int = 2, input_hw: Sequence[int] = (64, 128)
                        ) -> tuple[jax.Array, jax.Array]:
  """Random positional inputs for `SyncNet.__call__` (benchmarks)."""
  rng = np.random.default_rng(0)
  faces = rng.uniform(-1.0, 1.0, (batch_size, NUM_FRAMES, *input_hw, 3))
  mfcc = rng.standard_normal((batch_size, MFCC_STEPS, NUM_MFCC))
  return jnp.asarray(faces, jnp.float32), jnp.asarray(mfcc, jnp.float32)
