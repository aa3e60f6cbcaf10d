"""Tests for a2v_jax.data.pipeline on a tiny in-memory source in the dataset contract.

Each fake frame is a flat colour that encodes (frame index, record key,
utterance-of-speaker) so the tests can read back which frames a batch holds.
"""

import cv2
import numpy as np
import pytest

from a2v_jax.audio import features
from a2v_jax.data import pipeline

_CROP = 16
_CLIP_FRAMES = 10
_SPEAKERS = 3
_UTTERANCES = 4  # per speaker


def _colour(frame, key, utt):
  return np.array([20 * frame + 10, 12 * key + 6, 60 * utt + 30], np.uint8)  # RGB


def _decode_colour(image):
  """float32 [..., H, W, 3] in [-1, 1] -> (frame, key, utt) int arrays."""
  rgb = (np.asarray(image)[..., 4:12, 4:12, :].mean(axis=(-3, -2)) + 1.0) * 127.5
  return (np.rint((rgb[..., 0] - 10) / 20).astype(int), np.rint((rgb[..., 1] - 6) / 12).astype(int),
          np.rint((rgb[..., 2] - 30) / 60).astype(int))


def _make_example(key, speaker, utt, num_frames=_CLIP_FRAMES):
  rng = np.random.default_rng(key)
  frames = []
  for f in range(num_frames):
    image = np.broadcast_to(_colour(f, key, utt), (_CROP, _CROP, 3))
    ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(image[..., ::-1]), [cv2.IMWRITE_JPEG_QUALITY, 95])
    assert ok
    frames.append(buf.tobytes())
  return {
      "frames": frames,
      "audio": (0.1 * rng.standard_normal(num_frames * 640)).astype(np.float32),
      "landmarks": rng.uniform(0, _CROP, (num_frames, 68, 2)).astype(np.float32),
      "landmarks_detected": np.ones(num_frames, bool),
      "mouth_open_gt": np.arange(num_frames, dtype=np.float32) / num_frames + key,
      "blink_gt": (np.arange(num_frames) % 3 == 0).astype(np.int32),
      "speaker": f"s{speaker}".encode(),
      "speaker_id": np.int32(speaker),
      "utterance": f"u{key}".encode(),
      "fps": np.float32(25.0),
  }


@pytest.fixture(scope="module")
def source():
  examples = []
  for s in range(1, _SPEAKERS + 1):
    for u in range(_UTTERANCES):
      examples.append(_make_example(len(examples), s, u))
  return examples


def _loader(source, **kwargs):
  args = dict(batch_size=4, num_frames=5, seed=7, shard_index=0, shard_count=1)
  args.update(kwargs)
  return pipeline.create_loader(source, **args)


def _take(iterator, n):
  return [next(iterator) for _ in range(n)]


def test_batch_shapes_and_dtypes(source):
  batch = next(iter(_loader(source, audio_features=("mfcc", "log_mel"))))
  expected = {
      "frames": ((4, 5, _CROP, _CROP, 3), np.float32),
      "reference": ((4, _CROP, _CROP, 3), np.float32),
      "mfcc": ((4, 5, 20, 13), np.float32),
      "log_mel": ((4, 5, 20, 80), np.float32),
      "landmarks": ((4, 5, 68, 2), np.float32),
      "mouth_open_gt": ((4, 5), np.float32),
      "blink_gt": ((4, 5), np.int32),
      "speaker_id": ((4,), np.int32),
      "start_frame": ((4,), np.int32),
  }
  assert {k: (v.shape, v.dtype) for k, v in batch.items()} == expected
  assert batch["frames"].min() >= -1.0 and batch["frames"].max() <= 1.0


def test_window_contents_match_the_clip(source):
  batch = next(iter(_loader(source)))
  frame_ids, keys, _ = _decode_colour(batch["frames"])
  for b in range(4):
    key, start = keys[b, 0], batch["start_frame"][b]
    example = source[key]
    assert 0 <= start <= _CLIP_FRAMES - 5
    np.testing.assert_array_equal(frame_ids[b], np.arange(start, start + 5))
    np.testing.assert_array_equal(keys[b], key)
    np.testing.assert_array_equal(batch["landmarks"][b], example["landmarks"][start:start + 5])
    np.testing.assert_array_equal(batch["mouth_open_gt"][b], example["mouth_open_gt"][start:start + 5])
    np.testing.assert_array_equal(batch["blink_gt"][b], example["blink_gt"][start:start + 5])
    assert batch["speaker_id"][b] == example["speaker_id"]
    np.testing.assert_allclose(
        batch["mfcc"][b], features.mfcc_windows(example["audio"], num_frames=5, start_frame=int(start)),
        rtol=1e-5, atol=1e-4)


