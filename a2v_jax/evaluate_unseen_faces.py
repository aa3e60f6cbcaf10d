r"""Unseen faces: photos never seen in training, driven by held-out real speech.

  python -m a2v_jax.evaluate_unseen_faces --model=EXPORT_DIR \
      --data_dir=data/tfds_grid_s1 --split=test --out=eval/unseen_faces \
      --photos=astronaut,synthetic:2,synthetic:3,PATH/insightface-X.whl \
      [--num_utterances=24] [--adapt_epochs=0]

Every photo (see a2v_jax/evaluation/unseen_faces.py for the --photos forms)
is animated with the audio of each of the first --num_utterances utterances
of the split; the mouth opening dlib measures on each generated clip is
correlated with the real mouth opening of that utterance (the landmarks the
dataset stores for its real frames). The baseline drives the same photo with
the next utterance's audio and correlates it with this utterance's real
mouth. Writes report.json, report.md (per photo and over all photos: mean r
with its 95% interval, the paired difference model - shuffled) and
contact_sheet.png (the real clip's frames, then each photo's aligned face
and its frames at the same times) into --out, and prints the markdown.

A photo with no face or several faces, or one that cannot be read, is
skipped with its reason in the report; only a run with no usable photo at
all fails. Bad input ends in one `error:` line.
"""
from __future__ import annotations

import os
import time
from typing import Sequence

from absl import app
from absl import flags
from absl import logging
import numpy as np
import tqdm

from a2v_jax import cli
from a2v_jax import evaluate
from a2v_jax.evaluation import evaluators
from a2v_jax.evaluation import mouth
from a2v_jax.evaluation import stats
from a2v_jax.evaluation import unseen_faces

DEFAULT_PHOTOS = ("astronaut", "synthetic:2", "synthetic:3")
DEFAULT_UTTERANCES = 24
SHEET_TILE = 128  # smaller crops are enlarged on the contact sheet


def _opening(frames: np.ndarray, detector) -> np.ndarray:
  """float64 [T] mouth opening dlib measures on uint8 [T, H, W, 3] frames
  (as the 'mouth' evaluator of a2v_jax.evaluate does)."""
  clip = evaluators.Clip(utterance="", generated=frames)
  return mouth.measure_mouth_opening(
      evaluators.detect_landmarks(clip, detector))


def _identities(head, photos, adapt_epochs: int):
  """(usable photos, their inference.Identity); skips photos that fail to
  align, with the reason."""
  from a2v_jax import inference  # pylint: disable=g-import-not-at-top
  from a2v_jax import photo as photo_lib  # pylint: disable=g-import-not-at-top
  usable, aligned = [], []
  for p in photos:
    if p.skip:
      continue
    try:
      aligned.append(head.prepare(p.image))
      usable.append(p)
    except photo_lib.PhotoError as e:
      p.skip = " ".join(str(e).split())
  if adapt_epochs > 0 and aligned:
    return usable, head.adapt_many(aligned, adapt_epochs)
  return usable, [inference.Identity(a, head.generator_variables)
                  for a in aligned]


