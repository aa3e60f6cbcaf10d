"""Audio-visual Lombard GRID: front view, aligned faces, 16 kHz audio, words.

Builds without TensorFlow (array_record, read with `tfds.data_source`):

  python -m a2v_jax.data.build --dataset=lombard_grid --manual_dir=DIR \
      --data_dir=DIR --crop=128

Same features, configs and split rules as the `grid` builder (it subclasses
it); only the file layout, the alignment format and the skips differ.
"""
from __future__ import annotations

from a2v_jax.data import grid_layout
from a2v_jax.data import lombard_layout
from tfds_builders.grid import clip_example
from tfds_builders.grid import grid_dataset_builder

# Lombard GRID has no standard split; these four speakers are held out by
# default (a documented choice of this project, changeable per build).
DEFAULT_TEST_SPEAKERS = ("s2", "s3", "s4", "s5")
# Front-view frames are 720x480 with large faces: detect on a 360-wide copy.
DETECT_WIDTH = 360


def words_of(utt: grid_layout.Utterance):
  """Words and times from the phone-alignment JSON of an utterance."""
  if utt.align is None:
    raise ValueError("no alignment JSON for this utterance")
  return lombard_layout.parse_phone_alignment(
      utt.align.read_bytes(), lombard_layout.grid_id_of(utt))


class Builder(grid_dataset_builder.Builder):
  """DatasetBuilder for Lombard GRID (front view)."""

  VERSION = grid_dataset_builder.Builder.VERSION
  RELEASE_NOTES = {"1.0.0": "Initial release."}
  DEFAULT_TEST_SPEAKERS = DEFAULT_TEST_SPEAKERS
  HOMEPAGE = "https://spandh.dcs.shef.ac.uk/avlombard/"
  MANUAL_DOWNLOAD_INSTRUCTIONS = f"""
  Download the Audio-Visual Lombard GRID corpus
  (https://spandh.dcs.shef.ac.uk/avlombard/) into `manual_dir`:
  lombardgrid_front.zip, lombardgrid_audio.zip and lombardgrid_alignment.zip
  (lombardgrid_side.zip is not used), zipped or extracted.
  Expected: {lombard_layout.EXPECTED_ARCHIVES}.
  """

  def _find_utterances(self, manual_dir: str):
    return lombard_layout.find_utterances(manual_dir, self.skips)

  def _clip_options(self) -> clip_example.ClipOptions:
    return clip_example.ClipOptions(crop=self.builder_config.crop,
                                    words_fn=words_of, check_moov=True,
                                    detect_width=DETECT_WIDTH)