def test_reference_same_utterance_is_outside_window(source):
  for batch in _take(iter(_loader(source)), 3):
    ref_frame, ref_key, _ = _decode_colour(batch["reference"])
    _, keys, _ = _decode_colour(batch["frames"][:, 0])
    np.testing.assert_array_equal(ref_key, keys)
    start = batch["start_frame"]
    assert np.all((ref_frame < start) | (ref_frame >= start + 5))


def test_reference_other_utterance_same_speaker(source):
  seen_utts = set()
  for batch in _take(iter(_loader(source, reference="other_utterance")), 3):
    _, ref_key, ref_utt = _decode_colour(batch["reference"])
    _, keys, _ = _decode_colour(batch["frames"][:, 0])
    for b in range(4):
      assert ref_key[b] != keys[b]
      assert source[ref_key[b]]["speaker"] == source[keys[b]]["speaker"]
      seen_utts.add(int(ref_utt[b]))
  assert len(seen_utts) > 1


def test_same_seed_same_batches_other_seed_differs(source):
  a = _take(iter(_loader(source)), 3)
  b = _take(iter(_loader(source)), 3)
  c = _take(iter(_loader(source, seed=8)), 3)
  for x, y in zip(a, b):
    for k in x:
      np.testing.assert_array_equal(x[k], y[k])
  assert any(not np.array_equal(x["frames"], z["frames"]) for x, z in zip(a, c))


def test_checkpoint_state_resumes_same_batches(source):
  loader = _loader(source)
  it = iter(loader)
  _take(it, 2)
  state = it.get_state()
  expected = _take(it, 3)  # crosses an epoch boundary (12 records = 3 batches).
  resumed = iter(_loader(source))
  resumed.set_state(state)
  for x, y in zip(expected, _take(resumed, 3)):
    for k in x:
      np.testing.assert_array_equal(x[k], y[k])


def test_shards_are_disjoint_and_cover_the_data(source):
  seen = []
  for shard in range(2):
    loader = _loader(source, batch_size=2, num_epochs=1, shard_index=shard, shard_count=2)
    keys = [_decode_colour(b["frames"][:, 0])[1] for b in loader]
    seen.append(set(np.concatenate(keys).tolist()))
  assert not seen[0] & seen[1]
  assert seen[0] | seen[1] == set(range(len(source)))


def test_one_epoch_without_shuffle_drops_remainder(source):
  batches = list(_loader(source, batch_size=5, num_epochs=1, shuffle=False))
  assert len(batches) == 2  # 12 records -> 2 full batches of 5.
  keys = np.concatenate([_decode_colour(b["frames"][:, 0])[1] for b in batches])
  np.testing.assert_array_equal(keys, np.arange(10))


def test_short_clips_are_skipped(source):
  mixed = [_make_example(0, 1, 0, num_frames=3)] + list(source[1:4])
  batches = list(_loader(mixed, batch_size=1, num_epochs=1, shuffle=False))
  keys = [int(_decode_colour(b["frames"][:, 0])[1][0]) for b in batches]
  assert keys == [1, 2, 3]


def test_decoded_frame_arrays_are_accepted(source):
  example = dict(source[0])
  example["frames"] = np.stack([pipeline.decode_jpeg(f) for f in example["frames"]])
  batch = next(iter(_loader([example], batch_size=1)))
  frame_ids, _, _ = _decode_colour(batch["frames"])
  start = batch["start_frame"][0]
  np.testing.assert_array_equal(frame_ids[0], np.arange(start, start + 5))


def test_bad_arguments(source):
  with pytest.raises(ValueError, match="audio_features"):
    _loader(source, audio_features="spectrogram")
  with pytest.raises(ValueError, match="reference"):
    _loader(source, reference="any")
  with pytest.raises(ValueError, match="shard_index"):
    _loader(source, shard_index=2, shard_count=2)
  with pytest.raises(ValueError, match="empty"):
    _loader([])
  with pytest.raises(ValueError, match="not a decodable"):
    pipeline.decode_jpeg(b"not a jpeg")


def test_default_sharding_uses_jax_process(source):
  loader = pipeline.create_loader(source, batch_size=2, num_frames=5, seed=0)
  batch = next(iter(loader))
  assert batch["frames"].shape == (2, 5, _CROP, _CROP, 3)


