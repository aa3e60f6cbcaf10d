"""Tests for the SPADE generator and the shared layers it is built from."""

from absl import logging
from clu import parameter_overview
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from a2v_jax.models import layers
from a2v_jax.models import spade

AUDIO_DIM = 8



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


def tiny_generator(**overrides) -> spade.SPADEGenerator:
  config = dict(spade.default_config(ngf=2))
  config.update(spade_hidden=8)
  config.update(overrides)
  return spade.SPADEGenerator(**config)


def make_inputs(batch: int, size: int, seed: int = 0):
  rng = np.random.default_rng(seed)
  reference = rng.uniform(-1, 1, (batch, size, size, 3)).astype(np.float32)
  audio = rng.standard_normal((batch, AUDIO_DIM)).astype(np.float32)
  return jnp.asarray(reference), jnp.asarray(audio)


def count_params(model, *args) -> int:
  variables = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), *args))
  logging.info("%s\n%s", type(model).__name__,
               parameter_overview.get_parameter_overview(
                   variables["params"], include_stats=False))
  return parameter_overview.count_parameters(variables["params"])


@pytest.mark.parametrize("ngf,size,expected_m", [(64, 128, 92.06), (16, 64, 10.55)])
def test_nvlabs_reference_parameter_count(ngf, size, expected_m):
  model = spade.SPADEGenerator(**spade.nvlabs_reference_config(ngf))
  n = count_params(model, jnp.zeros((1, size, size, 3)), None)
  assert abs(n / 1e6 - expected_m) < 0.01, n


def test_nvlabs_reference_exact_parameter_count():
  # Hand count of NVlabs' SPADEGenerator (label_nc=3, ngf=64): 92,059,587.
  model = spade.SPADEGenerator(**spade.nvlabs_reference_config(64))
  assert count_params(model, jnp.zeros((1, 128, 128, 3)), None) == 92_059_587


@pytest.fixture(scope="module")
def tiny_batch4():
  """Tiny generator, its variables, a 128x128 batch of 4 and its jit output."""
  model = tiny_generator()
  reference, audio = make_inputs(4, 128)
  variables = numpy_init(model, reference, audio)
  out = jax.jit(model.apply)(variables, reference, audio)
  return model, variables, reference, audio, out


def test_output_shape_and_range_128(tiny_batch4):
  out = tiny_batch4[-1]
  assert out.shape == (4, 128, 128, 3) and out.dtype == jnp.float32
  assert float(jnp.max(jnp.abs(out))) <= 1.0
  assert float(jnp.std(out)) > 0


@pytest.mark.parametrize("size,mode,extra", [
    (256, "normal", {}),
    (128, "more", {}),
    (256, "most", {}),
    (128, "normal", dict(init_from="audio", audio_conditioning="concat",
                         audio_embed_dim=4, norm="layer", spectral_norm=False)),
])
def test_variant_output_shapes(size, mode, extra):
  # Shapes by abstract evaluation: traces the same code without compiling.
  model = tiny_generator(num_upsampling_layers=mode, ngf=4, **extra)
  reference = jax.ShapeDtypeStruct((2, size, size, 3), jnp.float32)
  audio = jax.ShapeDtypeStruct((2, AUDIO_DIM), jnp.float32)
  variables = jax.eval_shape(model.init, jax.random.PRNGKey(0), reference, audio)
  out = jax.eval_shape(model.apply, variables, reference, audio)
  assert out.shape == (2, size, size, 3) and out.dtype == jnp.float32
  assert ("up_4" in variables["params"]) == (mode == "most")


def test_audio_changes_output_and_missing_audio_is_rejected(tiny_batch4):
  model, variables, reference, audio, out = tiny_batch4
  shifted = jax.jit(model.apply)(variables, reference, audio + 1.0)
  assert float(jnp.max(jnp.abs(out - shifted))) > 1e-6
  with pytest.raises(spade.SPADEConfigError, match="audio_features"):
    model.apply(variables, reference, None)


