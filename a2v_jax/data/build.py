"""Builds the GRID or Lombard GRID dataset as array_record, without TensorFlow.

  python -m a2v_jax.data.build --dataset=grid --manual_dir=DIR --data_dir=DIR \
      --crop=128 [--test_speakers=s1,s2,s20,s22] [--test_every=5] [--num_workers=2]

Calls TFDS's own build machinery (`download_and_prepare`) from Python with
file_format='array_record', so the `tfds` command (which needs TensorFlow) is
not used. Face alignment runs in --num_workers processes (all cores by
default) with a progress bar. Read the result with

  tfds.data_source('grid/crop128', split='train', data_dir=DIR)
"""
from __future__ import annotations

import os
import time

from absl import app
from absl import flags
from absl import logging

from a2v_jax import cli
from a2v_jax.data import grid_layout
from a2v_jax.data import lombard_layout

DATASETS = ("grid", "lombard_grid")
CROPS = (64, 128, 256)

class BuildError(ValueError):
  """The build cannot start; the message says why and what to do."""


def builder_class(dataset: str):
  """The TFDS builder class of a dataset name."""
  if dataset == "grid":
    from tfds_builders.grid import grid_dataset_builder  # pylint: disable=g-import-not-at-top
    return grid_dataset_builder.Builder
  if dataset == "lombard_grid":
    from tfds_builders.lombard_grid import lombard_grid_dataset_builder  # pylint: disable=g-import-not-at-top
    return lombard_grid_dataset_builder.Builder
  raise BuildError(f"unknown dataset {dataset!r}; use one of {DATASETS}")


def check_manual_dir(dataset: str, manual_dir: str | None) -> int:
  """Raises BuildError (one line, naming the archives) unless usable.

  Returns:
    the number of utterances with a video found there.
  """
  layout = grid_layout if dataset == "grid" else lombard_layout
  expected = layout.EXPECTED_ARCHIVES
  if not manual_dir:
    raise BuildError(f"--manual_dir is required: a folder with the {dataset}"
                     f" download: {expected}")
  if not os.path.isdir(manual_dir):
    raise BuildError(f"--manual_dir={manual_dir} is not a folder; it should"
                     f" hold the {dataset} download: {expected}")
  try:
    return len(layout.find_utterances(manual_dir))
  except grid_layout.LayoutError as e:
    raise BuildError(str(e)) from None


def build(dataset: str, manual_dir: str, data_dir: str | None, crop: int,
          test_speakers=None, val_every: int | None = None,
          test_every: int | None = None, num_workers: int | None = None, overwrite: bool = False):
  """Builds one config of a dataset as array_record.

  Args:
    dataset: "grid" or "lombard_grid".
    manual_dir: the downloaded (or synthetic) corpus.
    data_dir: TFDS data_dir to write to (None: TFDS's default).
    crop: 64, 128 or 256.
    test_speakers: speaker names for the test split (None: builder default).
    val_every: val split stride (None: builder default).
    test_every: every k-th utterance of each non-test speaker goes to test
      (None or 0: speaker-disjoint test split only).
    num_workers: face-alignment processes (None: all cores).
    overwrite: rebuild an existing dataset.

  Returns:
    the builder, after download_and_prepare (its `.skips` has the skip log).

  Raises:
    BuildError: bad arguments or manual_dir, or every clip skipped.
  """
  # Imported here so that `--help` and argument errors stay instant.
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top

  if crop not in CROPS:
    raise BuildError(f"--crop must be one of {CROPS}, got {crop}")
  check_manual_dir(dataset, manual_dir)
  kwargs = {}
  if test_speakers is not None:
    kwargs["test_speakers"] = tuple(test_speakers)
  if val_every is not None:
    kwargs["val_every"] = val_every
  if test_every:
    if test_every < 2:
      raise BuildError(f"--test_every must be 0 (off) or at least 2, got"
                       f" {test_every}")
    kwargs["test_every"] = test_every
  builder = builder_class(dataset)(
      config=f"crop{crop}", data_dir=data_dir, file_format="array_record",
      num_workers=num_workers or os.cpu_count() or 1, **kwargs)
  mode = (tfds.download.GenerateMode.REUSE_CACHE_IF_EXISTS if overwrite
          else tfds.download.GenerateMode.REUSE_DATASET_IF_EXISTS)
  # Our own bar counts clips with a known total; TFDS's would be a second one.
  tfds.disable_progress_bar()
  try:
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
        manual_dir=os.path.abspath(manual_dir), download_mode=mode,
        compute_stats=tfds.download.ComputeStatsMode.SKIP))
  except grid_layout.LayoutError as e:
    raise BuildError(str(e)) from None
  logging.info("%s: %s", builder.name, builder.skips.summary())
  return builder


def _define_flags():
  """Command-line flags (defined only when run as a program, so that the
  module can be imported by tests and benchmarks)."""
  flags.DEFINE_enum("dataset", "grid", DATASETS, "Which corpus.")
  flags.DEFINE_string(
      "manual_dir", None, "Folder with the downloaded archives (or their"
      " extracted files, or a synthetic corpus).")
  flags.DEFINE_string(
      "data_dir", None, "Where TFDS writes the dataset (default: TFDS's"
      " ~/tensorflow_datasets).")
  flags.DEFINE_enum("crop", "128", [str(c) for c in CROPS],
                    "Side of the aligned face crops (builder config"
                    " crop64/crop128/crop256).")
  flags.DEFINE_list(
      "test_speakers", None, "Speakers held out for the test split (default:"
      " GRID s1,s2,s20,s22 as in LipNet; Lombard GRID s2,s3,s4,s5). A small"
      " synthetic corpus with speakers s1..s3 might use --test_speakers=s3.")
  flags.DEFINE_integer(
      "val_every", None, "Every k-th utterance of each training speaker goes to"
      " the val split; 0 for none (default: the builder's, 20).")
  flags.DEFINE_integer(
      "test_every", 0, "Every k-th utterance (by sorted id) of each speaker"
      " not in test_speakers goes to test: an utterance-level split, as the"
      " paper's GRID protocol; e.g. --test_speakers= --test_every=5 for one"
      " speaker. 0: the test split is test_speakers only.")
  flags.DEFINE_integer(
      "num_workers", None, "Processes for face alignment (default: all cores).")
  flags.DEFINE_bool(
      "overwrite", False, "Rebuild even if the dataset is already there.")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments {' '.join(argv[1:])}; flags"
                         " take the form --name=value")
  start = time.perf_counter()
  f = flags.FLAGS
  if f.data_dir and os.path.exists(f.data_dir) and not os.path.isdir(
      f.data_dir):
    raise cli.InputError(f"--data_dir={f.data_dir} is a file; pass the folder"
                         " TFDS should write the dataset to")
  try:
    builder = build(f.dataset, f.manual_dir, f.data_dir, int(f.crop),
                    f.test_speakers, f.val_every, f.test_every,
                    f.num_workers, f.overwrite)
  except BuildError as e:
    cli.fail(e)
  seconds = time.perf_counter() - start
  splits = {name: info.num_examples for name, info in builder.info.splits.items()}
  print(f"built {builder.name}/{builder.builder_config.name} in {seconds:.1f} s"
        f" at {builder.data_dir}: {splits}; {builder.skips.summary()}")


if __name__ == "__main__":
  _define_flags()
  cli.run(main)
