"""Turns one utterance (video, audio, alignment) into a dataset example.

Shared by the GRID and Lombard GRID builders. The heavy part, face detection
and alignment, runs in a pool of worker processes (one dlib detector each);
results come back in order, so a build is deterministic whatever the number
of workers. Examples wait in an `ExampleCache` on disk until TFDS writes them. Every failure is caught and reported as a skip with its reason:
a bad file never stops a build.
"""
from __future__ import annotations

import atexit
import dataclasses
import json
import multiprocessing
import os
import pickle
import shutil
import sys
import tempfile
from typing import Callable

from absl import logging
import cv2
import numpy as np
import tensorflow_datasets as tfds
import tqdm

from a2v_jax.audio import io as audio_io
from a2v_jax.data import grid_layout
from a2v_jax.face import align
from a2v_jax.face import landmarks as landmarks_lib
from a2v_jax.media import video as video_lib

SAMPLE_RATE = 16000
JPEG_QUALITY = 95
DEFAULT_FPS = 25.0

# Words with times, from an utterance: (words, start s, end s).
WordsFn = Callable[[grid_layout.Utterance], tuple[list[str], list[float], list[float]]]


class SkipClip(Exception):
  """Raised inside processing: skip this clip. args: (reason, detail)."""


@dataclasses.dataclass(frozen=True)
class ClipOptions:
  """How clips are processed (picklable, sent to the workers).

  Attributes:
    crop: side of the aligned face crops in px.
    words_fn: reads the words and their times of an utterance.
    max_gap_frames, max_missing_fraction: see a2v_jax.face.align.
    upsample: dlib HOG upsampling (1 finds smaller faces, 4x slower).
    detect_width: run the face detector on frames resized to this width
      (None: full size); landmarks are still fitted at full resolution.
    check_moov: check .mov files for a moov atom before decoding.
  """
  crop: int
  words_fn: WordsFn
  max_gap_frames: int = align.MAX_GAP_FRAMES
  max_missing_fraction: float = align.MAX_MISSING_FRACTION
  upsample: int = 0
  detect_width: int | None = None
  check_moov: bool = False


def features() -> tfds.features.FeaturesDict:
  """The example features both builders share (see the team's data contract)."""
  tensor = tfds.features.Tensor
  return tfds.features.FeaturesDict({
      # JPEG bytes of each aligned RGB crop; a sequence, so a reader can
      # decode only the window it needs.
      "frames": tfds.features.Sequence(tensor(shape=(), dtype=np.object_)),
      "audio": tensor(shape=(None,), dtype=np.float32),
      "landmarks": tensor(shape=(None, 68, 2), dtype=np.float32),
      "landmarks_detected": tensor(shape=(None,), dtype=np.bool_),
      "words": tfds.features.Sequence(tensor(shape=(), dtype=np.object_)),
      "word_start": tensor(shape=(None,), dtype=np.float32),
      "word_end": tensor(shape=(None,), dtype=np.float32),
      "mouth_open_gt": tensor(shape=(None,), dtype=np.float32),
      "blink_gt": tensor(shape=(None,), dtype=np.int32),
      "has_ground_truth": tensor(shape=(), dtype=np.bool_),
      "speaker": tensor(shape=(), dtype=np.object_),
      "speaker_id": tensor(shape=(), dtype=np.int32),
      "utterance": tensor(shape=(), dtype=np.object_),
      "fps": tensor(shape=(), dtype=np.float32),
  })


