r"""Evaluation of an inference export: the paper's tables, with baselines.

  python -m a2v_jax.evaluate --model=EXPORT_DIR --dataset=grid --split=test \
      --data_dir=TFDS_DIR --out=DIR [--syncnet=CKPT_DIR] [--lipnet=CKPT_DIR] \
      [--num_utterances=N] [--adapt_epochs=K]
  python -m a2v_jax.evaluate --ablation --model=P1_EXPORT,P2_EXPORT,P3_EXPORT \
      --dataset=synthetic --data_dir=CORPUS_DIR --out=DIR --syncnet=CKPT_DIR

Python API (notebooks, tests):

  report = evaluate_export("exports/demo", dataset="synthetic",
                           data_dir="runs/synthetic_corpus", split="test",
                           out_dir="eval/demo", syncnet="runs/demo/pretrained/"
                           "syncnet/checkpoints")
  ablation = evaluate_ablation([p1, p2, p3], dataset=..., out_dir=...)

For every utterance of the split, the export's TalkingHead animates the
utterance's first frame (already aligned by the dataset builder, so no
detection is needed) with the utterance's audio, and the result is scored
against the real aligned frames. Each report carries the baseline rows
(report.BASELINES) so that every figure can be read:
- "ground truth": the real clip scored as if generated, for the metrics
  that need no reference (CPBD, LSE, blinks, mouth correlation, WER, where
  WER is the LipNet's own WER on the real videos; its mouth correlation is
  the measurement's own ceiling, see below);
- "static": the reference frame repeated for the clip's length;
- "shuffled audio": the model driven by the next utterance's audio (looped
  or cut to this one's length), scored against this utterance's audio,
  frames and transcript: lip sync must come from the audio for the model
  row to beat it.

Mouth correlation ('mouth'): the opening dlib measures on the generated
crops, correlated per utterance with a target opening. The synthetic corpus
has the renderer's ground truth. Real data has none, so the target is the
real video's own opening from the landmarks the dataset stores: dlib fitted
on the full-resolution frames before alignment (frames where it found no
face left out). Those are chosen over dlib re-run on the real aligned crops
because they are the best measurement at hand (more pixels, no JPEG or
resampling) and are independent of the crop pipeline the generated frames
go through; the ground-truth row then runs that crop pipeline on the real
crops, so its r is the ceiling this measurement can reach.

Evaluators (a2v_jax/evaluation/evaluators.py) whose network is not available
(no --syncnet for LSE, no --lipnet for WER, dlib models missing, ...) are
skipped and the report says why in one line; FID is left out (report.FID_NOTE).
Utterances are scored one at a time, so memory does not grow with the split.

Synthetic corpus: --data_dir is the corpus directory (raw/ and tfds/, as the
demo makes beside its workdir; generated and built when absent). It has no
test speakers (every speaker trains the demo), so split 'test' reads 'val',
every 5th utterance of each speaker, unseen in training; the report says so.
"""
from __future__ import annotations

import dataclasses
import os
from typing import Any, Iterator, Sequence

from absl import app
from absl import flags
from absl import logging
import cv2
import ml_collections
import numpy as np
import tqdm

from a2v_jax import cli
from a2v_jax import data_sources
from a2v_jax.evaluation import evaluators as evaluators_lib
from a2v_jax.evaluation import mouth as mouth_lib
from a2v_jax.evaluation import networks
from a2v_jax.evaluation import report as report_lib

DATASETS = ("grid", "lombard_grid", "synthetic")
DEFAULT_EVALS = ("image_quality", "lower_face", "lpips", "cpbd", "acd",
                 "lip_sync", "blink", "mouth", "wer")
# Evaluators that compare with the real frames: meaningless for the
# ground-truth row (the real clip against itself).
FULL_REFERENCE = ("image_quality", "lower_face", "lpips", "acd")
DATASET_CROPS = (64, 128, 256)
ADAPT_GROUP = 8
SAMPLE_RATE = 16000


class EvaluationError(ValueError):
  """Bad evaluation arguments; the message names the problem and the fix."""


