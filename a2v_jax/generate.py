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

Every input and output is checked before any work starts (the flags and the
model before the model loads); a bad one stops the run with one line naming
the problem and the fix. With several requests a request that cannot be
made (a photo without a face, unreadable audio, an unwritable --out) is
refused with its reason and the others are made (--keep_going, the default
for batches); the run ends with a summary and exit status 1 if any was
refused. Each mp4 is streamed to ffmpeg chunk by chunk (memory stays flat for
audio of any length) and appears only when complete: a failed request never
leaves a partial file.
"""
from __future__ import annotations

import csv
import dataclasses
import json
import os
import time
from typing import Sequence

from absl import app
from absl import flags
from absl import logging
import tqdm

from a2v_jax import adaptation
from a2v_jax import cli
from a2v_jax import export as export_lib
from a2v_jax import inference
from a2v_jax import photo as photo_lib
from a2v_jax import pretrained
from a2v_jax.audio import io as audio_io
from a2v_jax.media import stream_writer
from a2v_jax.media import video


def define_flags(flag_values: flags.FlagValues = flags.FLAGS) -> None:
  """Defines the command's flags (once; called before app.run).

  Not at import time, so that importing this module next to another command
  (a2v_jax.evaluate, which also has --model and --out) never defines a flag
  twice; a test passes its own FlagValues.
  """
  if "manifest" in flag_values:
    return
  fv = dict(flag_values=flag_values)
  flags.DEFINE_string("model", None,
                      "Export directory (python -m a2v_jax.export); default:"
                      " the shipped model trained on real GRID speech"
                      " (a2v_jax/pretrained).", **fv)
  flags.DEFINE_list("image", [], "Photo(s), comma-separated.", **fv)
  flags.DEFINE_list("audio", [], "Audio file(s), comma-separated; any format "
                    "ffmpeg reads.", **fv)
  flags.DEFINE_list("out", [], "Output video(s) (.mp4), comma-separated.", **fv)
  flags.DEFINE_string("manifest", None,
                      "CSV (image,audio,out) or JSONL file of requests.", **fv)
  flags.DEFINE_integer("adapt_epochs", 0, "One-shot adaptation epochs per "
                       "photo (paper §5 uses 5; 0 = none).", **fv)
  flags.DEFINE_float("adapt_learning_rate", adaptation.DEFAULT_LEARNING_RATE,
                     "Adam learning rate of the adaptation.", **fv)
  flags.DEFINE_integer("adapt_batch", 8, "Photos adapted together in one "
                       "vmapped computation.", **fv)
  flags.DEFINE_enum("adapt_batching", "auto", list(adaptation.BATCHING),
                    "How photos adapted together share the computation: "
                    "vmap (batched; GPU/TPU), map (one after another in one "
                    "compiled program; CPU), auto.", **fv)
  flags.DEFINE_enum("output", "face", list(inference.OUTPUTS),
                    "face: the aligned face crop as generated; photo: the "
                    "generated change composited onto the photo at its full "
                    "resolution; photo_whole_face: the whole generated face "
                    "pasted over the photo's.", **fv)
  flags.DEFINE_bool("paste_back", False, "Short for --output=photo.", **fv)
  flags.DEFINE_integer("crf", 18, "H.264 quality (constant rate factor, "
                       "0-51): lower keeps more of the photo in the video and "
                       "makes bigger files (15: about 1.3x the size of 18).",
                       **fv)
  flags.DEFINE_integer("chunk_frames", inference.DEFAULT_CHUNK_FRAMES,
                       "Frames generated per fixed-size chunk (memory vs "
                       "speed).", **fv)
  flags.DEFINE_bool("keep_going", None,
                    "When a request cannot be made (no face in its photo, "
                    "unreadable audio, unwritable --out), report it and make "
                    "the others; exit status 1 at the end if any failed. "
                    "Default: on for more than one request (--manifest or "
                    "lists), since a batch's videos do not depend on each "
                    "other and one bad photo should not cost the rest; "
                    "--nokeep_going stops at the first bad request.", **fv)


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
  for r in requests:
    stream_writer.check_output_path(r.out)
  _check_distinct(requests)


def _check_distinct(requests: Sequence[Request]) -> None:
  seen = set()
  for r in requests:
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
  error: str = ""  # why the request was refused (keep_going); "" = made


def _refused(r: Request, reason: object) -> Result:
  reason = " ".join(str(reason).split())
  logging.warning("refused %s: %s", r.out, reason)
  return Result(r.out, 0, 0.0, 0.0, 0.0, error=reason)


def run(model: str, requests: Sequence[Request], *, adapt_epochs: int = 0,
        adapt_learning_rate: float = adaptation.DEFAULT_LEARNING_RATE,
        adapt_batch: int = 8, adapt_batching: str = "auto",
        output: str = "face", paste_back: bool = False, crf: int = 18,
        chunk_frames: int = inference.DEFAULT_CHUNK_FRAMES,
        progress: bool = True,
        head: inference.TalkingHead | None = None,
        keep_going: bool = False) -> list[Result]:
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
    keep_going: a request that cannot be made (its photo, audio or output)
      gives a Result whose `error` says why, and the others are made;
      otherwise its error is raised. The model and the flags fail the run
      either way.

  Returns:
    One Result per request, in order.

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
  refused: dict[int, Result] = {}  # request index -> why it was refused
  if keep_going:
    _check_distinct(requests)
    for i, r in enumerate(requests):
      try:
        stream_writer.check_output_path(r.out)
        _check_inputs_exist(r)
      except _REQUEST_ERRORS as e:
        refused[i] = _refused(r, e)
  else:
    check_requests(requests)
    for r in requests:
      _check_inputs_exist(r)
  own_head = head is None
  if head is None:
    logging.info("Loading %s.", model)
    head = inference.TalkingHead.from_export(model, chunk_frames=chunk_frames,
                                             adapt_batching=adapt_batching)
  else:
    head.adapt_batching = adapt_batching

  def attempt(fn, key, field):
    """fn(key), or with keep_going None after refusing its requests."""
    try:
      return fn(key)
    except _REQUEST_ERRORS as e:
      if not keep_going:
        raise
      for i, r in enumerate(requests):
        if getattr(r, field) == key and i not in refused:
          refused[i] = _refused(r, e)
      return None

  audios = list(dict.fromkeys(r.audio for i, r in enumerate(requests)
                              if i not in refused))
  waves = {}  # One audio for every request: decoded once, kept.
  for audio in tqdm.tqdm(audios, desc="check audio", unit="file",
                         disable=not progress):
    wave = attempt(head.load_audio, audio, "audio")  # AudioError if unusable
    if wave is not None and len(audios) == 1:
      waves[audio] = wave
  images = list(dict.fromkeys(r.image for i, r in enumerate(requests)
                              if i not in refused))
  identities = {}
  for image in tqdm.tqdm(images, desc="prepare photos", unit="photo",
                         disable=not progress):
    identity = attempt(head.identity, image, "image")
    if identity is not None:
      identities[image] = identity
  images = [i for i in images if i in identities]
  adapt_s = {image: 0.0 for image in images}
  if adapt_epochs > 0:
    for i in range(0, len(images), max(adapt_batch, 1)):
      group = images[i:i + max(adapt_batch, 1)]
      adapted = head.adapt_many([identities[g].aligned for g in group],
                                adapt_epochs, adapt_learning_rate, progress)
      for image, identity in zip(group, adapted):
        identities[image] = identity
        adapt_s[image] = identity.adapt_stats.total_s
    if own_head:  # nothing adapts again: generation gets the memory
      head.release_adaptation()
  results = []
  for i, r in enumerate(requests):
    if i in refused:
      results.append(refused[i])
      continue
    try:
      results.append(_make_one(head, r, identities[r.image], waves, output,
                               crf, progress, adapt_s[r.image]))
    except _REQUEST_ERRORS as e:
      if not keep_going:
        raise
      results.append(_refused(r, e))
  return results


def _check_inputs_exist(r: Request) -> None:
  """A missing photo or audio file fails before the model loads."""
  if not os.path.isfile(r.image):
    raise photo_lib.PhotoError(f"photo {r.image} does not exist; check the "
                               "--image path")
  if not os.path.isfile(r.audio):
    raise audio_io.AudioError(f"audio {r.audio} does not exist; check the "
                              "--audio path")


def _make_one(head, r: Request, identity, waves, output: str, crf: int,
              progress: bool, adapt_s: float) -> Result:
  """Streams one request's mp4 (atomic: complete or absent)."""
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
  return Result(r.out, total, total / head.fps, time.perf_counter() - start,
                adapt_s, stats.compile_s if stats else 0.0,
                stats.epochs if stats else 0)