def encode_jpeg(image: np.ndarray) -> bytes:
  """uint8 [H, W, 3] RGB -> JPEG bytes."""
  ok, buf = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR),
                         [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
  if not ok:
    raise SkipClip("JPEG encoding failed", f"shape {image.shape}")
  return buf.tobytes()


def fit_length(audio: np.ndarray, length: int) -> np.ndarray:
  """Zero-pads or trims float32 [N] audio to exactly `length` samples."""
  if len(audio) >= length:
    return audio[:length]
  return np.pad(audio, (0, length - len(audio)))


def _read_ground_truth(utt: grid_layout.Utterance, num_frames: int):
  if utt.ground_truth is None:
    return (np.zeros(num_frames, np.float32), np.zeros(num_frames, np.int32),
            False)
  try:
    gt = json.loads(utt.ground_truth.read_bytes())
    mouth = np.asarray(gt["mouth_open"], np.float32)
    blink = np.asarray(gt["blink"], np.int32)
  except (ValueError, KeyError, TypeError) as e:
    raise SkipClip("unreadable ground truth", str(e)) from None
  if len(mouth) != num_frames or len(blink) != num_frames:
    raise SkipClip("ground truth length differs from the video",
                   f"{len(mouth)}/{len(blink)} values, {num_frames} frames")
  return mouth, blink, True


def _load_audio(utt: grid_layout.Utterance, video_path: str, tmp_dir: str):
  """16 kHz mono audio: the separate file if any, else the video's track."""
  if utt.audio is not None:
    try:
      return audio_io.load_audio(utt.audio.local_path(tmp_dir), SAMPLE_RATE)
    except (audio_io.AudioError, OSError) as e:
      logging.warning("%s: %s; using the video's audio track", utt.audio, e)
  try:
    return audio_io.load_audio(video_path, SAMPLE_RATE)
  except audio_io.AudioError as e:
    raise SkipClip("no readable audio", str(e)) from None


def make_example(utt: grid_layout.Utterance, options: ClipOptions,
                 detector: landmarks_lib.LandmarkDetector) -> dict:
  """One dataset example (the features() dict) from an utterance.

  Raises:
    SkipClip: with the reason the clip cannot be used.
  """
  from a2v_jax.data import lombard_layout  # pylint: disable=g-import-not-at-top
  if options.check_moov and utt.video.name.lower().endswith(".mov"):
    if not lombard_layout.ref_has_moov_atom(utt.video):
      raise SkipClip("MOV has no moov atom (truncated file)")
  try:
    words, starts, ends = options.words_fn(utt)
  except (ValueError, OSError, KeyError) as e:
    raise SkipClip("unusable alignment", str(e)) from None

  with tempfile.TemporaryDirectory(prefix="a2v_clip_") as tmp_dir:
    video_path = utt.video.local_path(tmp_dir)
    try:
      clip = video_lib.read_video(video_path)
    except video_lib.VideoError as e:
      raise SkipClip("cannot decode the video", str(e)) from None
    audio = _load_audio(utt, video_path, tmp_dir)

  frames = clip.frames
  fps = float(clip.fps) if clip.fps and clip.fps > 0 else DEFAULT_FPS
  num_frames = len(frames)
  lm = detector.detect_clip(frames)
  try:
    aligned, aligned_lm, _ = align.align_clip(
        frames, lm, options.crop, options.max_gap_frames,
        options.max_missing_fraction)
  except align.MissingFacesError as e:
    raise SkipClip("too many frames without a face", str(e)) from None
  mouth, blink, has_gt = _read_ground_truth(utt, num_frames)
  return {
      "frames": [encode_jpeg(f) for f in aligned],
      "audio": fit_length(audio, round(num_frames * SAMPLE_RATE / fps)),
      "landmarks": aligned_lm.astype(np.float32),
      "landmarks_detected": np.isfinite(lm).all(axis=(1, 2)),
      "words": [w.encode() for w in words],
      "word_start": np.asarray(starts, np.float32),
      "word_end": np.asarray(ends, np.float32),
      "mouth_open_gt": mouth,
      "blink_gt": blink,
      "has_ground_truth": has_gt,
      "speaker": utt.speaker.encode(),
      "speaker_id": np.int32(utt.speaker_id),
      "utterance": utt.utterance.encode(),
      "fps": np.float32(fps),
  }


# One detector per worker process, made once by the pool initializer.
_DETECTOR: dict = {}


def _init_worker(upsample: int, detect_width: int | None) -> None:
  if _DETECTOR.get("args") != (upsample, detect_width):
    _DETECTOR["detector"] = landmarks_lib.LandmarkDetector(
        upsample=upsample, detect_width=detect_width)
    _DETECTOR["args"] = (upsample, detect_width)


def _process(job):
  utt, options = job
  try:
    return utt, make_example(utt, options, _DETECTOR["detector"]), None
  except SkipClip as e:
    return utt, None, (e.args[0], e.args[1] if len(e.args) > 1 else "")
  except Exception as e:  # pylint: disable=broad-except
    # A bad file must never stop the build: record it and go on.
    return utt, None, ("unexpected error", f"{type(e).__name__}: {e}")


def example_key(utt: grid_layout.Utterance) -> str:
  return f"{utt.speaker}_{utt.utterance}"


class ExampleCache:
  """Processed examples, pickled to a scratch folder until TFDS writes them.

  Clips are processed before the splits are assigned, so that a split never
  ends up empty because all its clips were skipped (TFDS cannot write an
  empty split). The folder is removed when emptied, or at exit.
  """

  def __init__(self, parent: str | None = None):
    if parent:
      os.makedirs(parent, exist_ok=True)
    self.dir = tempfile.mkdtemp(prefix="a2v_examples_", dir=parent or None)
    atexit.register(self.cleanup)

  def _path(self, key: str) -> str:
    return os.path.join(self.dir, f"{key}.pkl")

  def put(self, key: str, example: dict) -> None:
    with open(self._path(key), "wb") as f:
      pickle.dump(example, f, protocol=pickle.HIGHEST_PROTOCOL)

  def pop(self, key: str) -> dict:
    path = self._path(key)
    with open(path, "rb") as f:
      example = pickle.load(f)
    os.remove(path)
    return example

  def cleanup(self, only_if_empty: bool = False) -> None:
    if os.path.isdir(self.dir) and not (only_if_empty and os.listdir(self.dir)):
      shutil.rmtree(self.dir, ignore_errors=True)


def _pool_context():
  """fork where this process has no threads to copy: workers inherit the
  imported modules, so start-up is instant. Once jax is imported (the build
  inside a training run or a test) the process is multithreaded and a fork
  can deadlock: forkserver workers fork from a clean single-threaded server
  that has imported this module once (so they too start at once)."""
  if "jax" not in sys.modules:
    return multiprocessing.get_context("fork")
  ctx = multiprocessing.get_context("forkserver")
  ctx.set_forkserver_preload([__name__])
  return ctx


def process_clips(utterances: list[grid_layout.Utterance],
                  options: ClipOptions,
                  num_workers: int,
                  skips: grid_layout.SkipLog,
                  cache: ExampleCache,
                  desc: str = "clips") -> list[grid_layout.Utterance]:
  """Processes every utterance into `cache` (key: example_key(utt)).

  Args:
    utterances: what to process.
    options: how.
    num_workers: worker processes; 1 processes in this process.
    skips: receives each skipped clip with its reason.
    cache: where the examples go.
    desc: progress-bar label.

  Returns:
    the utterances that gave an example, in input order.
  """
  jobs = [(u, options) for u in utterances]
  done = []
  bar = tqdm.tqdm(total=len(jobs), desc=desc, unit="clip", dynamic_ncols=True)
  if num_workers <= 1 or len(jobs) <= 1:
    _init_worker(options.upsample, options.detect_width)
    results = map(_process, jobs)
    pool = None
  else:
    pool = _pool_context().Pool(
        min(num_workers, len(jobs)), initializer=_init_worker,
        initargs=(options.upsample, options.detect_width))
    results = pool.imap(_process, jobs, chunksize=1)
  try:
    for utt, example, skipped in results:
      bar.update(1)
      if skipped is not None:
        skips.skip(utt.video, *skipped)
        continue
      cache.put(example_key(utt), example)
      done.append(utt)
  finally:
    bar.close()
    if pool is not None:
      pool.terminate()
      pool.join()
  return done