@dataclasses.dataclass
class Utterance:
  """One test utterance.

  Attributes:
    utterance: id "s1/bbaf2n".
    frames: uint8 [T, crop, crop, 3] real aligned frames.
    landmarks: float32 [T, 68, 2] dataset landmarks in crop px.
    audio: float32 [N] 16 kHz mono.
    fps: frame rate.
    transcript: the words, space separated.
    mouth_open_gt: float32 [T] or None (real data).
    mouth_real: float64 [T] the real frames' opening from `landmarks`
      (mouth.real_mouth_opening; NaN where dlib found no face).
  """
  utterance: str
  frames: np.ndarray
  landmarks: np.ndarray
  audio: np.ndarray
  fps: float
  transcript: str
  mouth_open_gt: np.ndarray | None
  mouth_real: np.ndarray | None = None

  @property
  def mouth_target(self) -> np.ndarray | None:
    """What the 'mouth' evaluator correlates with: the ground truth where
    the data has one, else the real video's measured opening."""
    return self.mouth_open_gt if self.mouth_open_gt is not None else (
        self.mouth_real)


MOUTH_REFERENCES = {
    True: "the synthetic renderer's ground-truth opening",
    False: ("dlib landmarks of the real video as the dataset stores them "
            "(fitted on the full-resolution frames; frames without a face "
            "left out); the ground-truth row is dlib on the real aligned "
            "crops against them, the measurement's ceiling"),
}


def _text(x) -> str:
  return x.decode() if isinstance(x, bytes) else str(x)


def _dataset_config(dataset: str, data_dir: str, crop: int
                    ) -> ml_collections.ConfigDict:
  """The config.dataset fields data_sources reads."""
  c = ml_collections.ConfigDict()
  c.dataset = ml_collections.ConfigDict(dict(
      name=dataset, data_dir="", crop=crop, split="train", corpus_dir="",
      synthetic_speakers=3, synthetic_utterances=20, synthetic_seed=0,
      random_examples=8, random_utterance_frames=12))
  if dataset == "synthetic":
    if os.path.isdir(os.path.join(data_dir, "grid")) and not os.path.isdir(
        os.path.join(data_dir, "raw")):
      # A TFDS data_dir holding the built corpus.
      c.dataset.update(dict(name="grid", data_dir=data_dir))
    else:
      c.dataset.corpus_dir = data_dir
  else:
    c.dataset.data_dir = data_dir
  return c


def open_split(dataset: str, split: str, data_dir: str, crop: int
               ) -> tuple[Sequence[dict], str, str]:
  """(source, split actually read, note) for an export of `crop` px.

  Raises:
    EvaluationError: unknown dataset, or no --data_dir for 'synthetic'.
    data_sources.DataSourceError: the dataset is not built there.
  """
  if dataset not in DATASETS:
    raise EvaluationError(f"unknown --dataset={dataset!r}; use one of "
                          f"{list(DATASETS)}")
  if dataset == "synthetic" and not data_dir:
    raise EvaluationError(
        "--dataset=synthetic needs --data_dir=the synthetic corpus directory "
        "(the demo makes one beside its workdir, e.g. runs/synthetic_corpus)")
  config = _dataset_config(dataset, os.path.abspath(data_dir) if data_dir
                           else "", crop)
  workdir = data_dir or "."
  try:
    return data_sources.create_source(config, workdir, split), split, ""
  except data_sources.DataSourceError:
    if dataset != "synthetic" or split != "test":
      raise
  source = data_sources.create_source(config, workdir, "val")
  note = ("the synthetic corpus has no test speakers (every speaker trains "
          "the demo); read split 'val' instead: every 5th utterance of each "
          "speaker, unseen in training")
  logging.warning("%s", note)
  return source, "val", note


def _dataset_crop(crop: int) -> int:
  bigger = [c for c in DATASET_CROPS if c >= crop]
  return bigger[0] if bigger else DATASET_CROPS[-1]


def _resize(frames: np.ndarray, crop: int) -> np.ndarray:
  if frames.shape[1] == crop:
    return frames
  return np.stack([cv2.resize(f, (crop, crop), interpolation=cv2.INTER_AREA)
                   for f in frames])


