r"""Writes the built-in sample inputs: a real portrait and a spoken sentence.

  python -m a2v_jax.data.samples --out_dir=samples \
      --text="place green at b nine again" --voice=en+f2

gives `samples/astronaut.png` (scikit-image's astronaut portrait, a real
photograph) and `samples/speech.wav` (espeak-ng speech at 22,050 Hz), ready for
`python -m a2v_jax.generate --image=... --audio=...`. Both are made offline.
"""
from __future__ import annotations

import os

from absl import app
from absl import flags
import cv2
import skimage.data

from a2v_jax.audio import io as audio_io
from a2v_jax.data import espeak


def write_samples(out_dir: str, text: str, voice: str = "en+f2") -> tuple[str, str]:
  """Writes astronaut.png and speech.wav into out_dir; returns their paths."""
  os.makedirs(out_dir, exist_ok=True)
  image_path = os.path.join(out_dir, "astronaut.png")
  tmp = image_path + ".partial.png"
  if not cv2.imwrite(tmp, cv2.cvtColor(skimage.data.astronaut(), cv2.COLOR_RGB2BGR)):
    raise OSError(f"cannot write {image_path}; check that {out_dir} is writable")
  os.replace(tmp, image_path)
  speech = espeak.synthesize(text, espeak.Voice(name=voice))
  audio_path = os.path.join(out_dir, "speech.wav")
  audio_io.save_wav(audio_path, speech.audio, speech.sample_rate)
  return image_path, audio_path


def main(argv):
  del argv
  f = flags.FLAGS
  paths = write_samples(f.out_dir, f.text, f.voice)
  print("\n".join(paths))


if __name__ == "__main__":
  flags.DEFINE_string("out_dir", "samples", "Folder for astronaut.png and speech.wav.")
  flags.DEFINE_string("text", "place green at b nine again", "Sentence to speak.")
  flags.DEFINE_string("voice", "en+f2", "espeak-ng voice name, e.g. en+m3.")
  app.run(main)
