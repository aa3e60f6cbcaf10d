r"""One-shot inference throughput, adaptation time, compositing and memory.

  python benchmarks/generate.py [--model=EXPORT_DIR] [--sizes=128,256] \
      [--generators=default,demo] [--batchings=map,vmap] \
      [--composite_photos=512,1080,2160]

Prints, per crop size: generation frames/s and real-time factor without and
with adaptation, the adaptation time (compile and compute), N identities
adapted as one vmapped computation against N separate runs; the per-frame
cost of putting the generated faces into photos of each height
(a2v_jax.compositing; the astronaut scaled to that height and padded to
16:9, CPU only, no model needed); then the peak memory of the README's
photo-to-video commands as written, each run as its own process:

  python -m a2v_jax.generate --image=PHOTO --audio=AUDIO --out=OUT --paste_back
  python -m a2v_jax.generate --model=MODEL ... --adapt_epochs=5 --paste_back

(adaptation, compiling, paste-back and the mp4 included; the persistent
compilation cache off, so every run compiles as a first run does), with the
output's stream durations (frames, audio and mp4 must agree to within one
frame). The photo is the astronaut (512 px, as `a2v_jax.data.samples`
writes it), the audio --memory_audio_s seconds of speech-like sound.

Without --model the generator and encoder are randomly initialised, and the
output says so (speed and memory do not depend on the weights), with the
configs named by --generators: 'default' (configs/common.py: the NVlabs-like
SPADE, ngf=64, DeepSpeech2 3x256) and/or 'demo' (configs/synthetic.py: the
embedded synthetic model, ngf=8). --batchings times N identities adapted
together with each way of sharing the computation (a2v_jax.adaptation). The
memory runs use --model, else --memory_config: 'shipped' (the model
`generate` uses without --model, a2v_jax/pretrained), or a random-weight
export of 'default' or 'demo' (configs/synthetic.py) at --memory_crop.
"""
from __future__ import annotations

import json
import os
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
_MEMORY = flags.DEFINE_list("memory_audio_s", ["10"], "Audio lengths "
                            "of the peak-memory runs ('' = skip).")
_MEMORY_CONFIG = flags.DEFINE_enum(
    "memory_config", "shipped", ["shipped", "demo", "default"],
    "Model of the memory runs without --model.")
_MEMORY_CROP = flags.DEFINE_integer("memory_crop", 64, "Crop of the memory "
                                    "runs with a random-weight model.")
_MEMORY_ADAPT = flags.DEFINE_list(
    "memory_adapt_epochs", ["0", "5"], "--adapt_epochs of the memory runs: "
    "0 = the README's first command, 5 = its second.")
_COMPOSITE = flags.DEFINE_list("composite_photos", ["512", "1080", "2160"],
                               "Photo heights of the compositing timings "
                               "('' = skip).")
_COMPOSITE_CROPS = flags.DEFINE_list("composite_crops", ["64", "128"],
                                     "Face crops of the compositing timings.")


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


def generate_command(model: str, image: str, audio: str, out: str,
                     adapt_epochs: int) -> list[str]:
  """The README's photo-to-video command (model '' = the shipped one)."""
  command = [sys.executable, "-m", "a2v_jax.generate"]
  command += [f"--model={model}"] if model else []
  command += [f"--image={image}", f"--audio={audio}", f"--out={out}"]
  command += [f"--adapt_epochs={adapt_epochs}"] if adapt_epochs else []
  return command + ["--paste_back"]


def run_measured(command: list[str], log: str) -> tuple[int, float, float]:
  """(exit status, peak RSS MiB, wall s) of `command`, run as it is typed.

  The peak is the child's ru_maxrss from wait4: the largest resident set of
  the process (or of one it waited for: ffmpeg is smaller).
  """
  env = dict(os.environ, A2V_COMPILATION_CACHE="")  # compile, as a first run
  start = time.perf_counter()
  with open(log, "w") as f:
    proc = subprocess.Popen(command, stdout=f, stderr=subprocess.STDOUT,
                            env=env, cwd=os.path.dirname(os.path.dirname(
                                os.path.abspath(__file__))))
    _, status, usage = os.wait4(proc.pid, 0)
  proc.returncode = os.waitstatus_to_exitcode(status)
  return proc.returncode, usage.ru_maxrss / 1024, time.perf_counter() - start


