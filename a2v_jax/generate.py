r"""Photo + audio -> lip-synced talking-head mp4 (H.264 + AAC, original audio).

  python -m a2v_jax.generate --image=photo.jpg --audio=speech.wav \
      --out=out.mp4 [--model=EXPORT_DIR] [--adapt_epochs=5] [--paste_back]

Without --model it uses the model shipped in the package (a2v_jax/pretrained,
trained on real GRID speech and faces).

Output: --paste_back (= --output=photo) makes frames of the photo's size in
which only what the generator changed (the lower face) is composited onto
the photo, which keeps its resolution and every other pixel
(a2v_jax.compositing); --output=face (the default) writes the aligned face
crop as generated, for evaluation or your own compositing;
--output=photo_whole_face pastes the whole generated face, upscaled, over the
photo's (for models that move the head).

Batches: --image, --audio and --out take comma-separated lists (one image or
one audio is reused for every request), or --manifest=FILE gives a CSV with
the columns image,audio,out or a JSONL file of {"image", "audio", "out"}
objects (relative paths are relative to the manifest). With
--adapt_epochs > 0 all photos are adapted together, as one computation
vmapped over identities (--adapt_batch at a time).

Every input and output is checked before any work starts; a bad one stops the
run with one line naming the problem and the fix. Each mp4 is streamed to
ffmpeg chunk by chunk (memory stays flat for audio of any length) and appears
only when complete.
"""
from __future__ import annotations

import csv
import dataclasses
import json
import os
import sys
import time
from typing import Sequence

from absl import app
from absl import flags
from absl import logging
import tqdm

from a2v_jax import adaptation
from a2v_jax import export as export_lib
from a2v_jax import inference
from a2v_jax import photo as photo_lib
from a2v_jax import pretrained
from a2v_jax.audio import io as audio_io
from a2v_jax.media import stream_writer
from a2v_jax.media import video

FLAGS = flags.FLAGS


def define_flags() -> None:
  """Defines the command's flags (once; called before app.run).

  Not at import time, so that importing this module next to another command
  (a2v_jax.export, a2v_jax.main) never defines a flag twice.
  """
  if "manifest" in FLAGS:
    return
  flags.DEFINE_string("model", None,
                      "Export directory (python -m a2v_jax.export); default:"
                      " the shipped model trained on real GRID speech"
                      " (a2v_jax/pretrained).")
  flags.DEFINE_list("image", [], "Photo(s), comma-separated.")
  flags.DEFINE_list("audio", [], "Audio file(s), comma-separated; any format "
                    "ffmpeg reads.")
  flags.DEFINE_list("out", [], "Output video(s) (.mp4), comma-separated.")
  flags.DEFINE_string("manifest", None,
                      "CSV (image,audio,out) or JSONL file of requests.")
  flags.DEFINE_integer("adapt_epochs", 0, "One-shot adaptation epochs per "
                       "photo (paper §5 uses 5; 0 = none).")
  flags.DEFINE_float("adapt_learning_rate", adaptation.DEFAULT_LEARNING_RATE,
                     "Adam learning rate of the adaptation.")
  flags.DEFINE_integer("adapt_batch", 8, "Photos adapted together in one "
                       "vmapped computation.")
  flags.DEFINE_enum("adapt_batching", "auto", list(adaptation.BATCHING),
                    "How photos adapted together share the computation: "
                    "vmap (batched; GPU/TPU), map (one after another in one "
                    "compiled program; CPU), auto.")
  flags.DEFINE_enum("output", "face", list(inference.OUTPUTS),
                    "face: the aligned face crop as generated; photo: the "
                    "generated change composited onto the photo at its full "
                    "resolution; photo_whole_face: the whole generated face "
                    "pasted over the photo's.")
  flags.DEFINE_bool("paste_back", False, "Short for --output=photo.")
  flags.DEFINE_integer("crf", 18, "H.264 quality (constant rate factor, "
                       "0-51): lower keeps more of the photo in the video and "
                       "makes bigger files (15: about 1.3x the size of 18).")
  flags.DEFINE_integer("chunk_frames", inference.DEFAULT_CHUNK_FRAMES,
                       "Frames generated per fixed-size chunk (memory vs "
                       "speed).")


class RequestError(ValueError):
  """The list of requests is malformed; the message names the fix."""


@dataclasses.dataclass(frozen=True)
class Request:
  image: str
  audio: str
  out: str


