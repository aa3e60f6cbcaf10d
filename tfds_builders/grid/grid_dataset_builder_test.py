"""Tests the GRID builder on dummy_data (a tiny synthetic corpus).

`tfds.testing.DatasetBuilderTestCase` derives from `tf.test.TestCase` and reads
the built dataset back with `tf.data`, so it cannot even be imported without
TensorFlow, which the core install leaves out. It runs when TensorFlow is
installed (the `[tf]` extra). `GridBuilderTfFreeTest` always runs and checks
the same things TF-free: it builds every tested config from dummy_data with
the real builder (array_record), then checks split sizes, speaker-disjoint
splits, feature shapes and dtypes through `tfds.data_source`.
"""
from __future__ import annotations

import importlib.util
import os
import tempfile

import cv2
import numpy as np
import tensorflow_datasets as tfds
from absl.testing import absltest

from tfds_builders.grid import grid_dataset_builder

# dummy_data (made by `python -m a2v_jax.data.synthetic --speakers=2
# --utterances=2 --seed=0`, videos re-encoded at a lower bitrate to keep it
# small; s2's wavs removed so its audio comes from the MPEG's own track):
# speakers s1 and s2, two utterances each. s2 is the test speaker and every
# 2nd utterance of s1 goes to val.
BUILDER_KWARGS = {"test_speakers": ("s2",), "val_every": 2}
SPLITS = {"train": 1, "val": 1, "test": 2}
CONFIGS = ["crop64"]
HAS_TF = importlib.util.find_spec("tensorflow") is not None


def check_built_dataset(test: absltest.TestCase, builder, splits: dict,
                        test_speakers) -> None:
  """Checks a built dataset the way DatasetBuilderTestCase does, TF-free."""
  crop = builder.builder_config.crop
  test.assertEqual({k: v.num_examples for k, v in builder.info.splits.items()},
                   splits)
  source = tfds.data_source(f"{builder.name}/{builder.builder_config.name}",
                            data_dir=builder.data_dir_root)
  speakers, keys = {}, {}
  detected = []
  for split, count in splits.items():
    test.assertLen(source[split], count)
    speakers[split] = set()
    keys[split] = set()
    for i in range(count):
      ex = source[split][i]
      speakers[split].add(ex["speaker"])
      keys[split].add((ex["speaker"], ex["utterance"]))
      num_frames = len(ex["frames"])
      test.assertGreater(num_frames, 0)
      image = cv2.imdecode(np.frombuffer(ex["frames"][0], np.uint8),
                           cv2.IMREAD_COLOR)
      test.assertEqual(image.shape, (crop, crop, 3))
      test.assertEqual(ex["audio"].dtype, np.float32)
      test.assertEqual(len(ex["audio"]), round(num_frames * 16000 / ex["fps"]))
      test.assertEqual(ex["landmarks"].shape, (num_frames, 68, 2))
      test.assertTrue(np.isfinite(ex["landmarks"]).all())
      # Aligned landmarks sit inside the crop.
      test.assertTrue(((ex["landmarks"] > -0.1 * crop)
                       & (ex["landmarks"] < 1.1 * crop)).all())
      test.assertEqual(ex["landmarks_detected"].shape, (num_frames,))
      detected.append(ex["landmarks_detected"])
      test.assertLen(ex["words"], 6)
      test.assertTrue(all(isinstance(w, bytes) for w in ex["words"]))
      test.assertEqual(ex["word_start"].shape, (6,))
      test.assertTrue((ex["word_end"] >= ex["word_start"]).all())
      test.assertEqual(ex["mouth_open_gt"].shape, (num_frames,))
      test.assertEqual(ex["blink_gt"].dtype, np.int32)
      test.assertTrue(ex["has_ground_truth"])
      test.assertEqual(ex["speaker_id"], int(ex["speaker"][1:]))
  test_speakers = {s.encode() for s in test_speakers}
  test.assertEqual(speakers["test"], test_speakers)
  for split in splits:
    if split != "test":
      test.assertFalse(speakers[split] & test_speakers)
  test.assertFalse(keys.get("train", set()) & keys.get("val", set()))
  # The synthetic faces are found by the detector in (almost) every frame.
  test.assertGreaterEqual(np.concatenate(detected).mean(), 0.99)


if HAS_TF:

  class GridDatasetBuilderTest(tfds.testing.DatasetBuilderTestCase):
    """The standard TFDS builder test (needs TensorFlow)."""
    DATASET_CLASS = grid_dataset_builder.Builder
    SPLITS = SPLITS
    BUILDER_CONFIG_NAMES_TO_TEST = CONFIGS
    SKIP_CHECKSUMS = True  # manual download: no URLs

    def _make_builder(self, config=None):
      return self.dataset_class(data_dir=self.tmp_dir, config=config,
                                version=self.VERSION, **BUILDER_KWARGS)


class GridBuilderTfFreeTest(absltest.TestCase):
  """Builds dummy_data with the real builder, without TensorFlow."""
  DATASET_CLASS = grid_dataset_builder.Builder
  BUILDER_KWARGS = BUILDER_KWARGS
  SPLITS = SPLITS

  def test_registered_and_info(self):
    with tempfile.TemporaryDirectory() as data_dir:
      builder = self.DATASET_CLASS(config="crop64", data_dir=data_dir)
    self.assertIn(builder.name, tfds.list_builders(with_community_datasets=False))
    self.assertEqual([c.name for c in builder.BUILDER_CONFIGS],
                     ["crop64", "crop128", "crop256"])
    self.assertIn("GRID", builder.info.description)
    self.assertTrue(builder.info.citation.startswith("@"))
    self.assertTrue(builder.MANUAL_DOWNLOAD_INSTRUCTIONS)

  def test_download_and_prepare_array_record(self):
    dummy_data = os.path.join(os.path.dirname(self.DATASET_CLASS.code_path),
                              "dummy_data")
    for config in CONFIGS:
      with tempfile.TemporaryDirectory() as data_dir:
        builder = self.DATASET_CLASS(config=config, data_dir=data_dir,
                                     file_format="array_record", num_workers=2,
                                     **self.BUILDER_KWARGS)
        builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
            manual_dir=dummy_data))
        check_built_dataset(self, builder, self.SPLITS,
                            self.BUILDER_KWARGS["test_speakers"])
        self.assertEqual(builder.info.metadata["test_speakers"],
                         list(self.BUILDER_KWARGS["test_speakers"]))


if __name__ == "__main__":
  absltest.main()
