r"""One-shot inference throughput, adaptation time, compositing and memory.

  python benchmarks/generate.py [--model=EXPORT_DIR] [--sizes=128,256] \
      [--generators=default,demo] [--batchings=map,vmap] \
      [--composite_photos=512,1080,2160]

Prints, per crop size: generation frames/s and real-time factor without and
with adaptation, the adaptation time (compile and compute), N identities
adapted as one vmapped computation against N separate runs; the per-frame
cost of putting the generated faces into photos of each height
(a2v_jax.compositing; the astronaut scaled to that height and padded to
16:9, CPU only, no model needed); then the peak memory of the whole command
(photo -> mp4, --memory_output) for short and long audio, each in a fresh
process, with the output's stream durations (frames, audio and mp4 must
agree to within one frame).

Without --model the generator and encoder are randomly initialised, and the
output says so (speed and memory do not depend on the weights), with the
configs named by --generators: 'default' (configs/common.py: the NVlabs-like
SPADE, ngf=64, DeepSpeech2 3x256) and/or 'demo' (configs/synthetic.py: the
embedded synthetic model, ngf=8). --batchings times N identities adapted
together with each way of sharing the computation (a2v_jax.adaptation). The
memory runs use --memory_config: 'default' (that model) or 'demo' (the
embedded synthetic model's sizes, configs/synthetic.py), since ten minutes of
video from the default model takes hours on a CPU.
"""
from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time

from absl import app
from absl import flags
from absl import logging
import jax
import numpy as np
import skimage.data
import soundfile as sf

import timing

from a2v_jax import compositing
from a2v_jax import export
from a2v_jax import generate
from a2v_jax import inference
from a2v_jax import networks
from a2v_jax import photo
from a2v_jax.media import video
from configs import common
from configs import synthetic

_GENERATORS = flags.DEFINE_list("generators", ["default"], "Model configs "
                                "timed without --model: default, demo.")
_BATCHINGS = flags.DEFINE_list("batchings", ["auto"], "How N identities share"
                               " the adaptation: auto, map, vmap.")
_MODEL = flags.DEFINE_string("model", "", "Export to time ('' = random "
                             "weights, default config).")
_SIZES = flags.DEFINE_list("sizes", ["128", "256"], "Crop sizes.")
_FRAMES = flags.DEFINE_integer("frames", 64, "Frames timed per size.")
_CHUNK = flags.DEFINE_integer("chunk_frames", 32, "Frames per chunk.")
_EPOCHS = flags.DEFINE_integer("adapt_epochs", 5, "Adaptation epochs.")
_IDENTITIES = flags.DEFINE_integer("identities", 4, "N for vmapped vs "
                                   "separate adaptation (0 = skip).")
_MEMORY = flags.DEFINE_list("memory_audio_s", ["10", "600"], "Audio lengths "
                            "of the peak-memory runs ('' = skip).")
_MEMORY_CONFIG = flags.DEFINE_enum("memory_config", "demo", ["demo", "default"],
                                   "Model of the memory runs (no --model).")
_MEMORY_CROP = flags.DEFINE_integer("memory_crop", 64, "Crop of the memory "
                                    "runs without --model.")
_MEMORY_OUTPUT = flags.DEFINE_enum("memory_output", "photo",
                                   ["face", "photo", "photo_whole_face"],
                                   "What the memory runs write (--output).")
_COMPOSITE = flags.DEFINE_list("composite_photos", ["512", "1080", "2160"],
                               "Photo heights of the compositing timings "
                               "('' = skip).")
_COMPOSITE_CROPS = flags.DEFINE_list("composite_crops", ["64", "128"],
                                     "Face crops of the compositing timings.")
_CHILD = flags.DEFINE_string("child", "", "Internal: run one memory "
                             "measurement as 'MODEL,AUDIO,OUT'.")


def speech_like(seconds: float, sample_rate: int = 16000) -> np.ndarray:
  """Syllable-modulated harmonics: float32 [N]."""
  t = np.arange(int(seconds * sample_rate)) / sample_rate
  phase = 2 * np.pi * np.cumsum(120 + 20 * np.sin(2 * np.pi * 0.7 * t)) / sample_rate
  voiced = sum(np.sin(k * phase) / k for k in range(1, 6))
  env = np.clip(np.sin(2 * np.pi * 4.0 * t), 0, None) ** 2
  return (0.3 * env * voiced).astype(np.float32)


