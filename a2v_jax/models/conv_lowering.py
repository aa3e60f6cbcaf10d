"""How a convolution is lowered: XLA's own, or rewrites for XLA:CPU.

Model code asks `conv(x, kernel, strides, padding, lowering)` for a
convolution; which form runs is the network's `conv_lowering`, chosen once
when the networks are built (`resolve`: 'auto' is 'tuned' on the CPU backend
and 'xla' elsewhere; a2v_jax/networks.py). Every form has the same
parameters and the same values up to float rounding (tested):

  * 'xla': lax.conv_general_dilated as is.
  * 'stride1_2d': 3-D convs (time stride 1 or more) and strided 2-D convs
    rewritten into stride-1 2-D convs (`conv_as_stride1_2d`): XLA:CPU runs
    3-D convolutions, and the kernel gradients of strided or over-padded
    ones, on slow generic loops.
  * 'tuned': stride-1 2-D convs through `conv2d_tuned` (per-shape forms of
    the forward and of both gradients), the other convs as 'stride1_2d',
    bias gradients as dots (`add_bias`) and, in SPADE, `instance_norm_tuned`.

The thresholds and the forms were measured with benchmarks/conv_forms.py
and benchmarks/models.py; their figures live in docs/benchmarks.md.
"""

import functools

import jax
import jax.numpy as jnp

# What a network's conv_lowering may be once the networks are built.
LOWERINGS = ("xla", "stride1_2d", "tuned")
# What a config may name: 'auto' is resolved by `resolve`.
CONFIG_CHOICES = (*LOWERINGS, "auto")

_DIMENSION_NUMBERS = {2: ("NHWC", "HWIO", "NHWC"),
                      3: ("NDHWC", "DHWIO", "NDHWC")}


def resolve(lowering: str, backend: str | None = None) -> str:
  """A config's conv_lowering for `backend` (default: JAX's default
  backend): 'auto' -> 'tuned' on the CPU, 'xla' on GPU and TPU; the others
  as they are."""
  if lowering not in CONFIG_CHOICES:
    raise ValueError(f"conv_lowering={lowering!r} is not supported; use one "
                     f"of {list(CONFIG_CHOICES)}.")
  if lowering == "auto":
    backend = backend or jax.default_backend()
    return "tuned" if backend == "cpu" else "xla"
  return lowering


def conv(x: jax.Array, kernel: jax.Array, strides: tuple[int, ...], padding,
         lowering: str) -> jax.Array:
  """The convolution of x (NHWC or NDHWC) with kernel (HWIO or DHWIO) in the
  form `lowering` names (one of LOWERINGS). padding: explicit (low, high)
  pairs, or 'SAME'/'VALID' (always XLA's own)."""
  if isinstance(padding, str) or lowering == "xla":
    return plain_conv(x, kernel, strides, padding)
  padding = tuple(tuple(p) for p in padding)
  if lowering == "tuned" and kernel.ndim == 4 and tuple(strides) == (1, 1):
    return conv2d_tuned(x, kernel, padding)
  return conv_as_stride1_2d(x, kernel, strides, padding)


def bias_add(y: jax.Array, bias: jax.Array, lowering: str) -> jax.Array:
  """y + bias over the last axis; with 'tuned' its gradient is a dot."""
  return add_bias(y, bias) if lowering == "tuned" else y + bias