def requests_from_lists(images: Sequence[str], audios: Sequence[str],
                        outs: Sequence[str]) -> list[Request]:
  """Pairs comma-list flags into requests (a single image/audio is reused)."""
  if not images or not audios or not outs:
    raise RequestError("pass --image, --audio and --out (or --manifest=FILE)")
  n = len(outs)
  if len(images) not in (1, n) or len(audios) not in (1, n):
    raise RequestError(
        f"got {len(images)} image(s), {len(audios)} audio file(s) and {n} "
        "output(s); give one --out per request, and one image/audio per "
        "request or a single one for all")
  return [Request(images[i if len(images) > 1 else 0],
                  audios[i if len(audios) > 1 else 0], outs[i])
          for i in range(n)]


def read_manifest(path: str) -> list[Request]:
  """Requests from a CSV (header image,audio,out) or JSONL manifest."""
  if not os.path.isfile(path):
    raise RequestError(f"manifest {path} does not exist; check --manifest")
  base = os.path.dirname(os.path.abspath(path))
  rows = []
  try:
    with open(path, newline="", encoding="utf-8") as f:
      if path.lower().endswith((".jsonl", ".json")):
        rows = [json.loads(line) for line in f if line.strip()]
      else:
        rows = list(csv.DictReader(f))
  except (json.JSONDecodeError, csv.Error, UnicodeDecodeError) as e:
    raise RequestError(f"manifest {path} cannot be parsed ({e}); write a CSV "
                       "with the header image,audio,out or one JSON object per"
                       " line") from None
  if not rows:
    raise RequestError(f"manifest {path} has no requests")
  out = []
  for i, row in enumerate(rows, 1):
    if not isinstance(row, dict) or not all(
        isinstance(row.get(k), str) and row.get(k).strip()
        for k in ("image", "audio", "out")):
      raise RequestError(f"manifest {path} row {i} lacks image, audio or out; "
                         "every row needs all three")
    out.append(Request(*(os.path.join(base, row[k].strip())
                         for k in ("image", "audio", "out"))))
  return out


def check_requests(requests: Sequence[Request]) -> None:
  """Every output writable and distinct; raises before any work is done."""
  seen = set()
  for r in requests:
    stream_writer.check_output_path(r.out)
    key = os.path.abspath(r.out)
    if key in seen:
      raise RequestError(f"output {r.out} is given twice; give each request "
                         "its own --out")
    seen.add(key)


@dataclasses.dataclass(frozen=True)
class Result:
  out: str
  frames: int
  duration_s: float
  generate_s: float
  adapt_s: float  # adaptation compile + compute (0 without adaptation)
  adapt_compile_s: float = 0.0
  adapt_epochs: int = 0


