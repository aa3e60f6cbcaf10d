"""Input pipeline throughput: frames/s of `create_loader` and MFCC extraction speed.

  python benchmarks/loader.py                       # fake array_record dataset
  python benchmarks/loader.py --tfds_name=grid/crop64 --data_dir=DIR  # a built one

By default it writes a small TFDS array_record dataset of fake clips (real
JPEG-encoded face crops of 64 and 128 px, 75 frames, 3 s of 16 kHz audio each,
in the team's example format) to a temporary folder, then times the loader with
0 and 2 grain workers. frames/s counts the T window frames of each example (the
reference frame is decoded too but not counted). The table compares this with
what a training step consumes, under the assumption stated in the output.

Runs under absl.app.run because grain worker processes need parsed absl flags.
The machine is shared: expect noisy numbers.
"""

from __future__ import annotations

import functools
import os
import tempfile
import time

from absl import app
from absl import flags
from absl import logging
import cv2
import numpy as np

import md_table

from a2v_jax.audio import features
from a2v_jax.data import pipeline

_TFDS_NAME = flags.DEFINE_string("tfds_name", None, "Benchmark a built TFDS dataset (e.g. grid/crop64) "
                                 "instead of the fake one.")
_DATA_DIR = flags.DEFINE_string("data_dir", None, "TFDS data_dir (with --tfds_name), or where to keep the fake "
                                "dataset (default: a temporary folder).")
_SPLIT = flags.DEFINE_string("split", "train", "Split of --tfds_name.")
_CROPS = flags.DEFINE_list("crops", ["64", "128"], "Crop sizes of the fake dataset.")
_WORKERS = flags.DEFINE_list("workers", ["0", "2"], "grain worker_count values to time.")
_CLIPS = flags.DEFINE_integer("clips", 24, "Clips in the fake dataset.")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 16, "Examples per batch (configs/common.py uses 16).")
_NUM_FRAMES = flags.DEFINE_integer("num_frames", 5, "T frames per example (configs/common.py uses 5).")
_BATCHES = flags.DEFINE_integer("batches", 30, "Timed batches per setting (after 3 warm-up batches).")
_STEP_S = flags.DEFINE_float("assumed_step_s", 0.25, "Assumed seconds per training step on one accelerator.")
_LIBROSA = flags.DEFINE_bool("compare_librosa", False, "Also time librosa.feature.mfcc per window "
                             "(first use compiles numba kernels).")
_MARKDOWN = flags.DEFINE_bool("markdown", False, "Print the tables as Markdown.")

_CLIP_FRAMES = 75


def _face_frames(crop: int, rng: np.random.Generator) -> list[bytes]:
  """75 JPEG frames of a real face crop with per-frame jitter and noise (quality 95, as the builder)."""
  from skimage import data as skdata  # pylint: disable=g-import-not-at-top

  face = skdata.astronaut()[20:220, 140:340]
  out = []
  for t in range(_CLIP_FRAMES):
    dx, dy = rng.integers(-4, 5, size=2)
    image = cv2.resize(np.roll(face, (dy, dx), axis=(0, 1)), (crop, crop), interpolation=cv2.INTER_AREA)
    image = np.clip(image.astype(np.int16) + rng.integers(-3, 4, image.shape), 0, 255).astype(np.uint8)
    ok, buf = cv2.imencode(".jpg", image[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 95])
    assert ok, t
    out.append(buf.tobytes())
  return out


def _fake_example(i: int, crop: int) -> dict:
  rng = np.random.default_rng(i)
  n = _CLIP_FRAMES * 640
  t = np.arange(n) / 16000
  audio = 0.3 * np.sin(2 * np.pi * (120 + 10 * i) * t) * (1 + np.sin(2 * np.pi * 3 * t)) / 2
  audio = (audio + 0.02 * rng.standard_normal(n)).astype(np.float32)
  speaker = i % 4 + 1
  return {
      "frames": _face_frames(crop, rng),
      "audio": audio,
      "landmarks": rng.uniform(0, crop, (_CLIP_FRAMES, 68, 2)).astype(np.float32),
      "landmarks_detected": np.ones(_CLIP_FRAMES, bool),
      "words": [b"bin", b"blue", b"at", b"f", b"two", b"now"],
      "word_start": np.linspace(0.2, 2.2, 6).astype(np.float32),
      "word_end": np.linspace(0.5, 2.6, 6).astype(np.float32),
      "mouth_open_gt": rng.uniform(0, 1, _CLIP_FRAMES).astype(np.float32),
      "blink_gt": np.zeros(_CLIP_FRAMES, np.int32),
      "has_ground_truth": True,
      "speaker": f"s{speaker}".encode(),
      "speaker_id": speaker,
      "utterance": f"bbaf{i % 10}n".encode(),
      "fps": 25.0,
  }


