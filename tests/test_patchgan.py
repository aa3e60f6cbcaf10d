"""Tests for the multi-scale PatchGAN frame discriminator."""

from absl import logging
from clu import parameter_overview
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from a2v_jax.models import layers
from a2v_jax.models import patchgan



def numpy_init(model, *args, seed: int = 0, **kwargs):
  """Variables of model.init with values drawn by NumPy.

  Un-optimised XLA (the conftest's jax_disable_most_optimizations) takes
  about 0.2 s to compile each threefry draw, and a generator holds ~150 of
  them, so tests draw the same shapes on the host: kernels U(+-1/sqrt(fan_in)),
  biases U(+-0.1), spectral-norm vectors normalised Gaussians.
  """
  shapes = jax.eval_shape(
      lambda: model.init(jax.random.PRNGKey(seed), *args, **kwargs))
  rng = np.random.default_rng(seed)

  def draw(path, leaf):
    name = jax.tree_util.keystr(path[-1:])
    if "kernel" in name:
      bound = 1.0 / np.sqrt(np.prod(leaf.shape[:-1]))
      return jnp.asarray(rng.uniform(-bound, bound, leaf.shape), leaf.dtype)
    if "'u'" in name:
      u = rng.standard_normal(leaf.shape)
      return jnp.asarray(u / np.linalg.norm(u), leaf.dtype)
    return jnp.asarray(rng.uniform(-0.1, 0.1, leaf.shape), leaf.dtype)

  return jax.tree_util.tree_map_with_path(draw, shapes)


def make_images(batch: int, size: int, channels: int = 3, seed: int = 0):
  rng = np.random.default_rng(seed)
  return jnp.asarray(rng.uniform(-1, 1, (batch, size, size, channels)),
                     jnp.float32)


def test_pix2pixhd_parameter_count():
  # pix2pixHD D (ndf 64, n_layers 3, 3 input channels) with the biases of the
  # three instance-normalised convs removed: 3 * (3,136 + 131,072 + 524,288
  # + 2,097,152 + 8,193) = 8,291,523.
  model = patchgan.MultiScalePatchGAN()
  variables = jax.eval_shape(
      lambda: model.init(jax.random.PRNGKey(0), jnp.zeros((1, 128, 128, 3))))
  logging.info("%s", parameter_overview.get_parameter_overview(
      variables["params"], include_stats=False))
  assert parameter_overview.count_parameters(variables["params"]) == 8_291_523


@pytest.mark.parametrize("size,spatial", [
    (128, [[65, 33, 17, 18, 19], [33, 17, 9, 10, 11], [17, 9, 5, 6, 7]]),
    (256, [[129, 65, 33, 34, 35], [65, 33, 17, 18, 19], [33, 17, 9, 10, 11]]),
])
def test_output_nesting_and_shapes(size, spatial):
  # Shapes by abstract evaluation; the jitted runs are in the tests below.
  model = patchgan.MultiScalePatchGAN(ndf=2)
  x = jax.ShapeDtypeStruct((2, size, size, 6), jnp.float32)
  variables = jax.eval_shape(model.init, jax.random.PRNGKey(0), x)
  outputs = jax.eval_shape(model.apply, variables, x)
  assert len(outputs) == 3
  for scale_out, scale_sizes in zip(outputs, spatial):
    assert [f.shape[1] for f in scale_out] == scale_sizes
    assert [f.shape[-1] for f in scale_out] == [2, 4, 8, 16, 1]
    assert all(f.shape[0] == 2 and f.shape[1] == f.shape[2] for f in scale_out)


def test_gradients_finite_with_spectral_norm():
  model = patchgan.MultiScalePatchGAN(ndf=4, spectral_norm=True)
  x = make_images(2, 64)
  variables = numpy_init(model, x)

  def loss(params, x):
    outs, _ = model.apply({"params": params,
                           "batch_stats": variables["batch_stats"]},
                          x, update_stats=True, mutable=["batch_stats"])
    return sum(jnp.mean(o[-1]) for o in outs)

  g_params, g_x = jax.jit(jax.grad(loss, argnums=(0, 1)))(variables["params"], x)
  for g in jax.tree.leaves(g_params) + [g_x]:
    assert bool(jnp.all(jnp.isfinite(g)))
  assert float(jnp.sum(jnp.abs(g_x))) > 0


def test_batch_of_one_equals_item_in_batch_of_four():
  model = patchgan.MultiScalePatchGAN(ndf=4, spectral_norm=True)
  x = make_images(4, 64)
  variables = numpy_init(model, x)
  apply = jax.jit(model.apply)
  full = apply(variables, x)
  single = apply(variables, x[1:2])
  for f_scale, s_scale in zip(full, single):
    for f, s in zip(f_scale, s_scale):
      np.testing.assert_allclose(s[0], f[1], atol=1e-5)


def test_avg_pool_excludes_padding():
  x = jnp.arange(16.0).reshape(1, 4, 4, 1)
  y = layers.avg_pool_3x3_s2(x)[0, :, :, 0]
  # Corner window covers rows/cols {0,1}: mean(0,1,4,5) = 2.5.
  # Window at (1,1) covers rows/cols {1,2,3}: mean of those 9 values = 10.
  np.testing.assert_allclose(y, [[2.5, 4.0], [8.5, 10.0]])


def test_bad_norm_raises():
  with pytest.raises(patchgan.PatchGANConfigError, match="norm"):
    patchgan.NLayerDiscriminator(norm="batch")
