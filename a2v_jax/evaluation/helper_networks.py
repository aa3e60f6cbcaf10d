"""Do the frozen helper networks work? Their own scores on held-out clips.

The generator is trained against, and judged by, networks pretrained here
(a2v_jax/pretrain.py): DeepSpeech2 encodes its audio, SyncNet gives the
contrastive loss and LSE, the eye network the blink loss, LipNet the WER.
Their verdicts mean something only if each does its own job on data it did
not train on. Each measurement takes the network as plain callables, so the
tests can pass constructed networks with a known answer:

- DeepSpeech2 + CTC: greedy transcripts of whole utterances, fed as
  pretrain.py's 'ds2_ctc' task feeds them (MFCC windows of the first
  config.pretrain.num_frames frames, padded); character and word error
  rates pooled over the split (jiwer), and per utterance.
- SyncNet: each clip's audio delayed by k frames (k < 0: advanced; zeros
  fill the gap), and the LSE evaluator's offset search (lip_sync.compute_lse,
  +-15 frames) asked for the offset; the share of clips where it finds k.
  Then LSE-C / LSE-D of the real clip, of its first frame repeated (static)
  and of the real clip with the next utterance's audio (shuffled).
- Eye network: EAR (both eyes averaged) from its 12 landmarks against the
  EAR of the dataset's dlib landmarks, on frames where dlib found the face;
  blinks found in each series by blink.detect_blinks, matched by overlap.
- LipNet (the WER evaluator's lip reader): CER and WER of its transcripts.

Means carry Student-t 95% intervals over utterances (stats.py); shares
carry Wilson score intervals.
"""
from __future__ import annotations

import dataclasses
import functools
import math
import os
from typing import Any, Callable, Iterable, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import tqdm

from a2v_jax import data_sources
from a2v_jax import networks as a2v_networks
from a2v_jax.evaluation import blink
from a2v_jax.evaluation import lip_sync
from a2v_jax.evaluation import networks
from a2v_jax.evaluation import stats
from a2v_jax.evaluation import wer
from a2v_jax.models import deepspeech2
from a2v_jax.models import eye as eye_lib

SAMPLE_RATE = 16000
MAX_SHIFT = 5
BLINK_TOLERANCE_FRAMES = 2
NUM_EXAMPLES = 5
DATASETS = ("grid", "lombard_grid")


class HelperEvaluationError(ValueError):
  """Bad arguments; the message names the problem and the fix."""


# ------------------------------------------------------------------ data --


@dataclasses.dataclass
class Clip:
  """One held-out utterance.

  Attributes:
    utterance: id "s1/bbaf2n".
    frames: uint8 [T, H, W, 3] aligned faces, or None when not decoded.
    landmarks: float32 [T, 68, 2] dlib landmarks in crop px.
    detected: bool [T], dlib found the face (the others were filled in).
    audio: float32 [N] 16 kHz, the whole recording.
    fps: frame rate.
    transcript: the words, space separated.
  """
  utterance: str
  frames: np.ndarray | None
  landmarks: np.ndarray
  detected: np.ndarray
  audio: np.ndarray
  fps: float
  transcript: str


def _text(x) -> str:
  return x.decode() if isinstance(x, bytes) else str(x)


def read_clip(example: Mapping[str, Any], decode_frames: bool = True) -> Clip:
  """A dataset example (the dataset contract's dict) as a Clip."""
  t = len(example["frames"])
  landmarks = np.asarray(example["landmarks"], np.float32)[:t]
  detected = np.asarray(example.get("landmarks_detected", np.ones([t])),
                        bool)[:t]
  frames = None
  if decode_frames:
    frames = np.stack([data_sources.decode_jpeg(f) for f in example["frames"]])
  return Clip(
      utterance=f"{_text(example.get('speaker', b'?'))}/"
                f"{_text(example.get('utterance', b'?'))}",
      frames=frames, landmarks=landmarks, detected=detected,
      audio=np.asarray(example["audio"], np.float32),
      fps=float(example.get("fps", 25.0)),
      transcript=" ".join(_text(w) for w in example["words"]))


