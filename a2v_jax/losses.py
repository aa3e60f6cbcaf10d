"""Training losses of OneShotA2V (paper §4.1) plus the CTC loss.

Every loss returns `(scalar, parts)`: a float32 scalar and a dict of named
float32 scalars, so that the train step can log every term. The scalar is
unweighted; curriculum weights are applied by the train step.

Discriminator outputs follow the models' contract: a list over scales, each
a list of feature maps whose last element is the logits map
(patchgan.MultiScalePatchGAN, temporal.MultiScaleTemporalDiscriminator). A
bare array, or a list of bare arrays (one logits map per scale), is accepted
too.
"""
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import optax

from a2v_jax.models import eye
from a2v_jax.models import vgg

Parts = dict[str, jax.Array]
GAN_MODES = ("hinge", "lsgan", "vanilla")


class LossConfigError(ValueError):
  """An unknown loss mode or mismatched loss inputs."""


class NonFiniteLossError(FloatingPointError):
  """A loss term became NaN or Inf; the run stops."""


def _check_mode(mode: str) -> None:
  if mode not in GAN_MODES:
    raise LossConfigError(f"unknown GAN loss {mode!r}; use one of {GAN_MODES}")


def _as_scales(outputs: Any) -> list[list[jax.Array]]:
  """Normalises discriminator outputs to a list (scales) of lists (layers)."""
  if isinstance(outputs, (list, tuple)):
    return [list(s) if isinstance(s, (list, tuple)) else [s] for s in outputs]
  return [[outputs]]


def _safe_sqrt(x: jax.Array) -> jax.Array:
  """sqrt with value 0 and gradient 0 (not NaN) at x = 0."""
  positive = x > 0
  return jnp.where(positive, jnp.sqrt(jnp.where(positive, x, 1.0)), 0.0)


def _mean(x: jax.Array) -> jax.Array:
  return jnp.mean(x.astype(jnp.float32))


# ---------------------------------------------------------------- adversarial
def discriminator_loss(real_outputs: Any, fake_outputs: Any,
                       mode: str = "hinge", prefix: str = "d") -> tuple[
                           jax.Array, Parts]:
  """Discriminator adversarial loss, averaged over scales (as SPADE).

  Per scale, with r = D(real) and f = D(fake) logits:
    hinge:   mean(relu(1 - r)) + mean(relu(1 + f))      (SPADE default)
    lsgan:   mean((r - 1)^2) + mean(f^2)                (pix2pixHD default)
    vanilla: mean(softplus(-r)) + mean(softplus(f)), i.e. the paper's
             -log D(x) - log(1 - D(G(z))) (§4.1.1) with D = sigmoid(logits).

  Args:
    real_outputs: D outputs on real images (nested list, see module doc).
    fake_outputs: D outputs on generated images, same nesting.
    mode: 'hinge', 'lsgan' or 'vanilla'.
    prefix: name prefix of the parts.

  Returns:
    (loss, {f'{prefix}_real', f'{prefix}_fake'}) float32 scalars.
  """
  _check_mode(mode)
  real, fake = _as_scales(real_outputs), _as_scales(fake_outputs)
  if len(real) != len(fake):
    raise LossConfigError(f"{len(real)} real scales vs {len(fake)} fake "
                          "scales; pass outputs of the same discriminator")
  real_terms, fake_terms = [], []
  for r_scale, f_scale in zip(real, fake):
    r = r_scale[-1].astype(jnp.float32)
    f = f_scale[-1].astype(jnp.float32)
    if mode == "hinge":
      real_terms.append(_mean(jax.nn.relu(1.0 - r)))
      fake_terms.append(_mean(jax.nn.relu(1.0 + f)))
    elif mode == "lsgan":
      real_terms.append(_mean(jnp.square(r - 1.0)))
      fake_terms.append(_mean(jnp.square(f)))
    else:
      real_terms.append(_mean(jax.nn.softplus(-r)))
      fake_terms.append(_mean(jax.nn.softplus(f)))
  loss_real = sum(real_terms) / len(real_terms)
  loss_fake = sum(fake_terms) / len(fake_terms)
  return loss_real + loss_fake, {f"{prefix}_real": loss_real,
                                 f"{prefix}_fake": loss_fake}