def load_utterance(example: dict, crop: int, max_frames: int = 0
                   ) -> Utterance:
  """Decodes a dataset example at the export's crop (resized if needed)."""
  frames = example["frames"]
  if max_frames > 0:
    frames = frames[:max_frames]
  frames = np.stack([data_sources.decode_jpeg(f) for f in frames])
  t = len(frames)
  fps = float(example.get("fps", 25.0))
  landmarks = np.asarray(example["landmarks"], np.float32)[:t]
  scale = crop / frames.shape[1]
  frames = _resize(frames, crop)
  audio = np.asarray(example["audio"], np.float32)
  audio = audio[:int(round(t * SAMPLE_RATE / fps))]
  mouth = None
  if bool(example.get("has_ground_truth", False)):
    mouth = np.asarray(example["mouth_open_gt"], np.float32)[:t]
  detected = example.get("landmarks_detected")
  real = mouth_lib.real_mouth_opening(
      landmarks, None if detected is None else np.asarray(detected)[:t])
  return Utterance(
      utterance=f"{_text(example.get('speaker', b'?'))}/"
                f"{_text(example.get('utterance', b'?'))}",
      frames=frames, landmarks=landmarks * np.float32(scale), audio=audio,
      fps=fps, transcript=" ".join(_text(w) for w in example["words"]),
      mouth_open_gt=mouth, mouth_real=real)


def _fit_audio(audio: np.ndarray, length: int) -> np.ndarray:
  """Loops or cuts `audio` to `length` samples."""
  return np.resize(audio, length).astype(np.float32)


@dataclasses.dataclass
class Evaluation:
  """The evaluators that can run, and the ones skipped with their reasons."""
  evaluators: list
  skipped: dict[str, str]
  info: dict[str, str]
  syncnet: networks.SyncNetSpec | None


def create_evaluation(evals: Sequence[str], *, syncnet: str = "",
                      lipnet: str = "", has_ground_truth: bool = False,
                      has_landmarks: bool = True) -> Evaluation:
  """Builds the named evaluators that can run here.

  Args:
    evals: evaluator names (evaluators.EVALUATORS).
    syncnet: --syncnet (pretrain checkpoint dir or syncnet_v2 file) or ''.
    lipnet: --lipnet (pretrain checkpoint dir) or ''.
    has_ground_truth: the data has mouth_open_gt (synthetic corpus).
    has_landmarks: the data has landmarks of the real frames, the mouth
      target of real data.

  Raises:
    evaluators.EvaluatorError: an unknown name.
    networks.NetworkError: a --syncnet / --lipnet that cannot be loaded.
  """
  names = evaluators_lib.validate_names(evals)
  skipped, info, options, spec = {}, {}, {}, None
  if "lip_sync" in names:
    if syncnet:
      spec = networks.load_syncnet(syncnet)
      info["SyncNet (LSE)"] = spec.description
      options["lip_sync"] = dict(embed_video=spec.embed_video,
                                 embed_audio=spec.embed_audio,
                                 prepare_faces=spec.prepare_faces)
    else:
      skipped["lip_sync"] = ("no SyncNet given: pass --syncnet=the checkpoints"
                             " of a `syncnet` pretraining run or a syncnet_v2 "
                             "weights file")
  if "wer" in names:
    if lipnet:
      reader = networks.load_lipnet(lipnet)
      info["LipNet (WER)"] = reader.description
      options["wer"] = networks.lipnet_options(reader)
    else:
      skipped["wer"] = ("no LipNet given: pass --lipnet=the checkpoints of a "
                        "`lipnet` pretraining run (configs/lipnet_grid.py)")
  if "mouth" in names:
    if has_ground_truth or has_landmarks:
      info["mouth reference"] = MOUTH_REFERENCES[bool(has_ground_truth)]
    else:
      skipped["mouth"] = ("the dataset has neither a ground-truth mouth "
                          "opening nor landmarks of the real frames")
  built = []
  detector = None
  for name in names:
    if name in skipped:
      continue
    kwargs = dict(options.get(name, {}))
    try:
      if name in ("blink", "mouth", "wer"):
        if detector is None:
          detector = evaluators_lib._default_detector()  # pylint: disable=protected-access
        kwargs["detector"] = detector
      built.append(evaluators_lib.EVALUATORS[name](**kwargs))
    except (OSError, ValueError, RuntimeError, ImportError) as e:
      skipped[name] = ("its network could not be loaded: "
                       f"{' '.join(str(e).split())[:160]}")
  for name, reason in skipped.items():
    logging.warning("Skipping evaluator %s: %s", name, reason)
  return Evaluation(built, skipped, info, spec)


def _score(evaluation: Evaluation, clip: evaluators_lib.Clip,
           full_reference: bool) -> dict[str, float]:
  values = {}
  for evaluator in evaluation.evaluators:
    if not full_reference and evaluator.name in FULL_REFERENCE:
      continue
    values.update(evaluator.evaluate_clip(clip))
  return values