def open_split(data_dir: str, split: str, dataset: str = "grid",
               crop: int = 128) -> Sequence[Mapping[str, Any]]:
  """The random-access source of a built split.

  Raises:
    HelperEvaluationError: nothing built there, or no such split (the
      message lists the splits that exist).
  """
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  if dataset not in DATASETS:
    raise HelperEvaluationError(f"unknown dataset {dataset!r}; use one of "
                                f"{list(DATASETS)}")
  if dataset == "grid":
    import tfds_builders.grid  # pylint: disable=g-import-not-at-top,unused-import
  else:
    import tfds_builders.lombard_grid  # pylint: disable=g-import-not-at-top,unused-import
  name = f"{dataset}/crop{crop}"
  try:
    builder = tfds.builder(name, data_dir=data_dir)
    prepared = builder.is_prepared()
  except Exception as e:  # pylint: disable=broad-except
    # TFDS raises several types (an unknown config, an unreadable folder).
    raise HelperEvaluationError(
        f"cannot open {name} in {data_dir} "
        f"({(str(e).strip().splitlines() or [type(e).__name__])[0]}); check "
        "--data_dir and --crop (the builder has crop64, crop128, crop256)"
    ) from None
  if not prepared:
    raise HelperEvaluationError(
        f"{name} is not built in {data_dir}; build it with `python -m "
        f"a2v_jax.data.build --dataset={dataset} --crop={crop} "
        f"--manual_dir=DIR --data_dir={data_dir}` or pass the --data_dir "
        f"(and --crop) it was built with")
  splits = sorted(builder.info.splits.keys())
  if split not in splits:
    raise HelperEvaluationError(
        f"{name} in {data_dir} has no split {split!r}; pass --split= one of "
        f"{', '.join(splits)}")
  return tfds.data_source(name, split=split, data_dir=data_dir,
                          download=False)


def iterate_clips(source: Sequence[Mapping[str, Any]], num_utterances: int = 0,
                  decode_frames: bool = True, desc: str = ""
                  ) -> Iterable[tuple[int, Clip]]:
  """(index, Clip) of the first num_utterances (0 = all), with a tqdm bar."""
  n = len(source) if num_utterances <= 0 else min(num_utterances, len(source))
  for i in tqdm.trange(n, desc=desc, unit="utt", disable=not desc):
    yield i, read_clip(source[i], decode_frames)


def num_clips(source: Sequence[Any], num_utterances: int) -> int:
  return len(source) if num_utterances <= 0 else min(num_utterances,
                                                       len(source))


# --------------------------------------------------------------- helpers --


def wilson_interval(successes: int, n: int, confidence: float = 0.95
                    ) -> tuple[float, float]:
  """Wilson score interval of a binomial share (NaN, NaN for n = 0)."""
  if n <= 0:
    return math.nan, math.nan
  from scipy import stats as scipy_stats  # pylint: disable=g-import-not-at-top
  z = float(scipy_stats.norm.ppf((1 + confidence) / 2))
  p = successes / n
  denom = 1 + z * z / n
  centre = (p + z * z / (2 * n)) / denom
  half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
  return max(0.0, centre - half), min(1.0, centre + half)


def _share(successes: int, n: int) -> dict:
  low, high = wilson_interval(successes, n)
  return {"count": int(successes), "n": int(n),
          "share": successes / n if n else None,
          "ci_low": low if n else None, "ci_high": high if n else None}


def _ci(values) -> dict:
  return stats.mean_confidence_interval(values).to_dict()


def _batched(fn: Callable[[np.ndarray], np.ndarray], inputs: np.ndarray,
             batch_size: int) -> np.ndarray:
  """fn over fixed-size batches (the last one padded): one compile."""
  out = []
  for i in range(0, len(inputs), batch_size):
    chunk = inputs[i:i + batch_size]
    pad = batch_size - len(chunk)
    if pad:
      chunk = np.concatenate([chunk, np.repeat(chunk[-1:], pad, axis=0)])
    out.append(np.asarray(fn(chunk))[:batch_size - pad])
  return np.concatenate(out)


def text_metrics(references: Sequence[str], hypotheses: Sequence[str]
                 ) -> dict:
  """CER and WER pooled over the split, per-utterance WER with its CI, the
  share of utterances read exactly, and the first few transcripts."""
  import jiwer  # pylint: disable=g-import-not-at-top
  refs = [" ".join(r.lower().split()) for r in references]
  hyps = [" ".join(h.lower().split()) for h in hypotheses]
  exact = sum(r == h for r, h in zip(refs, hyps))
  return {
      "cer": wer.character_error_rate(refs, hyps),
      "wer": wer.word_error_rate(refs, hyps),
      "utterance_wer": _ci(wer.utterance_word_error_rates(refs, hyps)),
      "utterance_cer": _ci([jiwer.cer(r, h) for r, h in zip(refs, hyps)]),
      "exact": _share(exact, len(refs)),
      "examples": [{"reference": r, "hypothesis": h}
                   for r, h in list(zip(refs, hyps))[:NUM_EXAMPLES]],
      "hypotheses": hyps}


