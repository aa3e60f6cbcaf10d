"""Multi-scale temporal discriminator conditioned on audio (paper 3.2.2).

The paper takes the multi-scale temporal discriminator of vid2vid (Wang et
al. 2018, "Video-to-Video Synthesis", its reference [18] style): it judges
windows of L consecutive frames, and coarser temporal scales see the window
subsampled in time (every 2nd, 4th, ... frame). The sizes follow pix2pixHD's
PatchGAN (ndf 64, 4x4 kernels, padding 2, leaky ReLU 0.2, instance norm,
stride 2 for the first n_layers convs then 1), in one of two forms:

  * mode='3d': 3-D convolutions over [B, L, H, W, C] with kernels
    (kt, 4, 4), temporal stride 1 and 'same' temporal padding, so the logits
    are [B, L, h, w, 1] space-time patches.
  * mode='stack': the frames of the window stacked on channels,
    [B, H, W, L * C], through the 2-D NLayerDiscriminator.

Conditioning on audio: each frame's audio feature vector is projected by a
Dense layer to ``audio_channels`` and tiled over that frame's pixels as extra
channels (the projection is shared by all temporal scales).
"""


import flax.linen as nn
import jax
import jax.numpy as jnp

from a2v_jax.models import layers
from a2v_jax.models import patchgan

MODES = ("3d", "stack")


class TemporalConfigError(ValueError):
  """A temporal discriminator option has a value that is not supported."""


class MultiScaleTemporalDiscriminator(nn.Module):
  """Judges L-frame windows at temporal scales 1, 1/2, ... with audio.

  Attributes:
    num_scales: temporal scales; scale s sees every 2**s-th frame.
    mode: '3d' (3-D convs) or 'stack' (frames stacked on channels).
    audio_channels: width of the per-frame audio projection tiled over the
      frame (0 = unconditional).
    ndf, n_layers, norm, spectral_norm, conv_lowering: as
      patchgan.NLayerDiscriminator ('stride1_2d' and 'tuned' also compute
      the 3-D convs as 2-D convs of the stacked time taps), dtype (compute
      dtype; the returned maps are float32 whatever it is).
    temporal_kernel_size: time extent of the 3-D kernels (mode '3d').
  """

  num_scales: int = 2
  mode: str = "3d"
  audio_channels: int = 16
  ndf: int = 64
  n_layers: int = 3
  norm: str = "instance"
  spectral_norm: bool = False
  conv_lowering: str = "xla"
  dtype: str = "float32"
  temporal_kernel_size: int = 3

  def __post_init__(self):
    if self.mode not in MODES:
      raise TemporalConfigError(
          f"mode={self.mode!r} is not supported; use one of {list(MODES)}.")
    patchgan.check_options(self, TemporalConfigError)
    super().__post_init__()

  @nn.compact
  def __call__(self, frames: jax.Array, audio_features: jax.Array,
               update_stats: bool = False) -> list[list[jax.Array]]:
    """Scores windows of frames.

    Args:
      frames: [B, L, H, W, 3] float32 in [-1, 1]; L >= 2**(num_scales - 1).
      audio_features: [B, L, D] float32, one vector per frame.
      update_stats: write the spectral-norm power iteration back.

    Returns:
      num_scales lists (finest first) of n_layers + 2 feature maps, last =
      logits; maps are [B, L_s, h, w, c] in mode '3d' and [B, h, w, c] in
      mode 'stack', with L_s = ceil(L / 2**s).
    """
    b, length, height, width, _ = frames.shape
    if audio_features.shape[:2] != (b, length):
      raise TemporalConfigError(
          f"audio_features {audio_features.shape} must be [B, L, D] with "
          f"B, L = {b}, {length} of frames {frames.shape}.")
    if length < 2 ** (self.num_scales - 1):
      raise TemporalConfigError(
          f"window of {length} frames is too short for {self.num_scales} "
          f"temporal scales; use L >= {2 ** (self.num_scales - 1)}.")
    x = frames
    if self.audio_channels > 0:
      audio = nn.Dense(self.audio_channels, dtype=self.dtype,
                       name="audio_proj")(audio_features)
      x = x.astype(audio.dtype)
      audio = jnp.broadcast_to(
          audio[:, :, None, None, :],
          (b, length, height, width, self.audio_channels))
      x = jnp.concatenate([x, audio], axis=-1)
    outputs = []
    for scale in range(self.num_scales):
      window = x[:, :: 2 ** scale]
      name = f"discriminator_{scale}"
      disc = patchgan.NLayerDiscriminator(
          ndf=self.ndf, n_layers=self.n_layers, norm=self.norm,
          temporal_kernel_size=(
              self.temporal_kernel_size if self.mode == "3d" else 0),
          spectral_norm=self.spectral_norm,
          conv_lowering=self.conv_lowering, dtype=self.dtype, name=name)
      if self.mode == "stack":
        window = jnp.moveaxis(window, 1, 3).reshape(b, height, width, -1)
      outputs.append(disc(window, update_stats))
    return [[m.astype(jnp.float32) for m in maps] for maps in outputs]
