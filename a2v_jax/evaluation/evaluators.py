"""big_vision-style evaluator plug-ins, selected by name from `config.evals`.

Each evaluator scores clips (`Clip`: generated frames, and whatever it needs
of real frames, audio features, landmarks, transcript and ground truth).
`run(clips)` yields `(name, value)` pairs, the means over the clips, ready for
TensorBoard; `collect(clips)` gives the per-utterance values that
report.SystemResult takes. Names are checked when the run starts
(`create_evaluators`), with the list of valid choices in the error.

Evaluator -> metrics:
- "image_quality": ssim, psnr (needs real frames)
- "lower_face": lower_l1, lower_psnr on the lower half (needs real frames)
- "lpips": lpips (needs real frames)
- "cpbd": cpbd
- "acd": acd_c, acd_e (needs real frames)
- "lip_sync": lse_c, lse_d (needs mfcc and a SyncNet's embedders)
- "blink": blink_rate, blink_duration (dlib landmarks of the generated clip)
- "mouth": mouth_corr (needs mouth_open_gt: the synthetic ground truth, or
  on real data the real video's opening from its stored landmarks)
- "wer": wer (needs transcript and a lip reader)
"""
from __future__ import annotations

import abc
import dataclasses
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

import numpy as np

from a2v_jax.evaluation import blink
from a2v_jax.evaluation import cpbd
from a2v_jax.evaluation import identity
from a2v_jax.evaluation import image_metrics
from a2v_jax.evaluation import lip_sync
from a2v_jax.evaluation import mouth
from a2v_jax.evaluation import wer


class EvaluatorError(ValueError):
  """Unknown evaluator names or missing inputs."""


@dataclasses.dataclass
class Clip:
  """One utterance to score.

  Attributes:
    utterance: id, e.g. "s1/bbaf2n".
    generated: uint8 [T, H, W, 3] frames to score.
    fps: frame rate.
    real: uint8 [T, H, W, 3] ground-truth frames, if any.
    mfcc: float32 [T, 20, 13] per-frame MFCC windows of the driving audio.
    transcript: reference words.
    mouth_open_gt: float [T] the target mouth opening: the synthetic ground
      truth, or on real data the real frames' opening measured from the
      dataset's landmarks (NaN where dlib found no face).
    landmarks: float32 [T, 68, 2] of `generated`; filled on first use.
  """
  utterance: str
  generated: np.ndarray
  fps: float = 25.0
  real: np.ndarray | None = None
  mfcc: np.ndarray | None = None
  transcript: str | None = None
  mouth_open_gt: np.ndarray | None = None
  landmarks: np.ndarray | None = None


def _need(clip: Clip, field: str, evaluator: str):
  value = getattr(clip, field)
  if value is None:
    raise EvaluatorError(f"evaluator {evaluator!r} needs clip.{field}, which "
                         f"{clip.utterance} lacks; drop {evaluator!r} from "
                         "config.evals for this data")
  return value


class Evaluator(abc.ABC):
  """Base: subclasses set `name`, `metrics` and implement `evaluate_clip`."""
  name: str = ""
  metrics: tuple[str, ...] = ()

  @abc.abstractmethod
  def evaluate_clip(self, clip: Clip) -> dict[str, float]:
    """metric -> value for one clip (NaN where undefined)."""

  def collect(self, clips: Iterable[Clip]) -> dict[str, list[float]]:
    """metric -> per-clip values, in clip order."""
    out: dict[str, list[float]] = {m: [] for m in self.metrics}
    for clip in clips:
      values = self.evaluate_clip(clip)
      for m in self.metrics:
        out[m].append(float(values[m]))
    return out

  def run(self, clips: Iterable[Clip]) -> Iterator[tuple[str, float]]:
    """Yields (metric, mean over clips ignoring NaN) pairs."""
    for metric, values in self.collect(clips).items():
      finite = np.asarray(values, np.float64)
      finite = finite[np.isfinite(finite)]
      yield metric, float(finite.mean()) if finite.size else float("nan")


def _unit(frames: np.ndarray) -> np.ndarray:
  return image_metrics.to_unit_range(frames)


class ImageQualityEvaluator(Evaluator):
  name = "image_quality"
  metrics = ("ssim", "psnr")

  def evaluate_clip(self, clip):
    real = _unit(_need(clip, "real", self.name))
    gen = _unit(clip.generated)
    # Frame-wise PSNR averaged over the clip (identical frames give +inf and
    # are left out of the mean).
    psnr = np.asarray(image_metrics.psnr(gen, real))
    psnr = psnr[np.isfinite(psnr)]
    return {"ssim": float(np.mean(image_metrics.ssim(gen, real))),
            "psnr": float(psnr.mean()) if psnr.size else float("nan")}


