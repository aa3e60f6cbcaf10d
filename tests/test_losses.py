"""Tests of the losses on inputs whose answers are known by hand."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from a2v_jax import losses


def _multiscale(logit_values, feature_value=0.0, num_features=2,
                shape=(2, 4, 4, 1)):
  """Three scales; intermediate features hold junk the adversarial losses
  must ignore; the last element is a constant logits map."""
  return [[jnp.full(shape, feature_value + 100.0 * j) for j in
           range(num_features)] + [jnp.full(shape, v)] for v in logit_values]


def test_hinge_on_a_perfect_discriminator_is_zero():
  real = _multiscale([1.0, 2.5, 7.0])
  fake = _multiscale([-1.0, -3.0, -1.5])
  loss, parts = losses.discriminator_loss(real, fake, "hinge")
  assert float(loss) == 0.0
  assert set(parts) == {"d_real", "d_fake"}


def test_hinge_values():
  loss, parts = losses.discriminator_loss(_multiscale([0.0] * 3),
                                          _multiscale([0.0] * 3))
  np.testing.assert_allclose(loss, 2.0)
  np.testing.assert_allclose(parts["d_real"], 1.0)
  # Mean over scales of relu(1 - r): (0.5 + 1 + 0) / 3 = 0.5.
  loss, _ = losses.discriminator_loss(_multiscale([0.5, 0.0, 3.0]),
                                      _multiscale([-1.0] * 3))
  np.testing.assert_allclose(loss, 0.5, rtol=1e-6)
  g_loss, g_parts = losses.generator_adversarial_loss(
      _multiscale([1.0, 2.0, 3.0]))
  np.testing.assert_allclose(g_loss, -2.0)
  assert sorted(g_parts) == ["g_gan_scale0", "g_gan_scale1", "g_gan_scale2"]


def test_lsgan_values():
  loss, _ = losses.discriminator_loss(_multiscale([1.0] * 3),
                                      _multiscale([0.0] * 3), "lsgan")
  assert float(loss) == 0.0
  loss, _ = losses.discriminator_loss(_multiscale([3.0] * 3),
                                      _multiscale([2.0] * 3), "lsgan")
  np.testing.assert_allclose(loss, 4.0 + 4.0)
  g_loss, _ = losses.generator_adversarial_loss(_multiscale([1.0] * 3),
                                                "lsgan")
  assert float(g_loss) == 0.0


def test_vanilla_log_loss_values():
  # At logits 0, D = 1/2: D loss -log(1/2) - log(1/2), G loss -log(1/2).
  loss, parts = losses.discriminator_loss(_multiscale([0.0] * 3),
                                          _multiscale([0.0] * 3), "vanilla")
  np.testing.assert_allclose(loss, 2 * np.log(2.0), rtol=1e-6)
  np.testing.assert_allclose(parts["d_fake"], np.log(2.0), rtol=1e-6)
  g_loss, _ = losses.generator_adversarial_loss(_multiscale([0.0] * 3),
                                                "vanilla")
  np.testing.assert_allclose(g_loss, np.log(2.0), rtol=1e-6)
  # A confident, correct D is nearly lossless.
  loss, _ = losses.discriminator_loss(_multiscale([30.0] * 3),
                                      _multiscale([-30.0] * 3), "vanilla")
  assert float(loss) < 1e-12


def test_bare_logits_and_unknown_mode():
  loss, _ = losses.discriminator_loss(jnp.ones((2, 3)), -jnp.ones((2, 3)))
  assert float(loss) == 0.0
  loss, _ = losses.generator_adversarial_loss([jnp.ones(3), 3 * jnp.ones(3)])
  np.testing.assert_allclose(loss, -2.0)
  with pytest.raises(losses.LossConfigError, match="hinge"):
    losses.discriminator_loss(jnp.ones(2), jnp.ones(2), "wgan")
  with pytest.raises(losses.LossConfigError, match="scales"):
    losses.discriminator_loss(_multiscale([1.0] * 3), _multiscale([1.0] * 2))


def test_temporal_adversarial_uses_the_same_rules():
  loss, parts = losses.temporal_discriminator_loss(
      _multiscale([1.0, 1.0], shape=(2, 3, 4, 4, 1)),
      _multiscale([-1.0, -1.0], shape=(2, 3, 4, 4, 1)))
  assert float(loss) == 0.0 and set(parts) == {"dt_real", "dt_fake"}
  g_loss, g_parts = losses.temporal_generator_loss(
      _multiscale([0.5, 1.5]), "hinge")
  np.testing.assert_allclose(g_loss, -1.0)
  assert sorted(g_parts) == ["g_temporal_scale0", "g_temporal_scale1"]


def test_feature_matching_values_and_gradient():
  real = _multiscale([5.0, 5.0], feature_value=0.0)
  fake = _multiscale([-5.0, -5.0], feature_value=1.0)
  # Per scale: two layers differing by 1 -> 2, divided by num_D=2 -> 1 each;
  # the logits (differing by 10) are left out.
  loss, parts = losses.feature_matching_loss(real, fake)
  np.testing.assert_allclose(loss, 2.0)
  np.testing.assert_allclose(parts["fm_scale0"], 1.0)
  loss, _ = losses.feature_matching_loss(real, fake, include_logits=True)
  np.testing.assert_allclose(loss, 2.0 + 10.0)
  assert float(losses.feature_matching_loss(real, real)[0]) == 0.0

  # Gradient reaches the fake features only.
  def f(r, g):
    return losses.feature_matching_loss([[r, r]], [[g, g]])[0]
  gr, gg = jax.grad(f, argnums=(0, 1))(jnp.zeros(4), jnp.ones(4))
  assert float(jnp.abs(gr).sum()) == 0.0
  np.testing.assert_allclose(gg, 0.25)


def test_perceptual_loss_weights():
  real = [jnp.zeros((1, 8, 8, 4)), jnp.zeros((1, 4, 4, 8))]
  fake = [jnp.ones((1, 8, 8, 4)), 2 * jnp.ones((1, 4, 4, 8))]
  loss, parts = losses.perceptual_loss(real, fake, weights=(0.5, 1.0),
                                       layer_names=("relu1_2", "relu2_2"))
  np.testing.assert_allclose(loss, 0.5 + 2.0)
  np.testing.assert_allclose(parts["vgg_relu2_2"], 2.0)
  five = [jnp.ones(3)] * 5
  loss, _ = losses.perceptual_loss([jnp.zeros(3)] * 5, five)
  np.testing.assert_allclose(loss, 1 / 32 + 1 / 16 + 1 / 8 + 1 / 4 + 1)
  with pytest.raises(losses.LossConfigError, match="weights"):
    losses.perceptual_loss(real, fake, weights=(1.0,))


def test_lower_half_l1_ignores_the_upper_half():
  real = jnp.zeros((2, 3, 8, 8, 3))
  fake = real.at[..., :4, :, :].set(5.0).at[..., 4:, :, :].set(-0.5)
  loss, parts = losses.lower_half_l1_loss(real, fake)
  np.testing.assert_allclose(loss, 0.5)
  assert set(parts) == {"recon_lower_l1"}
  with pytest.raises(losses.LossConfigError):
    losses.lower_half_l1_loss(real, fake[0])


def test_mouth_l1_sees_only_the_mouth_box():
  real = jnp.zeros((2, 3, 20, 10, 3))
  # Box rows 10..15, columns 2..8 of a 20x10 frame.
  box = (0.5, 0.75, 0.2, 0.8)
  fake = jnp.full_like(real, 7.0).at[..., 10:15, 2:8, :].set(-0.25)
  loss, parts = losses.mouth_l1_loss(real, fake, box)
  np.testing.assert_allclose(loss, 0.25)
  assert set(parts) == {"recon_mouth_l1"}
  with pytest.raises(losses.LossConfigError, match="mouth box"):
    losses.mouth_l1_loss(real, fake, (0.8, 0.8, 0.2, 0.8))


def test_mouth_box_holds_the_template_lips_with_room():
  from a2v_jax.face import align  # pylint: disable=g-import-not-at-top
  y0, y1, x0, x1 = align.MOUTH_BOX
  lips = align.CANONICAL_TEMPLATE[48:68]
  assert (lips[:, 0] > x0 + 0.05).all() and (lips[:, 0] < x1 - 0.05).all()
  assert (lips[:, 1] > y0 + 0.05).all() and (lips[:, 1] < y1 - 0.08).all()
  # Below the box's lower edge lies the chin, not the crop border.
  assert y1 < align.CANONICAL_TEMPLATE[8, 1]


def test_contrastive_at_distance_zero_and_beyond_the_margin():
  v = jnp.array([[1.0, 2.0, 3.0]])
  genuine, _ = losses.contrastive_loss(v, v, jnp.array([1.0]), margin=2.0)
  false, parts = losses.contrastive_loss(v, v, jnp.array([0.0]), margin=2.0)
  np.testing.assert_allclose(genuine, 0.0, atol=1e-10)
  np.testing.assert_allclose(false, 2.0 ** 2 / 2, rtol=1e-5)
  np.testing.assert_allclose(parts["sync_false"], 2.0)

  a = v + jnp.array([[3.0, 4.0, 0.0]])  # distance 5 > margin 2
  false, _ = losses.contrastive_loss(v, a, jnp.array([0.0]), margin=2.0)
  genuine, _ = losses.contrastive_loss(v, a, jnp.array([1.0]), margin=2.0)
  assert float(false) == 0.0
  np.testing.assert_allclose(genuine, 25.0 / 2, rtol=1e-5)

  # Mixed batch: 1/(2N) * (25 + (2 - 1)^2), N = 2.
  vv = jnp.concatenate([v, v])
  aa = jnp.concatenate([a, v + jnp.array([[1.0, 0.0, 0.0]])])
  loss, parts = losses.contrastive_loss(vv, aa, jnp.array([1, 0]), 2.0)
  np.testing.assert_allclose(loss, 26.0 / 4, rtol=1e-5)
  np.testing.assert_allclose(parts["sync_distance"], 3.0, rtol=1e-5)
  grad = jax.grad(lambda x: losses.contrastive_loss(x, v, jnp.ones(1))[0])(v)
  assert np.all(np.isfinite(grad))


def test_blink_loss_of_known_eyes():
  open_eye = np.array([[0, 0], [1, 1], [3, 1], [4, 0], [3, -1], [1, -1]],
                      np.float32)                       # EAR 0.5
  half_open = open_eye * np.array([1, 0.5], np.float32)  # EAR 0.25
  real = jnp.asarray(np.concatenate([open_eye, open_eye])[None])
  fake = jnp.asarray(np.concatenate([open_eye, half_open])[None])
  loss, parts = losses.blink_loss(real, fake)
  # |0.5 - 0.5| for the right eye, |0.5 - 0.25| for the left: mean 0.125.
  np.testing.assert_allclose(loss, 0.125, rtol=1e-5)
  np.testing.assert_allclose(parts["ear_real"], 0.5, rtol=1e-5)
  assert float(losses.blink_loss(real, real)[0]) == 0.0


def test_ctc_loss_matches_hand_computed_paths():
  rng = np.random.default_rng(0)
  logits = rng.normal(size=(1, 2, 3)).astype(np.float32)
  p = np.exp(logits[0]) / np.exp(logits[0]).sum(-1, keepdims=True)
  # Label "1" in 2 steps: paths (1,1), (1,blank), (blank,1).
  prob = p[0, 1] * p[1, 1] + p[0, 1] * p[1, 0] + p[0, 0] * p[1, 1]
  loss, parts = losses.ctc_loss(jnp.asarray(logits), jnp.array([[1, 0]]),
                                jnp.array([[0.0, 1.0]]))
  np.testing.assert_allclose(loss, -np.log(prob), rtol=1e-5)
  np.testing.assert_allclose(parts["ctc_per_char"], -np.log(prob), rtol=1e-5)
  # Padded frames are ignored: a third step marked as padding changes nothing.
  logits3 = np.concatenate([logits, rng.normal(size=(1, 1, 3))], axis=1)
  loss3, _ = losses.ctc_loss(jnp.asarray(logits3, jnp.float32),
                             jnp.array([[1, 0]]), jnp.array([[0.0, 1.0]]),
                             logit_paddings=jnp.array([[0.0, 0.0, 1.0]]))
  np.testing.assert_allclose(loss3, loss, rtol=1e-5)
