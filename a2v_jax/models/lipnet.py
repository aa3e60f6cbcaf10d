"""LipNet: sentence-level lip reading (Assael et al. 2016), the WER evaluator.

Architecture as in the LipNet paper (Table/Fig. 1 and its appendix):
- 3 x STCNN: 3-D convolution over (time, height, width) + ReLU + spatial
  dropout (whole channels, p = 0.5) + spatial max-pooling 1x2x2:
  STCNN1: 32 channels, kernel 3x5x5, stride (1, 2, 2), padding (1, 2, 2);
  STCNN2: 64 channels, kernel 3x5x5, stride 1, padding (1, 2, 2);
  STCNN3: 96 channels, kernel 3x3x3, stride 1, padding (1, 1, 1).
  Time keeps its length (one output step per video frame).
- The per-frame feature maps are flattened and fed to 2 bidirectional GRU
  layers of 256 units per direction (directions concatenated).
- A linear layer maps every step to the characters plus the CTC blank.

Input: mouth crops of 50 (height) x 100 (width) in the paper, here
configurable (e.g. 24 x 48 for CPU runs); `crop_mouths` cuts them from
aligned frames with the 68-point landmarks.

Vocabulary: a2v_jax.models.vocab (blank, space, a-z, apostrophe = 29
classes), shared with DeepSpeech2; LipNet's 27 + blank is the same set
without the apostrophe, which never occurs in GRID and so is never emitted.
"""
from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from a2v_jax.models import conv_lowering as lowering_lib
from a2v_jax.models import layers
from a2v_jax.models import vocab

MOUTH_HW = (50, 100)
MOUTH_POINTS = slice(48, 68)


class LipNetInputError(ValueError):
  """Inputs LipNet cannot take."""


