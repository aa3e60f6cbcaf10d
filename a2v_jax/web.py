r"""A local web page: a photo and speech in, a talking-head video out.

  pip install -e ".[web]"        # or: EXTRAS=dev,web ./setup.sh
  python -m a2v_jax.web [--model=EXPORT_DIR] [--port=7860]

Serves a Gradio page on 127.0.0.1 (this machine only) and prints its
address. The page takes a photo (upload, webcam or clipboard) and speech
(an audio file, the microphone, or text spoken by the bundled espeak-ng
voice), optional one-shot adaptation and paste-back, shows progress while it
adapts and generates, and plays the result (H.264 + AAC mp4) inline with a
download button. Without --model it runs the shipped model
(a2v_jax/pretrained).

Bad input (no face, a corrupt, silent or too long audio, a photo too large
to decode) ends the request with one readable line in the page's status box;
a photo with several faces animates the largest and says so. Requests go
through Gradio's queue, one generation at a time: a second user waits in the
queue (the page shows the position) and is then served.

docs/web.md has the design, the measurements and why Gradio.
"""
from __future__ import annotations

import dataclasses
import html
import os
import sys
import tempfile
import threading
import time
import warnings
from typing import Any, Callable, Sequence

from absl import app
from absl import flags
from absl import logging
import numpy as np
from PIL import Image

from a2v_jax import adaptation
from a2v_jax import cli
from a2v_jax import export as export_lib
from a2v_jax import inference
from a2v_jax import photo as photo_lib
from a2v_jax import pretrained
from a2v_jax.audio import io as audio_io
from a2v_jax.data import espeak
from a2v_jax.media import stream_writer
from a2v_jax.media import video

FLAGS = flags.FLAGS

SAMPLE_SENTENCE = "Hello! This photo is talking, from one picture and speech."
# The text box's voices: label -> espeak-ng voice.
VOICES = {"English, male": espeak.Voice("en-us", rate=160),
          "English, female": espeak.Voice("en-us+f3", rate=160),
          "English (UK), male": espeak.Voice("en+m3", rate=160)}
MAX_ADAPT_EPOCHS = 20
# Photos with more pixels than this are refused before they are decoded; a
# longer side above MAX_PHOTO_SIDE_PX is scaled down (the face crop the
# model sees is 128-256 px, and paste-back writes frames of the photo's size).
MAX_PHOTO_MEGAPIXELS = 50
MAX_PHOTO_SIDE_PX = 2048
MAX_AUDIO_S = 60.0
MAX_TEXT_CHARS = 500
# Peak below this (-60 dBFS) is silence: a muted microphone records it.
SILENCE_PEAK = 1e-3
# Videos kept in the server's output folder.
KEEP_VIDEOS = 8
# Speech sources of the page's radio.
SPEECH_AUDIO = "audio file or microphone"
SPEECH_TEXT = "text, spoken by espeak-ng"


class WebInputError(ValueError):
  """A request the page cannot serve; the message names the fix."""


# Errors that end one request with their message in the page.
INPUT_ERRORS = (WebInputError, photo_lib.PhotoError, audio_io.AudioError,
                espeak.EspeakError, stream_writer.StreamWriterError,
                video.VideoError)


def define_flags() -> None:
  """Defines the command's flags (once; called before app.run)."""
  if "port" in FLAGS:
    return
  flags.DEFINE_string("model", None,
                      "Export directory (python -m a2v_jax.export); default:"
                      " the shipped model (a2v_jax/pretrained).")
  flags.DEFINE_string("host", "127.0.0.1",
                      "Address to bind; the default serves this machine only.")
  flags.DEFINE_integer("port", 7860, "Port; 0 picks a free one.")
  flags.DEFINE_bool("warmup", True, "Compile the model before serving, so the"
                    " first request is as fast as the next.")
  flags.DEFINE_integer("max_queue", 16, "Requests waiting at most; more are "
                       "turned away with a message.")