def evaluate_unseen_faces(model_dir: str, *, data_dir: str,
                          photos: Sequence[str] = DEFAULT_PHOTOS,
                          dataset: str = "grid", split: str = "test",
                          out_dir: str | None = None,
                          num_utterances: int = DEFAULT_UTTERANCES,
                          adapt_epochs: int = 0, sheet_frames: int = 6,
                          max_frames: int = 0, progress: bool = False
                          ) -> dict:
  """Scores the photos; writes report.json/.md and contact_sheet.png.

  Args:
    model_dir: an inference export (a2v_jax.export).
    data_dir: TFDS data_dir of the real dataset (its landmarks give the
      real mouth).
    photos: --photos entries (unseen_faces.load_photos).
    dataset, split: where the driving audio and the real mouth come from.
    out_dir: where the report goes (None: not written).
    num_utterances: first N utterances of the split (0 = all).
    adapt_epochs: one-shot adaptation epochs per photo (paper §5).
    sheet_frames: frames per photo on the contact sheet.
    max_frames: cut utterances to this many frames (0 = whole; quick runs).
    progress: tqdm bar.

  Returns:
    The report dict (see unseen_faces.render_markdown).

  Raises:
    unseen_faces.UnseenFacesError: bad photos or too few utterances or no
      usable photo; evaluate.EvaluationError / data_sources errors for the
      dataset.
  """
  from a2v_jax import inference  # pylint: disable=g-import-not-at-top
  start = time.time()
  if dataset == "synthetic":
    raise unseen_faces.UnseenFacesError(
        "--dataset=synthetic has no real mouth to compare with; use grid "
        "(real speech and faces)")
  photo_list = unseen_faces.load_photos(photos)
  head = inference.TalkingHead.from_export(model_dir)
  utterances, used, note = evaluate._load_utterances(  # pylint: disable=protected-access
      dataset, split, data_dir, head.crop, num_utterances, max_frames)
  n = len(utterances)
  if n < 2:
    raise unseen_faces.UnseenFacesError(
        f"split {used!r} gave {n} utterance; the shuffled-audio baseline needs"
        " at least 2 (raise --num_utterances or pick another --split)")
  unseen_faces.check_faces(photo_list, head.detector, head.crop)
  usable, identities = _identities(head, photo_list, adapt_epochs)
  for p in photo_list:
    if p.skip:
      logging.warning("Skipping photo %s: %s", p.name, p.skip)
  if not usable:
    raise unseen_faces.UnseenFacesError(
        "no usable photo: " + "; ".join(f"{p.name}: {p.skip}"
                                        for p in photo_list))
  detector = evaluators._default_detector()  # pylint: disable=protected-access
  real = [u.mouth_real for u in utterances]
  ceiling = [mouth.pearson_correlation(_opening(u.frames, detector), r)
             for u, r in zip(utterances, real)]
  times = unseen_faces.sheet_times(len(utterances[0].frames), sheet_frames)
  sheet = [(f"real {utterances[0].utterance} (the driving audio)",
            [utterances[0].frames[0]] + [utterances[0].frames[t]
                                         for t in times])]
  per_photo, rate = {}, evaluate.SAMPLE_RATE
  bar = tqdm.tqdm(total=len(usable) * n, desc="unseen faces", unit="clip",
                  disable=not progress)
  for p, identity in zip(usable, identities):
    clips = []

    def opening_for_audio(audio, identity=identity, clips=clips):
      frames = head.generate(identity, audio, sample_rate=rate)
      if not clips:
        clips.append(frames)  # the first utterance's, for the contact sheet
      bar.update()
      return _opening(frames, detector)

    per_photo[p.name] = unseen_faces.score_photo(
        opening_for_audio, [u.audio for u in utterances], real)
    first = clips[0]
    r0 = per_photo[p.name][0][0]
    sheet.append((f"{p.name} (r={r0:.2f} on this clip)",
                  [identity.aligned.face] + [first[min(t, len(first) - 1)]
                                             for t in times]))
  bar.close()
  summary = unseen_faces.summarize_photos(per_photo)
  wall = time.time() - start
  rep = {
      "title": f"Unseen faces: {os.path.basename(os.path.normpath(model_dir))}"
               f" driven by {dataset} {used} audio",
      "info": {"model": os.path.basename(os.path.normpath(model_dir)),
               "dataset": dataset, "split": used,
               "utterances": n, "frames per utterance": (
                   max_frames or "all"),
               "adaptation epochs": adapt_epochs,
               "photos used": len(usable),
               "photos skipped": len(photo_list) - len(usable),
               "real mouth": ("dlib landmarks the dataset stores for the real "
                              "frames (frames without a face left out)"),
               "generated mouth": "dlib on the generated aligned crops",
               "shuffled audio": "the next utterance's audio, same photo",
               "contact sheet": (
                   f"contact_sheet.png: per row the reference (aligned photo;"
                   f" real frame 0), then frames {', '.join(map(str, times))}"
                   f" of {utterances[0].utterance}"),
               "wall time (s)": round(wall, 1)},
      "confidence": 0.95,
      "summary": summary,
      "ceiling": stats.mean_confidence_interval(ceiling).to_dict(),
      "photos": [{"name": p.name, "skip": p.skip, "note": p.note}
                 for p in photo_list],
      "utterances": [u.utterance for u in utterances],
      "values": {name: {"model": m, "shuffled": s}
                 for name, (m, s) in per_photo.items()},
      "ceiling_values": ceiling,
      "notes": [
          "Over all photos, each utterance's r is averaged over the photos "
          "before the interval is taken over utterances (the utterances are "
          "the independent draws).",
          "The ceiling row correlates dlib on the real aligned crops with the"
          " stored landmarks of the same real frames: a perfect generator "
          "could not score much above it."] + ([note] if note else []),
  }
  if out_dir:
    unseen_faces.write_report(rep, out_dir)
    unseen_faces.write_png(os.path.join(out_dir, "contact_sheet.png"),
                           unseen_faces.contact_sheet(
                               sheet, tile=max(head.crop, SHEET_TILE)))
  return rep


