"""Building blocks shared by the generator and the discriminators.

All image tensors are NHWC, float32 or the compute dtype of a module
(``dtype``: 'float32' or 'bfloat16', see `compute_dtype`; parameters stay
float32). The blocks here are deliberately few:
a 2-D/3-D convolution with optional spectral normalisation, parameter-free
instance/layer normalisation, PyTorch-compatible nearest resizing and a 3x3
average pool that ignores padding. How a convolution is lowered (XLA's own
or a rewrite for XLA:CPU) is a2v_jax/models/conv_lowering.py's business.

Spectral normalisation (Miyato et al. 2018) is our own power iteration rather
than ``flax.linen.SpectralNorm``, for two reasons:
  * ``flax.linen.SpectralNorm`` divides the whole kernel by sigma, which writes
    a second copy of every weight on each step (92 M floats for the reference
    generator). ``W / sigma`` applied to ``x`` equals ``(x * W) / sigma``, so we
    scale the (usually much smaller) conv *output* instead; the gradients are
    the same function.
  * The state is one vector ``u`` per conv in the ``'batch_stats'`` collection
    (the collection name flax's own SpectralNorm uses), derived only from the
    weights. It never looks at activations, so items of a batch never interact
    and it is replicated, never sharded, under ``jax.jit`` with a Mesh.

One power iteration runs on every call, as in ``torch.nn.utils.spectral_norm``
in training mode; the updated ``u`` is written back only when
``update_stats=True`` (the caller then passes ``mutable=['batch_stats']``).
``u`` and ``v`` are treated as constants for the gradient, as in PyTorch.
"""

from collections.abc import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from a2v_jax.models import conv_lowering

# Collection that holds the spectral-norm power-iteration vectors.
SPECTRAL_COLLECTION = "batch_stats"


# Compute dtypes a module's `dtype` may name. 'bfloat16' is mixed precision:
# parameters, spectral-norm estimates and normalisation statistics stay
# float32, activations and conv/matmul operands are bfloat16 (accumulation
# is the backend's, float32 on GPU and TPU).
COMPUTE_DTYPES = ("float32", "bfloat16")


def compute_dtype(name: str) -> jnp.dtype:
  """'float32' or 'bfloat16' -> jnp.dtype; anything else: ValueError."""
  if name not in COMPUTE_DTYPES:
    raise ValueError(f"compute dtype {name!r} is not supported; use one of "
                     f"{list(COMPUTE_DTYPES)}.")
  return jnp.dtype(name)


def _l2_normalize(x: jax.Array, eps: float = 1e-12) -> jax.Array:
  return x / jnp.maximum(jnp.linalg.norm(x), eps)


def _torch_bias_init(fan_in: int):
  """Uniform(+-1/sqrt(fan_in)) bias init, as PyTorch's Conv layers."""
  bound = 1.0 / np.sqrt(fan_in)

  def init(key, shape, dtype=jnp.float32):
    return jax.random.uniform(key, shape, dtype, -bound, bound)

  return init


