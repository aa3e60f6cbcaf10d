"""Tests of the SyncNet synchronisation discriminator."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from absl import logging
from clu import parameter_overview

from a2v_jax import losses
from a2v_jax.models import syncnet


def _log_count(name, params):
  parameter_overview.log_parameter_overview(params, include_stats=False,
                                            msg=name)
  count = parameter_overview.count_parameters(params)
  logging.info("%s parameters: %d", name, count)
  return count


@pytest.mark.parametrize("crop", [128, 256])
def test_lower_half_crops_and_resizes(crop):
  frames = jnp.zeros((2, 5, crop, crop, 3)).at[..., crop // 2:, :, :].set(1.0)
  out = syncnet.lower_half(frames, (64, 128))
  assert out.shape == (2, 5, 64, 128, 3) and out.dtype == jnp.float32
  np.testing.assert_allclose(out, 1.0, atol=1e-6)


@pytest.mark.parametrize("crop", [128, 256])
def test_output_shapes_at_both_crop_sizes(crop):
  hw = (crop // 2, crop)  # Lower half at the crop's own resolution.
  model = syncnet.SyncNet(input_hw=hw)
  inputs = syncnet.make_example_inputs(2, hw)
  variables = jax.eval_shape(model.init, jax.random.PRNGKey(0), *inputs)
  video, audio = jax.eval_shape(model.apply, variables, *inputs)
  assert video.shape == audio.shape == (2, 1024)
  _log_count(f"SyncNet {hw}", variables["params"])


def test_paper_size_matches_syncnet_python_maps():
  model = syncnet.SyncNet(input_hw=(224, 224))
  inputs = syncnet.make_example_inputs(1, (224, 224))
  params = jax.eval_shape(model.init, jax.random.PRNGKey(0), *inputs)["params"]
  # fc6 spans 6x6 (video) and 5x4 (audio) maps, as in syncnet_python.
  assert params["video_stream"]["fc6"]["kernel"].shape == (6, 6, 256, 512)
  assert params["audio_stream"]["fc6"]["kernel"].shape == (5, 4, 256, 512)
  assert params["video_stream"]["conv1"]["kernel"].shape == (5, 7, 7, 3, 96)
  count = _log_count("SyncNet 224x224", params)
  # Same sizes as syncnet_python's S (BatchNorm scale/bias -> GroupNorm).
  assert 13_000_000 < count < 14_000_000


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
  """Tiny SyncNet: embeddings and contrastive gradients on a batch of 4."""
  model = syncnet.SyncNet(input_hw=(56, 64), width=0.125, embed_dim=32)
  faces, mfcc = syncnet.make_example_inputs(4, (56, 64))
  variables = _random_params(
      jax.eval_shape(model.init, jax.random.PRNGKey(0), faces, mfcc))
  labels = jnp.array([1.0, 0.0, 1.0, 0.0])

  def loss_fn(params):
    video, audio = model.apply({"params": params}, faces, mfcc)
    loss, _ = losses.contrastive_loss(video, audio, labels, margin=20.0)
    return loss, (video, audio)

  (_, (video, audio)), grads = jax.jit(
      jax.value_and_grad(loss_fn, has_aux=True))(variables["params"])
  return dict(model=model, variables=variables, faces=faces, mfcc=mfcc,
              video=video, audio=audio, grads=grads)


def test_batch_of_one_equals_item_in_batch_of_four(tiny):
  model, variables = tiny["model"], tiny["variables"]
  assert tiny["video"].shape == tiny["audio"].shape == (4, 32)
  video1, audio1 = jax.jit(model.apply)(variables, tiny["faces"][3:],
                                        tiny["mfcc"][3:])
  # Tolerance covers the different XLA fusion of the forward inside the
  # gradient program; a batch-dependent norm would differ by O(1).
  np.testing.assert_allclose(video1[0], tiny["video"][3], rtol=1e-4,
                             atol=1e-4)
  np.testing.assert_allclose(audio1[0], tiny["audio"][3], rtol=1e-4,
                             atol=1e-4)
  embed_audio = jax.jit(lambda v, m: model.apply(v, m, method="embed_audio"))
  np.testing.assert_allclose(embed_audio(variables, tiny["mfcc"][3:]),
                             audio1, rtol=1e-4, atol=1e-4)


def test_contrastive_gradients_are_finite(tiny):
  leaves = jax.tree_util.tree_leaves(tiny["grads"])
  assert all(np.all(np.isfinite(g)) for g in leaves)
  assert all(float(jnp.abs(g).sum()) > 0 for g in leaves)


def test_bad_shapes_are_rejected_with_the_fix():
  model = syncnet.SyncNet(input_hw=(64, 128))
  faces, mfcc = syncnet.make_example_inputs(1, (64, 64))
  with pytest.raises(syncnet.SyncNetInputError, match="lower_half"):
    jax.eval_shape(model.init, jax.random.PRNGKey(0), faces, mfcc)
  small = syncnet.SyncNet(input_hw=(48, 96))
  faces, mfcc = syncnet.make_example_inputs(1, (48, 96))
  with pytest.raises(syncnet.SyncNetInputError, match="at least 51x51"):
    jax.eval_shape(small.init, jax.random.PRNGKey(0), faces, mfcc)


def test_sync_distance():
  v = jnp.array([[0.0, 0.0], [3.0, 4.0]])
  a = jnp.zeros((2, 2))
  np.testing.assert_allclose(syncnet.sync_distance(v, a), [0.0, 5.0],
                             atol=1e-5)


def test_pretraining_objectives_share_their_contrastive_pairs(tiny):
  from a2v_jax import pretrain  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(1)
  max_shift, t = 3, 11                     # windows of 5 + 2 * max_shift
  batch = {"frames": jnp.asarray(rng.uniform(-1, 1, (4, t, 112, 64, 3)),
                                 jnp.float32),
           "mfcc": jnp.asarray(rng.standard_normal((4, t, 20, 13)) * 30,
                               jnp.float32)}
  key = jax.random.PRNGKey(3)
  out = {}
  for objective in ("multiway", "contrastive"):
    out[objective] = jax.jit(lambda v, o=objective: pretrain._syncnet_loss(  # pylint: disable=protected-access
        tiny["model"], v, batch, key, max_shift, 1.0, objective))(
            tiny["variables"])
  (multi, m_parts), (contrastive, c_parts) = (out["multiway"],
                                              out["contrastive"])
  # The same genuine and shifted windows, whichever windows get embedded.
  np.testing.assert_allclose(m_parts["contrastive"], contrastive, rtol=1e-4)
  np.testing.assert_allclose(m_parts["pair_accuracy"],
                             c_parts["pair_accuracy"])
  assert "multiway" not in c_parts
  # Cross-entropy over 2 * max_shift + 1 offsets; near chance untrained.
  assert 0.0 < float(multi) < 2 * np.log(2 * max_shift + 1)
  assert 0.0 <= float(m_parts["offset_accuracy"]) <= 1.0


def test_multiway_clip_adds_the_in_batch_term(tiny):
  from a2v_jax import pretrain  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(2)
  max_shift, t = 3, 11
  batch = {"frames": jnp.asarray(rng.uniform(-1, 1, (4, t, 112, 64, 3)),
                                 jnp.float32),
           "mfcc": jnp.asarray(rng.standard_normal((4, t, 20, 13)) * 30,
                               jnp.float32)}
  key = jax.random.PRNGKey(3)
  run = lambda o: jax.jit(lambda v: pretrain._syncnet_loss(  # pylint: disable=protected-access
      tiny["model"], v, batch, key, max_shift, 1.0, o))(tiny["variables"])
  multi, _ = run("multiway")
  both, parts = run("multiway_clip")
  np.testing.assert_allclose(parts["multiway"], multi, rtol=1e-5)
  np.testing.assert_allclose(both, 0.5 * (multi + parts["clip"]), rtol=1e-5)
  # Cross-entropy over the batch's 4 clips, near chance untrained.
  assert 0.5 * np.log(4) < float(parts["clip"]) < 2 * np.log(4)
  assert 0.0 <= float(parts["clip_accuracy"]) <= 1.0


def test_face_norm_standardises_the_input_and_stays_frozen():
  kw = dict(input_hw=(56, 56), width=0.125, embed_dim=16)
  plain = syncnet.SyncNet(**kw)
  rng = np.random.default_rng(0)
  mean_face = rng.uniform(-0.5, 0.5, (56, 56, 3)).astype(np.float32)
  frames = mean_face + 0.1 * rng.standard_normal((8, 5, 56, 56, 3))
  faces = jnp.asarray(frames[:2], jnp.float32)
  mfcc = jnp.zeros((2, 20, 13))
  for norm in ("mean_face", "temporal"):
    model = syncnet.SyncNet(**kw, face_norm=norm)
    variables = model.init(jax.random.PRNGKey(0), faces, mfcc)
    same = {"params": {k: v for k, v in variables["params"].items()
                       if not k.startswith("face_")}}
    measured = syncnet.set_face_statistics(variables, frames, norm)
    p = measured["params"]
    if norm == "mean_face":
      np.testing.assert_allclose(p["face_mean"], mean_face, atol=0.08)
      np.testing.assert_allclose(p["face_scale"], 0.2, rtol=0.05)
      expected = (faces - p["face_mean"]) / p["face_scale"]
    else:
      # The std about each sample's 5-frame mean is 0.1 * sqrt(4 / 5).
      np.testing.assert_allclose(p["face_scale"], 0.2 * np.sqrt(0.8),
                                 rtol=0.05)
      expected = (faces - faces.mean(1, keepdims=True)) / p["face_scale"]
    # The same embedding as the plain network fed the normalised input.
    np.testing.assert_allclose(
        model.apply(measured, faces, method="embed_video"),
        plain.apply(same, expected, method="embed_video"),
        rtol=1e-4, atol=1e-5)
    # Frozen: no gradient reaches the statistics.
    grads = jax.grad(lambda q, m=model: jnp.sum(m.apply(
        {"params": q}, faces, method="embed_video")))(p)
    assert all(float(jnp.abs(grads[k]).sum()) == 0.0
               for k in grads if k.startswith("face_"))
  with pytest.raises(syncnet.SyncNetInputError, match="face_mean"):
    syncnet.set_face_statistics(variables_of_mean_face(kw, faces, mfcc),
                                frames[..., :28, :], "mean_face")
  with pytest.raises(syncnet.SyncNetInputError, match="temporal"):
    jax.eval_shape(syncnet.SyncNet(**kw, face_norm="tempral").init,
                   jax.random.PRNGKey(0), faces, mfcc)


def variables_of_mean_face(kw, faces, mfcc):
  return syncnet.SyncNet(**kw, face_norm="mean_face").init(
      jax.random.PRNGKey(0), faces, mfcc)
