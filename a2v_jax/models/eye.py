"""Eye landmarks and the eye aspect ratio (EAR) for the blink loss (§4.1.6).

EAR after Soukupova & Cech 2016, "Real-Time Eye Blink Detection using Facial
Landmarks": with an eye's six 68-point landmarks p1..p6 (p1/p4 the corners,
p2, p3 upper lid, p5, p6 lower lid),

    EAR = (|p2 - p6| + |p3 - p5|) / (2 |p1 - p4|).

The paper's formula omits the 2 in the denominator. The factor scales every
EAR by the same constant, so the blink loss differs only by a factor of 2;
we keep Soukupova & Cech's definition so that EAR values (open ~0.3, closed
~0.05) match the literature.

EyeLandmarkNet is a small CNN that regresses the 12 eye landmarks (68-point
indices 36..47) from an aligned face, so that the EAR of a *generated* frame
is differentiable. It is trained on the dlib landmarks stored in the dataset.
"""
import math
from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

# 68-point layout (iBUG 300-W / dlib): indices 36..41 are the subject's right
# eye (image left), 42..47 the subject's left eye, each p1..p6 in order.
RIGHT_EYE = tuple(range(36, 42))
LEFT_EYE = tuple(range(42, 48))
EYE_INDICES = tuple(range(36, 48))
NUM_EYE_POINTS = len(EYE_INDICES)  # 12


def _safe_norm(v: jax.Array) -> jax.Array:
  """Euclidean norm over the last axis; value 0 and gradient 0 at v = 0."""
  sq = jnp.sum(jnp.square(v), axis=-1)
  positive = sq > 0
  return jnp.where(positive, jnp.sqrt(jnp.where(positive, sq, 1.0)), 0.0)


def eye_aspect_ratio(points: jax.Array, eps: float = 1e-6) -> jax.Array:
  """EAR of one eye: [..., 6, 2] float (p1..p6) -> [...] float32.

  EAR = (|p2 - p6| + |p3 - p5|) / (2 |p1 - p4|); `eps` guards a zero width.
  """
  p = jnp.asarray(points, jnp.float32)
  vertical = _safe_norm(p[..., 1, :] - p[..., 5, :]) + _safe_norm(
      p[..., 2, :] - p[..., 4, :])
  horizontal = _safe_norm(p[..., 0, :] - p[..., 3, :])
  return vertical / (2.0 * horizontal + eps)


def ear_from_eye_landmarks(eye_points: jax.Array) -> jax.Array:
  """EAR of both eyes from the 12 eye points (indices 36..47 in order).

  Args:
    eye_points: [..., 12, 2] float, e.g. EyeLandmarkNet's output.

  Returns:
    [..., 2] float32: (left eye = points 42..47, right eye = points 36..41),
    left/right from the subject's point of view as in dlib.
  """
  left = eye_aspect_ratio(eye_points[..., 6:12, :])
  right = eye_aspect_ratio(eye_points[..., 0:6, :])
  return jnp.stack([left, right], axis=-1)


def ear_from_landmarks68(landmarks: jax.Array) -> jax.Array:
  """EAR of both eyes from 68-point landmarks: [..., 68, 2] -> [..., 2].

  Order (left, right) as in `ear_from_eye_landmarks`.
  """
  if landmarks.shape[-2:] != (68, 2):
    raise ValueError(
        f"expected 68-point landmarks [..., 68, 2], got {landmarks.shape}")
  return ear_from_eye_landmarks(landmarks[..., 36:48, :])


def eye_targets_from_landmarks68(landmarks: jax.Array, crop_size: int
                                 ) -> jax.Array:
  """Training targets: [..., 68, 2] crop px -> [..., 12, 2] in [0, 1]."""
  return jnp.asarray(landmarks, jnp.float32)[..., 36:48, :] / float(crop_size)


def _group_norm(channels: int, name: str) -> nn.GroupNorm:
  return nn.GroupNorm(num_groups=math.gcd(8, channels), name=name)


class EyeLandmarkNet(nn.Module):
  """Small CNN: aligned face -> 12 eye landmarks in [0, 1] coordinates.

  The face is first resized to `input_size` (landmarks in [0, 1] do not
  depend on resolution), so one network serves 128 and 256 crops.

  Attributes:
    input_size: side the face is resized to before the convs.
    features: channels of the stride-2 conv stages.
    hidden: width of the fully connected layer.
  """
  input_size: int = 64
  features: Sequence[int] = (32, 64, 128, 128)
  hidden: int = 256

  @nn.compact
  def __call__(self, face: jax.Array) -> jax.Array:
    """face: [B, H, W, 3] float32 in [-1, 1] -> [B, 12, 2] float32 (x, y)."""
    if face.ndim != 4 or face.shape[-1] != 3:
      raise ValueError(
          f"EyeLandmarkNet expects faces [B, H, W, 3], got {face.shape}")
    x = face.astype(jnp.float32)
    size = (x.shape[0], self.input_size, self.input_size, 3)
    if x.shape != size:
      x = jax.image.resize(x, size, method="linear", antialias=True)
    for i, c in enumerate(self.features):
      x = nn.Conv(c, (3, 3), padding=1, name=f"conv{i}a")(x)
      x = nn.relu(_group_norm(c, f"norm{i}a")(x))
      x = nn.Conv(c, (3, 3), strides=(2, 2), padding=1, name=f"conv{i}b")(x)
      x = nn.relu(_group_norm(c, f"norm{i}b")(x))
    x = x.reshape((x.shape[0], -1))
    x = nn.relu(nn.Dense(self.hidden, name="fc")(x))
    x = nn.Dense(NUM_EYE_POINTS * 2, name="out")(x)
    return jax.nn.sigmoid(x).reshape((-1, NUM_EYE_POINTS, 2))


def default_config() -> ml_collections.ConfigDict:
  """EyeLandmarkNet default sizes."""
  return ml_collections.ConfigDict(dict(
      input_size=64, features=(32, 64, 128, 128), hidden=256))


def create_model(config: ml_collections.ConfigDict | None = None
                 ) -> EyeLandmarkNet:
  """Builds an EyeLandmarkNet from `config` (default_config() when None)."""
  config = default_config() if config is None else config
  return EyeLandmarkNet(**config.to_dict())


def make_example_inputs(batch_size: int = 2, image_size: int = 128
                        ) -> tuple[jax.Array]:
  """Random positional inputs for `EyeLandmarkNet.__call__` (benchmarks)."""
  face = np.random.default_rng(0).uniform(
      -1.0, 1.0, (batch_size, image_size, image_size, 3))
  return (jnp.asarray(face, jnp.float32),)
