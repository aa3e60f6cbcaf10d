"""LipNet shapes, parameters, learning signal; WER and CTC decoding."""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from a2v_jax.evaluation import wer
from a2v_jax.models import lipnet
from a2v_jax.models import vocab


def _conv_params(k, cin, cout):
  return int(np.prod(k)) * cin * cout + cout


def _gru_params(cin, h):
  return 3 * (cin * h + h) + 2 * h * h + (h * h + h)


def test_paper_size_parameter_count_and_output_shape():
  model = lipnet.LipNet()
  variables = jax.eval_shape(
      lambda: model.init(jax.random.PRNGKey(0), lipnet.make_example_inputs(1, 75)))
  count = sum(int(np.prod(x.shape)) for x in jax.tree_util.tree_leaves(variables))
  # 50x100 -> stride 2 -> 25x50 -> pools -> 12x25 -> 6x12 -> 3x6: 96*18.
  flat = 96 * 3 * 6
  want = (_conv_params((3, 5, 5), 3, 32) + _conv_params((3, 5, 5), 32, 64)
          + _conv_params((3, 3, 3), 64, 96)
          + 2 * _gru_params(flat, 256) + 2 * _gru_params(512, 256)
          + 512 * vocab.VOCAB_SIZE + vocab.VOCAB_SIZE)
  assert count == want
  out = jax.eval_shape(model.apply, variables, lipnet.make_example_inputs(2, 75))
  assert out.shape == (2, 75, vocab.VOCAB_SIZE)


def test_tiny_model_learns_with_ctc():
  model = lipnet.LipNet(conv_features=(4, 8, 8), gru_hidden=16, gru_layers=1)
  rng = np.random.default_rng(0)
  mouths = jnp.asarray(rng.uniform(-1, 1, (2, 10, 16, 32, 3)), jnp.float32)
  labels, label_pad = vocab.encode_batch(["bin", "at"], max_length=4)
  lengths = jnp.array([10, 8])
  logit_pad = (jnp.arange(10)[None] >= lengths[:, None]).astype(jnp.float32)
  params = jax.jit(model.init)(jax.random.PRNGKey(0), mouths)["params"]
  tx = optax.adam(1e-2)

  def loss_fn(p, key):
    logits = model.apply({"params": p}, mouths, seq_lengths=lengths,
                         train=True, rngs={"dropout": key})
    return optax.ctc_loss(logits, logit_pad, labels, label_pad).mean()

  @jax.jit
  def step(p, o, key):
    loss, grads = jax.value_and_grad(loss_fn)(p, key)
    updates, o = tx.update(grads, o, p)
    return optax.apply_updates(p, updates), o, loss

  opt = tx.init(params)
  losses = []
  for i in range(12):
    params, opt, loss = step(params, opt, jax.random.PRNGKey(i))
    losses.append(float(loss))
  assert np.isfinite(losses).all()
  assert np.mean(losses[-3:]) < 0.8 * np.mean(losses[:3])

  logits = jax.jit(model.apply)({"params": params}, mouths)
  assert logits.shape == (2, 10, vocab.VOCAB_SIZE)
  assert len(wer.decode_ctc_greedy(np.asarray(logits), [10, 8])) == 2
  variables = {"params": params}
  with pytest.raises(lipnet.LipNetInputError, match=r"\[B, T, H, W, 3\]"):
    model.apply(variables, jnp.ones((4, 16, 32, 3)))


def test_crop_mouths_centres_the_mouth():
  frames = np.zeros((3, 128, 128, 3), np.uint8)
  landmarks = np.full((3, 68, 2), np.nan, np.float32)
  angle = np.linspace(0, 2 * np.pi, 20, endpoint=False)
  mouth = np.stack([80 + 20 * np.cos(angle), 90 + 8 * np.sin(angle)], -1)
  landmarks[:2, 48:68] = mouth  # frame 2 has no landmarks
  frames[:, 86:95, 76:85] = 255  # a bright square at the mouth centre
  crops = lipnet.crop_mouths(frames, landmarks, out_hw=(20, 40))
  assert crops.shape == (3, 20, 40, 3) and crops.dtype == np.uint8
  ys, xs = np.nonzero(crops[2, ..., 0] > 128)
  assert abs(ys.mean() - 9.5) < 1.0 and abs(xs.mean() - 19.5) < 1.0
  with pytest.raises(lipnet.LipNetInputError, match="no frame"):
    lipnet.crop_mouths(frames, np.full((3, 68, 2), np.nan))


def test_greedy_ctc_decoding_collapses_repeats_and_drops_blanks():
  ids = {c: i for i, c in enumerate(vocab.CHARACTERS)}
  path = ["b", "b", "_", "i", "n", "n", "_", " ", "a", "_", "a", "t", "t"]
  logits = np.full((1, len(path) + 2, vocab.VOCAB_SIZE), -5.0)
  for t, c in enumerate(path + ["x", "x"]):
    logits[0, t, ids[c]] = 5.0
  assert wer.decode_ctc_greedy(logits) == ["bin aatx"]
  assert wer.decode_ctc_greedy(logits, lengths=[len(path)]) == ["bin aat"]


def test_word_error_rate_known_values():
  refs = ["bin blue at f two now", "place red by q five soon"]
  hyps = ["bin blue at f two now", "place red bye q five"]
  # second: 1 substitution + 1 deletion over 6 words; pooled 2 / 12.
  assert wer.word_error_rate(refs, hyps) == pytest.approx(2 / 12)
  np.testing.assert_allclose(wer.utterance_word_error_rates(refs, hyps),
                             [0.0, 2 / 6])
  assert wer.word_error_rate(["Bin  BLUE"], ["bin blue"]) == 0.0
  assert wer.word_error_rate(["a b"], [""]) == 1.0
  assert wer.character_error_rate(["abc"], ["abd"]) == pytest.approx(1 / 3)
  with pytest.raises(wer.TranscriptError, match="hypotheses"):
    wer.word_error_rate(["a"], ["a", "b"])
  with pytest.raises(wer.TranscriptError, match="empty"):
    wer.word_error_rate([" "], ["a"])
