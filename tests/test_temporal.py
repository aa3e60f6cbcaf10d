"""Tests for the audio-conditioned multi-scale temporal discriminator."""

from absl import logging
from clu import parameter_overview
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from a2v_jax.models import temporal

AUDIO_DIM = 6



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


def make_inputs(batch: int, length: int, size: int, seed: int = 0):
  rng = np.random.default_rng(seed)
  frames = rng.uniform(-1, 1, (batch, length, size, size, 3))
  audio = rng.standard_normal((batch, length, AUDIO_DIM))
  return jnp.asarray(frames, jnp.float32), jnp.asarray(audio, jnp.float32)


def test_parameter_count_3d():
  model = temporal.MultiScaleTemporalDiscriminator(ndf=64, audio_channels=16)
  frames, audio = make_inputs(1, 4, 64)
  variables = jax.eval_shape(
      lambda: model.init(jax.random.PRNGKey(0), frames, audio))
  logging.info("%s", parameter_overview.get_parameter_overview(
      variables["params"], include_stats=False))
  # audio_proj 6*16+16; per scale (3x4x4 kernels, 19 input channels):
  # 48*19*64+64 + 48*64*128 + 48*128*256 + 48*256*512 + 48*512+1.
  per_scale = 48 * 19 * 64 + 64 + 48 * (64 * 128 + 128 * 256 + 256 * 512) + 48 * 512 + 1
  expected = 6 * 16 + 16 + 2 * per_scale
  assert parameter_overview.count_parameters(variables["params"]) == expected


@pytest.mark.parametrize("size", [128, 256])
@pytest.mark.parametrize("mode", ["3d", "stack"])
def test_output_nesting_and_shapes(mode, size):
  # Shapes by abstract evaluation; the jitted runs are in the tests below.
  model = temporal.MultiScaleTemporalDiscriminator(mode=mode, ndf=2,
                                                   audio_channels=2)
  frames = jax.ShapeDtypeStruct((1, 4, size, size, 3), jnp.float32)
  audio = jax.ShapeDtypeStruct((1, 4, AUDIO_DIM), jnp.float32)
  variables = jax.eval_shape(model.init, jax.random.PRNGKey(0), frames, audio)
  outputs = jax.eval_shape(model.apply, variables, frames, audio)
  assert len(outputs) == 2
  s = size
  spatial = [s // 2 + 1, s // 4 + 1, s // 8 + 1, s // 8 + 2, s // 8 + 3]
  for scale, scale_out in enumerate(outputs):
    assert len(scale_out) == 5
    assert [f.shape[-1] for f in scale_out] == [2, 4, 8, 16, 1]
    if mode == "3d":
      assert all(f.shape[:2] == (1, 4 // 2**scale) for f in scale_out)
      assert [f.shape[2] for f in scale_out] == spatial
    else:
      assert [f.shape[1] for f in scale_out] == spatial


@pytest.mark.parametrize("mode", ["3d", "stack"])
def test_gradients_finite_and_audio_matters(mode):
  model = temporal.MultiScaleTemporalDiscriminator(mode=mode, ndf=4,
                                                   audio_channels=4,
                                                   spectral_norm=True)
  frames, audio = make_inputs(2, 4, 32)
  variables = numpy_init(model, frames, audio)

  def loss(params, frames, audio):
    outs, _ = model.apply({"params": params,
                           "batch_stats": variables["batch_stats"]},
                          frames, audio, update_stats=True,
                          mutable=["batch_stats"])
    return sum(jnp.mean(o[-1]) for o in outs)

  grads = jax.jit(jax.grad(loss, argnums=(0, 1, 2)))(
      variables["params"], frames, audio)
  leaves = jax.tree.leaves(grads)
  assert all(bool(jnp.all(jnp.isfinite(g))) for g in leaves)
  assert float(jnp.sum(jnp.abs(grads[2]))) > 0  # audio reaches the logits


def test_batch_of_one_equals_item_in_batch_of_four():
  model = temporal.MultiScaleTemporalDiscriminator(mode="3d", ndf=4,
                                                   audio_channels=4,
                                                   spectral_norm=True)
  frames, audio = make_inputs(4, 4, 32)
  variables = numpy_init(model, frames, audio)
  apply = jax.jit(model.apply)
  full = apply(variables, frames, audio)
  single = apply(variables, frames[3:], audio[3:])
  for f_scale, s_scale in zip(full, single):
    for f, s in zip(f_scale, s_scale):
      np.testing.assert_allclose(s[0], f[3], atol=1e-5)


def test_bad_inputs_raise():
  with pytest.raises(temporal.TemporalConfigError, match="mode"):
    temporal.MultiScaleTemporalDiscriminator(mode="4d")
  model = temporal.MultiScaleTemporalDiscriminator(ndf=2, num_scales=3)
  frames, audio = make_inputs(1, 2, 32)
  with pytest.raises(temporal.TemporalConfigError, match="too short"):
    numpy_init(model, frames, audio)
  with pytest.raises(temporal.TemporalConfigError, match="audio_features"):
    numpy_init(model, frames, audio[:, :1])
