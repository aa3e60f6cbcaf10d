"""Building blocks shared by the generator and the discriminators.

All image tensors are NHWC, float32 or the compute dtype of a module
(``dtype``: 'float32' or 'bfloat16', see `compute_dtype`; parameters stay
float32). The blocks here are deliberately few:
a 2-D/3-D convolution with optional spectral normalisation, parameter-free
instance/layer normalisation, PyTorch-compatible nearest resizing and a 3x3
average pool that ignores padding.

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
import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

# Collection that holds the spectral-norm power-iteration vectors.
SPECTRAL_COLLECTION = "batch_stats"

_DIMENSION_NUMBERS = {2: ("NHWC", "HWIO", "NHWC"), 3: ("NDHWC", "DHWIO", "NDHWC")}


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


def _conv(x: jax.Array, kernel: jax.Array, strides, padding) -> jax.Array:
  nd = kernel.ndim - 2
  return jax.lax.conv_general_dilated(
      x, kernel, window_strides=strides, padding=padding,
      dimension_numbers=_DIMENSION_NUMBERS[nd])


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def conv2d_stride1(x: jax.Array, kernel: jax.Array,
                   padding: tuple[tuple[int, int], tuple[int, int]]) -> jax.Array:
  """Stride-1 NHWC conv whose kernel gradient is k*k dense matmuls.

  dK[i, j] = sum_{b,h,w} x_pad[b, h+i, w+j, :]^T g[b, h, w, :], one dot per
  tap. It was written against YNNPACK's convolution kernel gradients, XLA:CPU's
  default in jaxlib 0.10 (3.0 s for a batch-4 128x128 128->128 conv, 12x its
  batch-1 time), which it beats 3-5x. a2v_jax now turns YNNPACK's conv
  fusion off (a2v_jax/xla_cpu.py), and against XLA's own Eigen kernel
  gradient this form is 2-4x slower (the k*k slices are transposed copies),
  so it is off by default everywhere; kept, opt-in, for backends where the
  conv kernel gradient is the slow op (Conv.matmul_kernel_grad,
  SPADEGenerator.matmul_kernel_grad). Values equal
  autodiff up to float rounding (tested). x: [B,H,W,Cin], kernel
  [kh,kw,Cin,Cout] -> [B,H',W',Cout].
  """
  return _conv(x, kernel, (1, 1), padding)


def _conv2d_stride1_fwd(x, kernel, padding):
  return _conv(x, kernel, (1, 1), padding), (x, kernel)


def _conv2d_stride1_bwd(padding, residuals, g):
  x, kernel = residuals
  _, vjp_x = jax.vjp(lambda x_: _conv(x_, kernel, (1, 1), padding), x)
  (dx,) = vjp_x(g)
  kh, kw = kernel.shape[:2]
  out_h, out_w = g.shape[1], g.shape[2]
  xp = jnp.pad(x, ((0, 0), padding[0], padding[1], (0, 0)))
  taps = [[jnp.einsum("bhwc,bhwo->co", xp[:, i:i + out_h, j:j + out_w], g,
                      precision=jax.lax.Precision.HIGHEST)
           for j in range(kw)] for i in range(kh)]
  dkernel = jnp.stack([jnp.stack(row) for row in taps])
  return dx, dkernel.astype(kernel.dtype)


conv2d_stride1.defvjp(_conv2d_stride1_fwd, _conv2d_stride1_bwd)


# Per-shape forms of stride-1 2-D convs on XLA:CPU ('tuned' lowering); the
# thresholds are image pixels (H * W) and come from benchmarks/conv_forms.py.
# At or below _IM2COL_FORWARD_PIXELS the forward and the input gradient are
# im2col matmuls (XLA:CPU's conv of a 2x2 or 4x4 image runs at a few
# GFLOP/s); at or below _IM2COL_KERNEL_GRAD_PIXELS the kernel gradient is one.
_IM2COL_FORWARD_PIXELS = 16
_IM2COL_KERNEL_GRAD_PIXELS = 64
# Kernel gradients through XLA's conv (see `_kernel_grad`): on x padded
# beforehand at batch 1 or images of at most this many pixels, and per
# example there when the conv has at most this many output channels.
_PREPAD_KERNEL_GRAD_PIXELS = 64 * 64
_SPLIT_KERNEL_GRAD_CHANNELS = 64


def _im2col(x, kh, kw, padding):
  """[B, H, W, C] -> [B, OH, OW, kh * kw * C] stacked taps (tap-major)."""
  xp = jnp.pad(x, ((0, 0), *padding, (0, 0)))
  oh, ow = xp.shape[1] - kh + 1, xp.shape[2] - kw + 1
  return jnp.concatenate([xp[:, i:i + oh, j:j + ow] for i in range(kh)
                          for j in range(kw)], axis=-1)


def _im2col_conv(x, kernel, padding):
  kh, kw, cin, cout = kernel.shape
  cols = _im2col(x, kh, kw, padding)
  y = jnp.dot(cols.reshape(-1, kh * kw * cin), kernel.reshape(-1, cout),
              precision=jax.lax.Precision.HIGHEST)
  return y.reshape(*cols.shape[:3], cout)


def _im2col_input_grad(g, kernel, padding, in_hw):
  """d conv / d x as g @ W^T then the k*k taps added back (col2im)."""
  kh, kw, cin, cout = kernel.shape
  (plh, phh), (plw, phw) = padding
  b, oh, ow, _ = g.shape
  cols = jax.lax.dot_general(
      g.reshape(-1, cout), kernel.reshape(-1, cout), (((1,), (1,)), ((), ())),
      precision=jax.lax.Precision.HIGHEST).reshape(b, oh, ow, kh, kw, cin)
  hp, wp = in_hw[0] + plh + phh, in_hw[1] + plw + phw
  dxp = sum(jnp.pad(cols[:, :, :, i, j], ((0, 0), (i, hp - oh - i),
                                          (j, wp - ow - j), (0, 0)))
            for i in range(kh) for j in range(kw))
  return dxp[:, plh:plh + in_hw[0], plw:plw + in_hw[1]]


def _flipped_input_grad(g, kernel, padding, in_hw):
  """d conv / d x with the cotangent reversed instead of the kernel.

  XLA's own input gradient reverses and transposes the kernel in one copy,
  which for a 3x3x1024x1024 kernel costs more than the convolution (52 ms
  against 15 ms for the transpose alone). Reversing g and the result instead
  leaves only the transpose: dx = rev(conv(rev(g), W^T)), padded
  (k - 1 - high, k - 1 - low) so that dx has x's size.
  """
  kh, kw = kernel.shape[:2]
  (plh, phh), (plw, phw) = padding
  oh, ow = g.shape[1], g.shape[2]
  pad = ((kh - 1 - phh, in_hw[0] - oh + phh), (kw - 1 - phw,
                                                in_hw[1] - ow + phw))
  dx = _conv(g[:, ::-1, ::-1], jnp.swapaxes(kernel, 2, 3), (1, 1), pad)
  return dx[:, ::-1, ::-1]


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def conv2d_tuned(x: jax.Array, kernel: jax.Array,
                 padding: tuple[tuple[int, int], tuple[int, int]]) -> jax.Array:
  """Stride-1 NHWC conv whose forward and gradients take per-shape forms.

  The forms were measured on XLA:CPU (benchmarks/conv_forms.py, f+b of one
  conv at batch 4, idle 2-core machine):
    * images of at most _IM2COL_FORWARD_PIXELS pixels: forward and input
      gradient as im2col matmuls (2x2, 256->256: 0.8 ms against 4.2);
    * at most _IM2COL_KERNEL_GRAD_PIXELS: kernel gradient as one im2col
      matmul, im2col(x)^T g, instead of XLA's transposed convolution;
    * kernels larger than the activations: input gradient with the
      cotangent reversed instead of the kernel (`_flipped_input_grad`;
      8x8, 1024->1024: 54 ms against 85);
    * other kernel gradients: XLA's conv on x padded beforehand, per
      example at small images and few channels (`_kernel_grad`).
  Everything else is XLA's own. Values equal autodiff of the plain conv up
  to float rounding (tested). x: [B,H,W,Cin], kernel [kh,kw,Cin,Cout] ->
  [B,H',W',Cout].
  """
  if x.shape[1] * x.shape[2] <= _IM2COL_FORWARD_PIXELS:
    return _im2col_conv(x, kernel, padding)
  return _conv(x, kernel, (1, 1), padding)


def _conv2d_tuned_fwd(x, kernel, padding):
  return conv2d_tuned(x, kernel, padding), (x, kernel)


def _conv2d_tuned_bwd(padding, residuals, g):
  x, kernel = residuals
  pixels = x.shape[1] * x.shape[2]
  in_hw = x.shape[1:3]
  if pixels <= _IM2COL_FORWARD_PIXELS:
    dx = _im2col_input_grad(g, kernel, padding, in_hw)
  elif kernel.size > g.size + x.size:
    dx = _flipped_input_grad(g, kernel, padding, in_hw)
  else:
    dx = jax.vjp(lambda x_: _conv(x_, kernel, (1, 1), padding), x)[1](g)[0]
  return dx, _kernel_grad(x, g, kernel, padding)


def _kernel_grad(x, g, kernel, padding):
  """d conv / d kernel in the fastest measured form for its shape.

  Images of at most _IM2COL_KERNEL_GRAD_PIXELS: one im2col matmul,
  im2col(x)^T g. Larger ones go through XLA's convolution, whose (Eigen's)
  kernel-gradient conv leaves its fast path when the forward conv pads: for
  a [1, 64, 64, 128] -> 64 3x3 conv it takes 12.8 ms, and 3.9 ms on x padded
  beforehand with a VALID conv. Padding first wins at batch 1 at every size
  and at images of at most _PREPAD_KERNEL_GRAD_PIXELS; beyond that, at
  batch > 1, it loses a few per cent. At those small images and at most
  _SPLIT_KERNEL_GRAD_CHANNELS output channels, a sum of per-example kernel
  gradients beats one batched one ([4, 64, 64, 128] -> 32: 9.5 ms against
  16.1).
  """
  kh, kw, cin, cout = kernel.shape
  batch, pixels = x.shape[0], x.shape[1] * x.shape[2]
  if pixels <= _IM2COL_KERNEL_GRAD_PIXELS:
    cols = _im2col(x, kh, kw, padding)
    return jax.lax.dot_general(
        cols.reshape(-1, kh * kw * cin), g.reshape(-1, cout),
        (((0,), (0,)), ((), ())),
        precision=jax.lax.Precision.HIGHEST).reshape(kernel.shape)
  if batch > 1 and pixels > _PREPAD_KERNEL_GRAD_PIXELS:
    return jax.vjp(lambda k_: _conv(x, k_, (1, 1), padding), kernel)[1](g)[0]
  xp = jnp.pad(x, ((0, 0), *padding, (0, 0)))
  valid = ((0, 0), (0, 0))
  per_example = batch > 1 and cout <= _SPLIT_KERNEL_GRAD_CHANNELS
  groups = ([slice(i, i + 1) for i in range(batch)] if per_example
            else [slice(None)])
  return sum(jax.vjp(lambda k_, xi=xp[s]: _conv(xi, k_, (1, 1), valid),
                     kernel)[1](g[s])[0] for s in groups)


conv2d_tuned.defvjp(_conv2d_tuned_fwd, _conv2d_tuned_bwd)


def _sum_over_pixels(x3: jax.Array) -> jax.Array:
  """[B, N, C] -> [B, C] sums over N as a batched ones @ x dot: XLA:CPU's
  reduce is several times slower (see `_sum_leading`)."""
  return jax.lax.dot_general(
      jnp.ones(x3.shape[:2], x3.dtype), x3, (((1,), (1,)), ((0,), (0,))),
      precision=jax.lax.Precision.HIGHEST)


def _sum_leading(g: jax.Array) -> jax.Array:
  """Sum of [..., C] over every axis but the last, as a matrix-vector dot.

  XLA:CPU's reduce of a [4, 128, 128, 256] array over its leading axes
  takes 20 ms on an idle 2-core machine; the same sum as ones @ g[N, C]
  takes 3.5 ms.
  """
  return _sum_over_pixels(g.reshape(1, -1, g.shape[-1]))[0]


@jax.custom_vjp
def add_bias(y: jax.Array, bias: jax.Array) -> jax.Array:
  """y + bias over the last axis, whose bias gradient is `_sum_leading`."""
  return y + bias


def _add_bias_fwd(y, bias):
  return y + bias, None


def _add_bias_bwd(_, g):
  return g, _sum_leading(g)


add_bias.defvjp(_add_bias_fwd, _add_bias_bwd)


# Conv.lowering values: 'xla' hands every conv to lax.conv_general_dilated;
# 'stride1_2d' rewrites 3-D convs (time stride 1 or more) and strided 2-D
# convs into stride-1 2-D convs first (see `conv_as_stride1_2d`); 'tuned'
# runs stride-1 2-D convs through `conv2d_tuned` (per-shape forms for
# XLA:CPU) and the other convs as 'stride1_2d'; 'auto' is 'tuned' when
# JAX's default backend is the CPU and 'xla' elsewhere.
CONV_LOWERINGS = ("xla", "stride1_2d", "tuned", "auto")


def resolve_lowering(lowering: str) -> str:
  """'auto' -> 'tuned' on the CPU backend, 'xla' on GPU/TPU; else as is."""
  if lowering == "auto":
    return "tuned" if jax.default_backend() == "cpu" else "xla"
  return lowering


def _space_to_depth_conv(x, kernel, strides, padding, conv2d):
  """Strided 2-D conv as a stride-1 conv of the space-to-depth input.

  With s = strides and k' = ceil(k / s), output pixel o reads padded input
  rows s*o + i, i < k; writing i = s*a + p (a < k', p < s) makes it a k'-tap
  stride-1 conv over blocks of s x s pixels stacked on channels, whose
  kernel is the original one (zero-padded to s*k' taps) regrouped the same
  way. Same values as the strided conv, up to float rounding.
  """
  (sh, sw) = strides
  kh, kw, cin, cout = kernel.shape
  (plh, phh), (plw, phw) = padding
  b, h, w, _ = x.shape
  out_h = (h + plh + phh - kh) // sh + 1
  out_w = (w + plw + phw - kw) // sw + 1
  kh2, kw2 = -(-kh // sh), -(-kw // sw)
  rows, cols = sh * (out_h + kh2 - 1), sw * (out_w + kw2 - 1)
  x = jnp.pad(x, ((0, 0), (plh, max(0, rows - h - plh)),
                  (plw, max(0, cols - w - plw)), (0, 0)))[:, :rows, :cols]
  x = x.reshape(b, rows // sh, sh, cols // sw, sw, cin)
  x = x.transpose(0, 1, 3, 2, 4, 5).reshape(b, rows // sh, cols // sw,
                                            sh * sw * cin)
  k = jnp.pad(kernel, ((0, sh * kh2 - kh), (0, sw * kw2 - kw), (0, 0), (0, 0)))
  k = k.reshape(kh2, sh, kw2, sw, cin, cout).transpose(0, 2, 1, 3, 4, 5)
  return conv2d(x, k.reshape(kh2, kw2, sh * sw * cin, cout), ((0, 0), (0, 0)))


def _conv3d_as_2d(x, kernel, strides, padding, conv2d):
  """3-D conv as a 2-D conv of the kt time taps stacked on channels.

  x [B, L, H, W, C], kernel [kt, kh, kw, C, O]: every output time step is a
  2-D conv of its kt (padded, strided) input frames concatenated on
  channels, with the kernel's time axis moved next to its input channels.
  """
  kt, kh, kw, cin, cout = kernel.shape
  st = strides[0]
  x = jnp.pad(x, ((0, 0), padding[0], (0, 0), (0, 0), (0, 0)))
  b, length = x.shape[:2]
  out_t = (length - kt) // st + 1
  stacked = jnp.concatenate(
      [x[:, dt:dt + st * (out_t - 1) + 1:st] for dt in range(kt)], axis=-1)
  stacked = stacked.reshape(b * out_t, *x.shape[2:4], kt * cin)
  k = jnp.moveaxis(kernel, 0, 2).reshape(kh, kw, kt * cin, cout)
  y = conv2d(stacked, k, tuple(strides[1:]), tuple(padding[1:]))
  return y.reshape(b, out_t, *y.shape[1:])


def conv_as_stride1_2d(x: jax.Array, kernel: jax.Array, strides, padding,
                       matmul_kernel_grad: bool = False) -> jax.Array:
  """A 2-D or 3-D conv computed through stride-1 2-D convs only.

  XLA:CPU runs 3-D convolutions, and the kernel gradients of strided or
  over-padded ones, on slow generic loops (the synthetic config's 1-scale
  temporal discriminator: 1.75 s forward+backward for 8 windows, 0.15 s
  rewritten). Here a 3-D conv becomes a 2-D conv of stacked time taps, a
  strided conv a stride-1 conv of the space-to-depth input, and padding
  beyond 'same' an explicit pad before a VALID conv.
  Same parameters and values (up to float rounding) as `_conv`. padding:
  explicit (low, high) pairs; x NHWC or NDHWC, kernel HWIO or DHWIO.
  """

  def conv2d(x2, k2, strides2, padding2):
    padding2 = tuple(tuple(p) for p in padding2)
    if tuple(strides2) != (1, 1):
      return _space_to_depth_conv(x2, k2, tuple(strides2), padding2, conv1)
    return conv1(x2, k2, padding2)

  def conv1(x2, k2, padding2):
    # Padding beyond 'same' (pix2pixHD's 4x4 kernels, padding 2) sends
    # XLA:CPU's kernel gradient to a slow path (284 ms against 18.5 for a
    # [40, 17, 17, 32] -> 64 conv); padded beforehand it is a VALID conv.
    if any(lo + hi != k - 1 for (lo, hi), k in zip(padding2, k2.shape[:2])):
      x2 = jnp.pad(x2, ((0, 0), *padding2, (0, 0)))
      padding2 = ((0, 0), (0, 0))
    if matmul_kernel_grad:
      return conv2d_stride1(x2, k2, padding2)
    return _conv(x2, k2, (1, 1), padding2)

  if kernel.ndim == 5:
    return _conv3d_as_2d(x, kernel, strides, padding, conv2d)
  return conv2d(x, kernel, strides, padding)


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
    matmul_kernel_grad: opt-in; for stride-1 2-D convs compute the kernel
      gradient as k*k matmuls (see :func:`conv2d_stride1`), not XLA's conv.
    lowering: 'xla' (lax.conv_general_dilated as is), 'stride1_2d' (3-D
      and strided convs rewritten as stride-1 2-D convs, see
      :func:`conv_as_stride1_2d`; faster on XLA:CPU), 'tuned' (stride-1
      2-D convs through :func:`conv2d_tuned`, others as 'xla') or 'auto'
      ('tuned' on the CPU backend, 'xla' elsewhere); 'tuned' sends 3-D and
      strided convs through 'stride1_2d'. Needs explicit padding;
      'SAME'/'VALID' strings always take the 'xla' path.
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
  matmul_kernel_grad: bool = False
  lowering: str = "xla"
  kernel_init: Callable[..., jax.Array] | None = None
  dtype: str = "float32"

  def __post_init__(self):
    compute_dtype(self.dtype)
    if self.lowering not in CONV_LOWERINGS:
      raise ValueError(f"Conv lowering={self.lowering!r} is not supported; "
                       f"use one of {list(CONV_LOWERINGS)}.")
    super().__post_init__()

  @nn.compact
  def __call__(self, x: jax.Array, update_stats: bool = False) -> jax.Array:
    """x: [B, *spatial, C_in] -> [B, *spatial', features], both in dtype."""
    nd = len(self.kernel_size)
    if nd not in _DIMENSION_NUMBERS or x.ndim != nd + 2:
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
    lowering = resolve_lowering(self.lowering)
    cdt = compute_dtype(self.dtype)
    params_kernel, kernel, x = kernel, kernel.astype(cdt), x.astype(cdt)
    plain_2d = nd == 2 and strides == (1, 1)
    if (lowering == "tuned" and plain_2d
        and not isinstance(padding, str) and not self.matmul_kernel_grad):
      y = conv2d_tuned(x, kernel, tuple(tuple(p) for p in padding))
    elif (lowering == "stride1_2d" or (lowering == "tuned" and not plain_2d)
          ) and not isinstance(padding, str):
      y = conv_as_stride1_2d(x, kernel, strides, padding,
                             self.matmul_kernel_grad)
    elif (self.matmul_kernel_grad and nd == 2 and strides == (1, 1)
          and not isinstance(padding, str)):
      y = conv2d_stride1(x, kernel, tuple(tuple(p) for p in padding))
    else:
      y = _conv(x, kernel, strides, padding)
    if self.spectral_norm:
      inv_sigma = 1.0 / self._estimate_sigma(params_kernel, update_stats)
      y = y * inv_sigma.astype(cdt)
    if self.use_bias:
      bias = self.param("bias", _torch_bias_init(fan_in),
                        (self.features,), jnp.float32).astype(cdt)
      y = add_bias(y, bias) if lowering == "tuned" else y + bias
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


@jax.custom_vjp
def instance_norm_tuned(x: jax.Array) -> jax.Array:
  """`instance_norm` (eps 1e-5) with its sums as dots, for XLA:CPU.

  Same function up to float rounding, with a hand-written gradient
  dx = rstd * (g - mean(g) - xhat * mean(g * xhat)) whose sums are dots
  too. Measured on an idle 2-core machine, forward+backward of a
  [4, 64, 64, 256] input: 4.2 ms against 21.2 (benchmarks/conv_forms.py).
  Reverse mode only (a custom VJP). Statistics and the gradient are
  float32 whatever x's dtype; y and dx have x's dtype.
  """
  return _instance_norm_tuned_fwd(x)[0]


def _instance_norm_tuned_fwd(x, eps=1e-5):
  b, c = x.shape[0], x.shape[-1]
  x3 = x.reshape(b, -1, c).astype(jnp.float32)
  n = x3.shape[1]
  mean = _sum_over_pixels(x3) / n
  var = jnp.maximum(_sum_over_pixels(x3 * x3) / n - mean * mean, 0.0)
  rstd = jax.lax.rsqrt(var + eps)
  y = (x3 - mean[:, None]) * rstd[:, None]
  return y.reshape(x.shape).astype(x.dtype), (x, mean, rstd)


def _instance_norm_tuned_bwd(residuals, g):
  x, mean, rstd = residuals
  b, c = x.shape[0], x.shape[-1]
  x3 = x.reshape(b, -1, c).astype(jnp.float32)
  g3 = g.reshape(b, -1, c).astype(jnp.float32)
  n = x3.shape[1]
  xhat = (x3 - mean[:, None]) * rstd[:, None]
  g_mean = _sum_over_pixels(g3) / n
  gx_mean = _sum_over_pixels(g3 * xhat) / n
  dx = (g3 - g_mean[:, None] - xhat * gx_mean[:, None]) * rstd[:, None]
  return (dx.reshape(x.shape).astype(x.dtype),)


instance_norm_tuned.defvjp(_instance_norm_tuned_fwd, _instance_norm_tuned_bwd)


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
