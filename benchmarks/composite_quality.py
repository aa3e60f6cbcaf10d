r"""How generated faces sit in their photo: sharpness, stillness, the mouth.

  python benchmarks/composite_quality.py --model=EXPORT_DIR \
      [--photos=astronaut,PATH,...] [--audio_dir=CORPUS --audio_speaker=s3] \
      [--grid_dir=GRID --grid_speaker=s1 --grid_clips=8] [--frames_dir=DIR]

Generates each (photo, audio) once as aligned crops and puts the same frames
into the photo with every compositor of a2v_jax.compositing ('photo', the
default, and 'photo_whole_face'), beside the photo itself ('static'). Prints,
per compositor, means over the clips:

- photos: the photos given (`astronaut` = scikit-image's), each speaking the
  utterances of one speaker of a synthetic GRID-layout corpus
  (a2v_jax.data.synthetic; `{id}.gt.json` carries the audio-driven mouth
  opening per frame, `mouth_open`, the target);
- GRID: real clips (`{speaker}/{id}.mpg` with their audio): the photo is the
  clip's first frame and the audio its own; the target is the mouth opening
  measured on the real frames, and the lower face is compared with them.

Metrics: cpbd_ratio = CPBD of the face region (the landmarks' box) of the
output over the photo's (every 5th frame); upper_ssim = SSIM of the eyes and
above against the photo; mouth_r = Pearson r of the mouth opening measured
by dlib on the output frames with the target; on GRID lower_ssim and
lower_psnr of the lower face (nose tip to below the chin) against the real
frames (from the second frame on; the first is the photo). Needs a
trained export (python -m a2v_jax.export); CPU is enough.
"""
from __future__ import annotations

import glob
import json
import os

from absl import app
from absl import flags
from absl import logging
import cv2
import numpy as np
import skimage.data

from a2v_jax import compositing
from a2v_jax import inference
from a2v_jax import photo as photo_lib
from a2v_jax.evaluation import cpbd
from a2v_jax.evaluation import image_metrics
from a2v_jax.evaluation import mouth
from a2v_jax.face import landmarks as landmarks_lib
from a2v_jax.media import video

_MODEL = flags.DEFINE_string("model", None, "Export directory.", required=True)
_PHOTOS = flags.DEFINE_list("photos", ["astronaut"], "Photos ('astronaut' = "
                            "scikit-image's).")
_AUDIO_DIR = flags.DEFINE_string("audio_dir", "", "Synthetic GRID-layout "
                                 "corpus with {id}.gt.json ('' = skip photos).")
_AUDIO_SPEAKER = flags.DEFINE_string("audio_speaker", "s3", "Its speaker.")
_AUDIO_CLIPS = flags.DEFINE_integer("audio_clips", 4, "Utterances per photo.")
_GRID_DIR = flags.DEFINE_string("grid_dir", "", "Real GRID clips ('' = skip).")
_GRID_SPEAKER = flags.DEFINE_string("grid_speaker", "s1", "GRID speaker.")
_GRID_CLIPS = flags.DEFINE_integer("grid_clips", 8, "GRID clips: every 5th "
                                   "by sorted id (the builder's --test_every=5"
                                   " test utterances).")
_ADAPT = flags.DEFINE_integer("adapt_epochs", 0, "Adaptation epochs.")
_FRAMES_DIR = flags.DEFINE_string("frames_dir", "", "Writes each clip's "
                                  "widest-mouth frame per compositor as PNG.")

# name -> (AlignedPhoto, still uint8 [crop, crop, 3]) -> compositor.
COMPOSITORS = {
    "photo": compositing.ChangeComposite,
    "photo_whole_face": compositing.WholeFacePaste,
}
STATIC = "static"


