"""Tests for the audio-conditioned multi-scale temporal discriminator."""

from absl import logging
from clu import parameter_overview
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from a2v_jax.models import temporal

AUDIO_DIM = 6


def make_inputs(batch: int, length: int, size: int, seed: int = 0):
  k1, k2 = jax.random.split(jax.random.PRNGKey(seed))
  frames = jax.random.uniform(k1, (batch, length, size, size, 3), minval=-1,
                              maxval=1)
  audio = jax.random.normal(k2, (batch, length, AUDIO_DIM))
  return frames, audio


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
  model = temporal.MultiScaleTemporalDiscriminator(mode=mode, ndf=2,
                                                   audio_channels=2)
  frames, audio = make_inputs(1, 4, size)
  variables = model.init(jax.random.PRNGKey(0), frames, audio)
  outputs = jax.jit(model.apply)(variables, frames, audio)
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
  variables = model.init(jax.random.PRNGKey(0), frames, audio)

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


@pytest.mark.parametrize("mode", ["3d", "stack"])
def test_batch_of_one_equals_item_in_batch_of_four(mode):
  model = temporal.MultiScaleTemporalDiscriminator(mode=mode, ndf=4,
                                                   audio_channels=4)
  frames, audio = make_inputs(4, 4, 32)
  variables = model.init(jax.random.PRNGKey(0), frames, audio)
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
    model.init(jax.random.PRNGKey(0), frames, audio)
  with pytest.raises(temporal.TemporalConfigError, match="audio_features"):
    model.init(jax.random.PRNGKey(0), frames, audio[:, :1])