def bench_memory(workdir: str) -> list[dict]:
  if _MODEL.value:
    model = _MODEL.value
  elif _MEMORY_CONFIG.value == "shipped":
    model = ""  # generate's default
  else:
    model = random_export(os.path.join(workdir, "mem_model"),
                          _MEMORY_CROP.value, _MEMORY_CONFIG.value)
  import cv2  # pylint: disable=g-import-not-at-top
  image = os.path.join(workdir, "astronaut.png")
  cv2.imwrite(image, skimage.data.astronaut()[..., ::-1])
  rows = []
  for seconds in (float(s) for s in _MEMORY.value if s):
    audio = os.path.join(workdir, f"speech_{seconds:g}s.wav")
    sf.write(audio, speech_like(seconds), 16000, subtype="PCM_16")
    for epochs in (int(e) for e in _MEMORY_ADAPT.value if e):
      _progress(f"memory run, {seconds:g} s of audio, {epochs} adapt epochs")
      out = os.path.join(workdir, f"out_{seconds:g}s_{epochs}.mp4")
      command = generate_command(model, image, audio, out, epochs)
      log = out + ".log"
      load = os.getloadavg()[0]
      rc, peak, wall = run_measured(command, log)
      with open(log) as f:
        text = f.read()
      if rc:
        raise RuntimeError(f"memory run failed: {text[-2000:]}")
      info = video.probe_streams(out)
      shown = ["generate"] + [a.replace(workdir + os.sep, "") for a in
                              command[3:]]
      rows.append(dict(command=" ".join(shown), audio_len_s=seconds,
                       adapt_epochs=epochs, python_rss_mib=peak, wall_s=wall,
                       load=load, video_frames=info.video_frames,
                       video_s=info.video_duration_s,
                       audio_s=info.audio_duration_s))
      print("measured: " + json.dumps(rows[-1]), flush=True)
  return rows


def main(argv) -> None:
  del argv
  logging.set_verbosity(logging.WARNING)  # orbax logs every array it reads
  device = jax.devices()[0]
  print(f"device: {device.platform} ({device.device_kind}), "
        f"{os.cpu_count()} CPUs visible, load average at start "
        + " ".join(f"{x:.1f}" for x in os.getloadavg()))
  if any(_SIZES.value):
    print("model: " + (_MODEL.value or "RANDOMLY INITIALISED "
                       f"{','.join(_GENERATORS.value)} config(s) (no trained "
                       "export given; speed only)"))
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
      print("memory runs: the README's commands as typed, model " + (
          _MODEL.value or ("shipped (a2v_jax/pretrained)"
                           if _MEMORY_CONFIG.value == "shipped" else
                           f"{_MEMORY_CONFIG.value} config at "
                           f"{_MEMORY_CROP.value}x{_MEMORY_CROP.value}, "
                           "random weights")) + ", 512 px photo; a fresh "
            "process each, compilation cache off; peak RSS of the whole "
            "command (adaptation, compiling and paste-back included)")
      print("| command | audio s | peak RSS MiB | wall s | load | "
            "mp4 video s | mp4 audio s | max drift (frames) |")
      print("|---|---|---|---|---|---|---|---|")
      for m in mem:
        drift = max(abs(m["video_s"] - m["audio_len_s"]),
                    abs(m["audio_s"] - m["audio_len_s"])) * 25.0
        print(f"| `{m['command']}` | {m['audio_len_s']:g} | "
              f"{m['python_rss_mib']:.0f} | {m['wall_s']:.1f} | "
              f"{m['load']:.1f} | {m['video_s']:.3f} | {m['audio_s']:.3f} | "
              f"{drift:.2f} |")
  print("\nNote: a shared, loaded CPU gives noisy timings; compare rows of "
        "one run only.")


if __name__ == "__main__":
  app.run(main)
