"""DeepSpeech2-style audio encoder with a CTC head (paper §3.1.1).

Architecture after Amodei et al. 2016, "Deep Speech 2" (DS2):
- 2-D convolutions over the (time, frequency) plane, 32 channels, clipped ReLU
  min(max(x, 0), 20), stride 2 in time and frequency for the first layer and 2
  in frequency only for the second. DS2 uses 11x41 then 11x21 kernels over 161
  spectrogram bins; our per-frame window is only 20 steps x 13 MFCCs, so the
  kernels are scaled down to 5x5 and 5x3 (time x freq).
- DS2 normalises with sequence-wise BatchNorm. We use LayerNorm over channels
  instead so that a batch of 1 gives the same output as the same item in a
  batch of 4 (training and inference agree).
- A stack of bidirectional GRUs; the two directions are summed, as in
  deepspeech.pytorch's BatchRNN, so the feature width equals `rnn_hidden`.
- One fully connected layer to the 29 characters (vocab.py) for CTC.

Here the convolutions run *per video frame* over that frame's 200 ms window
([20, 13]), and the recurrence runs over the T video frames (25 Hz). CTC at
25 Hz suffices for GRID (~3 s, ~30 characters vs 75 steps).

The generator takes `features` (one vector per video frame); `ctc_logits`
lets the encoder be pretrained on transcripts (losses.ctc_loss).

Input normalisation (`normalize_input`):
- 'global' (default): each MFCC standardised with fixed corpus statistics
  (audio.features.MFCC_MEAN / MFCC_STD), as Kaldi's and ESPnet's global CMVN.
  A frame's input then does not depend on how long a clip it sits in.
- 'window': per-clip CMVN over the clip's frames (DS2's utterance-level
  normalisation). The encoder is pretrained on 3 s utterances but feeds the
  generator 5-frame (200 ms-stride) windows; CMVN over 5 frames removes the
  loudness and most of the spectral contrast. Measured on the synthetic
  corpus (ridge regression onto the ground-truth mouth opening, held-out
  utterances): raw MFCC windows reach r 0.92, the same windows after 5-frame
  CMVN 0.32, and the GRU features of an encoder pretrained that way 0.52.
- 'none': the raw windows.
"""
from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from a2v_jax.audio import features as features_lib
from a2v_jax.models import vocab


def clipped_relu(x: jax.Array, ceiling: float = 20.0) -> jax.Array:
  """DS2's activation: min(max(x, 0), 20)."""
  return jnp.clip(x, 0.0, ceiling)


def normalize_cepstra(windows: jax.Array, paddings: jax.Array | None = None,
                      eps: float = 1e-5) -> jax.Array:
  """Per-example cepstral mean/variance normalisation (CMVN).

  Standardises each coefficient over the clip's frames and window steps.

  Args:
    windows: [B, T, S, F] float32.
    paddings: optional [B, T], 1.0 at padded frames (excluded from the stats).

  Returns:
    [B, T, S, F] float32.
  """
  if paddings is None:
    weight = jnp.ones(windows.shape[:2], windows.dtype)
  else:
    weight = 1.0 - paddings.astype(windows.dtype)
  w = weight[:, :, None, None]
  count = jnp.maximum(jnp.sum(w, axis=(1, 2), keepdims=True)
                      * windows.shape[2], 1.0)
  mean = jnp.sum(windows * w, axis=(1, 2), keepdims=True) / count
  var = jnp.sum(jnp.square(windows - mean) * w, axis=(1, 2),
                keepdims=True) / count
  return (windows - mean) * jax.lax.rsqrt(var + eps) * w


INPUT_NORMALIZATIONS = ("global", "window", "none")


def input_normalization(value: str | bool) -> str:
  """The normalize_input mode; bools are the older spelling."""
  if value is True or value is False:
    return "window" if value else "none"
  if value not in INPUT_NORMALIZATIONS:
    raise ValueError(f"unknown DeepSpeech2 normalize_input {value!r}; valid: "
                     f"{', '.join(INPUT_NORMALIZATIONS)}")
  return value


