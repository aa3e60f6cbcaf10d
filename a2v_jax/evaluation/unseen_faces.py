"""Unseen faces: photos never seen in training, driven by held-out real speech.

The paper's claim is one shot: a face the model never saw. Without video of
that face speaking, the lip sync is judged against the *audio's own speaker*:
each photo is animated with a held-out utterance, and the mouth opening dlib
measures on the generated frames is correlated (Pearson r, per utterance)
with the real mouth opening of the same utterance (the landmarks the dataset
stores for its real frames). The baseline is shuffled audio: another
utterance's audio drives the same photo, and that clip is correlated with
*this* utterance's real mouth; the model row must beat it for the motion to
come from the audio rather than from a generic talking rhythm.

This module holds the pieces that need no model: reading the photos
(`load_photos`: 'astronaut', 'synthetic:N', image files, folders, .zip/.whl
archives), the correlations (`correlate_with_real`), their summaries with
95% intervals (`summarize`), the contact sheet and the report. The command
a2v_jax.evaluate_unseen_faces drives the model.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import tempfile
import warnings
import zipfile
from typing import Callable, Mapping, Sequence

import cv2
import numpy as np

from a2v_jax import photo as photo_lib
from a2v_jax.evaluation import mouth
from a2v_jax.evaluation import stats
from a2v_jax.media import video

ASTRONAUT = "astronaut"
SYNTHETIC = "synthetic:"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
# The synthetic corpus's frame size and seed (configs/synthetic.py).
SYNTHETIC_SIZE = (288, 360)
SYNTHETIC_SEED = 0
MODEL = "model"
SHUFFLED = "shuffled audio"


class UnseenFacesError(ValueError):
  """Bad arguments; the message names the problem and the fix."""


@dataclasses.dataclass
class Photo:
  """One photo to animate.

  Attributes:
    name: 'astronaut', 'synthetic s2', or the file (archive!member) name.
    image: uint8 [H, W, 3] RGB, or None when unreadable.
    skip: why it is not used ('' = usable so far).
    note: what was done to it (e.g. upscaled), for the report.
  """
  name: str
  image: np.ndarray | None
  skip: str = ""
  note: str = ""


def _is_image_name(name: str) -> bool:
  return name.lower().endswith(IMAGE_SUFFIXES)


def _decoded(name: str, source) -> Photo:
  try:
    return Photo(name, photo_lib.load_image(source)[0])
  except photo_lib.PhotoError as e:
    return Photo(name, None, skip=" ".join(str(e).split()))


def _synthetic_face(spec: str) -> Photo:
  from a2v_jax.data import face_render  # pylint: disable=g-import-not-at-top
  number = spec[len(SYNTHETIC):]
  if not number.isdigit() or int(number) < 1:
    raise UnseenFacesError(f"--photos: {spec!r} names no synthetic speaker; "
                           "write synthetic:N with N >= 1 (the corpus's sN)")
  height, width = SYNTHETIC_SIZE
  name = f"synthetic s{number}"
  try:
    face = face_render.build_speaker(int(number) - 1, height, width,
                                     seed=SYNTHETIC_SEED)
  except face_render.FaceRenderError as e:
    return Photo(name, None, skip=" ".join(str(e).split()))
  note = ("the astronaut portrait itself, mouth closed" if number == "1"
          else "the astronaut under the synthetic corpus's identity warp, "
          "mouth closed")
  return Photo(name, np.ascontiguousarray(face.image), note=note)


def load_photos(specs: Sequence[str]) -> list[Photo]:
  """Reads the photos named by --photos.

  Args:
    specs: each 'astronaut' (skimage.data.astronaut()), 'synthetic:N' (the
      synthetic corpus's speaker sN, seed 0: s1 is the astronaut re-framed,
      s2... the astronaut under an identity warp),
      an image file, a folder (its images, sorted) or a .zip/.whl archive
      (every image inside it, e.g. the photos a wheel ships).

  Returns:
    Photos in order; an unreadable image is a Photo with `skip` set.

  Raises:
    UnseenFacesError: an empty list, or a name that is none of these.
  """
  specs = [s.strip() for s in specs if s.strip()]
  if not specs:
    raise UnseenFacesError("--photos is empty; pass e.g. --photos=astronaut,"
                           "synthetic:2,path/to/portrait.jpg")
  out = []
  for spec in specs:
    if spec == ASTRONAUT:
      import skimage.data  # pylint: disable=g-import-not-at-top
      out.append(Photo(ASTRONAUT, skimage.data.astronaut()))
    elif spec.startswith(SYNTHETIC):
      out.append(_synthetic_face(spec))
    elif os.path.isdir(spec):
      names = sorted(n for n in os.listdir(spec) if _is_image_name(n))
      if not names:
        raise UnseenFacesError(f"--photos: folder {spec} holds no images "
                               f"({', '.join(IMAGE_SUFFIXES)})")
      out += [_decoded(n, os.path.join(spec, n)) for n in names]
    elif os.path.isfile(spec) and zipfile.is_zipfile(spec):
      with zipfile.ZipFile(spec) as z:
        members = sorted(n for n in z.namelist() if _is_image_name(n))
        if not members:
          raise UnseenFacesError(f"--photos: archive {spec} holds no images")
        base = os.path.basename(spec)
        out += [_decoded(f"{base}!{os.path.basename(m)}", z.read(m))
                for m in members]
    elif os.path.isfile(spec):
      out.append(_decoded(os.path.basename(spec), spec))
    else:
      raise UnseenFacesError(
          f"--photos: {spec!r} is neither 'astronaut', 'synthetic:N', nor an "
          "existing image, folder or .zip/.whl archive")
  seen: dict[str, int] = {}
  for p in out:  # names key the report: make repeats unique
    seen[p.name] = seen.get(p.name, 0) + 1
    if seen[p.name] > 1:
      p.name = f"{p.name} #{seen[p.name]}"
  return out


def check_faces(photos: Sequence[Photo], detector, crop: int) -> None:
  """Marks photos without exactly one face as skipped; upscales photos
  smaller than the crop (noted) so that small face photos can be used.

  Args:
    photos: from load_photos (changed in place).
    detector: a face.landmarks.LandmarkDetector.
    crop: the model's crop.
  """
  for p in photos:
    if p.skip:
      continue
    h, w = p.image.shape[:2]
    if min(h, w) < crop:
      scale = crop / min(h, w)
      size = (math.ceil(w * scale), math.ceil(h * scale))
      p.image = cv2.resize(p.image, size, interpolation=cv2.INTER_CUBIC)
      p.note = (p.note + "; " if p.note else "") + (
          f"upscaled from {w}x{h} px to {size[0]}x{size[1]}")
    faces = detector.detect_all(p.image)
    if len(faces) != 1:
      p.skip = (f"{len(faces)} faces found; a one-shot photo needs exactly "
                "one" if faces else "no face found")


def shuffled_partner(i: int, n: int) -> int:
  """The utterance whose audio drives the shuffled baseline of utterance i
  (the next one, as a2v_jax.evaluate's shuffled-audio row)."""
  return (i + 1) % n


def _common(x: np.ndarray, y: np.ndarray) -> float:
  t = min(len(x), len(y))
  return mouth.pearson_correlation(x[:t], y[:t])


def correlate_with_real(generated: Sequence[np.ndarray],
                        shuffled: Sequence[np.ndarray],
                        real: Sequence[np.ndarray]
                        ) -> tuple[np.ndarray, np.ndarray]:
  """Per-utterance r of the model and of the shuffled-audio baseline.

  Args:
    generated: per utterance i, float [T_i] the mouth opening measured on
      the clip driven by utterance i's audio.
    shuffled: per utterance i, float [T_i] the opening of the clip driven by
      utterance shuffled_partner(i)'s audio (looped or cut to T_i).
    real: per utterance i, float [T_i] the real video's opening (NaN where
      unmeasured).

  Returns:
    (r_model, r_shuffled), float64 [N] each: Pearson r against real[i] over
    the frames both have (NaN where undefined, e.g. a still mouth).
  """
  if not len(generated) == len(shuffled) == len(real):
    raise UnseenFacesError(
        f"{len(generated)} generated, {len(shuffled)} shuffled and "
        f"{len(real)} real series; give one of each per utterance")
  r_model = np.array([_common(g, r) for g, r in zip(generated, real)])
  r_shuffled = np.array([_common(s, r) for s, r in zip(shuffled, real)])
  return r_model, r_shuffled


def score_photo(opening_for_audio: Callable[[np.ndarray], np.ndarray],
                audios: Sequence[np.ndarray], real: Sequence[np.ndarray]
                ) -> tuple[np.ndarray, np.ndarray]:
  """Drives one photo with every utterance's audio and with shuffled audio.

  Args:
    opening_for_audio: audio float32 [N] -> float [T] the mouth opening
      measured on the clip the photo makes with it (render + dlib).
    audios: per utterance, its float32 [N_i] audio.
    real: per utterance, float [T_i] its real mouth opening.

  Returns:
    (r_model, r_shuffled) float64 [N] (see correlate_with_real). Utterance
    i's shuffled clip is driven by utterance shuffled_partner(i)'s audio,
    looped or cut to N_i samples; where the lengths already match it is the
    partner's own clip, which is reused rather than rendered again.
  """
  n = len(audios)
  if n < 2:
    raise UnseenFacesError("the shuffled-audio baseline needs at least 2 "
                           "utterances")
  generated = [np.asarray(opening_for_audio(a), np.float64) for a in audios]
  shuffled = []
  for i, audio in enumerate(audios):
    other = audios[shuffled_partner(i, n)]
    if len(other) == len(audio):
      shuffled.append(generated[shuffled_partner(i, n)])
    else:
      fitted = np.resize(np.asarray(other, np.float32), len(audio))
      shuffled.append(np.asarray(opening_for_audio(fitted), np.float64))
  return correlate_with_real(generated, shuffled, real)


def _ci(values: Sequence[float], confidence: float) -> dict:
  return stats.mean_confidence_interval(values, confidence).to_dict()


def summarize(r_model: np.ndarray, r_shuffled: np.ndarray,
              confidence: float = 0.95) -> dict:
  """Means with Student-t intervals, and the paired difference.

  Args:
    r_model, r_shuffled: float [N] per-utterance r (NaN = undefined).

  Returns:
    {"model", "shuffled", "difference": MeanCI dicts, "disjoint": whether
    the model's interval lies wholly above the shuffled one}.
  """
  r_model = np.asarray(r_model, np.float64)
  r_shuffled = np.asarray(r_shuffled, np.float64)
  out = {"model": _ci(r_model, confidence),
         "shuffled": _ci(r_shuffled, confidence),
         "difference": _ci(r_model - r_shuffled, confidence)}
  low, high = out["model"]["ci_low"], out["shuffled"]["ci_high"]
  out["disjoint"] = bool(low is not None and high is not None and low > high)
  return out


def summarize_photos(per_photo: Mapping[str, tuple[np.ndarray, np.ndarray]],
                     confidence: float = 0.95) -> dict:
  """Per photo and over all photos.

  Over all photos, each utterance's r is first averaged over the photos and
  the interval is taken over utterances: the utterances (their audio and
  real mouth) are the independent draws, the photos of one utterance are not.

  Args:
    per_photo: photo name -> (r_model [N], r_shuffled [N]), the same N
      utterances in the same order for every photo.

  Returns:
    {"photos": {name: summarize(...)}, "overall": summarize(...) or None}.
  """
  photos = {name: summarize(m, s, confidence)
            for name, (m, s) in per_photo.items()}
  overall = None
  if per_photo:
    with warnings.catch_warnings():
      # An utterance undefined for every photo stays NaN, without a warning.
      warnings.simplefilter("ignore", RuntimeWarning)
      model = np.nanmean(np.stack([m for m, _ in per_photo.values()]), 0)
      shuffled = np.nanmean(np.stack([s for _, s in per_photo.values()]), 0)
    overall = summarize(model, shuffled, confidence)
  return {"photos": photos, "overall": overall}


def sheet_times(num_frames: int, count: int) -> np.ndarray:
  """`count` frame indices spread evenly over a clip's speech (the first
  and last 10% are usually silence)."""
  lo, hi = int(0.1 * num_frames), max(int(0.9 * num_frames) - 1, 0)
  return np.unique(np.linspace(lo, hi, count).round().astype(int))


def contact_sheet(rows: Sequence[tuple[str, Sequence[np.ndarray]]],
                  tile: int = 128, label_width: int = 220) -> np.ndarray:
  """A grid of frames, one labelled row per photo.

  Args:
    rows: (label, frames): frames uint8 [h, w, 3] each, resized to `tile`.
    tile: side of each tile in px.
    label_width: width of the label column in px.

  Returns:
    uint8 [H, W, 3] RGB.
  """
  columns = max(len(f) for _, f in rows)
  sheet = np.full((len(rows) * tile, label_width + columns * tile, 3), 255,
                  np.uint8)
  for r, (label, frames) in enumerate(rows):
    y = r * tile
    for k, line in enumerate(_wrap(label, 26)[:5]):
      cv2.putText(sheet, line, (6, y + 20 + 18 * k), cv2.FONT_HERSHEY_SIMPLEX,
                  0.45, (0, 0, 0), 1, cv2.LINE_AA)
    for c, frame in enumerate(frames):
      x = label_width + c * tile
      sheet[y:y + tile, x:x + tile] = cv2.resize(
          np.asarray(frame, np.uint8), (tile, tile),
          interpolation=cv2.INTER_AREA)
  return sheet


def _wrap(text: str, width: int) -> list[str]:
  lines, line = [], ""
  for word in text.split():
    while len(word) > width:
      if line:
        lines.append(line)
        line = ""
      lines.append(word[:width])
      word = word[width:]
    if line and len(line) + 1 + len(word) > width:
      lines.append(line)
      line = word
    else:
      line = f"{line} {word}".strip()
  return lines + ([line] if line else [])


def _write_atomic(path: str, data: bytes) -> None:
  directory = os.path.dirname(os.path.abspath(path))
  os.makedirs(directory, exist_ok=True)
  fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp_")
  try:
    with os.fdopen(fd, "wb") as f:
      f.write(data)
    video.make_public(tmp)
    os.replace(tmp, path)
  except BaseException:
    if os.path.exists(tmp):
      os.remove(tmp)
    raise


def write_png(path: str, image: np.ndarray) -> None:
  """uint8 [H, W, 3] RGB -> PNG file."""
  ok, buf = cv2.imencode(".png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
  if not ok:
    raise UnseenFacesError(f"could not encode {path} as PNG")
  _write_atomic(path, buf.tobytes())


def _cell(ci: Mapping | None, decimals: int = 3) -> str:
  if not ci or ci.get("mean") is None:
    return "n/a"
  text = f"{ci['mean']:.{decimals}f}"
  if ci.get("ci_low") is not None:
    text += f" ± {(ci['ci_high'] - ci['ci_low']) / 2:.{decimals}f}"
  return text


def render_markdown(rep: Mapping) -> str:
  """report.md for the dict `write_report` takes."""
  conf = int(round(100 * rep["confidence"]))
  lines = [f"# {rep['title']}", ""]
  lines += [f"- {k}: {v}" for k, v in rep["info"].items()] + [""]
  lines += [
      f"Mouth r: Pearson r between the mouth opening dlib measures on the "
      "generated clip and the real mouth opening of the same utterance, mean "
      f"over utterances ± half the {conf}% interval (Student t). Shuffled "
      "audio: the same photo driven by another utterance's audio, against "
      "this utterance's real mouth. 'disjoint': the model's interval lies "
      "wholly above the shuffled one.", "",
      "| Photo | mouth r ↑ | shuffled audio r | model − shuffled (paired) "
      "| disjoint | n |",
      "|---|---:|---:|---:|:---:|---:|"]
  rows = list(rep["summary"]["photos"].items())
  if rep["summary"]["overall"] is not None:
    rows.append(("**all photos** (per-utterance mean over photos)",
                 rep["summary"]["overall"]))
  for name, s in rows:
    lines.append(f"| {name} | {_cell(s['model'])} | {_cell(s['shuffled'])} | "
                 f"{_cell(s['difference'])} | "
                 f"{'yes' if s['disjoint'] else 'no'} | {s['model']['n']} |")
  ceiling = rep.get("ceiling")
  if ceiling:
    lines.append(f"| real video (dlib on its aligned crops; the measurement's"
                 f" ceiling) | {_cell(ceiling)} | — | — | — | {ceiling['n']} |")
  lines.append("")
  if rep["photos"]:
    lines += ["## Photos", ""]
    for p in rep["photos"]:
      status = f"skipped: {p['skip']}" if p["skip"] else "used"
      note = f" ({p['note']})" if p.get("note") else ""
      lines.append(f"- {p['name']}: {status}{note}")
    lines.append("")
  if rep.get("notes"):
    lines += ["## Notes", ""] + [f"- {n}" for n in rep["notes"]] + [""]
  return "\n".join(lines)


def _finite(x):
  if isinstance(x, float) and not math.isfinite(x):
    return None
  if isinstance(x, dict):
    return {k: _finite(v) for k, v in x.items()}
  if isinstance(x, (list, tuple)):
    return [_finite(v) for v in x]
  if isinstance(x, np.ndarray):
    return _finite(x.tolist())
  if isinstance(x, np.generic):
    return _finite(x.item())
  return x


def write_report(rep: Mapping, out_dir: str) -> tuple[str, str]:
  """report.json and report.md into out_dir; returns their paths."""
  json_path = os.path.join(out_dir, "report.json")
  md_path = os.path.join(out_dir, "report.md")
  _write_atomic(json_path, (json.dumps(_finite(rep), indent=1,
                                       allow_nan=False) + "\n").encode())
  _write_atomic(md_path, render_markdown(rep).encode())
  return json_path, md_path