def run(model: str, requests: Sequence[Request], *, adapt_epochs: int = 0,
        adapt_learning_rate: float = adaptation.DEFAULT_LEARNING_RATE,
        adapt_batch: int = 8, adapt_batching: str = "auto",
        output: str = "face", paste_back: bool = False, crf: int = 18,
        chunk_frames: int = inference.DEFAULT_CHUNK_FRAMES,
        progress: bool = True,
        head: inference.TalkingHead | None = None) -> list[Result]:
  """Makes one mp4 per request.

  Args:
    model: export directory.
    requests: what to make.
    adapt_epochs: adaptation epochs per photo (0 = none).
    adapt_learning_rate: Adam rate of the adaptation.
    adapt_batch: photos adapted together in one vmapped computation.
    adapt_batching: 'vmap', 'map' or 'auto' (a2v_jax.adaptation).
    output: 'face', 'photo' or 'photo_whole_face' (inference.OUTPUTS).
    paste_back: True turns output='face' into 'photo'.
    crf: H.264 constant rate factor (0-51, lower = closer to the frames).
    chunk_frames: frames per fixed-size chunk.
    progress: tqdm bars.
    head: an already loaded TalkingHead of `model` (tests, notebooks).

  Returns:
    One Result per request.

  Raises:
    ValueError subclasses with a one-line message (RequestError,
    StreamWriterError, ExportError, PhotoError, AudioError, VideoError).
  """
  # Cheap checks first: outputs, model, audio, then the photos (dlib).
  if output not in inference.OUTPUTS:
    raise RequestError(f"--output={output} is not one of "
                       f"{', '.join(inference.OUTPUTS)}")
  if paste_back and output not in ("face", "photo"):
    raise RequestError(f"--paste_back is short for --output=photo; pass it or"
                       f" --output={output}, not both")
  output = "photo" if paste_back else output
  if not 0 <= crf <= 51:
    raise RequestError(f"--crf={crf} is outside H.264's 0-51; pass 18 (the "
                       "default) or lower for more fidelity")
  check_requests(requests)
  if head is None:
    logging.info("Loading %s.", model)
    head = inference.TalkingHead.from_export(model, chunk_frames=chunk_frames,
                                             adapt_batching=adapt_batching)
  else:
    head.adapt_batching = adapt_batching
  audios = list(dict.fromkeys(r.audio for r in requests))
  waves = {}  # One audio for every request: decoded once, kept.
  for audio in tqdm.tqdm(audios, desc="check audio", unit="file",
                         disable=not progress):
    wave = head.load_audio(audio)  # AudioError if unusable
    if len(audios) == 1:
      waves[audio] = wave
  images = list(dict.fromkeys(r.image for r in requests))
  identities = {}
  for image in tqdm.tqdm(images, desc="prepare photos", unit="photo",
                         disable=not progress):
    identities[image] = head.identity(image)
  adapt_s = {image: 0.0 for image in images}
  if adapt_epochs > 0:
    for i in range(0, len(images), max(adapt_batch, 1)):
      group = images[i:i + max(adapt_batch, 1)]
      adapted = head.adapt_many([identities[g].aligned for g in group],
                                adapt_epochs, adapt_learning_rate, progress)
      for image, identity in zip(group, adapted):
        identities[image] = identity
        adapt_s[image] = identity.adapt_stats.total_s
  results = []
  for r in requests:
    identity = identities[r.image]
    wave = waves[r.audio] if r.audio in waves else head.load_audio(r.audio)
    total = head.num_frames(wave)
    height, width = ((identity.aligned.image.shape[:2]) if output != "face"
                     else (head.crop, head.crop))
    start = time.perf_counter()
    bar = tqdm.tqdm(total=total, desc=os.path.basename(r.out), unit="frame",
                    disable=not progress)
    with stream_writer.StreamingVideoWriter(
        r.out, width=width, height=height, fps=head.fps,
        audio_path=r.audio, quality=crf) as writer:
      for chunk in head.stream(identity, wave, sample_rate=head.sample_rate,
                               output=output):
        writer.write(chunk)
        bar.update(len(chunk))
    bar.close()
    stats = identity.adapt_stats
    results.append(Result(r.out, total, total / head.fps,
                          time.perf_counter() - start, adapt_s[r.image],
                          stats.compile_s if stats else 0.0,
                          stats.epochs if stats else 0))
  return results


_ERRORS = (RequestError, stream_writer.StreamWriterError, video.VideoError,
           export_lib.ExportError, photo_lib.PhotoError, audio_io.AudioError,
           pretrained.ShippedModelError)


def main(argv: Sequence[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  try:
    model = FLAGS.model or pretrained.model_dir()
    if FLAGS.manifest:
      if FLAGS.image or FLAGS.audio or FLAGS.out:
        raise RequestError("pass either --manifest or --image/--audio/--out,"
                           " not both")
      requests = read_manifest(FLAGS.manifest)
    else:
      requests = requests_from_lists(FLAGS.image, FLAGS.audio, FLAGS.out)
    results = run(model, requests, adapt_epochs=FLAGS.adapt_epochs,
                  adapt_learning_rate=FLAGS.adapt_learning_rate,
                  adapt_batch=FLAGS.adapt_batch,
                  adapt_batching=FLAGS.adapt_batching,
                  output=FLAGS.output, paste_back=FLAGS.paste_back,
                  crf=FLAGS.crf, chunk_frames=FLAGS.chunk_frames)
  except _ERRORS as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(1)
  for res in results:
    print(f"wrote {res.out}: {res.frames} frames, {res.duration_s:.2f} s of "
          f"video in {res.generate_s:.1f} s "
          f"({res.frames / max(res.generate_s, 1e-9):.1f} frames/s)"
          + (f", adaptation {res.adapt_s:.1f} s (compile "
             f"{res.adapt_compile_s:.1f} s + {res.adapt_epochs} epochs "
             f"{res.adapt_s - res.adapt_compile_s:.1f} s)"
             if res.adapt_epochs else ""))


if __name__ == "__main__":
  define_flags()
  app.run(main)
