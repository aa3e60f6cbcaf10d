"""GRID audio-visual corpus: aligned face crops, 16 kHz audio, words, landmarks.

Builds without TensorFlow (array_record files, read with `tfds.data_source`):

  python -m a2v_jax.data.build --dataset=grid --manual_dir=DIR --data_dir=DIR \
      --crop=128
"""
from __future__ import annotations

import dataclasses

from absl import logging
import tensorflow_datasets as tfds

from a2v_jax.data import grid_layout
from tfds_builders.grid import clip_example

# LipNet's unseen-speaker split (Assael et al., 2016): s1, s2, s20 and s22 are
# held out for testing. s21 has no video in GRID.
DEFAULT_TEST_SPEAKERS = ("s1", "s2", "s20", "s22")
# Every 20th utterance of each training speaker goes to `val` (held-out
# utterances of seen speakers).
DEFAULT_VAL_EVERY = 20



@dataclasses.dataclass
class GridConfig(tfds.core.BuilderConfig):
  """A crop size."""
  crop: int = 128


def _config(crop: int, what: str) -> GridConfig:
  return GridConfig(name=f"crop{crop}", crop=crop,
                    description=f"{crop}x{crop} aligned face crops ({what}).")


def words_of(utt: grid_layout.Utterance):
  """Words and times from the .align file, checked against the GRID id."""
  if utt.align is None:
    raise ValueError("no .align file for this utterance")
  words, starts, ends = grid_layout.parse_align(
      utt.align.read_bytes().decode("utf-8", "replace"))
  expected = list(grid_layout.grid_words(utt.utterance))
  if words != expected:
    raise ValueError(f"alignment says {' '.join(words)!r}, the id"
                     f" {utt.utterance} says {' '.join(expected)!r}")
  return words, starts, ends


class Builder(tfds.core.GeneratorBasedBuilder):
  """DatasetBuilder for GRID."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Initial release."}
  BUILDER_CONFIGS = [
      _config(64, "the CPU demo"),
      _config(128, "default training size"),
      _config(256, "full resolution"),
  ]
  DEFAULT_CONFIG_NAME = "crop128"
  DEFAULT_TEST_SPEAKERS = DEFAULT_TEST_SPEAKERS
  HOMEPAGE = "https://spandh.dcs.shef.ac.uk/gridcorpus/"
  MANUAL_DOWNLOAD_INSTRUCTIONS = f"""
  Download GRID into `manual_dir` from either source, zipped or extracted:
  * Sheffield (https://spandh.dcs.shef.ac.uk/gridcorpus/): for each speaker N
    the video `s{{N}}.mpg_vcd.zip` (normal quality), the audio `s{{N}}.tar` or
    `s{{N}}_50kHz.tar` (put in `audio/`), and the alignment `s{{N}}.tar` (put in
    `align/`).
  * Zenodo (https://zenodo.org/records/3625687): `s1.zip` ... `s34.zip`,
    `audio_25k.zip` and `alignments.zip`.
  Expected: {grid_layout.EXPECTED_ARCHIVES}.
  """

  def __init__(self, *, test_speakers=None, val_every: int = DEFAULT_VAL_EVERY,
               test_every: int = 0, num_workers: int = 1, **kwargs):
    """Args: test_speakers (names like "s3"), val_every (0 = no val split),
    test_every (every k-th utterance of the other speakers to test; 0 =
    speaker-disjoint test only), num_workers (processes for face alignment),
    then the usual builder args."""
    super().__init__(**kwargs)
    self.test_speakers = tuple(test_speakers if test_speakers is not None
                               else self.DEFAULT_TEST_SPEAKERS)
    self.val_every = int(val_every)
    self.test_every = int(test_every)
    self.num_workers = int(num_workers)
    self.skips = grid_layout.SkipLog()

  def _info(self) -> tfds.core.DatasetInfo:
    # The description and citation come from README.md and CITATIONS.bib.
    return self.dataset_info_from_configs(
        features=clip_example.features(),
        supervised_keys=None,
        homepage=self.HOMEPAGE,
        metadata=tfds.core.MetadataDict(),
    )

  def _find_utterances(self, manual_dir: str):
    return grid_layout.find_utterances(manual_dir, self.skips)

  def _clip_options(self) -> clip_example.ClipOptions:
    return clip_example.ClipOptions(crop=self.builder_config.crop,
                                    words_fn=words_of)

  def _check_train_speakers(self, utterances, what: str) -> None:
    """Raises LayoutError when no speaker is left for train."""
    speakers = sorted({u.speaker for u in utterances},
                      key=grid_layout.speaker_number)
    if set(speakers) - set(self.test_speakers):
      return
    if not speakers:
      raise grid_layout.LayoutError(
          f"all clips were skipped ({self.skips.summary()})")
    if len(speakers) == 1:
      fix = ("hold out utterances instead: --test_speakers= --test_every=5"
             " (every 5th utterance to test)")
    else:
      fix = f"pass fewer test_speakers (e.g. --test_speakers={speakers[-1]})"
    raise grid_layout.LayoutError(
        f"every {what} speaker ({', '.join(speakers)}) is a test speaker, so"
        f" train would be empty; {fix}")

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    utterances = self._find_utterances(str(dl_manager.manual_dir))
    self._check_train_speakers(utterances, "found")  # before hours of work
    # Process every clip first, then split only the clips that worked, so a
    # split is never emptied by skips.
    cache = clip_example.ExampleCache(self.data_dir_root)
    done = clip_example.process_clips(
        utterances, self._clip_options(), self.num_workers, self.skips, cache,
        desc=f"{self.name}/{self.builder_config.name}")
    logging.info("%s: %d of %d clips usable; %s", self.name, len(done),
                 len(utterances), self.skips.summary())
    try:
      self._check_train_speakers(done, "usable")
    except grid_layout.LayoutError:
      cache.cleanup()
      raise
    splits = grid_layout.assign_splits(done, self.test_speakers, self.val_every,
                                       self.test_every)
    self.info.metadata["test_speakers"] = list(self.test_speakers)
    self.info.metadata["val_every"] = self.val_every
    self.info.metadata["test_every"] = self.test_every
    self.info.metadata["skipped"] = dict(self.skips.counts)
    logging.info("%s splits: %s", self.name,
                 {k: len(v) for k, v in splits.items()})
    return {name: self._generate_examples(utts, cache)
            for name, utts in splits.items() if utts}

  def _generate_examples(self, utterances, cache):
    """Yields (key, example) from the processed clips."""
    for utt in utterances:
      key = clip_example.example_key(utt)
      yield key, cache.pop(key)
    cache.cleanup(only_if_empty=True)