@pytest.fixture(scope="module")
def tfds_source(source, tmp_path_factory):
  """The fake examples written as a real TFDS array_record dataset with the builders' features."""
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  from tfds_builders.grid import clip_example  # pylint: disable=g-import-not-at-top

  class FakeGrid(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    VERSION = tfds.core.Version("1.0.0")

    def _info(self):
      return tfds.core.DatasetInfo(builder=self, features=clip_example.features())

    def _split_generators(self, dl_manager):
      return {"train": self._generate_examples()}

    def _generate_examples(self):
      for key, example in enumerate(source):
        example = dict(example, words=[b"bin", b"blue"], word_start=np.array([0.1, 0.2], np.float32),
                       word_end=np.array([0.2, 0.3], np.float32), has_ground_truth=True)
        yield key, example

  builder = FakeGrid(data_dir=str(tmp_path_factory.mktemp("tfds")), file_format="array_record")
  tfds.disable_progress_bar()
  builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
      compute_stats=tfds.download.ComputeStatsMode.SKIP))
  # A read-only builder's data source pickles into grain workers.
  return tfds.builder_from_directory(builder.data_dir).as_data_source(split="train")


def test_tfds_array_record_source_gives_same_batches(source, tfds_source):
  assert len(tfds_source) == len(source)
  # TFDS stores records in hashed-key order: put the in-memory examples in the same order.
  same_order = [source[int(tfds_source[i]["utterance"][1:])] for i in range(len(source))]
  assert sorted(int(tfds_source[i]["utterance"][1:]) for i in range(len(source))) == list(range(len(source)))
  expected = _take(iter(_loader(same_order, reference="other_utterance")), 2)
  got = _take(iter(_loader(tfds_source, reference="other_utterance")), 2)
  for x, y in zip(expected, got):
    for k in x:
      np.testing.assert_array_equal(x[k], y[k])


def test_worker_process_gives_same_batches(tfds_source):
  """Transforms and the TFDS source pickle into a grain worker; output equals in-process output."""
  expected = _take(iter(_loader(tfds_source, reference="other_utterance")), 2)
  got = _take(iter(_loader(tfds_source, reference="other_utterance", worker_count=1)), 2)
  for x, y in zip(expected, got):
    for k in x:
      np.testing.assert_array_equal(x[k], y[k])


def test_mirror_68_is_an_involution_that_swaps_sides():
  m = pipeline.MIRROR_68
  assert sorted(m) == list(range(68))
  np.testing.assert_array_equal(m[m], np.arange(68))
  assert m[36] == 45 and m[48] == 54 and m[0] == 16  # eye, mouth, jaw corners
  assert m[30] == 30 and m[51] == 51 and m[57] == 57  # the midline stays


def test_augmentation_is_one_draw_per_window_and_reference():
  """Frames and reference get the same colour change and mirror; a mirror
  moves each landmark to its mirror image (a left eye corner becomes the
  right one), and the augmented batch differs from the plain one."""
  rng = np.random.default_rng(0)
  image = rng.uniform(-1, 1, (8, 12, 3)).astype(np.float32)
  pts = rng.uniform(0, 12, (68, 2)).astype(np.float32)
  element = {"frames": np.stack([image] * 3), "reference": image.copy(),
             "landmarks": np.stack([pts] * 3), "mfcc": np.zeros((3, 20, 13), np.float32)}
  aug = pipeline.AugmentAppearance(flip=True, color=0.3)
  flipped = changed = 0
  for seed in range(20):
    out = aug.random_map(dict(element), np.random.default_rng(seed))
    assert out["frames"].shape == element["frames"].shape and out["frames"].dtype == np.float32
    for f in out["frames"]:
      np.testing.assert_allclose(f, out["reference"], atol=1e-6)
    assert out["frames"].min() >= -1 and out["frames"].max() <= 1
    mirrored = not np.allclose(out["landmarks"], element["landmarks"])
    if mirrored:
      flipped += 1
      np.testing.assert_allclose(out["landmarks"][0, 45, 0], 12 - 1 - pts[36, 0], atol=1e-5)
      np.testing.assert_allclose(out["landmarks"][0, 45, 1], pts[36, 1], atol=1e-5)
    changed += not np.allclose(out["reference"], image, atol=1e-3)
    np.testing.assert_array_equal(out["mfcc"], element["mfcc"])
  assert 3 <= flipped <= 17 and changed == 20


def test_loader_applies_augmentation_only_when_asked(source):
  kwargs = dict(batch_size=4, num_frames=3, seed=5, num_epochs=1, shard_index=0, shard_count=1)
  plain = next(iter(pipeline.create_loader(source, **kwargs)))
  again = next(iter(pipeline.create_loader(source, **kwargs)))
  jittered = next(iter(pipeline.create_loader(source, color=0.3, **kwargs)))
  np.testing.assert_array_equal(plain["frames"], again["frames"])
  assert not np.allclose(plain["frames"], jittered["frames"], atol=1e-3)
  np.testing.assert_array_equal(plain["mfcc"], jittered["mfcc"])
  with pytest.raises(ValueError, match="color"):
    pipeline.create_loader(source, color=-1.0, **kwargs)