def _identities(head, utterances: Sequence[Utterance], adapt_epochs: int):
  """inference.Identity of each utterance's first frame (adapted if asked)."""
  from a2v_jax import inference  # pylint: disable=g-import-not-at-top
  from a2v_jax import photo  # pylint: disable=g-import-not-at-top
  aligned = [photo.AlignedPhoto(
      image=u.frames[0], face=u.frames[0],
      matrix=np.array([[1, 0, 0], [0, 1, 0]], np.float32),
      landmarks=u.landmarks[0], num_faces=1, name=u.utterance)
             for u in utterances]
  if adapt_epochs <= 0:
    return [inference.Identity(a, head.generator_variables) for a in aligned]
  out = []
  for i in range(0, len(aligned), ADAPT_GROUP):
    out += head.adapt_many(aligned[i:i + ADAPT_GROUP], adapt_epochs)
  return out


def _clip(u: Utterance, generated: np.ndarray, mfcc) -> evaluators_lib.Clip:
  t = min(len(generated), len(u.frames))
  return evaluators_lib.Clip(
      utterance=u.utterance, generated=np.asarray(generated[:t]), fps=u.fps,
      real=u.frames[:t], mfcc=None if mfcc is None else mfcc[:t],
      transcript=u.transcript, mouth_open_gt=(
          None if u.mouth_target is None else u.mouth_target[:t]))


def iterate_utterances(source: Sequence[dict], crop: int,
                       num_utterances: int = 0, max_frames: int = 0
                       ) -> Iterator[Utterance]:
  """The first `num_utterances` (0 = all) utterances of a split."""
  n = len(source) if num_utterances <= 0 else min(num_utterances, len(source))
  for i in range(n):
    yield load_utterance(source[i], crop, max_frames)


def _rows(heads: dict[str, Any], utterances: list[Utterance],
          evaluation: Evaluation, adapt_epochs: int, baselines: bool,
          progress: bool) -> list[report_lib.SystemResult]:
  """Scores every row over the utterances."""
  spec = evaluation.syncnet
  rows = list(heads) + (list(report_lib.BASELINES) if baselines else [])
  values: dict[str, dict[str, list[float]]] = {r: {} for r in rows}
  identities = {name: _identities(head, utterances, adapt_epochs)
                for name, head in heads.items()}
  first = next(iter(heads))
  bar = tqdm.tqdm(total=len(utterances), desc="evaluate", unit="utt",
                  disable=not progress)
  for i, u in enumerate(utterances):
    mfcc = (spec.audio_windows(u.audio, u.fps, len(u.frames)) if spec
            else None)
    clips = {}
    for name, head in heads.items():
      clips[name] = _clip(u, head.generate(identities[name][i], u.audio,
                                           sample_rate=SAMPLE_RATE), mfcc)
    if baselines:
      clips[report_lib.GROUND_TRUTH] = _clip(u, u.frames, mfcc)
      clips[report_lib.STATIC] = _clip(
          u, np.repeat(u.frames[:1], len(u.frames), axis=0), mfcc)
      if len(utterances) > 1:
        other = utterances[(i + 1) % len(utterances)].audio
        clips[report_lib.SHUFFLED_AUDIO] = _clip(u, heads[first].generate(
            identities[first][i], _fit_audio(other, len(u.audio)),
            sample_rate=SAMPLE_RATE), mfcc)
    for name, clip in clips.items():
      scored = _score(evaluation, clip,
                      full_reference=name != report_lib.GROUND_TRUTH)
      for metric, value in scored.items():
        values[name].setdefault(metric, [float("nan")] * i).append(value)
    for name in rows:  # keep every metric list one value per utterance
      for metric_values in values[name].values():
        metric_values.extend([float("nan")] * (i + 1 - len(metric_values)))
    bar.update()
  bar.close()
  ids = [u.utterance for u in utterances]
  out = []
  for name in rows:
    if not values[name]:
      continue
    corpus = {}
    if "wer" in values[name]:
      words = np.array([len(u.transcript.split()) for u in utterances])
      w = np.asarray(values[name]["wer"], np.float64)
      ok = np.isfinite(w)
      if ok.any():
        # Pooled over words, as LipNet reports it.
        corpus["wer"] = float(np.sum(w[ok] * words[ok]) / np.sum(words[ok]))
    out.append(report_lib.SystemResult(name, ids, values[name], corpus))
  return out


