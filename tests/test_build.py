"""Tests for the build command, a2v_jax.data.build (TF-free array_record)."""
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow_datasets as tfds

from a2v_jax.data import build
from tfds_builders.grid import grid_dataset_builder

GRID_DUMMY = os.path.join(os.path.dirname(grid_dataset_builder.__file__),
                          "dummy_data")


def test_missing_manual_dir_is_one_line_naming_the_archives(tmp_path):
  proc = subprocess.run(
      [sys.executable, "-m", "a2v_jax.data.build", "--dataset=grid",
       f"--manual_dir={tmp_path / 'nope'}", f"--data_dir={tmp_path / 'data'}",
       "--crop=64"], capture_output=True, text=True, check=False, timeout=120)
  assert proc.returncode == 1
  lines = proc.stderr.strip().splitlines()
  assert len(lines) == 1, proc.stderr
  assert lines[0].startswith("error:")
  for archive in ("s{N}.mpg_vcd.zip", "audio_25k.zip", "alignments.zip"):
    assert archive in lines[0]
  assert not (tmp_path / "data").exists()


@pytest.mark.parametrize("dataset, archive", [
    ("grid", "alignments.zip"), ("lombard_grid", "lombardgrid_front.zip")])
def test_wrong_manual_dir_names_the_archives(tmp_path, dataset, archive):
  (tmp_path / "readme.txt").write_text("not a corpus")
  with pytest.raises(build.BuildError, match=archive.replace(".", r"\.")):
    build.check_manual_dir(dataset, str(tmp_path))
  with pytest.raises(build.BuildError, match="--manual_dir is required"):
    build.check_manual_dir(dataset, None)


def test_build_grid_from_dummy_data(tmp_path):
  data_dir = str(tmp_path / "data")
  builder = build.build("grid", GRID_DUMMY, data_dir, 64, test_speakers=["s2"],
                        val_every=0, num_workers=2)
  assert {k: v.num_examples for k, v in builder.info.splits.items()} == {
      "train": 2, "test": 2}
  assert builder.skips.total == 0
  source = tfds.data_source("grid/crop64", split="train", data_dir=data_dir)
  ex = source[0]
  assert ex["speaker"] == b"s1" and len(ex["frames"]) == len(ex["landmarks"])
  assert not any(p.name.startswith("a2v_examples_") for p in
                 (tmp_path / "data").iterdir())  # scratch cache removed
  # A second build reuses the dataset rather than rebuilding it.
  again = build.build("grid", GRID_DUMMY, data_dir, 64, test_speakers=["s2"],
                      val_every=0, num_workers=2)
  assert again.skips.total == 0 and again.info.splits["train"].num_examples == 2


def test_all_test_speakers_is_a_clear_error(tmp_path):
  with pytest.raises(build.BuildError, match="--test_speakers=s2"):
    build.build("grid", GRID_DUMMY, str(tmp_path), 64,
                test_speakers=["s1", "s2"], num_workers=1)


def test_landmarks_found_in_99_percent_of_synthetic_frames(tmp_path):
  synthetic = pytest.importorskip("a2v_jax.data.synthetic")
  corpus = str(tmp_path / "corpus")
  synthetic.make_corpus(corpus, speakers=3, utterances=1, seed=0)
  builder = build.build("grid", corpus, str(tmp_path / "data"), 64,
                        test_speakers=["s3"], val_every=0, num_workers=2)
  assert builder.skips.total == 0, builder.skips.summary()
  detected = []
  for split in ("train", "test"):
    source = tfds.data_source("grid/crop64", split=split,
                              data_dir=str(tmp_path / "data"))
    for i in range(len(source)):
      ex = source[i]
      detected.append(ex["landmarks_detected"])
      assert ex["has_ground_truth"]
  detected = np.concatenate(detected)
  assert len(detected) >= 3 * 50
  assert detected.mean() >= 0.99