class DeepSpeech2(nn.Module):
  """Per-frame audio encoder.

  Attributes:
    conv_features: channels of each 2-D conv layer (DS2: 32, 32).
    conv_kernels: (time, freq) kernel of each conv layer.
    conv_strides: (time, freq) stride of each conv layer.
    rnn_hidden: GRU width per direction; also the feature width D.
    rnn_layers: number of bidirectional GRU layers (DS2: 3 to 7).
    vocab_size: CTC classes including the blank (29).
    dropout_rate: dropout between layers when `train` is True.
    normalize_input: 'global', 'window' or 'none' (see the module
      docstring); True and False, from older configs, mean 'window' and
      'none'.
  """
  conv_features: Sequence[int] = (32, 32)
  conv_kernels: Sequence[tuple[int, int]] = ((5, 5), (5, 3))
  conv_strides: Sequence[tuple[int, int]] = ((2, 2), (1, 2))
  rnn_hidden: int = 256
  rnn_layers: int = 3
  vocab_size: int = vocab.VOCAB_SIZE
  dropout_rate: float = 0.0
  normalize_input: str | bool = "global"

  @nn.compact
  def __call__(self, windows: jax.Array, train: bool = False,
               paddings: jax.Array | None = None
               ) -> tuple[jax.Array, jax.Array]:
    """Encodes per-frame audio windows.

    Args:
      windows: [B, T, S, F] float32 audio windows, S window steps (20) by F
        coefficients (13 MFCCs, or n_mels log-mels).
      train: enables dropout (needs a 'dropout' rng when dropout_rate > 0).
      paddings: optional [B, T] float/bool, 1 at padded frames at the end of
        shorter clips; the reverse GRU then starts at each clip's last frame.

    Returns:
      features: [B, T, rnn_hidden] float32, one vector per video frame.
      ctc_logits: [B, T, vocab_size] float32.
    """
    if windows.ndim != 4:
      raise ValueError(
          f"DeepSpeech2 expects windows [B, T, steps, coeffs], got shape "
          f"{windows.shape}; batch the output of audio.features.mfcc_windows")
    b, t = windows.shape[:2]
    x = windows.astype(jnp.float32)
    mode = input_normalization(self.normalize_input)
    if mode == "global":
      if x.shape[-1] != len(features_lib.MFCC_MEAN):
        raise ValueError(
            f"DeepSpeech2 normalize_input='global' holds statistics of "
            f"{len(features_lib.MFCC_MEAN)} MFCCs, got {x.shape[-1]} "
            f"coefficients; use normalize_input='window' for log-mel windows")
      x = ((x - jnp.asarray(features_lib.MFCC_MEAN, jnp.float32))
           / jnp.asarray(features_lib.MFCC_STD, jnp.float32))
    elif mode == "window":
      x = normalize_cepstra(x, paddings)
    x = x.reshape((b * t,) + x.shape[2:] + (1,))
    for i, (feat, kernel, stride) in enumerate(
        zip(self.conv_features, self.conv_kernels, self.conv_strides)):
      x = nn.Conv(feat, kernel, strides=stride, padding="SAME",
                  name=f"conv{i}")(x)
      x = nn.LayerNorm(name=f"conv{i}_norm")(x)
      x = clipped_relu(x)
    x = x.reshape((b, t, -1))

    seq_lengths = None
    if paddings is not None:
      seq_lengths = jnp.sum(1 - paddings.astype(jnp.int32), axis=1)
    for i in range(self.rnn_layers):
      x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
      rnn = nn.Bidirectional(
          nn.RNN(nn.GRUCell(self.rnn_hidden, name=f"gru{i}_fwd_cell")),
          nn.RNN(nn.GRUCell(self.rnn_hidden, name=f"gru{i}_bwd_cell")),
          merge_fn=lambda a, c: a + c, name=f"gru{i}")
      x = rnn(x, seq_lengths=seq_lengths)
      x = nn.LayerNorm(name=f"gru{i}_norm")(x)
    features = x
    x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
    ctc_logits = nn.Dense(self.vocab_size, name="ctc_head")(x)
    return features, ctc_logits


def default_config() -> ml_collections.ConfigDict:
  """The encoder's default sizes (see DeepSpeech2's attributes)."""
  return ml_collections.ConfigDict(dict(
      conv_features=(32, 32),
      conv_kernels=((5, 5), (5, 3)),
      conv_strides=((2, 2), (1, 2)),
      rnn_hidden=256,
      rnn_layers=3,
      vocab_size=vocab.VOCAB_SIZE,
      dropout_rate=0.0,
      normalize_input="global",
  ))


def create_model(config: ml_collections.ConfigDict | None = None
                 ) -> DeepSpeech2:
  """Builds a DeepSpeech2 from `config` (default_config() when None)."""
  config = default_config() if config is None else config
  return DeepSpeech2(**config.to_dict())


def make_example_inputs(batch_size: int = 2, num_frames: int = 75,
                        window_steps: int = 20, num_coeffs: int = 13
                        ) -> tuple[jax.Array]:
  """Random positional inputs for `DeepSpeech2.__call__` (benchmarks)."""
  rng = np.random.default_rng(0)
  windows = rng.standard_normal(
      (batch_size, num_frames, window_steps, num_coeffs), np.float32)
  return (jnp.asarray(windows),)