def _load_utterances(dataset, split, data_dir, crop, num_utterances,
                     max_frames):
  source, used, note = open_split(dataset, split, data_dir,
                                  _dataset_crop(crop))
  utterances = list(iterate_utterances(source, crop, num_utterances,
                                       max_frames))
  if not utterances:
    raise EvaluationError(f"split {used!r} of {dataset} holds no utterances; "
                          "pick another --split")
  return utterances, used, note


def _info(model_dirs, dataset, split, used, note, utterances, evaluation,
          adapt_epochs) -> dict[str, Any]:
  info = {"model": ", ".join(os.path.basename(os.path.normpath(m))
                             for m in model_dirs),
          "dataset": dataset,
          "split": used if used == split else f"{used} (asked: {split})",
          "utterances": len(utterances),
          "reference frame": "first frame of each utterance (aligned crop)",
          "adaptation epochs": adapt_epochs}
  if note:
    info["split note"] = note
  info.update(evaluation.info)
  return info


def _notes(evaluation: Evaluation, num_utterances: int) -> list[str]:
  notes = [f"{name} skipped: {reason}"
           for name, reason in evaluation.skipped.items()]
  if num_utterances < 2:
    notes.append("shuffled audio skipped: it needs at least 2 utterances")
  return notes


def evaluate_export(model_dir: str, *, dataset: str = "grid",
                    split: str = "test", out_dir: str | None = None,
                    data_dir: str = "", syncnet: str = "", lipnet: str = "",
                    num_utterances: int = 0, adapt_epochs: int = 0,
                    evals: Sequence[str] = DEFAULT_EVALS,
                    max_frames: int = 0, progress: bool = False) -> dict:
  """Evaluates one export with the baseline rows; writes report.json/.md.

  Args:
    model_dir: an inference export (a2v_jax.export).
    dataset: 'grid', 'lombard_grid' or 'synthetic'.
    split: dataset split ('test'; see the module docstring for synthetic).
    out_dir: where report.json and report.md go (None: not written).
    data_dir: TFDS data_dir of grid/lombard_grid, or the synthetic corpus
      directory.
    syncnet: SyncNet for LSE (pretrain checkpoints or syncnet_v2 file).
    lipnet: LipNet for WER (pretrain checkpoints).
    num_utterances: first N utterances of the split (0 = all).
    adapt_epochs: one-shot adaptation epochs per reference frame (paper §5).
    evals: evaluator names (DEFAULT_EVALS: all).
    max_frames: cut utterances to this many frames (0 = whole; quick runs).
    progress: tqdm bar over utterances.

  Returns:
    The report dict (report.build_report's layout, plus skip notes).
  """
  from a2v_jax import inference  # pylint: disable=g-import-not-at-top
  head = inference.TalkingHead.from_export(model_dir)
  utterances, used, note = _load_utterances(
      dataset, split, data_dir, head.crop, num_utterances, max_frames)
  evaluation = create_evaluation(
      evals, syncnet=syncnet, lipnet=lipnet,
      has_ground_truth=utterances[0].mouth_open_gt is not None,
      has_landmarks=utterances[0].mouth_real is not None)
  systems = _rows({report_lib.MODEL: head}, utterances, evaluation,
                  adapt_epochs, True, progress)
  rep = report_lib.build_report(
      systems, title=f"{dataset} {used}: {os.path.basename(os.path.normpath(model_dir))}",
      info=_info([model_dir], dataset, split, used, note, utterances,
                 evaluation, adapt_epochs))
  rep["notes"] += _notes(evaluation, len(utterances))
  if out_dir:
    report_lib.write_report(rep, out_dir)
  return rep


