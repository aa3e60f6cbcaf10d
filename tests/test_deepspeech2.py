"""Tests of the DeepSpeech2-style audio encoder and the CTC vocabulary."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from absl import logging
from clu import parameter_overview
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from a2v_jax import losses
from a2v_jax.audio import features
from a2v_jax.models import deepspeech2
from a2v_jax.models import vocab

TINY = dict(conv_features=(4, 8), rnn_hidden=16, rnn_layers=1)


def _windows(batch, frames, coeffs=13, seed=0):
  rng = np.random.default_rng(seed)
  return jnp.asarray(rng.normal(size=(batch, frames, 20, coeffs)) * 10 - 5,
                     jnp.float32)


def test_default_config_shapes_and_parameter_count():
  model = deepspeech2.create_model()
  (windows,) = deepspeech2.make_example_inputs(2, 75)
  variables = jax.eval_shape(model.init, jax.random.PRNGKey(0), windows)
  feats, logits = jax.eval_shape(model.apply, variables, windows)
  assert feats.shape == (2, 75, 256) and feats.dtype == jnp.float32
  assert logits.shape == (2, 75, vocab.VOCAB_SIZE)
  parameter_overview.log_parameter_overview(
      variables["params"], include_stats=False, msg="DeepSpeech2 default")
  count = parameter_overview.count_parameters(variables["params"])
  logging.info("DeepSpeech2 default parameters: %d", count)
  assert 1_000_000 < count < 10_000_000


def _random_params(shapes, seed=0):
  """Fan-in scaled random parameters for `shapes` (skips the slow-to-compile
  init; `init` itself is traced by the eval_shape tests)."""
  rng = np.random.default_rng(seed)

  def make(path, s):
    if path[-1].key == "scale":
      return jnp.asarray(1 + 0.1 * rng.standard_normal(s.shape), s.dtype)
    if len(s.shape) == 1:
      return jnp.asarray(0.1 * rng.standard_normal(s.shape), s.dtype)
    fan_in = np.prod(s.shape[:-1])
    return jnp.asarray(rng.standard_normal(s.shape) / np.sqrt(fan_in), s.dtype)

  return jax.tree_util.tree_map_with_path(make, shapes)


@pytest.fixture(scope="module")
def tiny():
  """Tiny encoder: outputs and gradients on a padded batch of 4."""
  model = deepspeech2.DeepSpeech2(**TINY)
  windows = _windows(4, 10)
  paddings = jnp.zeros((4, 10)).at[1, 7:].set(1.0)
  variables = _random_params(
      jax.eval_shape(model.init, jax.random.PRNGKey(0), windows))
  labels, label_paddings = vocab.encode_batch(["bin blue", "at", "x", "no"])

  def loss_fn(params):
    feats, logits = model.apply({"params": params}, windows,
                                paddings=paddings)
    loss, _ = losses.ctc_loss(logits, labels, label_paddings, paddings)
    return loss, (feats, logits)

  (loss, (feats, logits)), grads = jax.jit(
      jax.value_and_grad(loss_fn, has_aux=True))(variables["params"])
  apply = jax.jit(lambda v, x, p: model.apply(v, x, paddings=p))
  return dict(model=model, variables=variables, apply=apply, windows=windows,
              paddings=paddings, loss=loss, feats=feats, logits=logits,
              grads=grads)


def test_batch_of_one_equals_item_in_batch_of_four(tiny):
  assert tiny["feats"].shape == (4, 10, 16)
  assert tiny["logits"].shape == (4, 10, 29)
  feats1, logits1 = tiny["apply"](tiny["variables"], tiny["windows"][2:3],
                                  jnp.zeros((1, 10)))
  # Tolerance covers the different XLA fusion of the forward inside the
  # gradient program; a batch-dependent norm would differ by O(1).
  np.testing.assert_allclose(feats1[0], tiny["feats"][2], rtol=1e-4,
                             atol=1e-4)
  np.testing.assert_allclose(logits1[0], tiny["logits"][2], rtol=1e-4,
                             atol=1e-4)


def test_padded_frames_do_not_leak_into_valid_frames(tiny):
  # Item 1 is padded from frame 7. The same clip with other junk in its
  # padded tail must give the same features: the reverse GRU starts at
  # frame 6 and the normalisation statistics skip the tail.
  windows, apply, variables = tiny["windows"], tiny["apply"], tiny["variables"]
  junk = windows[1:2].at[:, 7:].set(_windows(1, 3, seed=5) * 50)
  feats1, _ = apply(variables, junk, tiny["paddings"][1:2])
  np.testing.assert_allclose(feats1[0, :7], tiny["feats"][1, :7], rtol=1e-4,
                             atol=1e-4)
  unpadded, _ = apply(variables, windows[1:2], jnp.zeros((1, 10)))
  assert not np.allclose(unpadded[0, :7], tiny["feats"][1, :7], atol=1e-3)


def test_global_normalization_is_fixed_mfcc_statistics(tiny):
  """'global' = 'none' on windows standardised with the corpus constants;
  log-mel windows (other widths) are refused with the fix named."""
  windows, variables = tiny["windows"], tiny["variables"]
  mean = np.asarray(features.MFCC_MEAN, np.float32)
  std = np.asarray(features.MFCC_STD, np.float32)
  raw = deepspeech2.DeepSpeech2(**{**TINY, "normalize_input": "none"})
  glob = deepspeech2.DeepSpeech2(**{**TINY, "normalize_input": "global"})
  np.testing.assert_allclose(
      glob.apply(variables, windows * std + mean)[0],
      raw.apply(variables, windows)[0], rtol=1e-4, atol=1e-4)
  with pytest.raises(ValueError, match="normalize_input='window'"):
    glob.init(jax.random.PRNGKey(0), jnp.zeros((1, 5, 20, 40)))
  with pytest.raises(ValueError, match="valid: global, window, none"):
    deepspeech2.input_normalization("utterance")
  assert deepspeech2.input_normalization(True) == "window"


def test_log_mel_windows_and_dropout_trace():
  model = deepspeech2.DeepSpeech2(**TINY, dropout_rate=0.1,
                                  normalize_input="window")
  windows = jnp.zeros((2, 5, 20, 40))
  variables = jax.eval_shape(model.init, jax.random.PRNGKey(0), windows)
  feats, logits = jax.eval_shape(
      lambda v, x: model.apply(v, x, train=True,
                               rngs={"dropout": jax.random.PRNGKey(1)}),
      variables, windows)
  assert feats.shape == (2, 5, 16) and logits.shape == (2, 5, 29)


def test_ctc_gradients_are_finite_and_nonzero(tiny):
  leaves = jax.tree_util.tree_leaves(tiny["grads"])
  assert np.isfinite(float(tiny["loss"])) and float(tiny["loss"]) > 0
  assert all(np.all(np.isfinite(g)) for g in leaves)
  assert all(float(jnp.abs(g).sum()) > 0 for g in leaves)


def test_rejects_a_missing_window_axis():
  model = deepspeech2.DeepSpeech2(**TINY)
  with pytest.raises(ValueError, match="mfcc_windows"):
    model.init(jax.random.PRNGKey(0), jnp.zeros((2, 20, 13)))


def test_vocab_round_trip_and_errors():
  ids = vocab.encode_text("  Bin BLUE at  f two now ")
  assert vocab.decode_ids(ids) == "bin blue at f two now"
  assert vocab.CHARACTERS[0] == vocab.BLANK and vocab.VOCAB_SIZE == 29
  assert vocab.encode_text("don't").tolist()[3] == 28
  with pytest.raises(vocab.VocabError, match="outside the CTC vocabulary"):
    vocab.encode_text("set 9")
  with pytest.raises(vocab.VocabError, match="max_length"):
    vocab.encode_batch(["abcdef"], max_length=3)
  labels, pad = vocab.encode_batch(["ab", "a"])
  assert labels.tolist() == [[2, 3], [2, 0]]
  assert pad.tolist() == [[0, 0], [0, 1]]


def test_greedy_decode_collapses_repeats_and_drops_blanks():
  # Path "a a _ a b b _ _" -> "aab"; the padded tail would add "z".
  path = [2, 2, 0, 2, 3, 3, 0, 0, 27]
  logits = np.full((1, len(path), vocab.VOCAB_SIZE), -5.0, np.float32)
  logits[0, np.arange(len(path)), path] = 5.0
  paddings = np.zeros((1, len(path)), np.float32)
  paddings[0, -1] = 1.0
  assert vocab.decode_greedy(logits, paddings) == ["aab"]
  assert vocab.decode_greedy(logits) == ["aabz"]


def test_sharded_jit_over_the_data_axis(tiny):
  mesh = Mesh(np.array(jax.devices()), ("data",))
  batch = NamedSharding(mesh, P("data"))
  replicated = NamedSharding(mesh, P())
  model, variables = tiny["model"], tiny["variables"]
  windows = _windows(len(jax.devices()), 10, seed=7)
  paddings = jnp.zeros(windows.shape[:2]).at[2, 6:].set(1.0)
  sharded = jax.jit(lambda v, x, p: model.apply(v, x, paddings=p),
                    in_shardings=(replicated, batch, batch),
                    out_shardings=batch)
  feats, logits = sharded(jax.device_put(variables, replicated),
                          jax.device_put(windows, batch),
                          jax.device_put(paddings, batch))
  assert feats.sharding.is_equivalent_to(batch, feats.ndim)
  assert logits.shape == (windows.shape[0], 10, vocab.VOCAB_SIZE)
  feats1, _ = tiny["apply"](variables, windows[2:3], paddings[2:3])
  np.testing.assert_allclose(feats[2], feats1[0], rtol=1e-4, atol=1e-4)

