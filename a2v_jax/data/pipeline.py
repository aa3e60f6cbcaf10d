"""grain input pipeline: random T-frame windows of talking-face clips.

`create_loader` wraps any random-access source of examples in the dataset
contract (the TFDS array_record source from `tfds.data_source(...)`, or a plain
list of dicts in tests) in a `grain.DataLoader`. For each example it draws
(from the per-record RNG that grain derives from `seed`):

  * a window of `num_frames` consecutive frames, decoding only those JPEGs;
  * the matching 200 ms MFCC (and/or log-mel) windows, one per frame;
  * the matching landmarks and ground-truth mouth opening / blinks;
  * one reference identity frame of the same speaker: a random frame of the
    same clip outside the window (`reference='same_utterance'`, the default),
    or a random frame of another clip of that speaker
    (`reference='other_utterance'`).

Batches have fixed shapes (incomplete batches are dropped) and each JAX process
reads its own disjoint shard. The iterator state is checkpointable with
`iterator.get_state()` / `iterator.set_state(state)`; the same seed gives the
same batches. Clips shorter than `num_frames` are skipped (logged).

With `worker_count > 0` grain starts worker processes and reads its absl flags
(--grain_*), so run programs under `absl.app.run(main)`. Outside it (pytest, a
notebook) `create_loader` marks the absl flags as parsed, with their defaults,
and logs a warning.

Cost per example: one full record read (all JPEG bytes and the audio of the
clip), T + 1 JPEG decodes and the MFCCs of T windows; 'other_utterance' reads a
second record. `benchmarks/loader.py` measures it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from absl import flags
from absl import logging
import cv2
import grain.python as grain
import numpy as np

from a2v_jax.audio import features

SAMPLE_RATE = 16000
DEFAULT_FPS = 25.0
REFERENCE_MODES = ("same_utterance", "other_utterance")
LOG_MEL_BANDS = 80


def decode_jpeg(data: Any) -> np.ndarray:
  """Decodes one JPEG/PNG to uint8 [H, W, 3] RGB.

  Args:
    data: encoded bytes (bytes, np.bytes_, or a 0-d object/bytes array).
  """
  if isinstance(data, np.ndarray):
    data = data.item() if data.ndim == 0 else data.tobytes()
  image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
  if image is None:
    raise ValueError("a frame is not a decodable JPEG/PNG; rebuild the dataset.")
  return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def _num_clip_frames(example: Mapping[str, Any]) -> int:
  return len(example["frames"])


def _read_frames(frames: Any, indices: Sequence[int]) -> np.ndarray:
  """uint8 [len(indices), H, W, 3] RGB from encoded frames (or a decoded uint8 [T, H, W, 3] array)."""
  if isinstance(frames, np.ndarray) and frames.dtype == np.uint8 and frames.ndim == 4:
    return frames[np.asarray(indices)]
  return np.stack([decode_jpeg(frames[i]) for i in indices])


def _to_unit_range(images: np.ndarray) -> np.ndarray:
  """uint8 -> float32 in [-1, 1]."""
  return images.astype(np.float32) * np.float32(1.0 / 127.5) - np.float32(1.0)


def _as_key(value: Any) -> Any:
  """Hashable speaker key from bytes / str / 0-d array."""
  if isinstance(value, np.ndarray):
    value = value.item()
  return value.decode() if isinstance(value, bytes) else str(value)


def build_speaker_index(source: Sequence[Mapping[str, Any]]) -> dict[str, np.ndarray]:
  """Maps each speaker to the record keys of its clips.

  Reads every record once (in chunks, through `__getitems__` where the source
  has it, as TFDS sources do); on a large corpus pass the result to
  `create_loader(speaker_index=...)` instead of rebuilding it each run.

  Returns:
    {speaker: int64 [n] sorted record keys}.
  """
  groups: dict[str, list[int]] = {}
  num_records = len(source)
  get_many = getattr(source, "__getitems__", None)
  chunk = 256
  for lo in range(0, num_records, chunk):
    keys = list(range(lo, min(lo + chunk, num_records)))
    records = get_many(keys) if get_many is not None else [source[k] for k in keys]
    for key, record in zip(keys, records):
      groups.setdefault(_as_key(record["speaker"]), []).append(key)
    if lo and lo % (chunk * 40) == 0:
      logging.info("speaker index: %d / %d records read.", lo, num_records)
  logging.info("speaker index: %d speakers over %d records.", len(groups), len(source))
  return {speaker: np.asarray(keys, np.int64) for speaker, keys in groups.items()}


class _KeyedSource(grain.RandomAccessDataSource):
  """Adds the record key to each example, so a transform can exclude its own clip."""

  def __init__(self, source):
    self._source = source

  def __len__(self) -> int:
    return len(self._source)

  def __getitem__(self, key):
    return {"example": self._source[key], "key": int(key)}

  def __repr__(self) -> str:
    return f"_KeyedSource({self._source!r})"


class DropShortClips(grain.FilterTransform):
  """Drops clips with fewer than `num_frames` frames."""

  def __init__(self, num_frames: int):
    self.num_frames = num_frames

  def filter(self, element) -> bool:
    length = _num_clip_frames(element["example"])
    if length < self.num_frames:
      logging.log_every_n(logging.WARNING, "skipping a clip of %d frames (< num_frames=%d).", 100, length,
                          self.num_frames)
      return False
    return True


class SampleClipWindow(grain.RandomMapTransform):
  """One training example: a random window of a clip plus a reference frame.

  The audio features of a clip are computed once for all its frames and
  kept (up to CACHE_BYTES per loader), so later epochs only slice them.

  Output (numpy, one example):
    frames: float32 [T, H, W, 3] in [-1, 1]; reference: float32 [H, W, 3];
    mfcc: float32 [T, 20, 13] and/or log_mel: float32 [T, 20, 80];
    landmarks: float32 [T, 68, 2]; mouth_open_gt: float32 [T]; blink_gt: int32 [T];
    speaker_id: int32 []; start_frame: int32 [].
  """

  CACHE_BYTES = 512 * 2**20

  def __init__(self, num_frames: int, audio_features: Sequence[str], reference: str,
               source=None, speaker_index: Mapping[str, np.ndarray] | None = None):
    self.num_frames = num_frames
    self.audio_features = tuple(audio_features)
    self.reference = reference
    self.source = source
    self.speaker_index = speaker_index
    self._cache = {}
    self._cache_bytes = 0

  def _clip_windows(self, example, key: int, name: str, length: int) -> np.ndarray:
    """The audio feature windows of every frame of a clip, computed once.

    Each frame's window depends only on its own audio, so a slice of the
    whole clip's windows equals the window computed alone; the cache keeps
    epochs after the first from recomputing them (up to CACHE_BYTES).
    """
    cached = self._cache.get((key, name))
    if cached is not None:
      return cached
    audio = np.asarray(example["audio"], np.float32)
    fps = float(example.get("fps", DEFAULT_FPS))
    if name == "mfcc":
      windows = features.mfcc_windows(audio, SAMPLE_RATE, fps, num_frames=length)
    else:
      windows = features.log_mel_windows(audio, SAMPLE_RATE, fps, num_frames=length, n_mels=LOG_MEL_BANDS)
    windows = np.asarray(windows, np.float32)
    if self._cache_bytes + windows.nbytes <= self.CACHE_BYTES:
      self._cache[(key, name)] = windows
      self._cache_bytes += windows.nbytes
    return windows

  def _reference_frame(self, example, key: int, start: int, rng: np.random.Generator) -> np.ndarray:
    if self.reference == "other_utterance":
      keys = self.speaker_index.get(_as_key(example["speaker"]))
      others = keys[keys != key] if keys is not None else ()
      if len(others):
        other = self.source[int(others[rng.integers(len(others))])]
        return _read_frames(other["frames"], [int(rng.integers(_num_clip_frames(other)))])[0]
      logging.log_first_n(logging.WARNING, "speaker %s has one clip; using a frame of the same clip.", 5,
                          _as_key(example["speaker"]))
    length = _num_clip_frames(example)
    outside = length - self.num_frames
    if outside > 0:
      index = int(rng.integers(outside))
      index = index if index < start else index + self.num_frames
    else:
      index = int(rng.integers(length))
    return _read_frames(example["frames"], [index])[0]

  def random_map(self, element, rng: np.random.Generator):
    example, key = element["example"], element["key"]
    length = _num_clip_frames(example)
    t = self.num_frames
    start = int(rng.integers(length - t + 1))
    window = range(start, start + t)
    out = {
        "frames": _to_unit_range(_read_frames(example["frames"], window)),
        "reference": _to_unit_range(self._reference_frame(example, key, start, rng)),
    }
    for name in self.audio_features:
      out[name] = self._clip_windows(example, key, name, length)[start:start + t]
    out["landmarks"] = np.asarray(example["landmarks"][start:start + t], np.float32)
    out["mouth_open_gt"] = _window_or_zeros(example, "mouth_open_gt", start, t, np.float32)
    out["blink_gt"] = _window_or_zeros(example, "blink_gt", start, t, np.int32)
    out["speaker_id"] = np.int32(example["speaker_id"])
    out["start_frame"] = np.int32(start)
    return out


# 68-point index of each landmark's mirror image (iBUG 300-W order): jaw,
# brows, nose, eyes and mouth swap left and right.
MIRROR_68 = np.array(
    list(range(16, -1, -1)) + list(range(26, 16, -1)) + [27, 28, 29, 30]
    + [35, 34, 33, 32, 31] + [45, 44, 43, 42, 47, 46, 39, 38, 37, 36, 41, 40]
    + [54, 53, 52, 51, 50, 49, 48, 59, 58, 57, 56, 55]
    + [64, 63, 62, 61, 60, 67, 66, 65])


class AugmentAppearance(grain.RandomMapTransform):
  """One random mirror and colour change for a window and its reference.

  The same draw applies to every frame and to the reference, so the change
  is one of identity (skin tone, lighting, camera), never of motion: a
  generator trained on few faces sees more of them. Colour: contrast and
  saturation scaled by exp(U(-color, color)), brightness shifted by
  U(-color, color) / 2, each RGB channel scaled by exp(U(-color, color) / 2);
  results are clipped to [-1, 1]. A mirror also mirrors the landmarks.
  """

  def __init__(self, flip: bool, color: float):
    self.flip = bool(flip)
    self.color = float(color)

  def random_map(self, element, rng: np.random.Generator):
    out = dict(element)
    images = np.concatenate([out["frames"], out["reference"][None]], axis=0)
    if self.flip and rng.random() < 0.5:
      images = images[:, :, ::-1]
      if "landmarks" in out:
        width = images.shape[2]
        pts = out["landmarks"][:, MIRROR_68]
        out["landmarks"] = np.stack([width - 1 - pts[..., 0], pts[..., 1]], -1)
    if self.color > 0:
      a = self.color
      x = (images + 1.0) * 0.5
      gain = np.exp(rng.uniform(-a, a, size=3) / 2).astype(np.float32)
      x = x * gain
      grey = x.mean(axis=-1, keepdims=True)
      x = grey + np.float32(np.exp(rng.uniform(-a, a))) * (x - grey)
      mean = x.mean()
      x = mean + np.float32(np.exp(rng.uniform(-a, a))) * (x - mean)
      x = x + np.float32(rng.uniform(-a, a) / 2)
      images = np.clip(x * 2.0 - 1.0, -1.0, 1.0)
    out["frames"] = np.ascontiguousarray(images[:-1], np.float32)
    out["reference"] = np.ascontiguousarray(images[-1], np.float32)
    return out


def _window_or_zeros(example, name: str, start: int, length: int, dtype) -> np.ndarray:
  if name not in example:
    return np.zeros(length, dtype)
  return np.asarray(example[name][start:start + length], dtype)


def _resolve_sharding(shard_index: int | None, shard_count: int | None) -> grain.ShardOptions:
  if shard_index is None or shard_count is None:
    import jax  # pylint: disable=g-import-not-at-top

    shard_index = jax.process_index() if shard_index is None else shard_index
    shard_count = jax.process_count() if shard_count is None else shard_count
  if not 0 <= shard_index < shard_count:
    raise ValueError(f"shard_index={shard_index} must be in [0, shard_count={shard_count}).")
  return grain.ShardOptions(shard_index=shard_index, shard_count=shard_count, drop_remainder=True)


def create_loader(source: Sequence[Mapping[str, Any]], *, batch_size: int, num_frames: int, seed: int,
                  shuffle: bool = True, num_epochs: int | None = None, worker_count: int = 0,
                  shard_index: int | None = None, shard_count: int | None = None,
                  audio_features: str | Sequence[str] = "mfcc", reference: str = "same_utterance",
                  speaker_index: Mapping[str, np.ndarray] | None = None, worker_buffer_size: int = 2,
                  read_options: grain.ReadOptions | None = None, flip: bool = False,
                  color: float = 0.0) -> grain.DataLoader:
  """A grain DataLoader of fixed-shape training batches.

  Args:
    source: random-access examples in the dataset contract (e.g.
      `tfds.data_source('grid/crop64', split='train')`, or a list of dicts).
    batch_size: examples per batch on this process; incomplete batches are dropped.
    num_frames: T, consecutive frames per example.
    seed: 32-bit seed for the shuffle and the per-example window/reference draws.
    shuffle: shuffle records each epoch.
    num_epochs: passes over this shard; None repeats forever.
    worker_count: grain worker processes (0 = in this process). Needs absl
      flags parsed: run the program under `absl.app.run`.
    shard_index, shard_count: this process's shard; default
      jax.process_index() / jax.process_count(). Shards do not overlap.
    audio_features: "mfcc", "log_mel", or a sequence of both; each one named
      is a key of the batch.
    reference: "same_utterance" (a frame of the same clip outside the window)
      or "other_utterance" (a frame of another clip of the same speaker).
    speaker_index: {speaker: record keys} for "other_utterance"; built from the
      source (one full pass) when None.
    worker_buffer_size: batches each worker prepares ahead.
    read_options: grain read threads / prefetch; default 2 threads and a
      prefetch of 2 batches.
    flip, color: appearance augmentation (`AugmentAppearance`): mirror half
      the examples; colour jitter strength (0 = off).

  Returns:
    grain.DataLoader; iterating it yields dicts of numpy arrays:
      frames float32 [B, T, H, W, 3] in [-1, 1]; reference float32 [B, H, W, 3];
      mfcc float32 [B, T, 20, 13] (and/or log_mel float32 [B, T, 20, 80]);
      landmarks float32 [B, T, 68, 2] (crop px); mouth_open_gt float32 [B, T];
      blink_gt int32 [B, T]; speaker_id int32 [B]; start_frame int32 [B].
  """
  names = (audio_features,) if isinstance(audio_features, str) else tuple(audio_features)
  unknown = [n for n in names if n not in features.AUDIO_FEATURES]
  if unknown or not names:
    raise ValueError(f"audio_features={audio_features!r}: use one or more of {features.AUDIO_FEATURES}.")
  if reference not in REFERENCE_MODES:
    raise ValueError(f"reference={reference!r}: use one of {REFERENCE_MODES}.")
  if batch_size <= 0 or num_frames <= 0:
    raise ValueError(f"batch_size and num_frames must be positive, got {batch_size} and {num_frames}.")
  if not isinstance(seed, (int, np.integer)) or not 0 <= seed < 2**32:
    raise ValueError(f"seed must be an integer in [0, 2**32), got {seed!r}.")
  num_records = len(source)
  if num_records == 0:
    raise ValueError("the data source is empty; build the dataset first (python -m a2v_jax.data.build).")
  shard_options = _resolve_sharding(shard_index, shard_count)
  if worker_count and not flags.FLAGS.is_parsed():
    # grain reads its absl flags in the parent; outside absl.app.run (tests,
    # notebooks) take their defaults instead of failing in the first next().
    logging.warning("absl flags not parsed (not under absl.app.run); using grain's flag defaults.")
    flags.FLAGS.mark_as_parsed()
  if reference == "other_utterance" and speaker_index is None:
    speaker_index = build_speaker_index(source)

  sampler = grain.IndexSampler(num_records=num_records, shard_options=shard_options, shuffle=shuffle,
                               num_epochs=num_epochs, seed=int(seed))
  operations = [
      DropShortClips(num_frames),
      SampleClipWindow(num_frames, names, reference,
                       source=source if reference == "other_utterance" else None,
                       speaker_index=speaker_index),
  ]
  if flip or color:
    if color < 0:
      raise ValueError(f"color must be >= 0, got {color}.")
    operations.append(AugmentAppearance(flip, color))
  operations.append(grain.Batch(batch_size=batch_size, drop_remainder=True))
  if read_options is None:
    read_options = grain.ReadOptions(num_threads=2, prefetch_buffer_size=2 * batch_size)
  logging.info("loader: %d records, shard %d/%d, batch %d x %d frames, workers %d.", num_records,
               shard_options.shard_index, shard_options.shard_count, batch_size, num_frames, worker_count)
  return grain.DataLoader(data_source=_KeyedSource(source), sampler=sampler, operations=operations,
                          worker_count=worker_count, worker_buffer_size=worker_buffer_size,
                          shard_options=shard_options, read_options=read_options)