def generator_adversarial_loss(fake_outputs: Any, mode: str = "hinge",
                               prefix: str = "g_gan") -> tuple[jax.Array,
                                                               Parts]:
  """Generator adversarial loss, averaged over scales.

  Per scale with f = D(G(z)) logits:
    hinge: -mean(f); lsgan: mean((f - 1)^2);
    vanilla: mean(softplus(-f)) = -log D(G(z)), the non-saturating form of
    the paper's log loss.

  Returns:
    (loss, {f'{prefix}_scale{i}'}) float32 scalars.
  """
  _check_mode(mode)
  parts = {}
  for i, scale in enumerate(_as_scales(fake_outputs)):
    f = scale[-1].astype(jnp.float32)
    if mode == "hinge":
      parts[f"{prefix}_scale{i}"] = -_mean(f)
    elif mode == "lsgan":
      parts[f"{prefix}_scale{i}"] = _mean(jnp.square(f - 1.0))
    else:
      parts[f"{prefix}_scale{i}"] = _mean(jax.nn.softplus(-f))
  loss = sum(parts.values()) / len(parts)
  return loss, parts


def temporal_discriminator_loss(real_outputs: Any, fake_outputs: Any,
                                mode: str = "hinge") -> tuple[jax.Array,
                                                              Parts]:
  """`discriminator_loss` on the temporal discriminator's outputs (§3.2.2).

  Parts are named 'dt_real', 'dt_fake'.
  """
  return discriminator_loss(real_outputs, fake_outputs, mode, prefix="dt")


def temporal_generator_loss(fake_outputs: Any, mode: str = "hinge"
                            ) -> tuple[jax.Array, Parts]:
  """`generator_adversarial_loss` on the temporal discriminator's outputs.

  Parts are named 'g_temporal_scale{i}'.
  """
  return generator_adversarial_loss(fake_outputs, mode, prefix="g_temporal")


# ------------------------------------------------------------ feature losses
def feature_matching_loss(real_outputs: Any, fake_outputs: Any,
                          include_logits: bool = False) -> tuple[jax.Array,
                                                                 Parts]:
  """pix2pixHD feature-matching loss (§4.1.3).

  sum over scales k of (1/num_D) * sum over layers i of
  mean |D_k^(i)(x) - D_k^(i)(G(z))|. The real features are constants
  (stop_gradient), as in pix2pixHD/SPADE. The logits map (last element of a
  scale) is left out unless `include_logits`, as in pix2pixHD.

  Returns:
    (loss, {'fm_scale{k}'}) float32 scalars (already divided by num_D).
  """
  real, fake = _as_scales(real_outputs), _as_scales(fake_outputs)
  if len(real) != len(fake):
    raise LossConfigError(f"{len(real)} real scales vs {len(fake)} fake "
                          "scales; pass outputs of the same discriminator")
  num_d = len(real)
  parts = {}
  for k, (r_scale, f_scale) in enumerate(zip(real, fake)):
    stop = len(r_scale) if include_logits else len(r_scale) - 1
    total = jnp.zeros((), jnp.float32)
    for r, f in zip(r_scale[:stop], f_scale[:stop]):
      total += _mean(jnp.abs(jax.lax.stop_gradient(r) - f))
    parts[f"fm_scale{k}"] = total / num_d
  return sum(parts.values()), parts