class LowerFaceEvaluator(Evaluator):
  """L1 and PSNR on the lower half of the aligned face, where the mouth is
  (the region of the paper's reconstruction loss, section 4.1.4): the frame
  metrics are dominated by the rest of the face, which barely moves."""
  name = "lower_face"
  metrics = ("lower_l1", "lower_psnr")

  def evaluate_clip(self, clip):
    real = _unit(_need(clip, "real", self.name))
    gen = _unit(clip.generated)
    if real.shape != gen.shape:
      raise EvaluatorError(f"{clip.utterance}: generated {gen.shape} and real "
                           f"{real.shape} frames differ; generate at the "
                           "dataset's crop")
    half = real.shape[1] // 2
    real, gen = real[:, half:], gen[:, half:]
    psnr = np.asarray(image_metrics.psnr(gen, real))
    psnr = psnr[np.isfinite(psnr)]
    return {"lower_l1": float(np.mean(np.abs(gen - real))),
            "lower_psnr": float(psnr.mean()) if psnr.size else float("nan")}


class LPIPSEvaluator(Evaluator):
  name = "lpips"
  metrics = ("lpips",)

  def __init__(self, batch_size: int = 16):
    self._lpips = image_metrics.LPIPS()
    self.batch_size = batch_size

  def evaluate_clip(self, clip):
    real = _unit(_need(clip, "real", self.name)) * 2 - 1
    gen = _unit(clip.generated) * 2 - 1
    # Every batch is padded to batch_size frames: one compile per clip size.
    pad = -len(gen) % self.batch_size
    gen = np.concatenate([gen, np.repeat(gen[-1:], pad, axis=0)])
    real = np.concatenate([real, np.repeat(real[-1:], pad, axis=0)])
    d = [np.asarray(self._lpips(gen[i:i + self.batch_size],
                                real[i:i + self.batch_size]))
         for i in range(0, len(gen), self.batch_size)]
    return {"lpips": float(np.concatenate(d)[:len(d) * self.batch_size
                                              - pad].mean())}


class CPBDEvaluator(Evaluator):
  name = "cpbd"
  metrics = ("cpbd",)

  def evaluate_clip(self, clip):
    return {"cpbd": cpbd.compute_cpbd_video(clip.generated)}


class ACDEvaluator(Evaluator):
  name = "acd"
  metrics = ("acd_c", "acd_e")

  def __init__(self, frame_stride: int = 5):
    self._embedder = identity.FaceEmbedder()
    self.frame_stride = frame_stride

  def evaluate_clip(self, clip):
    result = identity.compute_acd(clip.generated, _need(clip, "real", self.name),
                                  self._embedder, self.frame_stride)
    return {"acd_c": result.acd_cosine, "acd_e": result.acd_euclidean}


class LipSyncEvaluator(Evaluator):
  """LSE with a SyncNet given as embedders on crops made by `prepare_faces`.

  Args:
    embed_video: [B, 5, h, w, 3] -> [B, E].
    embed_audio: [B, 20, 13] -> [B, E].
    prepare_faces: uint8 [T, H, W, 3] -> what embed_video's windows hold
      (e.g. the lower half in [-1, 1] for our SyncNet).
  """
  name = "lip_sync"
  metrics = ("lse_c", "lse_d")

  def __init__(self, embed_video, embed_audio, prepare_faces=None,
               vshift: int = lip_sync.VSHIFT):
    self.embed_video, self.embed_audio = embed_video, embed_audio
    self.prepare_faces = prepare_faces or (lambda f: f)
    self.vshift = vshift

  def evaluate_clip(self, clip):
    result = lip_sync.evaluate_lip_sync(
        self.prepare_faces(clip.generated), _need(clip, "mfcc", self.name),
        self.embed_video, self.embed_audio, vshift=self.vshift)
    return {"lse_c": result.lse_c, "lse_d": result.lse_d}


