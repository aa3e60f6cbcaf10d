"""The built-in sample inputs: a detectable real face and real speech."""
import numpy as np

from a2v_jax.audio import io as audio_io
from a2v_jax.data import samples
from a2v_jax.photo import prepare_photo


def test_write_samples_gives_a_face_and_speech(tmp_path):
  image_path, audio_path = samples.write_samples(str(tmp_path), "bin blue at f two now")
  audio = audio_io.load_audio(audio_path)
  assert 16000 * 1.0 < len(audio) < 16000 * 4.0  # about two seconds of speech
  assert np.abs(audio).max() > 0.1
  aligned = prepare_photo(image_path, crop=64)
  assert aligned.face.shape == (64, 64, 3)
  assert aligned.num_faces >= 1