def perceptual_loss(real_features: Sequence[jax.Array],
                    fake_features: Sequence[jax.Array],
                    weights: Sequence[float] | None = None,
                    layer_names: Sequence[str] | None = None
                    ) -> tuple[jax.Array, Parts]:
  """Weighted perceptual L1 over VGG layers (§4.1.4, pix2pixHD VGGLoss).

  sum_i w_i * mean |F_i(x) - F_i(G(z))|, the real features held constant.

  Args:
    real_features: list of [B, h, w, C] VGG activations of the real image.
    fake_features: same for the generated image.
    weights: one weight per layer (default vgg.DEFAULT_LAYER_WEIGHTS when 5
      layers, else all 1).
    layer_names: names for the parts (default 'layer{i}').

  Returns:
    (loss, {'vgg_<layer>'}) float32 scalars, each already weighted.
  """
  n = len(real_features)
  if len(fake_features) != n:
    raise LossConfigError(f"{n} real vs {len(fake_features)} fake VGG layers")
  if weights is None:
    weights = vgg.DEFAULT_LAYER_WEIGHTS if n == 5 else (1.0,) * n
  if len(weights) != n:
    raise LossConfigError(f"{len(weights)} perceptual weights for {n} layers")
  names = layer_names or [f"layer{i}" for i in range(n)]
  parts = {}
  for name, w, r, f in zip(names, weights, real_features, fake_features):
    parts[f"vgg_{name}"] = w * _mean(jnp.abs(jax.lax.stop_gradient(r) - f))
  return sum(parts.values()), parts


