"""Tests of the eye aspect ratio and the EyeLandmarkNet."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from absl import logging
from clu import parameter_overview
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from a2v_jax.models import eye

# p1..p6 of an eye 4 wide and 2 tall: EAR = (2 + 2) / (2 * 4) = 0.5.
OPEN_EYE = np.array([[0, 0], [1, 1], [3, 1], [4, 0], [3, -1], [1, -1]],
                    np.float32)
# Lids together: EAR = 0.
CLOSED_EYE = np.array([[0, 0], [1, 0], [3, 0], [4, 0], [3, 0], [1, 0]],
                      np.float32)


def test_ear_of_known_eyes():
  np.testing.assert_allclose(eye.eye_aspect_ratio(OPEN_EYE), 0.5, rtol=1e-5)
  np.testing.assert_allclose(eye.eye_aspect_ratio(CLOSED_EYE), 0.0,
                             atol=1e-5)
  # Scale and translation invariant.
  np.testing.assert_allclose(eye.eye_aspect_ratio(OPEN_EYE * 7 + 3), 0.5,
                             rtol=1e-5)


def test_ear_from_landmarks68_orders_left_then_right():
  lm = np.zeros((2, 68, 2), np.float32)
  lm[:, 36:42] = OPEN_EYE + 10      # subject's right eye
  lm[:, 42:48] = CLOSED_EYE + 20    # subject's left eye
  lm[1, 36:42] = OPEN_EYE * [1, 0.5]  # half as tall: EAR 0.25
  ear = eye.ear_from_landmarks68(jnp.asarray(lm))
  assert ear.shape == (2, 2)
  np.testing.assert_allclose(ear, [[0.0, 0.5], [0.0, 0.25]], atol=1e-5)
  with pytest.raises(ValueError, match="68-point"):
    eye.ear_from_landmarks68(jnp.zeros((2, 12, 2)))


def test_ear_gradient_is_finite_for_a_closed_eye():
  grad = jax.grad(lambda p: eye.eye_aspect_ratio(p))(jnp.asarray(CLOSED_EYE))
  assert np.all(np.isfinite(grad))


def test_eye_targets_are_unit_coordinates():
  lm = np.full((3, 68, 2), 64.0, np.float32)
  targets = eye.eye_targets_from_landmarks68(lm, crop_size=128)
  assert targets.shape == (3, 12, 2)
  np.testing.assert_allclose(targets, 0.5)


@pytest.mark.parametrize("size", [128, 256])
def test_output_shapes_at_both_resolutions(size):
  model = eye.create_model()
  (face,) = eye.make_example_inputs(2, size)
  variables = jax.eval_shape(model.init, jax.random.PRNGKey(0), face)
  out = jax.eval_shape(model.apply, variables, face)
  assert out.shape == (2, 12, 2) and out.dtype == jnp.float32
  parameter_overview.log_parameter_overview(
      variables["params"], include_stats=False, msg=f"EyeLandmarkNet {size}")
  count = parameter_overview.count_parameters(variables["params"])
  logging.info("EyeLandmarkNet parameters: %d", count)
  assert count < 2_000_000


def test_batch_independence_range_and_finite_gradients():
  model = eye.EyeLandmarkNet(input_size=32, features=(8, 8), hidden=16)
  (faces,) = eye.make_example_inputs(4, 128)
  variables = jax.jit(model.init)(jax.random.PRNGKey(0), faces)
  target = jnp.full((4, 12, 2), 0.4)

  def loss_fn(params):
    out = model.apply({"params": params}, faces)
    return jnp.mean(jnp.abs(out - target)), out

  (_, out4), grads = jax.jit(jax.value_and_grad(loss_fn, has_aux=True))(
      variables["params"])
  out1 = jax.jit(model.apply)(variables, faces[1:2])
  np.testing.assert_allclose(out1[0], out4[1], rtol=1e-4, atol=1e-5)

  # Batch sharded over the 'data' axis of a mesh of all devices.
  mesh = Mesh(np.array(jax.devices()), ("data",))
  batch, replicated = NamedSharding(mesh, P("data")), NamedSharding(mesh, P())
  (faces8,) = eye.make_example_inputs(len(jax.devices()), 128)
  faces8 = faces8.at[5].set(faces[1])
  out8 = jax.jit(model.apply, in_shardings=(replicated, batch),
                 out_shardings=batch)(jax.device_put(variables, replicated),
                                      jax.device_put(faces8, batch))
  assert out8.sharding.is_equivalent_to(batch, out8.ndim)
  np.testing.assert_allclose(out8[5], out1[0], rtol=1e-4, atol=1e-5)
  assert np.all((out4 >= 0) & (out4 <= 1))
  leaves = jax.tree_util.tree_leaves(grads)
  assert all(np.all(np.isfinite(g)) for g in leaves)
  assert sum(float(jnp.abs(g).sum()) for g in leaves) > 0
