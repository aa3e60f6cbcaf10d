"""Tests for the conv lowerings of a2v_jax.models.layers and a2v_jax.xla_cpu."""

import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from a2v_jax import xla_cpu
from a2v_jax.models import conv_lowering
from a2v_jax.models import layers
from a2v_jax.models import patchgan
from a2v_jax.models import temporal

_DN = {4: ("NHWC", "HWIO", "NHWC"), 5: ("NDHWC", "DHWIO", "NDHWC")}


def _lax_conv(x, k, strides, padding):
  return jax.lax.conv_general_dilated(x, k, strides, padding,
                                      dimension_numbers=_DN[x.ndim])


# (input shape, kernel shape, strides, padding): pix2pixHD's 4x4 stride-2
# padding-2 convs on even and odd sizes, uneven strides and kernels that
# are not a multiple of the stride, padding beyond 'same', 3-D convs with
# time stride 1 and 2.
CASES = [
    ((2, 8, 8, 3), (4, 4, 3, 5), (2, 2), ((2, 2), (2, 2))),
    ((2, 9, 7, 3), (4, 4, 3, 5), (2, 2), ((2, 2), (2, 2))),
    ((1, 10, 9, 2), (3, 5, 2, 4), (3, 2), ((1, 0), (2, 1))),
    ((2, 6, 6, 3), (4, 4, 3, 2), (1, 1), ((2, 2), (2, 2))),
    ((2, 6, 6, 3), (3, 3, 3, 2), (1, 1), ((1, 1), (1, 1))),
    ((2, 5, 8, 8, 3), (3, 4, 4, 3, 4), (1, 2, 2), ((1, 1), (2, 2), (2, 2))),
    ((1, 6, 7, 6, 2), (2, 3, 3, 2, 3), (2, 1, 2), ((0, 1), (1, 1), (0, 2))),
]


@pytest.mark.parametrize("x_shape,k_shape,strides,padding", CASES)
def test_stride1_2d_lowering_equals_lax_conv(x_shape, k_shape, strides,
                                             padding):
  rng = np.random.default_rng(sum(x_shape) + sum(k_shape))
  x = jnp.asarray(rng.standard_normal(x_shape), jnp.float32)
  k = jnp.asarray(rng.standard_normal(k_shape), jnp.float32)
  expected = _lax_conv(x, k, strides, padding)
  got = conv_lowering.conv_as_stride1_2d(x, k, strides, padding)
  assert got.shape == expected.shape
  np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
  weights = jnp.asarray(rng.standard_normal(expected.shape), jnp.float32)

  def loss(x, k, conv):
    return jnp.sum(conv(x, k) * weights)

  want = jax.grad(loss, argnums=(0, 1))(
      x, k, lambda x, k: _lax_conv(x, k, strides, padding))
  have = jax.grad(loss, argnums=(0, 1))(
      x, k, lambda x, k: conv_lowering.conv_as_stride1_2d(
          x, k, strides, padding))
  for w, h in zip(want, have):
    np.testing.assert_allclose(h, w, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("net", ["patchgan", "temporal_3d", "temporal_stack"])
def test_discriminator_lowerings_share_parameters_outputs_and_gradients(net):
  rng = np.random.default_rng(3)
  frames = jnp.asarray(rng.uniform(-1, 1, (2, 4, 24, 24, 3)), jnp.float32)
  audio = jnp.asarray(rng.standard_normal((2, 4, 6)), jnp.float32)
  outs, trees, grads = {}, {}, {}
  # 'auto' is 'tuned' on the CPU (test_auto_lowering_is_tuned_on_cpu_only).
  lowerings = [l for l in conv_lowering.CONFIG_CHOICES if l != "auto"]
  for lowering in lowerings:
    if net == "patchgan":
      model = patchgan.MultiScalePatchGAN(ndf=4, n_layers=2, num_scales=2,
                                          conv_lowering=lowering)
      args = (frames[:, 0],)
    else:
      model = temporal.MultiScaleTemporalDiscriminator(
          ndf=4, n_layers=2, num_scales=2, audio_channels=2,
          mode=net.split("_")[1], conv_lowering=lowering)
      args = (frames, audio)
    variables = model.init(jax.random.PRNGKey(0), *args)
    trees[lowering] = variables

    def loss(params, model=model, variables=variables, args=args):
      out = model.apply({**variables, "params": params}, *args)
      return sum(jnp.sum(jnp.sin(3.0 * x)) for x in jax.tree.leaves(out)), out

    grads[lowering], outs[lowering] = jax.jit(jax.grad(loss, has_aux=True))(
        variables["params"])
  for lowering in lowerings[1:]:
    same = jax.tree.map(np.array_equal, trees["xla"], trees[lowering])
    assert all(jax.tree.leaves(same))
    want, have = jax.tree.leaves(outs["xla"]), jax.tree.leaves(outs[lowering])
    assert len(want) == len(have) >= 8
    for a, b in zip(want, have):
      assert a.shape == b.shape
      np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-4)
    for a, b in zip(jax.tree.leaves(grads["xla"]),
                    jax.tree.leaves(grads[lowering])):
      np.testing.assert_allclose(b, a, rtol=1e-3, atol=1e-3 * np.abs(a).max())