class Conv(nn.Module):
  """N-d convolution (2-D NHWC or 3-D NDHWC) with optional spectral norm.

  Attributes:
    features: output channels.
    kernel_size: e.g. (3, 3) or (3, 4, 4).
    strides: same length as kernel_size; default all ones.
    padding: int (symmetric, every spatial dim) or 'SAME'/'VALID' or an
      explicit list of (low, high) pairs.
    use_bias: add a learned bias.
    spectral_norm: divide the kernel by its largest singular value (kernel
      reshaped to [prod(kernel_size) * in, out]), estimated by one power
      iteration per call.
    lowering: one of conv_lowering.LOWERINGS ('xla', 'stride1_2d',
      'tuned'; same parameters and values whichever). Needs explicit
      padding; 'SAME'/'VALID' strings always take the 'xla' path.
    kernel_init: None (PyTorch's default conv init) or a flax initializer.
    dtype: compute dtype, 'float32' or 'bfloat16' (see `compute_dtype`):
      x and the kernel are cast to it and so is the output; the kernel
      parameter and the spectral-norm estimate stay float32.
  """

  features: int
  kernel_size: Sequence[int] = (3, 3)
  strides: Sequence[int] | None = None
  padding: int | str | Sequence[tuple[int, int]] = 1
  use_bias: bool = True
  spectral_norm: bool = False
  lowering: str = "xla"
  kernel_init: Callable[..., jax.Array] | None = None
  dtype: str = "float32"

  def __post_init__(self):
    compute_dtype(self.dtype)
    if self.lowering not in conv_lowering.LOWERINGS:
      raise ValueError(f"Conv lowering={self.lowering!r} is not supported; "
                       f"use one of {list(conv_lowering.LOWERINGS)}.")
    super().__post_init__()

  @nn.compact
  def __call__(self, x: jax.Array, update_stats: bool = False) -> jax.Array:
    """x: [B, *spatial, C_in] -> [B, *spatial', features], both in dtype."""
    nd = len(self.kernel_size)
    if nd not in (2, 3) or x.ndim != nd + 2:
      raise ValueError(
          f"Conv got input of rank {x.ndim} for a {nd}-d kernel; pass "
          f"[B, *spatial({nd}), C] arrays.")
    in_features = x.shape[-1]
    fan_in = in_features * int(np.prod(self.kernel_size))
    # variance_scaling(1/3, fan_in, uniform) == PyTorch's default conv init
    # (kaiming_uniform with a=sqrt(5)): U(+-1/sqrt(fan_in)).
    kernel = self.param(
        "kernel", self.kernel_init
        or nn.initializers.variance_scaling(1.0 / 3.0, "fan_in", "uniform"),
        (*self.kernel_size, in_features, self.features), jnp.float32)
    strides = tuple(self.strides) if self.strides is not None else (1,) * nd
    if isinstance(self.padding, int):
      padding = [(self.padding, self.padding)] * nd
    elif isinstance(self.padding, str):
      padding = self.padding
    else:
      padding = [tuple(p) for p in self.padding]
    cdt = compute_dtype(self.dtype)
    params_kernel, kernel, x = kernel, kernel.astype(cdt), x.astype(cdt)
    y = conv_lowering.conv(x, kernel, strides, padding, self.lowering)
    if self.spectral_norm:
      inv_sigma = 1.0 / self._estimate_sigma(params_kernel, update_stats)
      y = y * inv_sigma.astype(cdt)
    if self.use_bias:
      bias = self.param("bias", _torch_bias_init(fan_in),
                        (self.features,), jnp.float32).astype(cdt)
      y = conv_lowering.bias_add(y, bias, self.lowering)
    return y

  def _estimate_sigma(self, kernel: jax.Array, update_stats: bool) -> jax.Array:
    """Largest singular value of kernel as [fan_in, out], one power iteration."""
    w = kernel.reshape(-1, kernel.shape[-1])
    u_var = self.variable(
        SPECTRAL_COLLECTION, "u",
        lambda: _l2_normalize(jax.random.normal(self.make_rng("params"),
                                                (w.shape[1],), jnp.float32)))
    w_const = jax.lax.stop_gradient(w)
    v = _l2_normalize(w_const @ u_var.value)
    u = _l2_normalize(v @ w_const)
    if update_stats and not self.is_initializing():
      u_var.value = u
    # Only sigma = u^T W v carries gradient (u, v constants), as in PyTorch.
    return jnp.dot(u, v @ w)


def instance_norm(x: jax.Array, eps: float = 1e-5) -> jax.Array:
  """Parameter-free instance norm over all spatial axes of [B, *spatial, C].

  Biased variance and eps=1e-5 as ``torch.nn.InstanceNorm2d(affine=False)``.
  Statistics are computed in one pass (E[x], E[x^2]) so XLA reads x once,
  in float32 whatever x's dtype; the result has x's dtype.
  """
  axes = tuple(range(1, x.ndim - 1))
  x32 = x.astype(jnp.float32)
  mean = jnp.mean(x32, axis=axes, keepdims=True)
  mean_sq = jnp.mean(jnp.square(x32), axis=axes, keepdims=True)
  var = jnp.maximum(mean_sq - jnp.square(mean), 0.0)
  return ((x32 - mean) * jax.lax.rsqrt(var + eps)).astype(x.dtype)