class LipNet(nn.Module):
  """Lip reader.

  Attributes:
    conv_features: channels of the three STCNN layers (32, 64, 96).
    gru_hidden: GRU units per direction (256).
    gru_layers: bidirectional GRU layers (2).
    vocab_size: CTC classes including the blank (29).
    dropout_rate: spatial dropout after each STCNN (0.5).
    gru_dropout_rate: dropout between/after the GRUs (0.5 in the paper's code).
    conv_lowering: how the 3-D convolutions run (conv_lowering.LOWERINGS;
      same parameters and values whichever). XLA:CPU runs 3-D convolutions
      on slow generic loops: 'stride1_2d' rewrites them into 2-D convs and
      makes the paper-size training step about 3x faster on a 2-core CPU
      (benchmarks/models.py --nets=lipnet).
  """
  conv_features: Sequence[int] = (32, 64, 96)
  gru_hidden: int = 256
  gru_layers: int = 2
  vocab_size: int = vocab.VOCAB_SIZE
  dropout_rate: float = 0.5
  gru_dropout_rate: float = 0.5
  conv_lowering: str = "xla"

  @nn.compact
  def __call__(self, mouths: jax.Array, seq_lengths: jax.Array | None = None,
               train: bool = False) -> jax.Array:
    """CTC logits per frame.

    Args:
      mouths: [B, T, H, W, 3] float32 mouth crops in [-1, 1].
      seq_lengths: optional int32 [B], valid frames per clip (the GRUs stop
        there; later logits are still computed but should be masked).
      train: enables dropout (needs a 'dropout' rng).

    Returns:
      [B, T, vocab_size] float32 logits (blank = vocab.BLANK_ID).
    """
    if mouths.ndim != 5 or mouths.shape[-1] != 3:
      raise LipNetInputError(
          f"LipNet takes [B, T, H, W, 3] mouth crops, got {mouths.shape}")
    kernels = ((3, 5, 5), (3, 5, 5), (3, 3, 3))
    strides = ((1, 2, 2), (1, 1, 1), (1, 1, 1))
    x = jnp.asarray(mouths, jnp.float32)
    for i, (features, kernel, stride) in enumerate(
        zip(self.conv_features, kernels, strides)):
      pad = tuple((k // 2, k // 2) for k in kernel)
      x = layers.Conv(features, kernel, strides=stride, padding=pad,
                      lowering=self.conv_lowering,
                      kernel_init=nn.initializers.lecun_normal(),
                      name=f"stcnn{i + 1}")(x)
      x = nn.relu(x)
      # Spatial dropout: one mask value per (example, channel).
      x = nn.Dropout(self.dropout_rate, broadcast_dims=(1, 2, 3))(
          x, deterministic=not train)
      x = nn.max_pool(x, (1, 2, 2), strides=(1, 2, 2))
    batch, steps = x.shape[:2]
    x = x.reshape(batch, steps, -1)
    for i in range(self.gru_layers):
      # The cells are created here, so their parameters live at the top
      # level as gru{i}_fwd / gru{i}_bwd (the RNN wrappers hold none).
      rnn = nn.Bidirectional(
          nn.RNN(nn.GRUCell(self.gru_hidden, name=f"gru{i + 1}_fwd")),
          nn.RNN(nn.GRUCell(self.gru_hidden, name=f"gru{i + 1}_bwd")))
      x = rnn(x, seq_lengths=seq_lengths)
      x = nn.Dropout(self.gru_dropout_rate)(x, deterministic=not train)
    return nn.Dense(self.vocab_size, name="classifier")(x)


def default_config() -> ml_collections.ConfigDict:
  """LipNet hyper-parameters (paper defaults)."""
  config = ml_collections.ConfigDict()
  config.mouth_hw = MOUTH_HW
  config.conv_features = (32, 64, 96)
  config.gru_hidden = 256
  config.gru_layers = 2
  config.dropout_rate = 0.5
  config.gru_dropout_rate = 0.5
  # 'auto': 'tuned' on the CPU backend, 'xla' on GPU and TPU.
  config.conv_lowering = "auto"
  return config


def create_model(config: ml_collections.ConfigDict | None = None) -> LipNet:
  """LipNet from a config (default_config() when None)."""
  config = config or default_config()
  return LipNet(conv_features=tuple(config.conv_features),
                gru_hidden=config.gru_hidden, gru_layers=config.gru_layers,
                dropout_rate=config.dropout_rate,
                gru_dropout_rate=config.gru_dropout_rate,
                conv_lowering=lowering_lib.resolve(
                    config.get("conv_lowering", "auto")))


def make_example_inputs(batch_size: int = 2, num_frames: int = 75,
                        mouth_hw: Sequence[int] = MOUTH_HW) -> jax.Array:
  """Zeros [B, T, H, W, 3] for init."""
  return jnp.zeros((batch_size, num_frames) + tuple(mouth_hw) + (3,),
                   jnp.float32)


def crop_mouths(frames: np.ndarray, landmarks: np.ndarray,
                out_hw: Sequence[int] = MOUTH_HW,
                width_scale: float = 1.8) -> np.ndarray:
  """Mouth-centred crops with LipNet's 1:2 aspect ratio.

  One box per clip (centre = median mouth centre over the frames, width =
  `width_scale` x the median outer-mouth width), so the crop does not jitter
  with landmark noise and the mouth moves inside a fixed window.

  Args:
    frames: [T, H, W, 3] uint8 or float frames.
    landmarks: [T, 68, 2] float (x, y) px; NaN rows are ignored.
    out_hw: (height, width) of the crops, LipNet's (50, 100) by default.
    width_scale: box width / mouth width.

  Returns:
    [T, out_h, out_w, 3], same dtype as `frames`.
  """
  import cv2  # pylint: disable=g-import-not-at-top
  frames = np.asarray(frames)
  mouth = np.asarray(landmarks, np.float64)[:, MOUTH_POINTS]
  ok = np.all(np.isfinite(mouth), axis=(1, 2))
  if frames.ndim != 4 or len(frames) != len(landmarks):
    raise LipNetInputError(
        f"frames {frames.shape} and landmarks {np.shape(landmarks)} must be "
        "[T, H, W, 3] and [T, 68, 2] for the same T")
  if not ok.any():
    raise LipNetInputError("no frame has landmarks; run the landmark detector "
                           "on the clip first")
  centre = np.median(mouth[ok].mean(axis=1), axis=0)
  width = np.median(np.ptp(mouth[ok][..., 0], axis=1)) * width_scale
  out_h, out_w = int(out_hw[0]), int(out_hw[1])
  # Affine map from the box to the output grid (handles boxes past borders).
  scale = out_w / width
  matrix = np.array([[scale, 0.0, out_w / 2 - scale * centre[0]],
                     [0.0, scale, out_h / 2 - scale * centre[1]]])
  out = [cv2.warpAffine(np.ascontiguousarray(f), matrix, (out_w, out_h),
                        flags=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR,
                        borderMode=cv2.BORDER_REPLICATE) for f in frames]
  return np.stack(out).astype(frames.dtype)