def _box(points: np.ndarray, shape, top=None, bottom=None):
  """(rows, cols) slices of the points' box (rows overridable), in the image."""
  lo, hi = points.min(0), points.max(0)
  y0 = int(max(lo[1] if top is None else top, 0))
  y1 = int(min(hi[1] if bottom is None else bottom, shape[0]))
  return (slice(y0, y1), slice(int(max(lo[0], 0)), int(min(hi[0], shape[1]))))


def regions(lm: np.ndarray, shape) -> dict:
  """Face, upper face (eyes and above) and lower face of 68 landmarks."""
  brows = lm[17:27, 1].min()
  height = lm[8, 1] - brows
  return {
      "face": _box(lm, shape, top=brows - 0.15 * height),
      "upper": _box(lm[[0, 16]], shape, top=brows - 0.25 * height,
                    bottom=lm[36:48, 1].max() + 0.02 * height),
      "lower": _box(lm[3:14], shape, top=lm[30, 1],
                    bottom=lm[8, 1] + 0.1 * height),
  }


def _unit(x: np.ndarray) -> np.ndarray:
  return np.asarray(x, np.float32) / 255.0


def _ssim(a, b) -> float:
  return float(np.mean(image_metrics.ssim(_unit(a), _unit(b))))


def _psnr(a, b) -> float:
  return float(np.mean(image_metrics.psnr(_unit(a), _unit(b))))


def _openings(detector, frames: np.ndarray) -> np.ndarray:
  """Mouth opening per frame (dlib landmarks, frames enlarged to >= 480 px)."""
  scale = max(1.0, 480 / min(frames.shape[1:3]))
  if scale > 1.0:
    size = (round(frames.shape[2] * scale), round(frames.shape[1] * scale))
    frames = np.stack([cv2.resize(f, size, interpolation=cv2.INTER_CUBIC)
                       for f in frames])
  return mouth.measure_mouth_opening(detector.detect_clip(frames))


def evaluate_clip(head, detector, aligned, audio, target, real=None,
                  name="", frames_dir="") -> dict[str, dict[str, float]]:
  """Metrics per compositor (and 'static') of one photo speaking one audio."""
  identity = head.identity(aligned)
  if _ADAPT.value:
    identity = head.adapt(aligned, _ADAPT.value)
  faces = head.generate(identity, audio)
  count = len(faces) if real is None else min(len(faces), len(real))
  faces, target = faces[:count], target[:count]
  still = head.still_face(identity)
  image = aligned.image
  reg = regions(aligned.landmarks, image.shape)
  photo_cpbd = cpbd.compute_cpbd(image[reg["face"]])
  outputs = {STATIC: np.repeat(image[None], count, axis=0)}
  for key, make in COMPOSITORS.items():
    outputs[key] = make(aligned, still)(faces)
  results = {}
  for key, frames in outputs.items():
    r = {"cpbd_ratio": np.nanmean([cpbd.compute_cpbd(f[reg["face"]])
                                   for f in frames[::5]]) / photo_cpbd,
         "upper_ssim": _ssim(frames[(slice(None),) + reg["upper"]],
                             np.repeat(image[None], count, 0)[
                                 (slice(None),) + reg["upper"]])}
    opening = _openings(detector, frames)
    r["mouth_r"] = mouth.pearson_correlation(opening, target)
    if real is not None:  # from frame 1: frame 0 is the photo itself
      low = (slice(1, None),) + reg["lower"]
      r["lower_ssim"] = _ssim(frames[low], real[:count][low])
      r["lower_psnr"] = _psnr(frames[low], real[:count][low])
    results[key] = r
    if frames_dir:
      t = int(np.nanargmax(np.where(np.isfinite(target), target, -np.inf)))
      cv2.imwrite(os.path.join(frames_dir, f"{name}_{key}.png"),
                  cv2.cvtColor(frames[t], cv2.COLOR_RGB2BGR))
  logging.info("%s: %s", name, json.dumps(results))
  return results