# ------------------------------------------------------------ DeepSpeech2 --


@dataclasses.dataclass(frozen=True)
class Transcriber:
  """DeepSpeech2 + CTC head as pretrain.py's 'ds2_ctc' task runs it.

  Attributes:
    ctc_logits: (windows [B, T, 20, 13], paddings [B, T]) -> [B, T, V].
    num_frames: T, the frames per utterance in pretraining.
    description: one line for the report.
  """
  ctc_logits: Callable[[np.ndarray, np.ndarray], np.ndarray]
  num_frames: int
  description: str = ""


def ds2_transcriber(model: deepspeech2.DeepSpeech2, variables: Any,
                    num_frames: int, description: str = "") -> Transcriber:
  fn = jax.jit(lambda w, p: model.apply(variables, w, train=False,
                                        paddings=p)[1])
  return Transcriber(lambda w, p: np.asarray(fn(jnp.asarray(w),
                                                jnp.asarray(p))),
                     num_frames, description)


def ctc_inputs(clip: Clip, num_frames: int) -> tuple[np.ndarray, np.ndarray]:
  """(windows float32 [num_frames, 20, 13], paddings float32 [num_frames]):
  the MFCC windows of the first min(num_frames, T) frames of the whole
  recording, zero padded, as pretrain._ctc_batches makes them."""
  from a2v_jax.audio import features  # pylint: disable=g-import-not-at-top
  t = min(num_frames, len(clip.landmarks))
  windows = np.zeros([num_frames, 20, 13], np.float32)
  windows[:t] = features.mfcc_windows(clip.audio, SAMPLE_RATE, clip.fps,
                                      num_frames=t)
  paddings = np.ones([num_frames], np.float32)
  paddings[:t] = 0.0
  return windows, paddings


def evaluate_ds2(clips: Iterable[Clip], transcriber: Transcriber,
                 batch_size: int = 16) -> dict:
  """Greedy CTC transcripts of every clip; text_metrics + utterance ids."""
  ids, refs, inputs = [], [], []
  for clip in clips:
    ids.append(clip.utterance)
    refs.append(clip.transcript)
    inputs.append(ctc_inputs(clip, transcriber.num_frames))
  windows = np.stack([w for w, _ in inputs])
  paddings = np.stack([p for _, p in inputs])
  logits = _batched(lambda i: transcriber.ctc_logits(windows[i], paddings[i]),
                    np.arange(len(ids)), batch_size)
  lengths = np.sum(paddings < 0.5, axis=1)
  hyps = wer.decode_ctc_greedy(logits, lengths)
  return {"utterances": ids, **text_metrics(refs, hyps)}


# ----------------------------------------------------------------- SyncNet --


def shift_audio(audio: np.ndarray, frames: int, fps: float) -> np.ndarray:
  """float32 [N] audio delayed by `frames` video frames (advanced when < 0),
  zero filled, same length: window t + frames then matches frame t, so the
  offset search should answer `frames`."""
  audio = np.asarray(audio, np.float32)
  s = min(abs(int(frames)) * int(round(SAMPLE_RATE / fps)), len(audio))
  out = np.zeros_like(audio)
  if frames >= 0:
    out[s:] = audio[:len(audio) - s]
  else:
    out[:len(audio) - s] = audio[s:]
  return out


def fit_audio(audio: np.ndarray, length: int) -> np.ndarray:
  """Loops or cuts audio to `length` samples."""
  return np.resize(np.asarray(audio, np.float32), length)