@dataclasses.dataclass(frozen=True)
class Upload:
  """A file the page sent: where it is on the server and what it was called."""
  path: str
  name: str


def as_upload(value: Any) -> Upload | None:
  """A Gradio file payload (dict, FileData or path) as an Upload, or None."""
  if value is None or value == "":
    return None
  if isinstance(value, (str, os.PathLike)):
    path = os.fspath(value)
    return Upload(path, os.path.basename(path))
  if not isinstance(value, dict):
    value = getattr(value, "model_dump", lambda: {})() or vars(value)
  path = value.get("path")
  if not path:
    return None
  return Upload(path, value.get("orig_name") or os.path.basename(path))


def load_photo(path: str, name: str) -> tuple[np.ndarray, list[str]]:
  """Reads an uploaded photo, refusing huge ones before decoding them.

  Returns:
    (uint8 [H, W, 3] RGB, notes for the page), the photo scaled down to
    MAX_PHOTO_SIDE_PX on its longer side where it was larger.

  Raises:
    WebInputError, photo.PhotoError: too large, corrupt, not an image.
  """
  notes = []
  try:
    with warnings.catch_warnings():  # Pillow's bomb warning: checked below.
      warnings.simplefilter("ignore", Image.DecompressionBombWarning)
      with Image.open(path) as img:
        width, height = img.size  # Read from the header: nothing decoded.
  except Image.DecompressionBombError:
    raise WebInputError(f"photo {name} is too large to decode; scale it down "
                        f"to at most {MAX_PHOTO_SIDE_PX} px on its longer "
                        "side") from None
  except (OSError, SyntaxError, ValueError):
    width = height = None  # Corrupt: load_image names the problem.
  if width and width * height > MAX_PHOTO_MEGAPIXELS * 1e6:
    raise WebInputError(
        f"photo {name} is {width}x{height} px ({width * height / 1e6:.0f} "
        f"megapixels); the page takes up to {MAX_PHOTO_MEGAPIXELS} megapixels:"
        f" scale it down to at most {MAX_PHOTO_SIDE_PX} px on its longer side "
        "(the model sees a face crop of a few hundred pixels)")
  rgb, _ = photo_lib.load_image(path)
  height, width = rgb.shape[:2]
  if max(height, width) > MAX_PHOTO_SIDE_PX:
    scale = MAX_PHOTO_SIDE_PX / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    rgb = np.asarray(Image.fromarray(rgb).resize(size, Image.LANCZOS))
    notes.append(f"The photo ({width}x{height} px) was scaled down to "
                 f"{size[0]}x{size[1]} px.")
  return rgb, notes


def speak(text: str, voice: str) -> tuple[np.ndarray, int]:
  """Text -> (float32 [N] speech, sample rate), spoken by espeak-ng."""
  text = " ".join((text or "").split())
  if not text:
    raise WebInputError("the text box is empty; type a sentence to speak, or "
                        "choose the audio file or microphone")
  if len(text) > MAX_TEXT_CHARS:
    raise WebInputError(f"the text has {len(text)} characters; the page "
                        f"speaks at most {MAX_TEXT_CHARS}")
  default = next(iter(VOICES.values()))
  speech = espeak.synthesize(text, VOICES.get(voice, default))
  return speech.audio, speech.sample_rate


