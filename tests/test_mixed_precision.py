"""bfloat16 compute (mixed precision) of the generator and discriminators.

Each network built with dtype='bfloat16' must hold exactly the float32
variables of its float32 twin, return float32, and agree with it to bf16
rounding: on a real photo (scikit-image's astronaut) the generator's frame
is within a few per cent, and the gradients point the same way.
"""

import cv2
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from skimage import data as skdata

from a2v_jax import config_validation
from a2v_jax.models import patchgan
from a2v_jax.models import spade
from a2v_jax.models import temporal
from a2v_jax.models import vgg
from configs import synthetic
from test_spade import numpy_init


def _photo(size: int) -> jnp.ndarray:
  img = cv2.resize(skdata.astronaut(), (size, size), interpolation=cv2.INTER_AREA)
  img = img.astype(np.float32) / 127.5 - 1.0
  return jnp.asarray(np.stack([img, img[:, ::-1]]))


def _rel(a, b) -> float:
  a, b = np.ravel(np.asarray(a, np.float64)), np.ravel(np.asarray(b, np.float64))
  return float(np.linalg.norm(a - b) / np.linalg.norm(a))


def _cosine(a, b) -> float:
  a = np.concatenate([np.ravel(x) for x in jax.tree.leaves(a)]).astype(np.float64)
  b = np.concatenate([np.ravel(x) for x in jax.tree.leaves(b)]).astype(np.float64)
  return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def _twins(cls, **attrs):
  return cls(**attrs), cls(**attrs, dtype="bfloat16")


def _check_twins(f32, bf16, *inputs):
  """Same variables, float32 outputs close, gradients aligned; returns rels."""
  variables = numpy_init(f32, *inputs)
  shapes = lambda m: jax.tree.map(
      lambda x: (x.shape, x.dtype), jax.eval_shape(m.init, jax.random.PRNGKey(0),
                                                   *inputs))
  assert shapes(f32) == shapes(bf16)

  def loss(params, model):
    out, _ = model.apply({**variables, "params": params}, *inputs,
                         update_stats=True, mutable=["batch_stats"])
    leaves = jax.tree.leaves(out)
    assert all(x.dtype == jnp.float32 for x in leaves)
    return sum(jnp.mean(jnp.square(x)) for x in leaves), out

  grad = jax.jit(jax.grad(loss, has_aux=True), static_argnums=1)
  g32, out32 = grad(variables["params"], f32)
  g16, out16 = grad(variables["params"], bf16)
  assert jax.tree.map(lambda x: x.dtype, g16) == jax.tree.map(
      lambda x: x.dtype, variables["params"])
  assert all(bool(jnp.all(jnp.isfinite(g))) for g in jax.tree.leaves(g16))
  out_rel = max(_rel(a, b) for a, b in zip(jax.tree.leaves(out32),
                                           jax.tree.leaves(out16)))
  return out_rel, _cosine(g32, g16)


def test_generator_bfloat16_matches_float32_to_rounding():
  f32, bf16 = _twins(spade.SPADEGenerator, **{**spade.default_config(4),
                                             "spade_hidden": 16})
  reference = _photo(64)
  audio = jnp.asarray(np.random.default_rng(0).standard_normal((2, 8)),
                      jnp.float32)
  out_rel, grad_cos = _check_twins(f32, bf16, reference, audio)
  # Measured: 3.1% and a cosine of 0.982 (the 2x2 and 4x4 blocks' instance
  # norms amplify bf16 rounding most); float32 twice would give ~1e-6.
  assert 1e-4 < out_rel < 0.06, out_rel
  assert grad_cos > 0.95, grad_cos


@pytest.mark.parametrize("cls,inputs", [
    (patchgan.MultiScalePatchGAN, lambda: (_photo(64),)),
    (temporal.MultiScaleTemporalDiscriminator,
     lambda: (jnp.stack([_photo(32)] * 2, axis=1),
              jnp.ones((2, 2, 6), jnp.float32))),
])
def test_discriminators_bfloat16_match_float32_to_rounding(cls, inputs):
  f32, bf16 = _twins(cls, ndf=8, n_layers=2, num_scales=2,
                     conv_lowering="stride1_2d")
  out_rel, grad_cos = _check_twins(f32, bf16, *inputs())
  # Measured: 0.7% / 0.9% and cosines of 0.9999 / 0.9998.
  assert 1e-4 < out_rel < 0.05, out_rel
  assert grad_cos > 0.99, grad_cos


def test_perceptual_vgg_bfloat16_features_match_float32():
  variables = vgg.load_lpips_vgg16_params()
  images = _photo(64)
  outs = [vgg.VGG(layers=("relu1_2", "relu2_2"), dtype=dtype).apply(
      variables, images) for dtype in ("float32", "bfloat16")]
  for a, b in zip(*outs):
    assert b.dtype == jnp.float32
    # Measured: 0.5% and 0.8% (relu1_2, relu2_2).
    assert 1e-4 < _rel(a, b) < 0.03, _rel(a, b)


def test_unsupported_dtypes_are_rejected_with_the_choices():
  with pytest.raises(spade.SPADEConfigError, match="bfloat16"):
    spade.SPADEGenerator(dtype="float16")
  with pytest.raises(patchgan.PatchGANConfigError, match="bfloat16"):
    patchgan.NLayerDiscriminator(dtype="float64")
  with pytest.raises(temporal.TemporalConfigError, match="bfloat16"):
    temporal.MultiScaleTemporalDiscriminator(dtype="half")
  config = synthetic.get_config()
  config.compute_dtype = "float16"
  with pytest.raises(config_validation.ConfigError, match="compute_dtype"):
    config_validation.validate_config(config)
