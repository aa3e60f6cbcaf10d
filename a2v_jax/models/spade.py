"""SPADE generator conditioned on an aligned identity image and audio features.

Architecture after Park et al. 2019, "Semantic Image Synthesis with
Spatially-Adaptive Normalization" (SPADE), and NVlabs' SPADEGenerator:

  x = conv3x3(resize(reference, (sh, sw)))         # use_vae=False path
  head_0 -> up -> G_middle_0 -> [up] -> G_middle_1
  -> up -> up_0 -> up -> up_1 -> up -> up_2 -> up -> up_3 [-> up -> up_4]
  frame = tanh(conv3x3(leaky_relu(x, 0.2)))

with channel widths 16, 16, 16, 8, 4, 2, 1 (, 1/2) x ngf and sh = H / 2**n_up
(n_up = 5, 6, 7 for num_upsampling_layers 'normal', 'more', 'most').

OneShotA2V (paper, section 3.1) replaces SPADE's segmentation map by "aligned
images in an upsampling manner": every SPADE layer is modulated by the aligned
reference face resized to that layer's resolution, together with the audio
feature vector of the frame. The audio enters each SPADE layer in one of two
ways (``audio_conditioning``):
  * 'bias' (default): the frame's audio vector is projected by a Dense layer to
    the 128 hidden channels of SPADE's shared MLP and added before its ReLU.
    This is exactly the same function class as concatenating the vector,
    broadcast spatially, to the image channels and convolving it with a 1x1
    kernel, without materialising a [B, H, W, D] map at every scale.
  * 'concat': the vector is broadcast to [B, h, w, D] and concatenated to the
    resized image before the 3x3 shared conv (the literal reading).
  * 'none': audio is ignored (the NVlabs reference configuration).
``audio_embed_dim > 0`` first maps the audio features through a shared
Dense + leaky ReLU to that width.

The SPADE gamma and beta convolutions are computed as one conv with 2*C
outputs (same parameter count as the two separate convs, one pass over the
hidden activations).

Variables: 'params', and with ``spectral_norm=True`` also 'batch_stats'
(power-iteration vectors, see ``a2v_jax.models.layers``). Apply with
``update_stats=True, mutable=['batch_stats']`` in the training step.
"""

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from a2v_jax.models import conv_lowering as lowering_lib
from a2v_jax.models import layers

# num_upsampling_layers -> number of 2x up-samplings from the latent grid.
NUM_UP_LAYERS = {"normal": 5, "more": 6, "most": 7}
AUDIO_CONDITIONING = ("bias", "concat", "none")
INIT_FROM = ("image", "audio")
OUTPUTS = ("image", "residual")


class SPADEConfigError(ValueError):
  """A SPADE generator option has a value that is not supported."""


def _check_choice(name: str, value, choices) -> None:
  if value not in choices:
    raise SPADEConfigError(
        f"SPADEGenerator.{name}={value!r} is not supported; use one of "
        f"{sorted(choices)}.")