def random_export(out_dir: str, crop: int, config_name: str) -> str:
  """A random-weight export of the default (or demo) model at `crop`."""
  c = (common if config_name == "default" else synthetic).get_config()
  gen = networks.network_config("generator", c.model.generator)
  enc = networks.network_config("ds2", c.model.ds2)
  return export.export_random_model(
      out_dir, generator_config=gen, ds2_config=enc,
      preprocessing=export.default_preprocessing(
          crop, ds2_window_frames=c.dataset.num_frames),
      train_config={"model": {"perceptual": dict(c.model.perceptual)}})


def time_generation(head, identity, frames: int) -> tuple[float, float]:
  """(first-call seconds incl. compile, frames/s after it)."""
  audio = speech_like((frames + 0.4) / head.fps)
  start = time.perf_counter()
  for _ in head.stream(identity, audio[: int(0.5 * 16000)], sample_rate=16000):
    pass
  first = time.perf_counter() - start
  start = time.perf_counter()
  n = sum(len(c) for c in head.stream(identity, audio, sample_rate=16000))
  return first, n / (time.perf_counter() - start)


def bench_size(crop: int, config_name: str, workdir: str) -> dict:
  path = _MODEL.value or random_export(
      os.path.join(workdir, f"m{crop}_{config_name}"), crop, config_name)
  head = inference.TalkingHead.from_export(path, chunk_frames=_CHUNK.value)
  if head.crop != crop:
    raise app.UsageError(f"--model has crop {head.crop}, not {crop}")
  aligned = head.prepare(skimage.data.astronaut())
  _progress(f"{config_name} {crop}x{crop}: generation")
  row = {"crop": crop, "model": ("export" if _MODEL.value else
                                 f"{config_name} ngf={head.generator.ngf}")}
  row["first_call_s"], row["fps"] = time_generation(
      head, head.identity(aligned), _FRAMES.value)
  _progress(f"{config_name} {crop}x{crop}: adaptation")
  identity = head.adapt(aligned, _EPOCHS.value)
  stats = identity.adapt_stats
  row["adapt_compile_s"], row["adapt_compute_s"] = stats.compile_s, stats.compute_s
  _, row["fps_adapted"] = time_generation(head, identity, _FRAMES.value)
  # With adaptation, 10 s of speech: adaptation compute + generation.
  # (rtf = seconds of work per second of video; < 1 is faster than real time)
  row["rtf_adapted_10s"] = (stats.compute_s + 250 / row["fps_adapted"]) / 10.0
  n = _IDENTITIES.value
  if n > 1:
    faces = [aligned] + [photo.AlignedPhoto(
        image=aligned.image, face=np.roll(aligned.face, i, axis=1),
        matrix=aligned.matrix, landmarks=aligned.landmarks, num_faces=1)
                         for i in range(1, n)]
    single = head.adapt(aligned, _EPOCHS.value).adapt_stats  # compiled
    row["vmap_n"] = n
    row["separate_compute_s"] = n * single.compute_s
    row["batched"] = []
    for batching in _BATCHINGS.value:
      _progress(f"{config_name} {crop}x{crop}: {n} identities, {batching}")
      head.adapt_batching = batching
      together = head.adapt_many(faces, _EPOCHS.value)[0].adapt_stats
      # Compiled now: the second run times compute only.
      again = head.adapt_many(faces, _EPOCHS.value)[0].adapt_stats
      row["batched"].append(dict(batching=batching,
                                 compile_s=together.compile_s,
                                 compute_s=again.compute_s))
  return row