def detect_landmarks(clip: Clip, detector, min_size: int = 160) -> np.ndarray:
  """[T, 68, 2] dlib landmarks of clip.generated, cached on the clip.

  Frames smaller than min_size are enlarged first (the HOG detector misses
  faces under ~40-80 px); landmarks are returned in the clip's pixels.
  """
  if clip.landmarks is None:
    frames = np.asarray(clip.generated)
    scale = max(1.0, min_size / min(frames.shape[1:3]))
    if scale > 1.0:
      import cv2  # pylint: disable=g-import-not-at-top
      size = (round(frames.shape[2] * scale), round(frames.shape[1] * scale))
      frames = np.stack([cv2.resize(f, size, interpolation=cv2.INTER_CUBIC)
                         for f in frames])
    clip.landmarks = detector.detect_clip(frames) / np.float32(scale)
  return clip.landmarks


def _default_detector():
  from a2v_jax.face import landmarks  # pylint: disable=g-import-not-at-top
  return landmarks.LandmarkDetector(upsample=1)


class BlinkEvaluator(Evaluator):
  name = "blink"
  metrics = ("blink_rate", "blink_duration")

  def __init__(self, detector=None):
    self._detector = detector or _default_detector()

  def evaluate_clip(self, clip):
    stats = blink.measure_blinks(detect_landmarks(clip, self._detector),
                                 clip.fps)
    return {"blink_rate": stats.rate_per_s,
            "blink_duration": stats.mean_duration_s}


class MouthEvaluator(Evaluator):
  name = "mouth"
  metrics = ("mouth_corr",)

  def __init__(self, detector=None):
    self._detector = detector or _default_detector()

  def evaluate_clip(self, clip):
    gt = _need(clip, "mouth_open_gt", self.name)
    return {"mouth_corr": mouth.mouth_correlation(
        detect_landmarks(clip, self._detector), gt)}


class WEREvaluator(Evaluator):
  """WER of a lip reader: `read_lips(uint8 [T, H, W, 3], landmarks) -> str`."""
  name = "wer"
  metrics = ("wer",)

  def __init__(self, read_lips: Callable[[np.ndarray, np.ndarray], str],
               detector=None):
    self.read_lips = read_lips
    self._detector = detector or _default_detector()

  def evaluate_clip(self, clip):
    reference = _need(clip, "transcript", self.name)
    hypothesis = self.read_lips(clip.generated,
                                detect_landmarks(clip, self._detector))
    # Per-utterance WER in percent (the paper's unit).
    return {"wer": 100.0 * float(wer.utterance_word_error_rates(
        [reference], [hypothesis])[0])}


EVALUATORS: dict[str, type[Evaluator]] = {
    cls.name: cls for cls in (ImageQualityEvaluator, LowerFaceEvaluator,
                              LPIPSEvaluator,
                              CPBDEvaluator, ACDEvaluator, LipSyncEvaluator,
                              BlinkEvaluator, MouthEvaluator, WEREvaluator)}


def validate_names(names: Sequence[str]) -> list[str]:
  """Checks config.evals; returns the names, de-duplicated, in order."""
  if isinstance(names, str):
    names = [n.strip() for n in names.split(",") if n.strip()]
  unknown = [n for n in names if n not in EVALUATORS]
  if unknown:
    raise EvaluatorError(f"unknown evaluators {unknown} in config.evals; "
                         f"valid choices: {sorted(EVALUATORS)}")
  return list(dict.fromkeys(names))


def create_evaluators(names: Sequence[str],
                      options: Mapping[str, Mapping[str, Any]] | None = None
                      ) -> list[Evaluator]:
  """Builds the named evaluators, checking names before building any.

  Args:
    names: config.evals, e.g. ("image_quality", "cpbd", "lip_sync").
    options: evaluator name -> constructor kwargs (e.g. the SyncNet
      embedders for "lip_sync", the lip reader for "wer").

  Returns:
    Evaluators in the order named.
  """
  names = validate_names(names)
  options = dict(options or {})
  stray = sorted(set(options) - set(names))
  if stray:
    raise EvaluatorError(f"options given for evaluators {stray} that are not "
                         f"in config.evals {names}")
  out = []
  for name in names:
    try:
      out.append(EVALUATORS[name](**options.get(name, {})))
    except TypeError as e:
      raise EvaluatorError(f"evaluator {name!r} cannot be built: {e}; pass "
                           f"its inputs through options[{name!r}]") from e
  return out


def run_all(evaluators: Sequence[Evaluator], clips: Sequence[Clip]
            ) -> dict[str, list[float]]:
  """metric -> per-clip values over every evaluator (for report rows)."""
  values: dict[str, list[float]] = {}
  for evaluator in evaluators:
    values.update(evaluator.collect(clips))
  return values