def define_flags(flag_values: flags.FlagValues = flags.FLAGS) -> None:
  """Defines the command's flags (at start-up, not import: a2v_jax.evaluate
  defines some of the same names; a test passes its own FlagValues)."""
  fv = dict(flag_values=flag_values)
  flags.DEFINE_string("model", None, "Export directory.", **fv)
  flags.DEFINE_string("data_dir", None, "TFDS data_dir of the real dataset.",
                      **fv)
  flags.DEFINE_enum("dataset", "grid", ["grid", "lombard_grid"], "Dataset.",
                    **fv)
  flags.DEFINE_string("split", "test", "Split whose audio drives the photos.",
                      **fv)
  flags.DEFINE_string("out", None, "Directory for report.json, report.md and "
                      "contact_sheet.png.", **fv)
  flags.DEFINE_list("photos", list(DEFAULT_PHOTOS), "'astronaut', "
                    "'synthetic:N', image files, folders, .zip/.whl "
                    "archives.", **fv)
  flags.DEFINE_integer("num_utterances", DEFAULT_UTTERANCES,
                       "First N utterances (0 = all).", **fv)
  flags.DEFINE_integer("adapt_epochs", 0, "One-shot adaptation epochs.", **fv)
  flags.DEFINE_integer("sheet_frames", 6, "Frames per photo on the contact "
                       "sheet.", **fv)
  flags.DEFINE_integer("max_frames", 0, "Frames per utterance (0 = all).",
                       **fv)


def main(argv: Sequence[str], flag_values: flags.FlagValues = flags.FLAGS
         ) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments {' '.join(argv[1:])}; flags"
                         " take the form --name=value")
  f = flag_values
  cli.check_dir(f.model, "--model", "an export",
                "pass a folder written by python -m a2v_jax.export")
  cli.check_dir(f.data_dir, "--data_dir", "the built real dataset",
                "build it with python -m a2v_jax.data.build")
  cli.check_writable_dir(f.out, "--out")
  try:
    rep = evaluate_unseen_faces(
        f.model, data_dir=f.data_dir, photos=f.photos, dataset=f.dataset,
        split=f.split, out_dir=f.out, num_utterances=f.num_utterances,
        adapt_epochs=f.adapt_epochs, sheet_frames=f.sheet_frames,
        max_frames=f.max_frames, progress=True)
  except ValueError as e:  # every project error is a ValueError subclass
    raise SystemExit(f"error: {' '.join(str(e).split())}") from None
  print(unseen_faces.render_markdown(rep))
  print(f"Wrote the report and contact_sheet.png to {os.path.abspath(f.out)}")


if __name__ == "__main__":
  define_flags()
  cli.run(main)