def test_residual_output_starts_at_the_reference_and_learns_a_change():
  model = tiny_generator(output="residual")
  reference, audio = make_inputs(2, 64)
  reference = reference * 0.9
  variables = numpy_init(model, reference, audio)
  params = variables["params"]
  assert "bias" not in params["conv_img"]
  # The module's own init of conv_img is zero (numpy_init draws its own).
  conv = layers.Conv(3, (3, 3), kernel_init=nn.initializers.zeros)
  init = conv.init(jax.random.PRNGKey(0), reference)
  assert not np.any(np.asarray(init["params"]["kernel"]))
  zeroed = jax.tree.map(lambda x: x, variables)
  zeroed["params"]["conv_img"]["kernel"] = jnp.zeros_like(
      params["conv_img"]["kernel"])
  out = model.apply(zeroed, reference, audio)
  np.testing.assert_allclose(out, reference, atol=1e-5)
  # With a trained (non-zero) conv_img the audio moves the frame.
  a = model.apply(variables, reference, audio)
  b = model.apply(variables, reference, audio + 1.0)
  assert float(jnp.max(jnp.abs(a - b))) > 1e-6
  with pytest.raises(spade.SPADEConfigError, match="output"):
    tiny_generator(output="delta")


def test_bad_options_raise_one_line_errors():
  with pytest.raises(spade.SPADEConfigError, match="num_upsampling_layers"):
    tiny_generator(num_upsampling_layers="lots")
  with pytest.raises(spade.SPADEConfigError, match="init_from"):
    tiny_generator(init_from="audio", audio_conditioning="none")
  model = tiny_generator()
  reference, audio = make_inputs(1, 48)
  with pytest.raises(spade.SPADEConfigError, match="multiples of 32"):
    numpy_init(model, reference, audio)


def test_gradients_finite_and_spectral_state_updates():
  model = tiny_generator()
  reference, audio = make_inputs(2, 64)
  variables = numpy_init(model, reference, audio)

  def loss(params):
    out, updates = model.apply(
        {"params": params, "batch_stats": variables["batch_stats"]},
        reference, audio, update_stats=True, mutable=["batch_stats"])
    return jnp.mean(jnp.square(out)), updates

  grads, updates = jax.jit(jax.grad(loss, has_aux=True))(variables["params"])
  leaves = jax.tree.leaves(grads)
  assert all(bool(jnp.all(jnp.isfinite(g))) for g in leaves)
  assert sum(float(jnp.sum(jnp.abs(g))) for g in leaves) > 0
  old = variables["batch_stats"]["head_0"]["conv_0"]["u"]
  new = updates["batch_stats"]["head_0"]["conv_0"]["u"]
  assert old.shape == new.shape and float(jnp.max(jnp.abs(old - new))) > 0


def test_batch_of_one_equals_item_in_batch_of_four(tiny_batch4):
  model, variables, reference, audio, full = tiny_batch4
  single = jax.jit(model.apply)(variables, reference[2:3], audio[2:3])
  # Float rounding only: the 'tuned' CPU lowering's im2col matmuls block
  # their sums by batch size (measured differences up to 1.6e-5).
  np.testing.assert_allclose(single[0], full[2], atol=5e-5)


def test_sharded_jit_matches_unsharded(tiny_batch4):
  model, variables, reference, audio, expected = tiny_batch4
  devices = np.array(jax.devices())
  assert devices.size == 8, "conftest should simulate 8 CPU devices"
  mesh = Mesh(devices, ("data",))
  # 8 items, one per device: the batch of 4 and the same 4 reversed.
  reference8 = jnp.concatenate([reference, reference[::-1]])
  audio8 = jnp.concatenate([audio, audio[::-1]])
  expected8 = jnp.concatenate([expected, expected[::-1]])
  batch = NamedSharding(mesh, P("data"))
  replicated = NamedSharding(mesh, P())
  sharded_apply = jax.jit(model.apply,
                          in_shardings=(replicated, batch, batch),
                          out_shardings=batch)
  out = sharded_apply(jax.device_put(variables, replicated),
                      jax.device_put(reference8, batch),
                      jax.device_put(audio8, batch))
  assert out.sharding.is_equivalent_to(batch, out.ndim)
  # One item per device: rounding as in the batch-of-one test.
  np.testing.assert_allclose(np.asarray(out), np.asarray(expected8), atol=5e-5)


def test_spectral_norm_converges_to_largest_singular_value():
  conv = layers.Conv(6, (3, 3), spectral_norm=True)
  x = jnp.ones((1, 5, 5, 4))
  variables = numpy_init(conv, x)
  kernel = variables["params"]["kernel"]
  true_sigma = np.linalg.svd(np.asarray(kernel).reshape(-1, 6), compute_uv=False)[0]
  stats = variables["batch_stats"]
  for _ in range(30):
    _, updates = conv.apply({"params": variables["params"], "batch_stats": stats},
                            x, update_stats=True, mutable=["batch_stats"])
    stats = updates["batch_stats"]
  y = conv.apply({"params": variables["params"], "batch_stats": stats}, x)
  plain = layers.Conv(6, (3, 3)).apply({"params": variables["params"]}, x)
  bias = variables["params"]["bias"]
  np.testing.assert_allclose((plain - bias) / true_sigma, y - bias, rtol=1e-4,
                             atol=1e-6)


