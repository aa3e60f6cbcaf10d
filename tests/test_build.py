"""Tests for the build command, a2v_jax.data.build (TF-free array_record)."""
import os
import subprocess
import sys
import zipfile

import numpy as np
import pytest
import tensorflow_datasets as tfds

from a2v_jax.data import build
from a2v_jax.data import grid_layout
from a2v_jax.data import synthetic
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


def _zip_like_zenodo(src: str, dst) -> None:
  """dummy_data -> s{N}.zip, audio_25k.zip and alignments.zip, with the
  alignment folders of s1 and s2 swapped as in the Zenodo upload."""
  swap = {"s1": "s2", "s2": "s1"}
  for speaker in ("s1", "s2"):
    with zipfile.ZipFile(dst / f"{speaker}.zip", "w") as zf:
      for name in sorted(os.listdir(os.path.join(src, speaker))):
        zf.write(os.path.join(src, speaker, name), f"{speaker}/{name}")
  for archive, folder in (("audio_25k.zip", "audio_25k"),
                          ("alignments.zip", "alignments")):
    with zipfile.ZipFile(dst / archive, "w") as zf:
      for speaker in sorted(os.listdir(os.path.join(src, folder))):
        inner = swap[speaker] if folder == "alignments" else speaker
        for name in sorted(os.listdir(os.path.join(src, folder, speaker))):
          zf.write(os.path.join(src, folder, speaker, name),
                   f"{folder}/{inner}/{name}")


def test_build_grid_from_zenodo_zips_with_swapped_alignments(tmp_path):
  manual_dir = tmp_path / "download"
  manual_dir.mkdir()
  _zip_like_zenodo(GRID_DUMMY, manual_dir)
  data_dir = str(tmp_path / "data")
  builder = build.build("grid", str(manual_dir), data_dir, 64,
                        test_speakers=["s2"], val_every=0, num_workers=2)
  assert builder.skips.total == 0, builder.skips.summary()
  assert {k: v.num_examples for k, v in builder.info.splits.items()} == {
      "train": 2, "test": 2}
  source = tfds.data_source("grid/crop64", split="train", data_dir=data_dir)
  ex = source[0]
  assert ex["speaker"] == b"s1" and len(ex["frames"]) == len(ex["landmarks"])
  # The words come from s1's own alignment (found in the "s2" folder).
  with open(os.path.join(GRID_DUMMY, "alignments", "s1",
                         ex["utterance"].decode() + ".align")) as f:
    words, starts, _ = grid_layout.parse_align(f.read())
  assert [w.decode() for w in ex["words"]] == words
  np.testing.assert_allclose(ex["word_start"], starts, atol=1e-6)
  assert not any(p.name.startswith("a2v_examples_") for p in
                 (tmp_path / "data").iterdir())  # scratch cache removed
  # A second build reuses the dataset rather than rebuilding it.
  again = build.build("grid", str(manual_dir), data_dir, 64,
                      test_speakers=["s2"], val_every=0, num_workers=2)
  assert again.skips.total == 0 and again.info.splits["train"].num_examples == 2


def test_all_test_speakers_is_a_clear_error(tmp_path):
  with pytest.raises(build.BuildError, match="--test_speakers=s2"):
    build.build("grid", GRID_DUMMY, str(tmp_path), 64,
                test_speakers=["s1", "s2"], num_workers=1)


def test_landmarks_found_in_99_percent_of_synthetic_frames(tmp_path):
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