def lower_half_l1_loss(real: jax.Array, fake: jax.Array) -> tuple[jax.Array,
                                                                  Parts]:
  """L1 reconstruction on the lower half of the frame (§4.1.2).

  The paper sums |R_n - G_n| over rows [H/2, H); we take the mean so the
  weight does not depend on the resolution.

  Args:
    real, fake: [..., H, W, C] float32 in [-1, 1].

  Returns:
    (loss, {'recon_lower_l1'}).
  """
  if real.shape != fake.shape:
    raise LossConfigError(f"real {real.shape} and fake {fake.shape} differ")
  h = real.shape[-3]
  loss = _mean(jnp.abs(real[..., h // 2:, :, :] - fake[..., h // 2:, :, :]))
  return loss, {"recon_lower_l1": loss}


def mouth_l1_loss(real: jax.Array, fake: jax.Array,
                  box: tuple[float, float, float, float]
                  ) -> tuple[jax.Array, Parts]:
  """L1 reconstruction inside the mouth's box of the aligned crop.

  Not in the paper: on real faces the mouth is a few percent of the frame,
  so the lower-half L1 and the perceptual loss leave its motion to a weak
  gradient (a generator trained on them alone keeps the mouth still). This
  term weighs the mouth's pixels on their own (a mean over the box).

  Args:
    real, fake: [..., H, W, C] float32 in [-1, 1].
    box: (y0, y1, x0, x1) as fractions of H and W (face.align.MOUTH_BOX).

  Returns:
    (loss, {'recon_mouth_l1'}).
  """
  if real.shape != fake.shape:
    raise LossConfigError(f"real {real.shape} and fake {fake.shape} differ")
  h, w = real.shape[-3], real.shape[-2]
  y0, y1 = int(round(box[0] * h)), int(round(box[1] * h))
  x0, x1 = int(round(box[2] * w)), int(round(box[3] * w))
  if not (0 <= y0 < y1 <= h and 0 <= x0 < x1 <= w):
    raise LossConfigError(f"mouth box {box} is empty or outside the frame")
  loss = _mean(jnp.abs(real[..., y0:y1, x0:x1, :] - fake[..., y0:y1, x0:x1, :]))
  return loss, {"recon_mouth_l1": loss}


# ---------------------------------------------------------------- sync, eyes
def contrastive_loss(video_emb: jax.Array, audio_emb: jax.Array,
                     labels: jax.Array, margin: float = 1.0
                     ) -> tuple[jax.Array, Parts]:
  """SyncNet contrastive loss (§4.1.5, Chung & Zisserman 2016).

  L = 1/(2N) sum_n y_n d_n^2 + (1 - y_n) max(margin - d_n, 0)^2,
  d_n = ||v_n - a_n||_2.

  Args:
    video_emb, audio_emb: [N, E] float32 fc7 embeddings.
    labels: [N] 1 for genuine (in-sync) pairs, 0 for false (shifted) pairs.
    margin: margin for false pairs.

  Returns:
    (loss, {'sync_genuine', 'sync_false', 'sync_distance'}): the two halves
    of the sum (each divided by 2N) and the mean distance.
  """
  if video_emb.shape != audio_emb.shape:
    raise LossConfigError(f"video {video_emb.shape} and audio "
                          f"{audio_emb.shape} embeddings differ")
  y = jnp.asarray(labels, jnp.float32).reshape(video_emb.shape[:1])
  d_sq = jnp.sum(jnp.square(video_emb.astype(jnp.float32)
                            - audio_emb.astype(jnp.float32)), axis=-1)
  d = _safe_sqrt(d_sq)
  n2 = 2.0 * video_emb.shape[0]
  genuine = jnp.sum(y * d_sq) / n2
  false = jnp.sum((1.0 - y) * jnp.square(jax.nn.relu(margin - d))) / n2
  return genuine + false, {"sync_genuine": genuine, "sync_false": false,
                           "sync_distance": jnp.mean(d)}


def blink_loss(real_eye_points: jax.Array, fake_eye_points: jax.Array
               ) -> tuple[jax.Array, Parts]:
  """L1 between the EAR of real and generated frames (§4.1.6).

  Args:
    real_eye_points: [..., 12, 2] eye landmarks (68-point indices 36..47)
      of the real frames, from EyeLandmarkNet or the dataset landmarks
      (held constant).
    fake_eye_points: [..., 12, 2] EyeLandmarkNet output on generated frames.

  Returns:
    (loss, {'blink_ear_l1', 'ear_real', 'ear_fake'}): mean |m_r - m_g| over
    both eyes and all frames, and the mean EARs.
  """
  ear_real = jax.lax.stop_gradient(eye.ear_from_eye_landmarks(real_eye_points))
  ear_fake = eye.ear_from_eye_landmarks(fake_eye_points)
  loss = _mean(jnp.abs(ear_real - ear_fake))
  return loss, {"blink_ear_l1": loss, "ear_real": _mean(ear_real),
                "ear_fake": _mean(ear_fake)}


# ----------------------------------------------------------------------- CTC
def ctc_loss(ctc_logits: jax.Array, labels: jax.Array,
             label_paddings: jax.Array,
             logit_paddings: jax.Array | None = None,
             blank_id: int = 0) -> tuple[jax.Array, Parts]:
  """CTC loss of the DeepSpeech2 head (optax.ctc_loss), mean over the batch.

  Args:
    ctc_logits: [B, T, V] float32.
    labels: [B, N] int32 character ids (models/vocab.py).
    label_paddings: [B, N] float32, 1.0 at padding.
    logit_paddings: [B, T] float32, 1.0 at padded frames (None: no padding).
    blank_id: the blank's id (vocab.BLANK_ID).

  Returns:
    (loss, {'ctc', 'ctc_per_char'}): mean negative log-likelihood per
    sequence, and that divided by the label length.
  """
  logits = ctc_logits.astype(jnp.float32)
  if logit_paddings is None:
    logit_paddings = jnp.zeros(logits.shape[:2], jnp.float32)
  per_seq = optax.ctc_loss(logits, logit_paddings, labels, label_paddings,
                           blank_id=blank_id)
  lengths = jnp.maximum(jnp.sum(1.0 - label_paddings, axis=-1), 1.0)
  loss = jnp.mean(per_seq)
  return loss, {"ctc": loss, "ctc_per_char": jnp.mean(per_seq / lengths)}