def layer_norm_no_affine(x: jax.Array, eps: float = 1e-5) -> jax.Array:
  """Parameter-free norm over all non-batch axes of [B, ..., C] (GroupNorm(1)).

  Statistics in float32 whatever x's dtype; the result has x's dtype.
  """
  axes = tuple(range(1, x.ndim))
  x32 = x.astype(jnp.float32)
  mean = jnp.mean(x32, axis=axes, keepdims=True)
  var = jnp.maximum(jnp.mean(jnp.square(x32), axis=axes, keepdims=True)
                    - jnp.square(mean), 0.0)
  return ((x32 - mean) * jax.lax.rsqrt(var + eps)).astype(x.dtype)


PARAM_FREE_NORMS = {"instance": instance_norm, "layer": layer_norm_no_affine}


def resize_nearest(x: jax.Array, size: tuple[int, int]) -> jax.Array:
  """Nearest resize of [B, H, W, C] to size=(h, w), PyTorch 'nearest' rule.

  Output pixel i reads input pixel floor(i * H / h), as
  ``torch.nn.functional.interpolate(mode='nearest')`` (not the half-pixel rule
  of ``jax.image.resize``). Integer down-scales become strided slices and
  integer up-scales become repeats, which XLA fuses cheaply.
  """
  in_h, in_w = x.shape[1], x.shape[2]
  out_h, out_w = size
  if (in_h, in_w) == (out_h, out_w):
    return x
  for axis, (n_in, n_out) in ((1, (in_h, out_h)), (2, (in_w, out_w))):
    if n_in % n_out == 0:
      idx = slice(0, None, n_in // n_out)
      x = x[:, idx] if axis == 1 else x[:, :, idx]
    elif n_out % n_in == 0:
      x = jnp.repeat(x, n_out // n_in, axis=axis)
    else:
      index = np.floor(np.arange(n_out) * (n_in / n_out)).astype(np.int32)
      x = jnp.take(x, index, axis=axis)
  return x


def resize_area(x: jax.Array, size: tuple[int, int]) -> jax.Array:
  """Box-filter down-scale of [B, H, W, C] by integer factors to size=(h, w).

  Falls back to :func:`resize_nearest` when a factor is not an integer
  down-scale (equal sizes, up-scales or uneven ratios).
  """
  b, in_h, in_w, c = x.shape
  out_h, out_w = size
  if in_h % out_h or in_w % out_w or (in_h, in_w) == (out_h, out_w):
    return resize_nearest(x, size)
  fh, fw = in_h // out_h, in_w // out_w
  return x.reshape(b, out_h, fh, out_w, fw, c).mean(axis=(2, 4))


RESIZERS = {"nearest": resize_nearest, "area": resize_area}


def upsample_nearest_2x(x: jax.Array) -> jax.Array:
  """[B, H, W, C] -> [B, 2H, 2W, C], as nn.Upsample(scale_factor=2)."""
  b, h, w, c = x.shape
  x = jnp.broadcast_to(x[:, :, None, :, None, :], (b, h, 2, w, 2, c))
  return x.reshape(b, 2 * h, 2 * w, c)


def avg_pool_3x3_s2(x: jax.Array) -> jax.Array:
  """3x3 average pool, stride 2, pad 1, padding excluded from the count.

  Matches ``F.avg_pool2d(x, 3, stride=2, padding=1, count_include_pad=False)``
  on [B, H, W, C] (pix2pixHD's downsampling between discriminator scales).
  """
  window, strides = (1, 3, 3, 1), (1, 2, 2, 1)
  pad = ((0, 0), (1, 1), (1, 1), (0, 0))
  total = jax.lax.reduce_window(x, 0.0, jax.lax.add, window, strides, pad)
  ones = jnp.ones((1, x.shape[1], x.shape[2], 1), x.dtype)
  count = jax.lax.reduce_window(ones, 0.0, jax.lax.add, window, strides, pad)
  return total / count


def leaky_relu(x: jax.Array, slope: float = 0.2) -> jax.Array:
  """Leaky ReLU with PyTorch's GAN slope 0.2 by default."""
  return jnp.where(x >= 0, x, slope * x)