def evaluate_syncnet(source: Sequence[Mapping[str, Any]],
                     spec: networks.SyncNetSpec, num_utterances: int = 0,
                     max_shift: int = MAX_SHIFT,
                     vshift: int = lip_sync.VSHIFT, batch_size: int = 32,
                     progress: bool = False) -> dict:
  """Offset recovery on shifted audio and LSE of real, static and shuffled.

  Args:
    source: dataset examples; clip i's shuffled audio is clip i + 1's.
    spec: the SyncNet (networks.load_syncnet).
    num_utterances: first N clips (0 = all).
    max_shift: shifts k = -max_shift..max_shift frames are tried.
    vshift: the offset search's range (the LSE evaluator's 15).
    batch_size: windows per embedder call.
    progress: tqdm bar.

  Returns:
    {'shifts': {k: share}, 'all': share, 'within_1': share, 'offsets':
     {k: [per clip]}, 'lse': {row: {'lse_c', 'lse_d', 'offset_zero'}},
     'paired': {...}, 'utterances': [...]}.
  """
  n = num_clips(source, num_utterances)
  if n < 2:
    raise HelperEvaluationError(
        "the SyncNet evaluation needs at least 2 utterances (the shuffled "
        "audio is the next utterance's); pass a larger split or "
        "--num_utterances")
  shifts = list(range(-max_shift, max_shift + 1))
  offsets = {k: [] for k in shifts}
  rows = {"real": [], "static": [], "shuffled audio": []}
  ids = []
  half = lip_sync.WINDOW_FRAMES // 2
  for i, clip in iterate_clips(source, num_utterances,
                               desc="syncnet" if progress else ""):
    ids.append(clip.utterance)
    t = len(clip.frames)
    faces = np.asarray(spec.prepare_faces(clip.frames))
    video_windows, _ = lip_sync.make_sync_windows(faces, np.zeros([t, 1]))
    m = len(video_windows)
    video = _batched(spec.embed_video, video_windows, batch_size)
    # The first frame repeated: every window is the same, embed it once.
    static = np.repeat(_batched(spec.embed_video, np.repeat(
        video_windows[:1, :1], lip_sync.WINDOW_FRAMES, axis=1), batch_size),
                       m, axis=0)

    def audio_embedding(audio):
      windows = np.asarray(spec.audio_windows(audio, clip.fps, t))
      return _batched(spec.embed_audio, windows[np.arange(m) + half],
                      batch_size)

    for k in shifts:
      audio = audio_embedding(shift_audio(clip.audio, k, clip.fps))
      result = lip_sync.compute_lse(video, audio, vshift)
      offsets[k].append(result.offset)
      if k == 0:
        rows["real"].append(result)
        rows["static"].append(lip_sync.compute_lse(static, audio, vshift))
    other = read_clip(source[(i + 1) % n], decode_frames=False).audio
    rows["shuffled audio"].append(lip_sync.compute_lse(
        video, audio_embedding(fit_audio(other, len(clip.audio))), vshift))
  per_k = {}
  for k in shifts:
    found = np.asarray(offsets[k]) == k
    per_k[str(k)] = {**_share(int(found.sum()), n),
                     "within_1": _share(int(np.sum(np.abs(
                         np.asarray(offsets[k]) - k) <= 1)), n)}
  every = np.array([offsets[k] for k in shifts]) - np.array(shifts)[:, None]
  per_clip_share = np.mean(every == 0, axis=0)
  lse = {}
  for name, results in rows.items():
    lse[name] = {
        "lse_c": _ci([r.lse_c for r in results]),
        "lse_d": _ci([r.lse_d for r in results]),
        "offset_zero": _share(sum(r.offset == 0 for r in results), n),
        "values": {"lse_c": [r.lse_c for r in results],
                   "lse_d": [r.lse_d for r in results],
                   "offset": [r.offset for r in results]}}
  paired = {}
  for name in ("static", "shuffled audio"):
    paired[f"real − {name}"] = {
        m: _ci(np.subtract(lse["real"]["values"][m], lse[name]["values"][m]))
        for m in ("lse_c", "lse_d")}
  return {"utterances": ids, "max_shift": max_shift, "vshift": vshift,
          "shifts": per_k,
          "all": _share(int(np.sum(every == 0)), every.size),
          "all_within_1": _share(int(np.sum(np.abs(every) <= 1)), every.size),
          "per_clip_share": _ci(per_clip_share),
          "offsets": {str(k): v for k, v in offsets.items()},
          "lse": lse, "paired": paired}


# --------------------------------------------------------------------- eye --


def eye_predictor(model: eye_lib.EyeLandmarkNet, variables: Any
                  ) -> Callable[[np.ndarray], np.ndarray]:
  """float32 faces [B, H, W, 3] in [-1, 1] -> [B, 12, 2] in [0, 1]."""
  fn = jax.jit(functools.partial(model.apply, variables))
  return lambda faces: np.asarray(fn(jnp.asarray(faces)))


def ear_series(eye_points: np.ndarray) -> np.ndarray:
  """float64 [T] EAR (both eyes averaged) from [T, 12, 2] eye points."""
  return np.asarray(eye_lib.ear_from_eye_landmarks(
      jnp.asarray(eye_points, jnp.float32)), np.float64).mean(-1)