def _features_dict():
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top

  tensor = tfds.features.Tensor
  return tfds.features.FeaturesDict({
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


@functools.cache
def _fake_builder_class():
  """A TFDS builder of fake clips in the example contract (configs crop64/crop128/crop256)."""
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top

  class FakeClips(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """Fake clips in the example contract."""

    VERSION = tfds.core.Version("1.0.0")
    BUILDER_CONFIGS = [tfds.core.BuilderConfig(name=f"crop{c}") for c in (64, 128, 256)]

    def __init__(self, *, num_clips: int, **kwargs):
      self.num_clips = num_clips
      super().__init__(**kwargs)

    def _info(self):
      return tfds.core.DatasetInfo(builder=self, features=_features_dict())

    def _split_generators(self, dl_manager):
      del dl_manager
      return {"train": self._generate_examples()}

    def _generate_examples(self):
      crop = int(self.builder_config.name[len("crop"):])
      for i in range(self.num_clips):
        yield i, _fake_example(i, crop)

  return FakeClips


def build_fake_dataset(data_dir: str, crop: int, num_clips: int):
  """Writes (or reuses) an array_record TFDS dataset of fake clips; returns its train data source."""
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top

  builder = _fake_builder_class()(config=f"crop{crop}", num_clips=num_clips,
                                  data_dir=os.path.join(data_dir, f"clips{num_clips}"),
                                  file_format="array_record")
  tfds.disable_progress_bar()
  builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
      compute_stats=tfds.download.ComputeStatsMode.SKIP))
  # A read-only builder pickles into grain workers without this module's class.
  return tfds.builder_from_directory(builder.data_dir).as_data_source(split="train")


def _descendants(pid: int) -> list[int]:
  """pid and every process below it (grain workers and their helpers), from /proc."""
  out, todo = [], [pid]
  while todo:
    p = todo.pop()
    out.append(p)
    try:
      for task in os.listdir(f"/proc/{p}/task"):
        with open(f"/proc/{p}/task/{task}/children") as f:
          todo += [int(c) for c in f.read().split()]
    except OSError:
      pass
  return out


def _cpu_seconds() -> float:
  """CPU time (user + system) of this process and its descendants, from /proc."""
  ticks = os.sysconf("SC_CLK_TCK")
  total = 0.0
  for pid in _descendants(os.getpid()):
    try:
      with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
      total += (int(fields[11]) + int(fields[12])) / ticks
    except (OSError, IndexError, ValueError):
      pass
  return total


def time_loader(source, workers: int) -> tuple[float, float, float]:
  """Returns (examples/s, frames/s, frames per CPU-second) over the timed batches."""
  loader = pipeline.create_loader(source, batch_size=_BATCH_SIZE.value, num_frames=_NUM_FRAMES.value, seed=0,
                                  worker_count=workers, shard_index=0, shard_count=1)
  it = iter(loader)
  for _ in range(3):  # worker start-up and first reads
    next(it)
  start, cpu_start = time.perf_counter(), _cpu_seconds()
  for _ in range(_BATCHES.value):
    next(it)
  seconds, cpu = time.perf_counter() - start, _cpu_seconds() - cpu_start
  frames = _BATCHES.value * _BATCH_SIZE.value * _NUM_FRAMES.value
  del it
  return frames / _NUM_FRAMES.value / seconds, frames / seconds, frames / max(cpu, 1e-9)


def time_features() -> list[tuple[str, float]]:
  """Milliseconds per call of the feature functions on a 3 s clip and on a T-frame window."""
  rng = np.random.default_rng(0)
  audio = (0.1 * rng.standard_normal(_CLIP_FRAMES * 640)).astype(np.float32)
  t = _NUM_FRAMES.value
  cases = [
      (f"mfcc_windows, 3 s clip -> [75, 20, 13]", lambda: features.mfcc_windows(audio)),
      (f"mfcc_windows, {t}-frame window", lambda: features.mfcc_windows(audio, num_frames=t, start_frame=30)),
      (f"log_mel_windows, 3 s clip -> [75, 20, 80]", lambda: features.log_mel_windows(audio)),
  ]
  if _LIBROSA.value:
    import librosa  # pylint: disable=g-import-not-at-top

    geometry = features.window_geometry()
    starts = features.frame_starts(geometry, 0, _CLIP_FRAMES)[:, 0]
    length = geometry.n_fft + 19 * geometry.hop_length
    padded = np.pad(audio, (4000, 4000))
    segments = [padded[s + 4000:s + 4000 + length] for s in starts]

    def per_window_librosa():
      return [librosa.feature.mfcc(y=s, sr=16000, n_mfcc=13, n_fft=512, hop_length=160, win_length=400,
                                   center=False, n_mels=40) for s in segments]

    per_window_librosa()  # JIT warm-up
    cases.append(("librosa.feature.mfcc per window, 3 s clip", per_window_librosa))
  rows = []
  for name, fn in cases:
    fn()
    reps = 50
    start = time.perf_counter()
    for _ in range(reps):
      fn()
    rows.append((name, 1000 * (time.perf_counter() - start) / reps))
  return rows


def main(argv):
  del argv
  rows = []
  if _TFDS_NAME.value:
    import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top

    sources = [(_TFDS_NAME.value, tfds.data_source(_TFDS_NAME.value, split=_SPLIT.value,
                                                   data_dir=_DATA_DIR.value))]
  else:
    data_dir = _DATA_DIR.value or tempfile.mkdtemp(prefix="a2v_loader_bench_")
    sources = []
    for crop in (int(c) for c in _CROPS.value):
      start = time.perf_counter()
      sources.append((f"fake crop{crop}", build_fake_dataset(data_dir, crop, _CLIPS.value)))
      logging.info("fake crop%d dataset ready in %.1f s at %s", crop, time.perf_counter() - start, data_dir)
  for name, source in sources:
    frame = pipeline.decode_jpeg(source[0]["frames"][0])
    for workers in (int(w) for w in _WORKERS.value):
      rows.append((name, f"{frame.shape[0]}x{frame.shape[1]}", workers, *time_loader(source, workers)))

  need = _BATCH_SIZE.value * _NUM_FRAMES.value / _STEP_S.value
  print(f"\nLoader: batch {_BATCH_SIZE.value} x {_NUM_FRAMES.value} frames, {os.cpu_count()} CPU cores, "
        f"load average {os.getloadavg()[0]:.1f} at the end")
  if _MARKDOWN.value:
    md_table.print_markdown(
        ["dataset", "crop", "workers", "examples/s", "frames/s", "x need", "frames/CPU-s"],
        [(name, crop, workers, f"{examples_s:.1f}", f"{frames_s:.0f}", f"{frames_s / need:.1f}",
          f"{frames_cpu_s:.0f}") for name, crop, workers, examples_s, frames_s, frames_cpu_s in rows])
  else:
    print(f"{'dataset':<18} {'crop':>8} {'workers':>7} {'examples/s':>11} {'frames/s':>9} {'x need':>7} "
          f"{'frames/CPU-s':>13}")
    for name, crop, workers, examples_s, frames_s, frames_cpu_s in rows:
      print(f"{name:<18} {crop:>8} {workers:>7} {examples_s:>11.1f} {frames_s:>9.0f} {frames_s / need:>7.1f} "
            f"{frames_cpu_s:>13.0f}")
  print(f"need = {need:.0f} frames/s: one training step takes {_BATCH_SIZE.value} x {_NUM_FRAMES.value} frames "
        f"and is assumed to take {_STEP_S.value} s on one accelerator (--assumed_step_s).")
  print("frames/CPU-s: frames per second of CPU time used by the loader and its workers; on a busy machine "
        "it estimates what one idle core delivers.")

  print("\nAudio features (ms per call)")
  feature_times = time_features()
  if _MARKDOWN.value:
    md_table.print_markdown(["features", "ms per call"], [(name, f"{ms:.2f}") for name, ms in feature_times])
    return
  for name, ms in feature_times:
    print(f"{name:<48} {ms:>8.2f}")


if __name__ == "__main__":
  app.run(main)