class Studio:
  """The model behind the page: one request in, one mp4 out.

  Args:
    head: the TalkingHead to run.
    out_dir: where the videos are written (one file per request).
    model_name: how the page names the model.
  """

  def __init__(self, head: inference.TalkingHead, out_dir: str,
               model_name: str = "export"):
    self.head = head
    self.model_name = model_name
    self.out_dir = out_dir
    self._count = 0
    self._lock = threading.Lock()

  def warmup(self) -> float:
    """Loads the face detector and compiles encoder and generator; seconds."""
    start = time.perf_counter()
    self.head.detector  # pylint: disable=pointless-statement  (dlib's models)
    wave = np.zeros(self.head.sample_rate // 5, np.float32)
    self.head.silence_features()
    self.head.audio_features(wave)
    identity = inference.Identity(
        photo_lib.AlignedPhoto(
            image=np.full((self.head.crop, self.head.crop, 3), 128, np.uint8),
            face=np.full((self.head.crop, self.head.crop, 3), 128, np.uint8),
            matrix=np.eye(2, 3, dtype=np.float32),
            landmarks=np.zeros((68, 2), np.float32), num_faces=1),
        self.head.generator_variables)
    self.head.still_face(identity)
    return time.perf_counter() - start

  def _out_path(self) -> str:
    """A new output path; videos before the last KEEP_VIDEOS are deleted
    (the page has its own copy: Gradio serves the result from its cache)."""
    with self._lock:
      self._count += 1
      old = os.path.join(self.out_dir,
                         f"a2v-{self._count - KEEP_VIDEOS:04d}.mp4")
      if os.path.exists(old):
        os.remove(old)
      return os.path.join(self.out_dir, f"a2v-{self._count:04d}.mp4")

  def run(self, photo: Upload | None, audio: Upload | None, text: str,
          voice: str, speech_source: str, adapt_epochs: int,
          paste_back: bool,
          progress: Callable[[float, str], None] = lambda f, d: None
          ) -> tuple[str, str]:
    """Makes the video of one request.

    Args:
      photo, audio: the uploads (audio unused when speaking text).
      text, voice: the sentence and VOICES key for espeak-ng.
      speech_source: SPEECH_AUDIO or SPEECH_TEXT.
      adapt_epochs: one-shot adaptation epochs (0 = none).
      paste_back: the change composited onto the whole photo, else the
        aligned face crop.
      progress: called with (fraction done, what is happening).

    Returns:
      (mp4 path, a Markdown report for the page).

    Raises:
      INPUT_ERRORS with a one-line message naming the fix.
    """
    head = self.head
    start = time.perf_counter()
    if photo is None:
      raise WebInputError("no photo: upload a portrait, take one with the "
                          "webcam, or click the example portrait")
    # Audio first: it is cheaper to check than finding a face.
    progress(0.0, "Reading the speech")
    if speech_source == SPEECH_TEXT:
      samples, rate = speak(text, voice)
      wave = head.load_audio(samples, rate)
      audio_kwargs = dict(audio=wave, sample_rate=head.sample_rate)
    else:
      if audio is None:
        raise WebInputError("no audio: upload a recording, record one with the"
                            " microphone, or choose text and type a sentence")
      wave = _named(audio, lambda: head.load_audio(audio.path))
      audio_kwargs = dict(audio_path=audio.path)
    seconds = len(wave) / head.sample_rate
    if seconds > MAX_AUDIO_S:
      raise WebInputError(f"the audio is {seconds:.0f} s long; the page makes "
                          f"videos of up to {MAX_AUDIO_S:.0f} s (use python -m"
                          " a2v_jax.generate for longer ones)")
    peak = float(np.max(np.abs(wave))) if wave.size else 0.0
    if peak < SILENCE_PEAK:
      raise WebInputError("the audio is silent (nothing above -60 dBFS); "
                          "check the microphone's permission and level, or "
                          "upload a recording with speech")
    progress(0.05, "Finding the face")
    rgb, notes = _named(photo, lambda: load_photo(photo.path, photo.name))
    aligned = _named(photo, lambda: head.prepare(rgb))
    if aligned.num_faces > 1:
      notes.append(f"The photo shows {aligned.num_faces} faces; the largest "
                   "was animated (a photo of one person works best).")
    identity = head.identity(aligned)
    if adapt_epochs > 0:
      progress(0.1, f"Adapting the model to the photo ({adapt_epochs} "
               f"epoch{'s' if adapt_epochs != 1 else ''}; the first time also "
               "compiles)")
      identity = head.adapt(aligned, int(adapt_epochs), progress=True)
    output = "photo" if paste_back else "face"
    height, width = (aligned.image.shape[:2] if paste_back
                     else (head.crop, head.crop))
    total = head.num_frames(wave)
    out = self._out_path()
    gen_start = time.perf_counter()
    done = 0
    with stream_writer.StreamingVideoWriter(out, width=width, height=height,
                                            fps=head.fps,
                                            **audio_kwargs) as writer:
      for chunk in head.stream(identity, wave, sample_rate=head.sample_rate,
                               output=output):
        writer.write(chunk)
        done += len(chunk)
        progress(0.2 + 0.8 * done / max(total, 1),
                 f"Generating frames: {done}/{total}")
    now = time.perf_counter()
    stats = identity.adapt_stats
    lines = [f"**Done**: {total} frames ({total / head.fps:.1f} s at "
             f"{head.fps:g} fps, {width}x{height}) in {now - start:.1f} s"
             f" (generation {now - gen_start:.1f} s"
             + (f", adaptation {stats.total_s:.1f} s" if stats else "") + ")."]
    lines += notes
    return out, "\n\n".join(lines)


def _named(upload: Upload, fn: Callable[[], Any]) -> Any:
  """Runs fn, putting the upload's own name in place of its server path."""
  try:
    return fn()
  except INPUT_ERRORS as e:
    message = str(e).replace(upload.path, upload.name)
    raise type(e)(message.replace("<array>", upload.name)) from None


def error_report(e: BaseException) -> str:
  """The page's one line for a failed request (never a stack trace)."""
  if isinstance(e, INPUT_ERRORS):
    message = html.escape(" ".join(str(e).split()).rstrip("."), quote=False)
    return f"**Cannot make this video**: {message}."
  return (f"**Something went wrong** ({type(e).__name__}); the server keeps "
          "serving. Try another photo or audio; the server's log has the "
          "details.")


def example_portrait(folder: str) -> str:
  """Writes the bundled portrait (scikit-image's astronaut) as a PNG."""
  from skimage import data as skdata  # pylint: disable=g-import-not-at-top
  path = os.path.join(folder, "astronaut.png")
  if not os.path.isfile(path):
    Image.fromarray(skdata.astronaut()).save(path)
  return path


def _gradio():
  """Imports Gradio (the web extra) with its usage statistics off.

  They would call out to the internet; GRADIO_ANALYTICS_ENABLED=True turns
  them back on.
  """
  os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
  import gradio  # pylint: disable=g-import-not-at-top
  return gradio


def build_app(studio: Studio, example_dir: str):
  """The Gradio page of a Studio: gr.Blocks, not yet launched."""
  gr = _gradio()

  def generate(photo, audio, text, voice, source, epochs, paste_back,
               progress=gr.Progress(track_tqdm=True)):
    try:
      path, report = studio.run(
          as_upload(photo), as_upload(audio), text or "", voice, source,
          int(epochs or 0), bool(paste_back),
          lambda fraction, desc: progress(fraction, desc=desc))
      return path, report
    except Exception as e:  # pylint: disable=broad-except
      if not isinstance(e, INPUT_ERRORS):
        logging.exception("Request failed.")
      else:
        logging.info("Refused a request: %s", e)
      return None, error_report(e)

  # delete_cache: Gradio's copies of uploads and results older than a day go,
  # checked every hour.
  with gr.Blocks(title="a2v-jax: talking head", analytics_enabled=False,
                 delete_cache=(3600, 86400)) as demo:
    gr.Markdown("# a2v-jax: one photo + speech → talking-head video\n"
                "Runs on this machine: nothing leaves it. "
                f"Model: `{studio.model_name}`.",
                elem_id="title")
    with gr.Row():
      with gr.Column():
        photo = gr.Image(label="Photo (one frontal face)", type="filepath",
                         sources=["upload", "webcam", "clipboard"],
                         elem_id="photo", height=320)
        source = gr.Radio([SPEECH_AUDIO, SPEECH_TEXT], value=SPEECH_AUDIO,
                          label="Speech from", elem_id="source")
        audio = gr.Audio(label="Audio (any format ffmpeg reads)",
                         sources=["upload", "microphone"], type="filepath",
                         elem_id="audio")
        with gr.Row(visible=False) as speech_text:
          text = gr.Textbox(label="Text to speak", lines=2, elem_id="text",
                            placeholder=SAMPLE_SENTENCE, scale=3)
          voice = gr.Dropdown(list(VOICES), value=next(iter(VOICES)),
                              label="Voice", elem_id="voice", scale=1)
        with gr.Accordion("Options", open=False):
          epochs = gr.Slider(0, MAX_ADAPT_EPOCHS, value=0, step=1,
                             label="Adaptation epochs (paper: "
                             f"{adaptation.DEFAULT_EPOCHS}; 0 = none, fastest)",
                             elem_id="epochs")
          paste_back = gr.Checkbox(value=True, label="Paste back onto the "
                                   "whole photo (else the aligned face crop)",
                                   elem_id="paste_back")
        button = gr.Button("Generate", variant="primary", elem_id="generate")
        with gr.Row():
          gr.Examples([[example_portrait(example_dir)]], inputs=[photo],
                      label="Example portrait")
          gr.Examples([[SAMPLE_SENTENCE, SPEECH_TEXT]], inputs=[text, source],
                      label="Example sentence")
      with gr.Column():
        result = gr.Video(label="Result", elem_id="result", autoplay=False,
                          buttons=["download"], interactive=False)
        status = gr.Markdown("Add a photo and speech, then press Generate.",
                             elem_id="status")
    source.change(lambda s: (gr.update(visible=s == SPEECH_AUDIO),
                             gr.update(visible=s == SPEECH_TEXT)),
                  source, [audio, speech_text], queue=False,
                  api_visibility="private")
    button.click(generate, [photo, audio, text, voice, source, epochs,
                            paste_back], [result, status], preprocess=False,
                 api_name="generate", concurrency_limit=1)
  return demo


def serve(model: str | None, *, host: str = "127.0.0.1", port: int = 7860,
          warmup: bool = True, max_queue: int = 16, block: bool = True):
  """Loads the model and serves the page; returns (app, url) if not block."""
  gr = _gradio()
  model = model or pretrained.model_dir()
  logging.info("Loading %s.", model)
  head = inference.TalkingHead.from_export(model)
  work = tempfile.mkdtemp(prefix="a2v-web-")
  studio = Studio(head, work, os.path.basename(os.path.normpath(model)))
  if warmup:
    logging.info("Compiled the model in %.1f s.", studio.warmup())
  demo = build_app(studio, work)
  demo.queue(max_size=max_queue, default_concurrency_limit=1)
  if port == 0:
    import portpicker  # pylint: disable=g-import-not-at-top
    port = portpicker.pick_unused_port()
  app_, url, _ = demo.launch(
      server_name=host, server_port=port, prevent_thread_lock=True,
      quiet=True, show_error=False, max_file_size="50mb",
      allowed_paths=[work], footer_links=[],
      theme=gr.themes.Soft(font=["system-ui", "sans-serif"],
                           font_mono=["ui-monospace", "monospace"]))
  print(f"a2v-jax web page: {url.rstrip('/')}  (Ctrl+C stops it)", flush=True)
  if not block:
    return demo, url
  try:
    while True:
      time.sleep(3600)
  except KeyboardInterrupt:
    demo.close()


def main(argv: Sequence[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  cli.configure_compilation_cache()
  try:
    _gradio()
  except ImportError:
    print('error: the web page needs the web extra: pip install -e ".[web]"'
          " (or EXTRAS=dev,web ./setup.sh)", file=sys.stderr)
    sys.exit(1)
  try:
    serve(FLAGS.model, host=FLAGS.host, port=FLAGS.port, warmup=FLAGS.warmup,
          max_queue=FLAGS.max_queue)
  except (export_lib.ExportError, pretrained.ShippedModelError) as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(1)


if __name__ == "__main__":
  define_flags()
  app.run(main)