def test_bad_lowering_raises():
  with pytest.raises(ValueError, match="lowering='fast'.*stride1_2d"):
    layers.Conv(4, lowering="fast").init(jax.random.PRNGKey(0),
                                         jnp.zeros((1, 4, 4, 3)))


def test_configure_appends_the_flag_only_when_allowed():
  env = {"XLA_FLAGS": "--xla_force_host_platform_device_count=8"}
  assert xla_cpu.configure(env, version="0.10.2")
  assert env["XLA_FLAGS"] == ("--xla_force_host_platform_device_count=8 "
                              + xla_cpu.FLAG)
  assert not xla_cpu.configure(env, version="0.10.2")  # already set
  users = {"XLA_FLAGS": "--xla_cpu_experimental_ynn_fusion_type="}
  assert not xla_cpu.configure(users, version="0.10.2")
  assert users["XLA_FLAGS"] == "--xla_cpu_experimental_ynn_fusion_type="
  opted_out = {xla_cpu.OPT_OUT: "1"}
  assert not xla_cpu.configure(opted_out, version="0.10.2")
  assert "XLA_FLAGS" not in opted_out
  untested = {}
  assert not xla_cpu.configure(untested, version="0.99.0")
  assert "XLA_FLAGS" not in untested
  fresh = {}
  assert xla_cpu.configure(fresh, version="0.10.0")
  assert fresh["XLA_FLAGS"] == xla_cpu.FLAG


_YNN_PROBE = """
import a2v_jax, jax, jax.numpy as jnp
f = lambda k, x: jax.lax.conv_general_dilated(
    x, k, (1, 1), 'SAME', dimension_numbers=('NHWC', 'HWIO', 'NHWC')).sum()
# Big enough for XLA to pick YNNPACK (an 8x8x4 conv stays on XLA's own).
text = jax.jit(jax.grad(f)).lower(jnp.ones((3, 3, 32, 32)),
                                  jnp.ones((4, 32, 32, 32))).compile().as_text()
g = lambda a, b: jnp.dot(a, b).sum()
dot = jax.jit(jax.grad(g)).lower(jnp.ones((256, 512)),
                                 jnp.ones((512, 512))).compile().as_text()
print('ynn' in text.lower(), 'ynn' in dot.lower())
"""


@pytest.mark.skipif(not xla_cpu.jaxlib_version().startswith(
    xla_cpu.TESTED_JAXLIB), reason="jaxlib version without the flag")
def test_importing_a2v_jax_takes_convolutions_and_dots_off_ynnpack():
  def probe(**extra):
    env = {k: v for k, v in os.environ.items()
           if k not in ("XLA_FLAGS", xla_cpu.OPT_OUT)}
    out = subprocess.run([sys.executable, "-c", _YNN_PROBE], check=True,
                         capture_output=True, text=True, env={**env, **extra})
    return out.stdout.strip().splitlines()[-1]

  assert probe() == "False False"
  assert probe(**{xla_cpu.OPT_OUT: "1"}) == "True True"


