"""Inputs and outputs in a notebook: uploads, the microphone, inline video
with sound, images, downloads.

Colab-only calls (upload, microphone, download to the browser) are guarded:
outside Colab they log what they would have done and return the default
(the bundled sample photo, the synthesized sentence), so a notebook runs
headless under nbclient too.
"""
from __future__ import annotations

import base64
import html
import os
import tempfile
from typing import Mapping

from absl import logging
import numpy as np

from a2v_jax.colab import runtime


def upload_file(what: str, default: str | None, out_dir: str | None = None
                ) -> str | None:
  """Colab: an upload button; returns the path of the uploaded file.

  Args:
    what: what to ask for, e.g. 'a photo with one face'.
    default: returned when not in Colab or when nothing is uploaded.
    out_dir: where the upload is saved (default: runtime.work_dir()/uploads).

  Returns:
    The uploaded file's path, or `default`.
  """
  if not runtime.in_colab():
    logging.info("Not in Colab: no upload of %s; using %s.", what, default)
    return default
  from google.colab import files  # pylint: disable=g-import-not-at-top
  print(f"Upload {what} (or cancel to use {default}):")
  uploaded = files.upload()
  if not uploaded:
    return default
  name, data = next(iter(uploaded.items()))
  if len(uploaded) > 1:
    logging.warning("%d files uploaded; using %s.", len(uploaded), name)
  return _save_bytes(data, os.path.basename(name),
                     out_dir or os.path.join(runtime.work_dir(), "uploads"))


def _save_bytes(data: bytes, name: str, out_dir: str) -> str:
  os.makedirs(out_dir, exist_ok=True)
  path = os.path.join(out_dir, name)
  fd, tmp = tempfile.mkstemp(prefix=".partial-", dir=out_dir)
  with os.fdopen(fd, "wb") as f:
    f.write(data)
  os.replace(tmp, path)
  return path


# The browser records with MediaRecorder (webm/opus or ogg); ffmpeg decodes it.
_RECORD_JS = """
async function a2vRecord(ms) {
  const stream = await navigator.mediaDevices.getUserMedia({audio: true});
  const recorder = new MediaRecorder(stream);
  const parts = [];
  recorder.ondataavailable = (e) => parts.push(e.data);
  const stopped = new Promise((done) => { recorder.onstop = done; });
  const note = document.createElement('p');
  note.textContent = 'Recording for ' + (ms / 1000) + ' s...';
  document.body.appendChild(note);
  recorder.start();
  await new Promise((done) => setTimeout(done, ms));
  recorder.stop();
  await stopped;
  stream.getTracks().forEach((t) => t.stop());
  note.textContent = 'Recorded.';
  const blob = new Blob(parts, {type: recorder.mimeType});
  return await new Promise((done) => {
    const reader = new FileReader();
    reader.onloadend = () => done(reader.result);
    reader.readAsDataURL(blob);
  });
}
"""


def record_audio(seconds: float, default: str | None,
                 out_dir: str | None = None) -> str | None:
  """Colab: records `seconds` from the browser's microphone.

  Args:
    seconds: recording length.
    default: returned outside Colab (no microphone in a headless run).
    out_dir: where the recording is saved (default: runtime.work_dir()/uploads).

  Returns:
    The recording's path (webm or ogg; a2v_jax.audio.io reads it through
    ffmpeg), or `default`.

  Raises:
    runtime.NotebookError: the browser refused the microphone or recorded
      nothing.
  """
  if seconds <= 0:
    raise runtime.NotebookError(
        f"record_audio seconds={seconds}; pass a positive "
        "length such as 3")
  if not runtime.in_colab():
    logging.info("Not in Colab: no microphone; using %s.", default)
    return default
  from google.colab import output  # pylint: disable=g-import-not-at-top
  from IPython.display import Javascript  # pylint: disable=g-import-not-at-top
  runtime.display(Javascript(_RECORD_JS))
  try:
    data_url = output.eval_js(f"a2vRecord({int(seconds * 1000)})")
  except Exception as e:  # pylint: disable=broad-except
    raise runtime.NotebookError(
        f"the browser did not record ({e}); allow microphone "
        "access for this page, or upload a file") from None
  header, _, payload = str(data_url).partition(",")
  data = base64.b64decode(payload) if payload else b""
  if not data:
    raise runtime.NotebookError(
        "the recording is empty; allow microphone access for "
        "this page and record again, or upload a file")
  ext = ".ogg" if "ogg" in header else ".webm"
  return _save_bytes(data, "recording" + ext,
                     out_dir or os.path.join(runtime.work_dir(), "uploads"))


def video_html(path: str, width: int = 256) -> str:
  """An HTML <video> with the file inline (base64), playable with sound."""
  with open(path, "rb") as f:
    data = base64.b64encode(f.read()).decode("ascii")
  mime = {".mp4": "video/mp4", ".webm": "video/webm"}.get(
      os.path.splitext(path)[1].lower(), "video/mp4")
  return (f'<video width="{int(width)}" controls>'
          f'<source src="data:{mime};base64,{data}" type="{mime}"></video>'
          f'<div>{html.escape(os.path.basename(path))}</div>')


def show_video(path: str, width: int = 256) -> None:
  """Plays a video (with its audio track) inline."""
  from IPython.display import HTML  # pylint: disable=g-import-not-at-top
  runtime.display(HTML(video_html(path, width)))


def show_images(images: Mapping[str, np.ndarray], height: int = 128) -> None:
  """Shows named uint8 [H, W, 3] images side by side, each with its name,
  scaled to `height` pixels (nearest neighbour: small crops stay sharp)."""
  import cv2  # pylint: disable=g-import-not-at-top
  from IPython.display import HTML  # pylint: disable=g-import-not-at-top
  cells = []
  for name, image in images.items():
    image = np.asarray(image, np.uint8)
    ok, png = cv2.imencode(".png", np.ascontiguousarray(image[..., ::-1]))
    if not ok:
      raise runtime.NotebookError(
          f"image {name!r} of shape {image.shape} cannot be "
          "shown; pass uint8 [H, W, 3]")
    src = base64.b64encode(png.tobytes()).decode("ascii")
    cells.append(f'<figure style="display:inline-block;margin:4px">'
                 f'<img height="{int(height)}" '
                 f'style="image-rendering:pixelated" '
                 f'src="data:image/png;base64,{src}"/><figcaption>'
                 f'{html.escape(name)}</figcaption></figure>')
  runtime.display(HTML("".join(cells)))


def download(path: str) -> None:
  """Colab: sends the file to the browser; elsewhere shows a link to it."""
  if not os.path.isfile(path):
    raise runtime.NotebookError(f"{path} does not exist; nothing to download")
  if runtime.in_colab():
    from google.colab import files  # pylint: disable=g-import-not-at-top
    files.download(path)
    return
  from IPython.display import FileLink  # pylint: disable=g-import-not-at-top
  logging.info("Not in Colab: %s is ready at %s.", os.path.basename(path),
               path)
  runtime.display(FileLink(os.path.relpath(path)))