def match_blinks(reference: Sequence[tuple[int, int]],
                 found: Sequence[tuple[int, int]],
                 tolerance: int = BLINK_TOLERANCE_FRAMES) -> tuple[int, int]:
  """(reference events matched, found events matched): events match when
  they overlap or lie within `tolerance` frames of each other."""
  def near(a, b):
    return a[0] < b[1] + tolerance and b[0] < a[1] + tolerance
  return (sum(any(near(r, f) for f in found) for r in reference),
          sum(any(near(f, r) for r in reference) for f in found))


def evaluate_eye(clips: Iterable[Clip],
                 predict: Callable[[np.ndarray], np.ndarray],
                 batch_size: int = 32) -> dict:
  """The network's EAR against dlib's, and the blinks each one finds.

  EAR error and correlation use the frames where dlib found the face; the
  blink series use every frame (dlib's gaps interpolated, as the blink
  evaluator does).
  """
  ids, mae, r_clip, px = [], [], [], []
  ref_all, net_all = [], []
  counts = {"reference": 0, "found": 0, "matched_reference": 0,
            "matched_found": 0}
  per_clip_counts = []
  for clip in clips:
    ids.append(clip.utterance)
    crop = clip.frames.shape[1]
    faces = clip.frames.astype(np.float32) / np.float32(127.5) - np.float32(1)
    points = _batched(predict, faces, batch_size)          # [T, 12, 2]
    landmarks = np.where(clip.detected[:, None, None], clip.landmarks, np.nan)
    ref = blink.compute_ear_series(landmarks)
    net = ear_series(points)
    ok = clip.detected & np.isfinite(ref)
    ref_all.append(ref[ok])
    net_all.append(net[ok])
    mae.append(float(np.mean(np.abs(net[ok] - ref[ok]))) if ok.any()
               else math.nan)
    r_clip.append(_pearson(net[ok], ref[ok]))
    target = clip.landmarks[:, 36:48] / np.float32(crop)
    px.append(float(np.mean(np.abs(points[ok] - target[ok])) * crop)
              if ok.any() else math.nan)
    ref_events = blink.detect_blinks(ref)
    net_events = blink.detect_blinks(net)
    matched_ref, matched_net = match_blinks(ref_events, net_events)
    counts["reference"] += len(ref_events)
    counts["found"] += len(net_events)
    counts["matched_reference"] += matched_ref
    counts["matched_found"] += matched_net
    per_clip_counts.append((len(ref_events), len(net_events)))
  ref_all, net_all = np.concatenate(ref_all), np.concatenate(net_all)
  ref_counts, net_counts = np.array(per_clip_counts, np.float64).T
  return {
      "utterances": ids, "frames": int(ref_all.size),
      "ear_mae": _ci(mae), "ear_r_frames": _pearson(net_all, ref_all),
      "ear_r_clip": _ci(r_clip), "landmark_px": _ci(px),
      "ear_mean_reference": float(ref_all.mean()) if ref_all.size else None,
      "ear_mean_network": float(net_all.mean()) if net_all.size else None,
      "constant_mae": (float(np.mean(np.abs(ref_all - ref_all.mean())))
                       if ref_all.size else None),
      "blinks": {
          **counts,
          "recall": _share(counts["matched_reference"], counts["reference"]),
          "precision": _share(counts["matched_found"], counts["found"]),
          "clips_with_reference_blink": int(np.sum(ref_counts > 0)),
          "clips_with_found_blink": int(np.sum(net_counts > 0)),
          "count_r": _pearson(net_counts, ref_counts),
          "tolerance_frames": BLINK_TOLERANCE_FRAMES},
      "values": {"ear_mae": mae, "ear_r": r_clip, "landmark_px": px,
                 "blinks_reference": ref_counts.tolist(),
                 "blinks_found": net_counts.tolist()}}


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  if a.size < 2 or a.std() == 0 or b.std() == 0:
    return math.nan
  return float(np.corrcoef(a, b)[0, 1])


# ------------------------------------------------------------------ LipNet --


def evaluate_lipnet(clips: Iterable[Clip], reader: networks.LipReader
                    ) -> dict:
  """LipNet transcripts of every clip; text_metrics + utterance ids."""
  ids, refs, hyps = [], [], []
  for clip in clips:
    ids.append(clip.utterance)
    refs.append(clip.transcript)
    landmarks = np.where(clip.detected[:, None, None], clip.landmarks, np.nan)
    hyps.append(reader.read(clip.frames, landmarks))
  return {"utterances": ids, **text_metrics(refs, hyps)}