def evaluate_ablation(model_dirs: Sequence[str], *, dataset: str = "grid",
                      split: str = "test", out_dir: str | None = None,
                      data_dir: str = "", syncnet: str = "", lipnet: str = "",
                      num_utterances: int = 0, adapt_epochs: int = 0,
                      evals: Sequence[str] = DEFAULT_EVALS,
                      max_frames: int = 0, progress: bool = False) -> dict:
  """The paper's Table 4: exports of phases 1, 2, 3 (in that order) in one
  table; writes ablation.json/.md. Arguments as `evaluate_export`."""
  from a2v_jax import inference  # pylint: disable=g-import-not-at-top
  phases = [p for p, _ in report_lib.ABLATION_PHASES]
  if not 1 <= len(model_dirs) <= len(phases):
    raise EvaluationError(
        f"--ablation takes 1 to {len(phases)} exports (phases 1, 2, 3 in "
        f"order), got {len(model_dirs)}")
  heads = {p: inference.TalkingHead.from_export(m)
           for p, m in zip(phases, model_dirs)}
  crops = {h.crop for h in heads.values()}
  if len(crops) != 1:
    raise EvaluationError(f"the exports have different crops {sorted(crops)};"
                          " compare phases of one run")
  utterances, used, note = _load_utterances(
      dataset, split, data_dir, crops.pop(), num_utterances, max_frames)
  evaluation = create_evaluation(
      evals, syncnet=syncnet, lipnet=lipnet,
      has_ground_truth=utterances[0].mouth_open_gt is not None,
      has_landmarks=utterances[0].mouth_real is not None)
  systems = _rows(heads, utterances, evaluation, adapt_epochs, False, progress)
  rep = report_lib.build_ablation(
      {s.name: s for s in systems}, title=f"Ablation, {dataset} {used}")
  rep["info"] = _info(model_dirs, dataset, split, used, note, utterances,
                      evaluation, adapt_epochs)
  rep["notes"] += _notes(evaluation, 2)
  if out_dir:
    report_lib.write_ablation(rep, out_dir)
  return rep


def define_flags() -> None:
  """Defines the command's flags (at start-up, not import: a2v_jax.generate
  also has --model and --out; a test of both passes its own FlagValues)."""
  if "ablation" in flags.FLAGS:
    return
  flags.DEFINE_string("model", None, "Export directory; with --ablation, "
                      "the phase 1,2,3 exports, comma separated.")
  flags.DEFINE_enum("dataset", "grid", list(DATASETS), "Dataset.")
  flags.DEFINE_string("split", "test", "Dataset split.")
  flags.DEFINE_string("out", None, "Output directory for the report.")
  flags.DEFINE_string("data_dir", "", "TFDS data_dir (grid, lombard_grid) or "
                      "the synthetic corpus directory.")
  flags.DEFINE_string("syncnet", "", "SyncNet for LSE: `syncnet` pretraining "
                      "checkpoints, or a syncnet_v2 weights file.")
  flags.DEFINE_string("lipnet", "", "LipNet for WER: `lipnet` pretraining "
                      "checkpoints.")
  flags.DEFINE_integer("num_utterances", 0, "First N utterances (0 = all).")
  flags.DEFINE_integer("adapt_epochs", 0, "One-shot adaptation epochs.")
  flags.DEFINE_integer("max_frames", 0, "Frames per utterance (0 = all).")
  flags.DEFINE_list("evals", list(DEFAULT_EVALS), "Evaluators to run.")
  flags.DEFINE_bool("ablation", False, "Evaluate phase 1/2/3 exports in one "
                    "table (the paper's Table 4).")


def main(argv: Sequence[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments {' '.join(argv[1:])}; flags"
                         " take the form --name=value")
  f = flags.FLAGS
  if not f.model:
    raise cli.InputError("--model is required; pass an export directory "
                         "(python -m a2v_jax.export)")
  for model in f.model.split(","):
    if model:
      cli.check_dir(model, "--model", "an export",
                    "pass a folder written by python -m a2v_jax.export")
  cli.check_writable_dir(f.out, "--out")
  kwargs = dict(dataset=f.dataset, split=f.split, out_dir=f.out,
                data_dir=f.data_dir, syncnet=f.syncnet, lipnet=f.lipnet,
                num_utterances=f.num_utterances, adapt_epochs=f.adapt_epochs,
                evals=f.evals, max_frames=f.max_frames, progress=True)
  models = [m for m in f.model.split(",") if m]
  try:
    if f.ablation:
      rep = evaluate_ablation(models, **kwargs)
      text = report_lib.render_ablation_markdown(rep)
    else:
      if len(models) != 1:
        raise EvaluationError("--model takes one export; pass --ablation to "
                              "compare the exports of several phases")
      rep = evaluate_export(models[0], **kwargs)
      text = report_lib.render_markdown(rep)
  except ValueError as e:  # every project error is a ValueError subclass
    raise SystemExit(f"error: {' '.join(str(e).split())}") from None
  print(text)
  print(f"Wrote the report to {os.path.abspath(f.out)}")


if __name__ == "__main__":
  define_flags()
  cli.run(main)