def test_resize_nearest_follows_pytorch_rule_and_area_averages():
  x = jnp.arange(8.0).reshape(1, 8, 1, 1) * jnp.ones((1, 8, 8, 1))
  np.testing.assert_array_equal(layers.resize_nearest(x, (4, 4))[0, :, 0, 0],
                                [0.0, 2.0, 4.0, 6.0])
  np.testing.assert_array_equal(layers.resize_nearest(x, (3, 3))[0, :, 0, 0],
                                [0.0, 2.0, 5.0])
  np.testing.assert_array_equal(layers.resize_area(x, (4, 4))[0, :, 0, 0],
                                [0.5, 2.5, 4.5, 6.5])
  up = layers.upsample_nearest_2x(x[:, :2, :2])
  np.testing.assert_array_equal(up[0, :, 0, 0], [0.0, 0.0, 1.0, 1.0])


def test_instance_norm_matches_definition():
  x = np.random.default_rng(3).normal(1.0, 3.0, (2, 5, 7, 3)).astype(np.float32)
  y = layers.instance_norm(x)
  mean = np.asarray(x).mean(axis=(1, 2), keepdims=True)
  var = np.asarray(x).var(axis=(1, 2), keepdims=True)
  np.testing.assert_allclose(y, (np.asarray(x) - mean) / np.sqrt(var + 1e-5),
                             atol=1e-4)


# Each alternative to plain XLA convs, as generator / SPADE keyword args.
_CONV_FORMS = {
    "xla": dict(conv_lowering="xla"),
    "tuned": dict(conv_lowering="tuned"),
}


@pytest.mark.parametrize("form", ["tuned"])
def test_generator_conv_forms_give_the_same_gradients(form):
  """The 'tuned' lowering reaches every conv of the
  generator and changes nothing but float rounding (checked on one residual
  block, 8x8 and 2x2 inputs: the tuned lowering's im2col forms)."""
  reference, audio = make_inputs(2, 32)
  n_custom = {}
  for name in ("xla", form):
    model = tiny_generator(**_CONV_FORMS[name])
    variables = jax.eval_shape(model.init, jax.random.PRNGKey(0), reference,
                               audio)
    jaxpr = str(jax.make_jaxpr(model.apply)(variables, reference, audio))
    n_custom[name] = jaxpr.count("custom_vjp_call")
  # 6 blocks x (2 convs + 2-3 SPADEs x 2 convs) + fc + conv_img.
  assert n_custom["xla"] == 0 and n_custom[form] >= 30, n_custom
  image = reference[:, :16, :16]
  for size in (8, 2):
    x = jnp.asarray(
        np.random.default_rng(1).standard_normal((2, size, size, 4)),
        jnp.float32)
    grads = []
    for name in ("xla", form):
      block = spade.SPADEResBlock(6, spade_kwargs=dict(hidden=8,
                                                       **_CONV_FORMS[name]))
      variables = numpy_init(block, x, image, audio)

      def loss(params, x, block=block, variables=variables):
        out = block.apply({**variables, "params": params}, x, image, audio)
        return jnp.mean(out * jnp.linspace(-1, 1, out.size).reshape(out.shape))

      grads.append(jax.jit(jax.value_and_grad(loss, argnums=(0, 1)))(
          variables["params"], x))
    np.testing.assert_allclose(grads[0][0], grads[1][0], rtol=1e-5)
    flat = [jax.tree_util.tree_flatten_with_path(g)[0] for _, g in grads]
    assert len(flat[0]) == len(flat[1]) >= 10
    # conv_0's bias feeds an instance norm, so its exact gradient is 0 and
    # both forms give rounding noise (~1e-8): each leaf's tolerance has a
    # floor at 1e-2 of the largest gradient.
    top = max(float(np.max(np.abs(a))) for _, a in flat[0])
    for (path, a), (_, b) in zip(*flat):
      scale = max(float(np.max(np.abs(a))), 1e-2 * top)
      np.testing.assert_allclose(b, a, rtol=1e-3, atol=1e-4 * scale,
                                 err_msg=jax.tree_util.keystr(path))
