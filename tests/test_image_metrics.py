"""PSNR/SSIM agree with scikit-image; LPIPS behaves as a distance."""
import numpy as np
import pytest
from scipy import ndimage
import skimage.data
import skimage.metrics

from a2v_jax.evaluation import image_metrics


def _astronaut(size=128):
  image = skimage.data.astronaut()[::512 // size, ::512 // size]
  return image.astype(np.float32) / 255.0


def _variants(image, rng):
  noisy = np.clip(image + rng.normal(0, 0.1, image.shape), 0, 1)
  blurred = ndimage.gaussian_filter(image, (2, 2, 0))
  return {"noisy": noisy.astype(np.float32),
          "blurred": blurred.astype(np.float32),
          "random": rng.random(image.shape, dtype=np.float32),
          "dark": (image * 0.5).astype(np.float32)}


@pytest.mark.parametrize("data_range", [1.0, 255.0])
def test_psnr_ssim_match_skimage(data_range):
  rng = np.random.default_rng(0)
  image = _astronaut()
  for name, other in _variants(image, rng).items():
    a, b = image * data_range, other * data_range
    want_ssim = skimage.metrics.structural_similarity(
        a, b, data_range=data_range, channel_axis=-1, gaussian_weights=True,
        sigma=1.5, use_sample_covariance=False)
    want_psnr = skimage.metrics.peak_signal_noise_ratio(
        a, b, data_range=data_range)
    got_ssim = float(image_metrics.ssim(a, b, data_range=data_range))
    got_psnr = float(image_metrics.psnr(a, b, data_range=data_range))
    assert got_ssim == pytest.approx(want_ssim, abs=1e-3), name
    assert got_psnr == pytest.approx(want_psnr, abs=1e-3), name


def test_batched_leading_axes_and_identity():
  rng = np.random.default_rng(1)
  frames = rng.random((2, 3, 32, 32, 3), dtype=np.float32)
  ssim = image_metrics.ssim(frames, frames)
  assert ssim.shape == (2, 3)
  np.testing.assert_allclose(ssim, 1.0, atol=1e-5)
  assert np.all(np.isinf(image_metrics.psnr(frames, frames)))
  other = np.clip(frames + 0.05, 0, 1)
  want = [skimage.metrics.structural_similarity(
      frames[1, 2], other[1, 2], data_range=1.0, channel_axis=-1,
      gaussian_weights=True, sigma=1.5, use_sample_covariance=False)]
  assert float(image_metrics.ssim(frames, other)[1, 2]) == pytest.approx(
      want[0], abs=1e-3)


def test_bad_shapes_raise_one_line_errors():
  with pytest.raises(image_metrics.ImageMetricError, match="same crop size"):
    image_metrics.psnr(np.zeros((8, 8, 3)), np.zeros((9, 8, 3)))
  with pytest.raises(image_metrics.ImageMetricError, match="at least 11x11"):
    image_metrics.ssim(np.zeros((8, 8, 3)), np.zeros((8, 8, 3)))


def test_to_unit_range():
  np.testing.assert_allclose(
      image_metrics.to_unit_range(np.array([0, 255], np.uint8)), [0.0, 1.0])
  np.testing.assert_allclose(
      image_metrics.to_unit_range(np.array([-1.0, 0.0, 1.0])), [0, 0.5, 1])


def test_lpips_vgg16_is_a_distance_that_grows_with_distortion():
  lpips = image_metrics.LPIPS()
  image = _astronaut(64) * 2 - 1
  variants = _variants((image + 1) / 2, np.random.default_rng(2))
  batch = np.stack([image, variants["noisy"] * 2 - 1,
                    variants["blurred"] * 2 - 1, variants["random"] * 2 - 1])
  ref = np.broadcast_to(image, batch.shape)
  distance = np.asarray(lpips(ref, batch))
  assert distance.shape == (4,)
  assert abs(distance[0]) < 1e-6
  assert 0.0 < distance[1] < distance[3] and 0.0 < distance[2] < distance[3]
  swapped = np.asarray(lpips(batch, ref))
  np.testing.assert_allclose(swapped, distance, atol=1e-5)