def plain_conv(x: jax.Array, kernel: jax.Array, strides,
               padding) -> jax.Array:
  """XLA's own convolution: x NHWC or NDHWC, kernel HWIO or DHWIO."""
  nd = kernel.ndim - 2
  return jax.lax.conv_general_dilated(
      x, kernel, window_strides=strides, padding=padding,
      dimension_numbers=_DIMENSION_NUMBERS[nd])


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
  which for a large kernel costs more than the convolution. Reversing g and
  the result instead
  leaves only the transpose: dx = rev(conv(rev(g), W^T)), padded
  (k - 1 - high, k - 1 - low) so that dx has x's size.
  """
  kh, kw = kernel.shape[:2]
  (plh, phh), (plw, phw) = padding
  oh, ow = g.shape[1], g.shape[2]
  pad = ((kh - 1 - phh, in_hw[0] - oh + phh), (kw - 1 - phw,
                                                in_hw[1] - ow + phw))
  dx = plain_conv(g[:, ::-1, ::-1], jnp.swapaxes(kernel, 2, 3), (1, 1), pad)
  return dx[:, ::-1, ::-1]


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def conv2d_tuned(x: jax.Array, kernel: jax.Array,
                 padding: tuple[tuple[int, int], tuple[int, int]]) -> jax.Array:
  """Stride-1 NHWC conv whose forward and gradients take per-shape forms.

  The forms were chosen per shape on XLA:CPU (benchmarks/conv_forms.py):
    * images of at most _IM2COL_FORWARD_PIXELS pixels: forward and input
      gradient as im2col matmuls;
    * at most _IM2COL_KERNEL_GRAD_PIXELS: kernel gradient as one im2col
      matmul, im2col(x)^T g, instead of XLA's transposed convolution;
    * kernels larger than the activations: input gradient with the
      cotangent reversed instead of the kernel (`_flipped_input_grad`);
    * other kernel gradients: XLA's conv on x padded beforehand, per
      example at small images and few channels (`_kernel_grad`).
  Everything else is XLA's own. Values equal autodiff of the plain conv up
  to float rounding (tested). x: [B,H,W,Cin], kernel [kh,kw,Cin,Cout] ->
  [B,H',W',Cout].
  """
  if x.shape[1] * x.shape[2] <= _IM2COL_FORWARD_PIXELS:
    return _im2col_conv(x, kernel, padding)
  return plain_conv(x, kernel, (1, 1), padding)


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
    dx = jax.vjp(lambda x_: plain_conv(x_, kernel, (1, 1), padding), x)[1](g)[0]
  return dx, _kernel_grad(x, g, kernel, padding)


def _kernel_grad(x, g, kernel, padding):
  """d conv / d kernel in the fastest measured form for its shape.

  Images of at most _IM2COL_KERNEL_GRAD_PIXELS: one im2col matmul,
  im2col(x)^T g. Larger ones go through XLA's convolution, whose (Eigen's)
  kernel-gradient conv leaves its fast path when the forward conv pads, so
  x is padded beforehand for a VALID conv: that wins at batch 1 at every
  size and at images of at most _PREPAD_KERNEL_GRAD_PIXELS, and loses a few
  per cent beyond that at batch > 1. At those small images and at most
  _SPLIT_KERNEL_GRAD_CHANNELS output channels, a sum of per-example kernel
  gradients beats one batched one.
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
    return jax.vjp(lambda k_: plain_conv(x, k_, (1, 1), padding),
                   kernel)[1](g)[0]
  xp = jnp.pad(x, ((0, 0), *padding, (0, 0)))
  valid = ((0, 0), (0, 0))
  per_example = batch > 1 and cout <= _SPLIT_KERNEL_GRAD_CHANNELS
  groups = ([slice(i, i + 1) for i in range(batch)] if per_example
            else [slice(None)])
  return sum(jax.vjp(lambda k_, xi=xp[s]: plain_conv(xi, k_, (1, 1), valid),
                     kernel)[1](g[s])[0] for s in groups)


conv2d_tuned.defvjp(_conv2d_tuned_fwd, _conv2d_tuned_bwd)


def _sum_over_pixels(x3: jax.Array) -> jax.Array:
  """[B, N, C] -> [B, C] sums over N as a batched ones @ x dot: XLA:CPU's
  reduce is several times slower (see `_sum_leading`)."""
  return jax.lax.dot_general(
      jnp.ones(x3.shape[:2], x3.dtype), x3, (((1,), (1,)), ((0,), (0,))),
      precision=jax.lax.Precision.HIGHEST)


def _sum_leading(g: jax.Array) -> jax.Array:
  """Sum of [..., C] over every axis but the last, as a matrix-vector dot
  (ones @ g[N, C]): XLA:CPU's reduce over the leading axes is several times
  slower."""
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


def conv_as_stride1_2d(x: jax.Array, kernel: jax.Array, strides,
                       padding) -> jax.Array:
  """A 2-D or 3-D conv computed through stride-1 2-D convs only.

  XLA:CPU runs 3-D convolutions, and the kernel gradients of strided or
  over-padded ones, on slow generic loops. Here a 3-D conv becomes a 2-D
  conv of stacked time taps, a strided conv a stride-1 conv of the
  space-to-depth input, and padding beyond 'same' an explicit pad before a
  VALID conv.
  Same parameters and values (up to float rounding) as `plain_conv`. padding:
  explicit (low, high) pairs; x NHWC or NDHWC, kernel HWIO or DHWIO.
  """

  def conv2d(x2, k2, strides2, padding2):
    padding2 = tuple(tuple(p) for p in padding2)
    if tuple(strides2) != (1, 1):
      return _space_to_depth_conv(x2, k2, tuple(strides2), padding2, conv1)
    return conv1(x2, k2, padding2)

  def conv1(x2, k2, padding2):
    # Padding beyond 'same' (pix2pixHD's 4x4 kernels, padding 2) sends
    # XLA:CPU's kernel gradient to a slow path; padded beforehand it is a
    # VALID conv.
    if any(lo + hi != k - 1 for (lo, hi), k in zip(padding2, k2.shape[:2])):
      x2 = jnp.pad(x2, ((0, 0), *padding2, (0, 0)))
      padding2 = ((0, 0), (0, 0))
    return plain_conv(x2, k2, (1, 1), padding2)

  if kernel.ndim == 5:
    return _conv3d_as_2d(x, kernel, strides, padding, conv2d)
  return conv2d(x, kernel, strides, padding)


@jax.custom_vjp
def instance_norm_tuned(x: jax.Array) -> jax.Array:
  """`instance_norm` (eps 1e-5) with its sums as dots, for XLA:CPU.

  Same function up to float rounding, with a hand-written gradient
  dx = rstd * (g - mean(g) - xhat * mean(g * xhat)) whose sums are dots
  too (several times faster on XLA:CPU, benchmarks/conv_forms.py).
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