# ----------------------------------------------------------------- loading --


def load_helper(path: str, task: str) -> tuple[Any, dict]:
  """(variables, metadata) of a pretraining checkpoint of `task`.

  Raises:
    networks.NetworkError: missing, unreadable, or another task's.
  """
  from a2v_jax import checkpointing  # pylint: disable=g-import-not-at-top
  path = os.path.abspath(os.fspath(path))
  if os.path.isdir(os.path.join(path, "checkpoints")):
    path = os.path.join(path, "checkpoints")
  hint = (f"pass the checkpoints folder of a `{task}` pretraining run "
          "(<workdir>/checkpoints)")
  if not os.path.isdir(path):
    raise networks.NetworkError(f"{path} does not exist; {hint}")
  try:
    tree, metadata = checkpointing.load_state_tree(path)
  except (checkpointing.CheckpointError, OSError, ValueError) as e:
    raise networks.NetworkError(
        f"cannot load the {task} checkpoint at {path} "
        f"({' '.join(str(e).split())[:160]}); {hint}") from None
  if metadata.get("task") != task:
    raise networks.NetworkError(
        f"{path} holds a {metadata.get('task')!r} checkpoint, not {task!r}; "
        f"{hint}")
  return tree["variables"], dict(metadata)


def _module_settings(metadata: Mapping, name: str) -> dict:
  """The constructor attributes a checkpoint recorded (network_config), or
  its config.model.<name> for checkpoints written before it did."""
  from a2v_jax import pretrain  # pylint: disable=g-import-not-at-top
  settings = metadata.get("network_config")
  if settings is None:
    settings = pretrain.network_config(
        name, ((metadata.get("config") or {}).get("model") or {}).get(
            name) or {}, legacy=True)
  return a2v_networks.lists_to_tuples(dict(settings))


def _trained_on(metadata: Mapping) -> str:
  config = metadata.get("config") or {}
  dataset = config.get("dataset") or {}
  return (f"{dataset.get('name', '?')} split {dataset.get('split', '?')}, "
          f"step {metadata.get('step', '?')}")


def load_ds2(path: str) -> Transcriber:
  """The Transcriber of a 'ds2_ctc' pretraining checkpoint."""
  variables, metadata = load_helper(path, "ds2_ctc")
  model = deepspeech2.DeepSpeech2(**_module_settings(metadata, "ds2"))
  num_frames = int(((metadata.get("config") or {}).get("pretrain") or {}
                    ).get("num_frames", 75))
  return ds2_transcriber(model, jax.device_put(variables), num_frames,
                         f"DeepSpeech2 + CTC ({_trained_on(metadata)})")


def load_eye(path: str) -> tuple[Callable[[np.ndarray], np.ndarray], str]:
  """(predict, description) of an 'eye' pretraining checkpoint."""
  variables, metadata = load_helper(path, "eye")
  model = eye_lib.EyeLandmarkNet(**_module_settings(metadata, "eye"))
  return (eye_predictor(model, jax.device_put(variables)),
          f"EyeLandmarkNet ({_trained_on(metadata)})")


def check_networks(paths: Mapping[str, str]) -> dict[str, Any]:
  """Loads every given network before any work starts, so a bad path fails
  at once. paths: {'ds2', 'syncnet', 'eye', 'lipnet'} -> path or ''."""
  loaded = {}
  if paths.get("ds2"):
    loaded["ds2"] = load_ds2(paths["ds2"])
  if paths.get("syncnet"):
    path = paths["syncnet"]
    if not os.path.exists(path):
      raise networks.NetworkError(
          f"{os.path.abspath(path)} does not exist; pass the checkpoints "
          "folder of a `syncnet` pretraining run or a syncnet_v2 weights file")
    loaded["syncnet"] = networks.load_syncnet(path)
  if paths.get("eye"):
    loaded["eye"] = load_eye(paths["eye"])
  if paths.get("lipnet"):
    path = paths["lipnet"]
    if not os.path.exists(path):
      raise networks.NetworkError(
          f"{os.path.abspath(path)} does not exist; pass the checkpoints "
          "folder of a `lipnet` pretraining run")
    loaded["lipnet"] = networks.load_lipnet(path)
  return loaded
