"""Tests the Lombard GRID builder on dummy_data (a tiny synthetic corpus).

As for GRID (see tfds_builders/grid/grid_dataset_builder_test.py): the
standard `tfds.testing.DatasetBuilderTestCase` needs TensorFlow and runs only
when it is installed; `LombardGridBuilderTfFreeTest` always runs the same
checks TF-free. dummy_data also holds a MOV with no moov atom and a `_WRONG_`
file, which must be skipped and counted.
"""
from __future__ import annotations

import os
import tempfile

from absl.testing import absltest
import tensorflow_datasets as tfds

from tfds_builders.grid import grid_dataset_builder_test
from tfds_builders.lombard_grid import lombard_grid_dataset_builder

# dummy_data (made by `python -m a2v_jax.data.synthetic --layout=lombard
# --speakers=2 --utterances=2 --seed=0`): s2 and s3, one plain and one Lombard
# take each (s3 without separate wavs: their audio comes from the MOV), plus
# s3_l_lgiz1s.mov (its moov atom removed) and s3_p_lgiz1s_WRONG_.mov, which
# must both be skipped. s3 is the test speaker; s2's 2nd take is val.
BUILDER_KWARGS = {"test_speakers": ("s3",), "val_every": 2}
SPLITS = {"train": 1, "val": 1, "test": 2}
CONFIGS = ["crop64"]

if grid_dataset_builder_test.HAS_TF:

  class LombardGridDatasetBuilderTest(tfds.testing.DatasetBuilderTestCase):
    """The standard TFDS builder test (needs TensorFlow)."""
    DATASET_CLASS = lombard_grid_dataset_builder.Builder
    SPLITS = SPLITS
    BUILDER_CONFIG_NAMES_TO_TEST = CONFIGS
    SKIP_CHECKSUMS = True  # manual download: no URLs

    def _make_builder(self, config=None):
      return self.dataset_class(data_dir=self.tmp_dir, config=config,
                                version=self.VERSION, **BUILDER_KWARGS)


class LombardGridBuilderTfFreeTest(absltest.TestCase):
  """Builds dummy_data with the real builder, without TensorFlow."""

  def test_download_and_prepare_array_record(self):
    cls = lombard_grid_dataset_builder.Builder
    dummy_data = os.path.join(os.path.dirname(cls.code_path), "dummy_data")
    for config in CONFIGS:
      with tempfile.TemporaryDirectory() as data_dir:
        builder = cls(config=config, data_dir=data_dir,
                      file_format="array_record", num_workers=2,
                      **BUILDER_KWARGS)
        self.assertIn(builder.name,
                      tfds.list_builders(with_community_datasets=False))
        builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
            manual_dir=dummy_data))
        grid_dataset_builder_test.check_built_dataset(
            self, builder, SPLITS, BUILDER_KWARGS["test_speakers"])
        self.assertEqual(builder.skips.counts, {
            "_WRONG_ file": 1, "MOV has no moov atom (truncated file)": 1})
        self.assertEqual(builder.info.metadata["skipped"], dict(builder.skips.counts))
        source = tfds.data_source(f"lombard_grid/{config}", split="test",
                                  data_dir=data_dir)
        self.assertEqual(sorted(source[i]["utterance"] for i in range(2)),
                         [b"l_sraz7a", b"p_bgwv0p"])


if __name__ == "__main__":
  absltest.main()
