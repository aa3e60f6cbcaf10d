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

import math

import flax.linen as nn
import jax
import jax.numpy as jnp

from a2v_jax.models import layers

NORMS = ("instance", "none")


class PatchGANConfigError(ValueError):
  """A PatchGAN option has a value that is not supported."""


class NLayerDiscriminator(nn.Module):
  """pix2pixHD PatchGAN.

  Attributes:
    ndf: channels of the first conv; doubled per layer up to 512.
    n_layers: number of strided/normalised layers (3 in pix2pixHD).
    kernel_size: 4.
    norm: 'instance' or 'none'.
    spectral_norm: spectral norm on every conv.
    conv_lowering: layers.Conv lowering (same parameters whichever):
      'auto' (default: 'tuned' on the CPU backend, 'xla' elsewhere), 'xla',
      'stride1_2d' (strided convs as stride-1 convs of the space-to-depth
      input) or 'tuned' ('stride1_2d' plus the CPU-tuned stride-1 convs).
      On XLA:CPU, 128 px, batch 4, forward+backward: 0.97 examples/s with
      'xla', 15.9 with 'stride1_2d', 19.4 with 'tuned'.
    dtype: compute dtype of the convs, 'float32' or 'bfloat16'
      (layers.compute_dtype); the feature maps have this dtype.
  """

  ndf: int = 64
  n_layers: int = 3
  kernel_size: int = 4
  norm: str = "instance"
  spectral_norm: bool = False
  conv_lowering: str = "auto"
  dtype: str = "float32"

  def __post_init__(self):
    if self.norm not in NORMS:
      raise PatchGANConfigError(
          f"norm={self.norm!r} is not supported; use one of {list(NORMS)}.")
    if self.n_layers < 1:
      raise PatchGANConfigError(f"n_layers={self.n_layers} must be >= 1.")
    if self.dtype not in layers.COMPUTE_DTYPES:
      raise PatchGANConfigError(
          f"dtype={self.dtype!r} is not supported; use one of "
          f"{list(layers.COMPUTE_DTYPES)}.")
    super().__post_init__()

  @nn.compact
  def __call__(self, x: jax.Array, update_stats: bool = False) -> list[jax.Array]:
    """x: [B, H, W, C] float32 -> list of n_layers + 2 feature maps.

    Feature map i has 2**i x ndf channels (capped at 512) and the last one is
    the [B, h, w, 1] patch logits; with H=W=128 and the defaults the spatial
    sizes are 65, 33, 17, 18, 19.
    """
    k = (self.kernel_size, self.kernel_size)
    pad = int(math.ceil((self.kernel_size - 1) / 2))
    use_norm = self.norm == "instance"
    features = []
    nf = self.ndf
    x = layers.Conv(nf, k, strides=(2, 2), padding=pad,
                    spectral_norm=self.spectral_norm,
                    lowering=self.conv_lowering, dtype=self.dtype,
                    name="conv_0")(x, update_stats)
    x = layers.leaky_relu(x)
    features.append(x)
    for n in range(1, self.n_layers + 1):
      nf = min(nf * 2, 512)
      stride = 2 if n < self.n_layers else 1
      x = layers.Conv(nf, k, strides=(stride, stride), padding=pad,
                      use_bias=not use_norm, spectral_norm=self.spectral_norm,
                      lowering=self.conv_lowering, dtype=self.dtype,
                      name=f"conv_{n}")(x, update_stats)
      if use_norm:
        x = layers.instance_norm(x)
      x = layers.leaky_relu(x)
      features.append(x)
    x = layers.Conv(1, k, padding=pad, spectral_norm=self.spectral_norm,
                    lowering=self.conv_lowering, dtype=self.dtype,
                    name=f"conv_{self.n_layers + 1}")(x, update_stats)
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
  conv_lowering: str = "auto"
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