class SPADE(nn.Module):
  """Spatially-adaptive normalisation (Park et al. 2019, Eq. 1).

  out = norm(x) * (1 + gamma(c)) + beta(c), where c is the conditioning image
  resized to x's resolution, gamma/beta come from a shared 3x3 conv with
  ``hidden`` (=128 in SPADE) channels + ReLU, then a 3x3 conv per output.

  Attributes:
    features: channels C of x.
    hidden: channels of the shared MLP (NVlabs hard-codes 128).
    kernel_size: kernel of the MLP convs (3 in 'spade...3x3').
    norm: parameter-free norm, 'instance' or 'layer'.
    resize: 'nearest' (NVlabs) or 'area', how c is brought to x's size.
    audio_conditioning: 'bias', 'concat' or 'none' (see module docstring).
    conv_lowering: of the MLP convs and, with 'tuned', the norm
      (conv_lowering.LOWERINGS).
    dtype: compute dtype, 'float32' or 'bfloat16' (layers.compute_dtype);
      the norm statistics and the parameters stay float32.
  """

  features: int
  hidden: int = 128
  kernel_size: int = 3
  norm: str = "instance"
  resize: str = "nearest"
  audio_conditioning: str = "bias"
  conv_lowering: str = "xla"
  dtype: str = "float32"

  @nn.compact
  def __call__(self, x: jax.Array, image: jax.Array,
               audio: jax.Array | None) -> jax.Array:
    """x: [B,h,w,C]; image: [B,H,W,3]; audio: [B,D] or None -> [B,h,w,C].

    The result has the compute dtype.
    """
    b, h, w, _ = x.shape
    if self.norm == "instance" and self.conv_lowering == "tuned":
      normalized = lowering_lib.instance_norm_tuned(x)
    else:
      normalized = layers.PARAM_FREE_NORMS[self.norm](x)
    cond = layers.RESIZERS[self.resize](image, (h, w))
    pad = self.kernel_size // 2
    ks = (self.kernel_size, self.kernel_size)
    if self.audio_conditioning == "concat":
      tiled = jnp.broadcast_to(audio[:, None, None, :], (b, h, w, audio.shape[-1]))
      cond = jnp.concatenate([cond, tiled], axis=-1)
    actv = layers.Conv(self.hidden, ks, padding=pad,
                       lowering=self.conv_lowering, dtype=self.dtype,
                       name="mlp_shared")(cond)
    if self.audio_conditioning == "bias":
      actv = actv + nn.Dense(self.hidden, dtype=self.dtype,
                             name="mlp_audio")(audio)[:, None, None, :]
    actv = nn.relu(actv)
    gamma_beta = layers.Conv(2 * self.features, ks, padding=pad,
                             lowering=self.conv_lowering, dtype=self.dtype,
                             name="mlp_gamma_beta")(actv)
    gamma, beta = jnp.split(gamma_beta, 2, axis=-1)
    return normalized.astype(gamma.dtype) * (1.0 + gamma) + beta


class SPADEResBlock(nn.Module):
  """SPADE residual block (NVlabs SPADEResnetBlock): norm -> act -> conv, x2.

  fmiddle = min(fin, fout); a learned shortcut SPADE -> 1x1 conv (no bias)
  is used when fin != fout. Spectral norm (optional) wraps the three convs,
  not the SPADE MLP convs, as in NVlabs' 'spectralspade...' setting. The
  1x1 shortcut conv is XLA's own whatever spade_kwargs' conv_lowering.
  """

  features: int
  spectral_norm: bool = True
  spade_kwargs: dict = dataclasses.field(default_factory=dict)

  @nn.compact
  def __call__(self, x: jax.Array, image: jax.Array, audio: jax.Array | None,
               update_stats: bool = False) -> jax.Array:
    """x: [B,h,w,fin] -> [B,h,w,features]."""
    fin, fout = x.shape[-1], self.features
    fmiddle = min(fin, fout)
    sn = self.spectral_norm
    dtype = self.spade_kwargs.get("dtype", "float32")
    if fin != fout:
      x_s = SPADE(fin, name="norm_s", **self.spade_kwargs)(x, image, audio)
      x_s = layers.Conv(fout, (1, 1), padding=0, use_bias=False,
                        spectral_norm=sn, dtype=dtype,
                        name="conv_s")(x_s, update_stats)
    else:
      x_s = x
    dx = SPADE(fin, name="norm_0", **self.spade_kwargs)(x, image, audio)
    lowering = self.spade_kwargs.get("conv_lowering", "xla")
    dx = layers.Conv(fmiddle, (3, 3), padding=1, spectral_norm=sn,
                     lowering=lowering, dtype=dtype,
                     name="conv_0")(layers.leaky_relu(dx), update_stats)
    dx = SPADE(fmiddle, name="norm_1", **self.spade_kwargs)(dx, image, audio)
    dx = layers.Conv(fout, (3, 3), padding=1, spectral_norm=sn,
                     lowering=lowering, dtype=dtype,
                     name="conv_1")(layers.leaky_relu(dx), update_stats)
    return x_s + dx