def test_photo(height: int) -> np.ndarray:
  """The astronaut scaled to `height` px, edge-padded to 16:9 above 512 px."""
  import cv2  # pylint: disable=g-import-not-at-top
  image = skimage.data.astronaut()
  if height == image.shape[0]:
    return image
  image = cv2.resize(image, (height, height), interpolation=cv2.INTER_CUBIC)
  pad = (height * 16 // 9 - height) // 2
  return cv2.copyMakeBorder(image, 0, 0, pad, pad, cv2.BORDER_REPLICATE)


def bench_compositing() -> list[dict]:
  """ms per frame of each compositor, per photo height and crop."""
  rows = []
  rng = np.random.default_rng(0)
  for height in (int(h) for h in _COMPOSITE.value if h):
    image = test_photo(height)
    for crop in (int(c) for c in _COMPOSITE_CROPS.value if c):
      _progress(f"compositing {image.shape[1]}x{height}, crop {crop}")
      aligned = photo.prepare_photo(image, crop)
      still = aligned.face
      # A chunk of frames that differ from the still in the lower face.
      frames = np.repeat(still[None], _CHUNK.value, axis=0).astype(np.int16)
      lower = frames[:, crop // 2:]
      lower += rng.integers(-30, 30, lower.shape, dtype=np.int16)
      frames = np.clip(frames, 0, 255).astype(np.uint8)
      row = {"photo": f"{image.shape[1]}x{height}", "crop": crop}
      for name, paste in (
          ("change", compositing.ChangeComposite(aligned, still)),
          ("whole_face", compositing.WholeFacePaste(aligned, still))):
        def run(paste=paste):
          for _ in paste.chunks(frames):
            pass
        row[name + "_ms"] = 1e3 * timing.best_seconds(run, (), 1, 3) / len(
            frames)
        row[name + "_box"] = f"{paste.size[0]}x{paste.size[1]}"
      row["copy_ms"] = 1e3 * timing.best_seconds(
          np.repeat, (image[None], len(frames), 0), 1, 3) / len(frames)
      rows.append(row)
      print("measured: " + json.dumps(row), flush=True)
  return rows


def _progress(stage: str) -> None:
  print(f"[{time.strftime('%H:%M:%S')}] {stage}", file=sys.stderr, flush=True)


def _peak_rss_mib() -> float:
  """VmHWM of this process (reset at start by _reset_peak_rss)."""
  with open("/proc/self/status") as f:
    for line in f:
      if line.startswith("VmHWM:"):
        return int(line.split()[1]) / 1024
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _reset_peak_rss() -> None:
  """Forgets the peak inherited from the forking parent (Linux >= 4.0)."""
  try:
    with open("/proc/self/clear_refs", "w") as f:
      f.write("5")
  except OSError:
    pass


def run_child(spec: str) -> None:
  """One photo -> mp4 run; prints its peak memory and stream durations."""
  _reset_peak_rss()
  model, audio, out = spec.split(",")
  image = os.path.join(os.path.dirname(out), "astronaut.png")
  import cv2  # pylint: disable=g-import-not-at-top
  cv2.imwrite(image, skimage.data.astronaut()[..., ::-1])
  start = time.perf_counter()
  (result,) = generate.run(model, [generate.Request(image, audio, out)],
                           chunk_frames=_CHUNK.value,
                           output=_MEMORY_OUTPUT.value, progress=False)
  wall = time.perf_counter() - start
  info = video.probe_streams(out)
  peak = {"python_rss_mib": _peak_rss_mib()}
  stats = jax.local_devices()[0].memory_stats() or {}
  if "peak_bytes_in_use" in stats:
    peak["device_peak_mib"] = stats["peak_bytes_in_use"] / 2**20
  print("RESULT " + json.dumps(dict(
      peak, frames=result.frames, wall_s=wall, fps=result.frames / wall,
      video_frames=info.video_frames, video_s=info.video_duration_s,
      audio_s=info.audio_duration_s)))


def bench_memory(workdir: str) -> list[dict]:
  model = _MODEL.value or random_export(
      os.path.join(workdir, "mem_model"), _MEMORY_CROP.value,
      _MEMORY_CONFIG.value)
  rows = []
  for seconds in (float(s) for s in _MEMORY.value if s):
    _progress(f"memory run, {seconds:g} s of audio")
    audio = os.path.join(workdir, f"speech_{seconds:g}s.wav")
    sf.write(audio, speech_like(seconds), 16000, subtype="PCM_16")
    out = os.path.join(workdir, f"out_{seconds:g}s.mp4")
    proc = subprocess.run(
        [sys.executable, os.path.abspath(__file__),
         f"--child={model},{audio},{out}", f"--chunk_frames={_CHUNK.value}",
         f"--memory_output={_MEMORY_OUTPUT.value}"],
        capture_output=True, text=True, check=False)
    lines = [l for l in proc.stdout.splitlines() if l.startswith("RESULT ")]
    if proc.returncode or not lines:
      raise RuntimeError(f"memory run failed: {proc.stderr[-2000:]}")
    rows.append(dict(json.loads(lines[-1][7:]), audio_len_s=seconds))
    print("measured: " + json.dumps(rows[-1]), flush=True)
  return rows


def main(argv) -> None:
  del argv
  logging.set_verbosity(logging.WARNING)  # orbax logs every array it reads
  if _CHILD.value:
    run_child(_CHILD.value)
    return
  device = jax.devices()[0]
  print(f"device: {device.platform} ({device.device_kind}), "
        f"{os.cpu_count()} CPUs visible, load average at start "
        + " ".join(f"{x:.1f}" for x in os.getloadavg()))
  print("model: " + (_MODEL.value or "RANDOMLY INITIALISED "
                     f"{','.join(_GENERATORS.value)} config(s) (no trained "
                     "export given; speed/memory only)"))
  with tempfile.TemporaryDirectory() as workdir:
    configs = ["export"] if _MODEL.value else _GENERATORS.value
    rows = []
    for c in configs:
      for size in (int(s) for s in _SIZES.value if s):
        rows.append(bench_size(size, c, workdir))
        # Each result as soon as it is measured (long runs on a CPU).
        print("measured: " + json.dumps(rows[-1]), flush=True)
    print()
    if rows:
      print("| model | crop | first call s (compile) | frames/s | "
            "real-time factor | "
            f"adapt compile s | adapt {_EPOCHS.value} epochs s | "
            "frames/s adapted | "
            "RTF 10 s incl. adapt |")
      print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
      print(f"| {r['model']} | {r['crop']} | {r['first_call_s']:.1f} | "
            f"{r['fps']:.2f} | "
            f"{25.0 / r['fps']:.2f} | {r['adapt_compile_s']:.1f} | "
            f"{r['adapt_compute_s']:.2f} | {r['fps_adapted']:.2f} | "
            f"{r['rtf_adapted_10s']:.2f} |")
    if any("vmap_n" in r for r in rows):
      print()
      print("| model | crop | N | batching | batched compile s | "
            "batched compute s | N separate compute s | compute speed-up | "
            "N separate runs s (each compiles) | batched run s | speed-up |")
      print("|---|---|---|---|---|---|---|---|---|---|---|")
      for r in rows:
        for b in r.get("batched", []):
          runs = r["vmap_n"] * r["adapt_compile_s"] + r["separate_compute_s"]
          batched = b["compile_s"] + b["compute_s"]
          print(f"| {r['model']} | {r['crop']} | {r['vmap_n']} | "
                f"{b['batching']} | {b['compile_s']:.1f} |"
                f" {b['compute_s']:.2f} | {r['separate_compute_s']:.2f} |"
                f" {r['separate_compute_s'] / b['compute_s']:.2f}x |"
                f" {runs:.1f} | {batched:.1f} | {runs / batched:.2f}x |")
    composite = bench_compositing() if any(_COMPOSITE.value) else []
    if composite:
      print()
      print("compositing, ms per frame (best of repeats, chunks of "
            f"{_CHUNK.value}): 'change' = output photo (default), "
            "'whole_face' = output photo_whole_face; 'photo copy' = the "
            "bare copy of the photo that every output frame starts as")
      print("| photo | crop | change ms | change box px | whole_face ms | "
            "whole_face box px | photo copy ms |")
      print("|---|---|---|---|---|---|---|")
      for r in composite:
        print(f"| {r['photo']} | {r['crop']} | {r['change_ms']:.2f} | "
              f"{r['change_box']} | {r['whole_face_ms']:.2f} | "
              f"{r['whole_face_box']} | {r['copy_ms']:.2f} |")
    mem = bench_memory(workdir) if any(_MEMORY.value) else []
    if mem:
      print()
      print("memory runs: " + ("--model" if _MODEL.value else
                               f"{_MEMORY_CONFIG.value} config at "
                               f"{_MEMORY_CROP.value}x{_MEMORY_CROP.value}, "
                               "random weights") + ", photo -> mp4 "
            f"(--output={_MEMORY_OUTPUT.value}), fresh "
            "process each; peak RSS of the Python process (compile "
            "included; ffmpeg's encoder is a separate, bounded process)")
      print("| audio s | frames | frames/s | peak RSS MiB | device peak MiB |"
            " mp4 video s | mp4 audio s | max drift (frames) |")
      print("|---|---|---|---|---|---|---|---|")
      for m in mem:
        drift = max(abs(m["video_s"] - m["audio_len_s"]),
                    abs(m["audio_s"] - m["audio_len_s"]),
                    abs(m["video_frames"] - m["frames"]) / 25.0) * 25.0
        print(f"| {m['audio_len_s']:g} | {m['frames']} | {m['fps']:.1f} | "
              f"{m['python_rss_mib']:.0f} | "
              f"{m.get('device_peak_mib', float('nan')):.0f} | "
              f"{m['video_s']:.3f} | {m['audio_s']:.3f} | {drift:.2f} |")
  print("\nNote: a shared, loaded CPU gives noisy timings; compare rows of "
        "one run only.")


if __name__ == "__main__":
  app.run(main)
