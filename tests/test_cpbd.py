"""CPBD: ordering by blur, and golden values of the reference port.

The golden values were computed with the `cpbd` 1.0.7 PyPI package (the
Python port of Narvekar & Karam's MATLAB code) on the same uint8 gray images,
run outside the project: `cpbd.compute(gray)`. Its README's own example value
(0.7534 on LIVE's img4.bmp) cannot be checked because that image is not
available offline.
"""
import numpy as np
import pytest
from scipy import ndimage
import skimage.data

from a2v_jax.evaluation import cpbd


def _gray(name):
  image = getattr(skimage.data, name)()
  return cpbd.to_gray(image).astype(np.uint8) if image.ndim == 3 else image


def _blur(gray, sigma):
  return np.round(ndimage.gaussian_filter(gray.astype(np.float64), sigma)
                  ).astype(np.uint8)


@pytest.mark.parametrize("name, crop, want", [
    ("astronaut", None, 0.38266047051989543),
    ("camera", None, 0.7481657466284677),
    ("astronaut", (slice(0, 128), slice(160, 288)), 0.4782258064516129),
    ("astronaut", (slice(30, 94), slice(190, 254)), 0.6433823529411764),
])
def test_matches_reference_port(name, crop, want):
  gray = _gray(name)
  if crop is not None:
    gray = gray[crop]
  assert cpbd.compute_cpbd(gray) == pytest.approx(want, abs=1e-9)


def test_matches_reference_port_on_blurred_astronaut():
  got = cpbd.compute_cpbd(_blur(_gray("astronaut"), 1.0))
  assert got == pytest.approx(0.12678658240155566, abs=1e-9)


@pytest.mark.parametrize("style", cpbd.STYLES)
@pytest.mark.parametrize("name", ["astronaut", "chelsea", "coffee"])
def test_sharp_beats_blurred_beats_more_blurred(name, style):
  gray = _gray(name)[::2, ::2]
  values = [cpbd.compute_cpbd(g, style=style)
            for g in (gray, _blur(gray, 0.7), _blur(gray, 1.5))]
  assert values[0] > values[1] > values[2], values


def test_rgb_input_and_video_mean():
  rgb = skimage.data.astronaut()[:128, 160:288]
  frames = np.stack([rgb, rgb])
  assert cpbd.compute_cpbd_video(frames) == pytest.approx(
      cpbd.compute_cpbd(rgb))


def test_edge_width_of_a_synthetic_ramp():
  # A 4-pixel linear ramp between two flat levels: the Marziliano width is
  # the distance between the ramp's extrema (columns 10 and 14).
  row = np.concatenate([np.zeros(10), np.linspace(0, 200, 5), np.full(11, 200)])
  gray = np.tile(row, (8, 1))
  edges = np.zeros(gray.shape, bool)
  edges[4, 12] = True
  widths = cpbd.measure_edge_widths(gray, edges)
  assert widths[4, 12] == 4.0
  assert np.count_nonzero(widths) == 1
  falling = cpbd.measure_edge_widths(gray[:, ::-1], edges[:, ::-1])
  assert falling[4, 26 - 1 - 12] == 4.0


def test_flat_image_is_nan_and_bad_input_raises():
  assert np.isnan(cpbd.compute_cpbd(np.full((64, 64), 128, np.uint8)))
  with pytest.raises(cpbd.CPBDError, match="uint8"):
    cpbd.compute_cpbd(np.zeros((64, 64), np.float32))
  with pytest.raises(cpbd.CPBDError, match="unknown CPBD edge style"):
    cpbd.compute_cpbd(np.zeros((64, 64), np.uint8), style="nope")