class SPADEGenerator(nn.Module):
  """Frame generator: reference face + one frame's audio -> frame in [-1, 1].

  Attributes:
    ngf: base width; blocks have 16,16,16,8,4,2,1(,0.5) x ngf channels.
    num_upsampling_layers: 'normal' (5 ups), 'more' (6), 'most' (7, adds
      up_4 with ngf/2 channels), as SPADE's option of the same name.
    spectral_norm: spectral norm on the residual-block convs.
    norm: parameter-free norm inside SPADE, 'instance' (batch-independent)
      or 'layer'.
    spade_hidden: hidden channels of the SPADE MLP (128 in SPADE).
    spade_kernel_size: kernel of the SPADE MLP convs (3).
    cond_resize: 'nearest' (NVlabs) or 'area' resizing of the reference image
      to each scale.
    init_from: 'image' (3x3 conv of the reference downsampled to the latent
      grid, SPADE's use_vae=False path) or 'audio' (Dense of the audio
      features reshaped to the latent grid).
    audio_conditioning: 'bias', 'concat' or 'none', see module docstring.
    audio_embed_dim: >0 maps audio through Dense + leaky ReLU first.
    output: 'image' (SPADE's tanh(conv_img(x))) or 'residual':
      tanh(atanh(reference) + conv_img(x)) with conv_img zero-initialised
      and bias-free,
      so the untrained generator returns the reference and training learns
      only what moves (the mouth, blinks). Not in the paper (a deviation for
      short CPU runs, see docs/deviations.md): it starts the model at the
      static-frame baseline instead of at noise.
    conv_lowering: lowering of the 3x3 convs, one of
      conv_lowering.LOWERINGS; a config's 'auto' is resolved when the
      networks are built (a2v_jax/networks.py).
    dtype: compute dtype, 'float32' or 'bfloat16' (mixed precision:
      parameters, spectral-norm vectors and norm statistics stay float32;
      convs, dense layers and activations run in bfloat16; the frame is
      returned in float32).
  """

  ngf: int = 64
  num_upsampling_layers: str = "normal"
  spectral_norm: bool = True
  norm: str = "instance"
  spade_hidden: int = 128
  spade_kernel_size: int = 3
  cond_resize: str = "area"
  init_from: str = "image"
  audio_conditioning: str = "bias"
  audio_embed_dim: int = 0
  output: str = "image"
  conv_lowering: str = "xla"
  dtype: str = "float32"

  def __post_init__(self):
    _check_choice("num_upsampling_layers", self.num_upsampling_layers,
                  NUM_UP_LAYERS)
    _check_choice("norm", self.norm, layers.PARAM_FREE_NORMS)
    _check_choice("cond_resize", self.cond_resize, layers.RESIZERS)
    _check_choice("init_from", self.init_from, INIT_FROM)
    _check_choice("output", self.output, OUTPUTS)
    _check_choice("conv_lowering", self.conv_lowering, lowering_lib.LOWERINGS)
    _check_choice("dtype", self.dtype, layers.COMPUTE_DTYPES)
    _check_choice("audio_conditioning", self.audio_conditioning,
                  AUDIO_CONDITIONING)
    if self.init_from == "audio" and self.audio_conditioning == "none":
      raise SPADEConfigError(
          "SPADEGenerator.init_from='audio' needs audio; set "
          "audio_conditioning to 'bias' or 'concat' or init_from='image'.")
    super().__post_init__()

  @nn.compact
  def __call__(self, reference: jax.Array, audio_features: jax.Array | None,
               update_stats: bool = False) -> jax.Array:
    """Generates one frame per batch item.

    Args:
      reference: [B, H, W, 3] float32 in [-1, 1], aligned identity image; H
        and W divisible by 2**n_up (32 for 'normal').
      audio_features: [B, D] float32 audio features of the frame (ignored,
        may be None, when audio_conditioning='none').
      update_stats: write the spectral-norm power iteration back (needs
        mutable=['batch_stats']).

    Returns:
      [B, H, W, 3] float32 in [-1, 1] (whatever the compute dtype).
    """
    b, height, width, _ = reference.shape
    n_up = NUM_UP_LAYERS[self.num_upsampling_layers]
    if height % 2**n_up or width % 2**n_up:
      raise SPADEConfigError(
          f"SPADEGenerator got a {height}x{width} reference; with "
          f"num_upsampling_layers={self.num_upsampling_layers!r} height and "
          f"width must be multiples of {2**n_up}.")
    sh, sw = height // 2**n_up, width // 2**n_up
    nf = self.ngf

    audio = None
    if self.audio_conditioning != "none":
      if audio_features is None or audio_features.ndim != 2:
        raise SPADEConfigError(
            "SPADEGenerator needs audio_features of shape [B, D]; got "
            f"{None if audio_features is None else audio_features.shape}.")
      audio = audio_features.astype(jnp.float32)
      if self.audio_embed_dim > 0:
        audio = layers.leaky_relu(nn.Dense(
            self.audio_embed_dim, dtype=self.dtype, name="audio_embed")(audio))

    if self.init_from == "image":
      x = layers.RESIZERS[self.cond_resize](reference, (sh, sw))
      x = layers.Conv(16 * nf, (3, 3), padding=1, lowering=self.conv_lowering,
                      dtype=self.dtype, name="fc")(x)
    else:
      x = nn.Dense(16 * nf * sh * sw, dtype=self.dtype, name="fc")(audio)
      x = x.reshape(b, sh, sw, 16 * nf)

    spade_kwargs = dict(hidden=self.spade_hidden,
                        kernel_size=self.spade_kernel_size, norm=self.norm,
                        resize=self.cond_resize,
                        audio_conditioning=self.audio_conditioning,
                        conv_lowering=self.conv_lowering, dtype=self.dtype)

    def block(features, name):
      return SPADEResBlock(features, spectral_norm=self.spectral_norm,
                           spade_kwargs=spade_kwargs, name=name)

    x = block(16 * nf, "head_0")(x, reference, audio, update_stats)
    x = layers.upsample_nearest_2x(x)
    x = block(16 * nf, "G_middle_0")(x, reference, audio, update_stats)
    if self.num_upsampling_layers in ("more", "most"):
      x = layers.upsample_nearest_2x(x)
    x = block(16 * nf, "G_middle_1")(x, reference, audio, update_stats)
    for i, mult in enumerate((8, 4, 2, 1)):
      x = layers.upsample_nearest_2x(x)
      x = block(mult * nf, f"up_{i}")(x, reference, audio, update_stats)
    if self.num_upsampling_layers == "most":
      x = layers.upsample_nearest_2x(x)
      x = block(nf // 2, "up_4")(x, reference, audio, update_stats)
    if self.output == "residual":
      x = layers.Conv(3, (3, 3), padding=1, use_bias=False, name="conv_img",
                      lowering=self.conv_lowering, dtype=self.dtype,
                      kernel_init=nn.initializers.zeros)(layers.leaky_relu(x))
      ref = jnp.clip(reference.astype(jnp.float32), -0.999, 0.999)
      return jnp.tanh(jnp.arctanh(ref) + x.astype(jnp.float32))
    x = layers.Conv(3, (3, 3), padding=1, lowering=self.conv_lowering,
                    dtype=self.dtype, name="conv_img")(layers.leaky_relu(x))
    return jnp.tanh(x.astype(jnp.float32))


def nvlabs_reference_config(ngf: int = 64) -> ml_collections.ConfigDict:
  """NVlabs SPADEGenerator, image-conditioned, as ``SPADEGenerator(**cfg)``.

  Reproduces NVlabs/SPADE pix2pix_model's generator with label_nc=3 (the image
  replaces the segmentation map), no instance map, no VAE,
  norm_G='spectralspadeinstance3x3' (instance-norm SPADE, spectral norm on
  the residual-block convs), num_upsampling_layers='normal', aspect ratio 1.
  At 128x128 and ngf=64: 92.06 M parameters, 68.2 GFLOP/image forward; at
  64x64 and ngf=16: 10.55 M parameters. Feed audio_features=None.
  """
  return ml_collections.ConfigDict(dict(
      ngf=ngf, num_upsampling_layers="normal", spectral_norm=True,
      norm="instance", spade_hidden=128, spade_kernel_size=3,
      cond_resize="nearest", init_from="image", audio_conditioning="none",
      audio_embed_dim=0))


def default_config(ngf: int = 64) -> ml_collections.ConfigDict:
  """OneShotA2V generator: reference + audio, area-resized conditioning."""
  return ml_collections.ConfigDict(dict(
      ngf=ngf, num_upsampling_layers="normal", spectral_norm=True,
      norm="instance", spade_hidden=128, spade_kernel_size=3,
      cond_resize="area", init_from="image", audio_conditioning="bias",
      audio_embed_dim=0))
