"""Multi-scale PatchGAN frame discriminator (paper section 3.2.1).

After pix2pixHD, Wang et al. 2018, "High-Resolution Image Synthesis and
Semantic Manipulation with Conditional GANs": NLayerDiscriminator with ndf 64,
n_layers 3, 4x4 kernels, padding ceil((4-1)/2) = 2, leaky ReLU 0.2, instance
norm after every conv but the first and the last, stride 2 for the first
n_layers convs and 1 after. Three discriminators of the same structure see the
image at scales 1, 1/2 and 1/4 (3x3 average pool, stride 2, padding excluded
from the average, between scales).

Deviation kept small and deliberate: a conv followed by instance norm has no
bias (as NVlabs' SPADE discriminator does): the norm subtracts it again, so
the bias would be a parameter with zero gradient.

Variables: 'params', and with ``spectral_norm=True`` also 'batch_stats'
(see ``a2v_jax.models.layers``).
"""

import functools
import math

import flax.linen as nn
import jax
import jax.numpy as jnp

from a2v_jax.models import conv_lowering
from a2v_jax.models import layers

NORMS = ("instance", "none")


class PatchGANConfigError(ValueError):
  """A PatchGAN option has a value that is not supported."""


def check_options(module: nn.Module, error: type[ValueError]) -> None:
  """Raises `error` when a discriminator's norm, conv_lowering or dtype is
  not supported."""
  for name, valid in (("norm", NORMS),
                      ("conv_lowering", conv_lowering.LOWERINGS),
                      ("dtype", layers.COMPUTE_DTYPES)):
    value = getattr(module, name)
    if value not in valid:
      raise error(f"{name}={value!r} is not supported; use one of "
                  f"{list(valid)}.")


class NLayerDiscriminator(nn.Module):
  """pix2pixHD PatchGAN, 2-D, or 3-D over windows of frames.

  Attributes:
    ndf: channels of the first conv; doubled per layer up to 512.
    n_layers: number of strided/normalised layers (3 in pix2pixHD).
    kernel_size: 4.
    temporal_kernel_size: 0 for 2-D convs over [B, H, W, C]; kt > 0 for
      3-D (kt x 4 x 4) convs over [B, L, H, W, C], time stride 1 and 'same'
      time padding (the temporal discriminator's mode '3d').
    norm: 'instance' or 'none'.
    spectral_norm: spectral norm on every conv.
    conv_lowering: one of conv_lowering.LOWERINGS (same parameters
      whichever): 'xla', 'stride1_2d' (strided convs as stride-1 convs of
      the space-to-depth input, 3-D convs as 2-D convs of the stacked time
      taps) or 'tuned' ('stride1_2d' plus the CPU-tuned stride-1 convs); a
      config's 'auto' is resolved when the networks are built
      (a2v_jax/networks.py).
    dtype: compute dtype of the convs, 'float32' or 'bfloat16'
      (layers.compute_dtype); the feature maps have this dtype.
  """

  ndf: int = 64
  n_layers: int = 3
  kernel_size: int = 4
  temporal_kernel_size: int = 0
  norm: str = "instance"
  spectral_norm: bool = False
  conv_lowering: str = "xla"
  dtype: str = "float32"

  def __post_init__(self):
    check_options(self, PatchGANConfigError)
    if self.n_layers < 1:
      raise PatchGANConfigError(f"n_layers={self.n_layers} must be >= 1.")
    super().__post_init__()

  @nn.compact
  def __call__(self, x: jax.Array, update_stats: bool = False) -> list[jax.Array]:
    """x: [B, H, W, C] (or [B, L, H, W, C] with temporal_kernel_size > 0)
    -> list of n_layers + 2 feature maps.

    Feature map i has 2**i x ndf channels (capped at 512) and the last one is
    the [B, (L,) h, w, 1] patch logits; with H=W=128 and the defaults the
    spatial sizes are 65, 33, 17, 18, 19.
    """
    pad = int(math.ceil((self.kernel_size - 1) / 2))
    kernel, padding, time = (self.kernel_size,) * 2, ((pad, pad),) * 2, ()
    if self.temporal_kernel_size:
      kt = self.temporal_kernel_size
      # Explicit (low, high) so an even temporal kernel also keeps L frames.
      kernel, padding = (kt, *kernel), (((kt - 1) // 2, kt // 2), *padding)
      time = (1,)
    conv = functools.partial(layers.Conv, kernel_size=kernel, padding=padding,
                             spectral_norm=self.spectral_norm,
                             lowering=self.conv_lowering, dtype=self.dtype)
    use_norm = self.norm == "instance"
    features = []
    nf = self.ndf
    x = conv(nf, strides=(*time, 2, 2), name="conv_0")(x, update_stats)
    x = layers.leaky_relu(x)
    features.append(x)
    for n in range(1, self.n_layers + 1):
      nf = min(nf * 2, 512)
      stride = 2 if n < self.n_layers else 1
      x = conv(nf, strides=(*time, stride, stride), use_bias=not use_norm,
               name=f"conv_{n}")(x, update_stats)
      if use_norm:
        x = layers.instance_norm(x)
      x = layers.leaky_relu(x)
      features.append(x)
    x = conv(1, name=f"conv_{self.n_layers + 1}")(x, update_stats)
    features.append(x)
    return features


class MultiScalePatchGAN(nn.Module):
  """D1, D2, D3 of the paper: identical PatchGANs at scales 1, 1/2, 1/4.

  Attributes:
    num_scales: number of discriminators (3 in the paper).
    ndf, n_layers, norm, spectral_norm, conv_lowering, dtype: as
      NLayerDiscriminator; the returned maps are float32 whatever dtype.
  """

  num_scales: int = 3
  ndf: int = 64
  n_layers: int = 3
  norm: str = "instance"
  spectral_norm: bool = False
  conv_lowering: str = "xla"
  dtype: str = "float32"

  @nn.compact
  def __call__(self, x: jax.Array,
               update_stats: bool = False) -> list[list[jax.Array]]:
    """x: [B, H, W, C] float32 (image, optionally with conditioning channels).

    Returns:
      num_scales lists (finest first) of the n_layers + 2 feature maps of
      each discriminator; the last map of each list is the patch logits.
    """
    outputs = []
    for scale in range(self.num_scales):
      disc = NLayerDiscriminator(
          ndf=self.ndf, n_layers=self.n_layers, norm=self.norm,
          spectral_norm=self.spectral_norm, conv_lowering=self.conv_lowering,
          dtype=self.dtype, name=f"discriminator_{scale}")
      outputs.append([f.astype(jnp.float32) for f in disc(x, update_stats)])
      if scale + 1 < self.num_scales:
        x = layers.avg_pool_3x3_s2(x)
    return outputs