# (batch, h, w, cin, cout, k, padding): every form of conv2d_tuned. 2x2 and
# 4x4 take the im2col forward and input gradient, 6x6 to 8x8 the im2col
# kernel gradient, and kernels larger than the activations the
# reversed-cotangent input gradient, with 'same' and asymmetric padding;
# larger images the XLA kernel gradient on pre-padded x (batch 1, or images
# up to 64x64), per example (batch > 1, up to 64 output channels), or as is
# (batch > 1 beyond 64x64).
_TUNED_CASES = [
    (2, 2, 2, 5, 7, 3, ((1, 1), (1, 1))),
    (2, 4, 4, 5, 7, 3, ((1, 1), (1, 1))),
    (2, 8, 6, 4, 3, 3, ((1, 1), (1, 1))),
    (1, 6, 6, 64, 64, 3, ((1, 1), (1, 1))),
    (1, 5, 7, 64, 64, 3, ((2, 0), (0, 2))),
    (2, 9, 8, 64, 80, 3, ((2, 1), (1, 0))),
    (1, 12, 10, 3, 16, 3, ((2, 0), (0, 2))),
    (1, 9, 9, 2, 40, 1, ((0, 0), (0, 0))),
    (3, 9, 10, 8, 16, 3, ((1, 1), (2, 0))),
    (2, 66, 64, 2, 3, 3, ((1, 1), (1, 1))),
]


@pytest.mark.parametrize("b,h,w,cin,cout,k,padding", _TUNED_CASES)
def test_tuned_conv_equals_autodiff_of_the_plain_conv(b, h, w, cin, cout, k,
                                                      padding):
  rng = np.random.default_rng(h * w + cin)
  x = jnp.asarray(rng.standard_normal((b, h, w, cin)), jnp.float32)
  kernel = jnp.asarray(rng.standard_normal((k, k, cin, cout)), jnp.float32)
  plain = lambda x, k: _lax_conv(x, k, (1, 1), padding)  # noqa: E731
  want_y = plain(x, kernel)
  r = jnp.asarray(rng.standard_normal(want_y.shape), jnp.float32)
  np.testing.assert_allclose(conv_lowering.conv2d_tuned(x, kernel, padding), want_y,
                             rtol=1e-5, atol=1e-4)
  grad = lambda f: jax.grad(  # noqa: E731
      lambda x, k: jnp.sum(f(x, k) * r), argnums=(0, 1))(x, kernel)
  want = grad(plain)
  have = grad(lambda x, k: conv_lowering.conv2d_tuned(x, k, padding))
  for w_, h_ in zip(want, have):
    assert w_.shape == h_.shape
    np.testing.assert_allclose(h_, w_, rtol=1e-5, atol=1e-4)


def test_tuned_instance_norm_and_bias_match_the_plain_ones():
  rng = np.random.default_rng(7)
  x = jnp.asarray(rng.standard_normal((3, 5, 6, 4)) * 3 + 2, jnp.float32)
  r = jnp.asarray(rng.standard_normal(x.shape), jnp.float32)
  np.testing.assert_allclose(conv_lowering.instance_norm_tuned(x),
                             layers.instance_norm(x), atol=1e-5)
  grad = lambda f: jax.grad(lambda x: jnp.sum(f(x) * r))(x)  # noqa: E731
  np.testing.assert_allclose(grad(conv_lowering.instance_norm_tuned),
                             grad(layers.instance_norm), atol=1e-5)
  bias = jnp.asarray(rng.standard_normal(4), jnp.float32)
  have = jax.grad(lambda y, b: jnp.sum(conv_lowering.add_bias(y, b) ** 2),
                  argnums=(0, 1))(x, bias)
  want = jax.grad(lambda y, b: jnp.sum((y + b) ** 2), argnums=(0, 1))(x, bias)
  for h_, w_ in zip(have, want):
    np.testing.assert_allclose(h_, w_, rtol=1e-5, atol=1e-4)


def test_auto_lowering_is_tuned_on_cpu_only():
  assert conv_lowering.resolve("auto") == (
      "tuned" if jax.default_backend() == "cpu" else "xla")
  assert conv_lowering.resolve("xla") == "xla"