def _photo_clips(head, detector):
  """(name, aligned, audio path, target) for every photo x utterance."""
  speaker = os.path.join(_AUDIO_DIR.value, _AUDIO_SPEAKER.value)
  gts = sorted(glob.glob(os.path.join(speaker, "*.gt.json")))
  gts = gts[:_AUDIO_CLIPS.value]
  if not gts:
    raise app.UsageError(f"no {{id}}.gt.json under {speaker}; pass "
                         "--audio_dir=CORPUS of a2v_jax.data.synthetic")
  for path in _PHOTOS.value:
    image = skimage.data.astronaut() if path == "astronaut" else path
    aligned = photo_lib.prepare_photo(image, head.crop, detector)
    for gt in gts:
      uid = os.path.basename(gt)[:-len(".gt.json")]
      with open(gt) as f:
        target = np.asarray(json.load(f)["mouth_open"], np.float64)
      audio = os.path.join(_AUDIO_DIR.value, "audio_25k", _AUDIO_SPEAKER.value,
                           uid + ".wav")
      name = f"{os.path.basename(path).split('.')[0]}_{uid}"
      yield name, aligned, audio, target


def _grid_clips(head, detector):
  """(name, aligned first frame, clip path, target, real frames)."""
  clips = sorted(glob.glob(os.path.join(_GRID_DIR.value, _GRID_SPEAKER.value,
                                        "*.mpg")))[4::5][:_GRID_CLIPS.value]
  for path in clips:
    real = np.asarray(video.read_video(path).frames)
    try:
      aligned = photo_lib.prepare_photo(real[0], head.crop, detector)
    except photo_lib.PhotoError as e:
      logging.warning("skipping %s: %s", path, e)
      continue
    yield (f"grid_{os.path.basename(path)[:-4]}", aligned, path,
           _openings(detector, real), real)


def _table(title: str, rows: list[dict], metrics: tuple[str, ...]) -> None:
  print(f"\n{title} ({len(rows)} clips; mean ± half the 95% CI)")
  print("| output | " + " | ".join(metrics) + " |")
  print("|---|" + "---:|" * len(metrics))
  for key in list(COMPOSITORS) + [STATIC]:
    cells = []
    for m in metrics:
      v = np.array([r[key][m] for r in rows], np.float64)
      v = v[np.isfinite(v)]
      half = 1.96 * v.std(ddof=1) / np.sqrt(len(v)) if len(v) > 1 else np.nan
      cells.append(f"{v.mean():.3f} ± {half:.3f}" if len(v) else "nan")
    print(f"| {key} | " + " | ".join(cells) + " |")


def main(argv) -> None:
  del argv
  logging.set_verbosity(logging.WARNING)
  head = inference.TalkingHead.from_export(_MODEL.value)
  detector = landmarks_lib.LandmarkDetector(upsample=1)
  if _FRAMES_DIR.value:
    os.makedirs(_FRAMES_DIR.value, exist_ok=True)
  print(f"model: {_MODEL.value} (crop {head.crop}), adaptation epochs "
        f"{_ADAPT.value}")
  if _AUDIO_DIR.value:
    rows = [evaluate_clip(head, detector, aligned, audio, target, name=name,
                          frames_dir=_FRAMES_DIR.value)
            for name, aligned, audio, target in _photo_clips(head, detector)]
    _table(f"photos {','.join(_PHOTOS.value)} x {_AUDIO_SPEAKER.value}'s "
           "utterances", rows, ("cpbd_ratio", "upper_ssim", "mouth_r"))
  if _GRID_DIR.value:
    rows = [evaluate_clip(head, detector, aligned, path, target, real,
                          name=name, frames_dir=_FRAMES_DIR.value)
            for name, aligned, path, target, real in _grid_clips(head,
                                                                 detector)]
    _table("GRID clips, photo = first frame, audio = the clip's", rows,
           ("cpbd_ratio", "upper_ssim", "mouth_r", "lower_ssim", "lower_psnr"))


if __name__ == "__main__":
  app.run(main)
