"""The model shipped inside the package (a2v_jax/pretrained/grid_s1)."""
import os

import numpy as np
import pytest
import skimage.data

from a2v_jax import inference
from a2v_jax import pretrained
from a2v_jax.audio import io as audio_io

MAX_BYTES = 25 * 2**20


def test_shipped_model_is_there_and_small():
  assert pretrained.DEFAULT_MODEL in pretrained.available()
  path = pretrained.model_dir()
  size = sum(os.path.getsize(os.path.join(root, f))
             for root, _, files in os.walk(path) for f in files)
  assert size <= MAX_BYTES, size
  card = os.path.join(path, "MODEL_CARD.md")
  assert os.path.isfile(card)
  with open(card) as f:
    text = f.read()
  assert "CC BY 4.0" in text and "Cooke" in text


def test_unknown_shipped_model_is_one_line():
  with pytest.raises(pretrained.ShippedModelError, match="--model=EXPORT_DIR"):
    pretrained.model_dir("nope")


@pytest.fixture(scope="module")
def head():
  return inference.TalkingHead.pretrained(chunk_frames=16)


def test_shipped_model_moves_the_mouth_with_speech_and_keeps_the_eyes(head):
  """A real photo (the astronaut, not in training) driven by real speech:
  the lower face changes between frames, more than it does for silence,
  while the upper face stays the photo's."""
  photo = skimage.data.astronaut()
  rate = 16000
  # Real speech: 1.2 s of a GRID utterance (tests/data/grid_s1).
  clip = os.path.join(os.path.dirname(__file__), "data", "grid_s1", "s1",
                      "lgaz8p.mpg")
  speech = audio_io.load_audio(clip, sample_rate=rate)[int(0.8 * rate):int(2.0 * rate)]
  silence = np.zeros_like(speech)
  talk = head.generate(photo, speech, sample_rate=rate).astype(np.float32)
  still = head.generate(photo, silence, sample_rate=rate).astype(np.float32)
  crop = head.crop
  assert talk.shape == (30, crop, crop, 3)
  lower = slice(int(0.62 * crop), int(0.9 * crop))
  upper = slice(int(0.2 * crop), int(0.45 * crop))
  motion = lambda v, rows: np.abs(np.diff(v[:, rows], axis=0)).mean()
  assert motion(talk, lower) > 2 * motion(still, lower) + 0.05
  face = head.prepare(photo).face.astype(np.float32)
  assert np.abs(talk[:, upper] - face[upper]).mean() < 6.0