# What one request can get wrong (its photo, audio or output); with
# keep_going it is refused and the batch goes on.
_REQUEST_ERRORS = (stream_writer.StreamWriterError, video.VideoError,
                   photo_lib.PhotoError, audio_io.AudioError)
_ERRORS = (RequestError, stream_writer.StreamWriterError, video.VideoError,
           export_lib.ExportError, photo_lib.PhotoError, audio_io.AudioError,
           pretrained.ShippedModelError)


def main(argv: Sequence[str], flag_values: flags.FlagValues = flags.FLAGS
         ) -> None:
  f = flag_values
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments {' '.join(argv[1:])}; flags "
                         "take the form --name=value")
  try:
    model = f.model or pretrained.model_dir()
    if f.manifest:
      if f.image or f.audio or f.out:
        raise RequestError("pass either --manifest or --image/--audio/--out,"
                           " not both")
      requests = read_manifest(f.manifest)
    else:
      requests = requests_from_lists(f.image, f.audio, f.out)
    keep_going = (len(requests) > 1 if f.keep_going is None
                  else f.keep_going)
    results = run(model, requests, adapt_epochs=f.adapt_epochs,
                  adapt_learning_rate=f.adapt_learning_rate,
                  adapt_batch=f.adapt_batch,
                  adapt_batching=f.adapt_batching,
                  output=f.output, paste_back=f.paste_back,
                  crf=f.crf, chunk_frames=f.chunk_frames,
                  keep_going=keep_going)
  except _ERRORS as e:
    cli.fail(e)
  failed = [res for res in results if res.error]
  for res in results:
    if res.error:
      print(f"refused {res.out}: {res.error}")
      continue
    print(f"wrote {res.out}: {res.frames} frames, {res.duration_s:.2f} s of "
          f"video in {res.generate_s:.1f} s "
          f"({res.frames / max(res.generate_s, 1e-9):.1f} frames/s)"
          + (f", adaptation {res.adapt_s:.1f} s (compile "
             f"{res.adapt_compile_s:.1f} s + {res.adapt_epochs} epochs "
             f"{res.adapt_s - res.adapt_compile_s:.1f} s)"
             if res.adapt_epochs else ""))
  if len(results) > 1:
    print(f"made {len(results) - len(failed)} of {len(results)} videos"
          + (f"; {len(failed)} refused (listed above)" if failed else ""))
  if failed:
    cli.fail(f"{len(failed)} of {len(results)} request(s) refused; fix them "
             "(the reasons are above) and run those again")


if __name__ == "__main__":
  define_flags()
  cli.run(main)
