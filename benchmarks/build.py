"""Times the dataset build (face detection + alignment + JPEG) on a synthetic corpus.

  python benchmarks/build.py [--speakers=2] [--utterances=4] [--crop=64]
      [--num_workers=2] [--layout=grid] [--corpus_dir=DIR]

Makes a synthetic corpus (or reuses --corpus_dir), builds it with
`a2v_jax.data.build.build` into a temporary data_dir, and prints a table:
wall time, examples/s, frames/s, and the per-stage time of one clip measured
in this process (CPU time, so that a busy machine inflates it less).
"""
from __future__ import annotations

import os
import tempfile
import time

from absl import app
from absl import flags

import md_table

from a2v_jax.data import build
from a2v_jax.data import grid_layout
from a2v_jax.data import lombard_layout
from a2v_jax.data import synthetic
from a2v_jax.face import align
from a2v_jax.face import landmarks
from a2v_jax.media import video
from tfds_builders.grid import clip_example

_SPEAKERS = flags.DEFINE_integer("speakers", 2, "Speakers in the corpus.")
_UTTERANCES = flags.DEFINE_integer("utterances", 4, "Utterances per speaker.")
_CROP = flags.DEFINE_integer("crop", 64, "Crop size (64, 128 or 256).")
_NUM_WORKERS = flags.DEFINE_integer("num_workers", 2, "Build processes.")
_LAYOUT = flags.DEFINE_enum("layout", "grid", ["grid", "lombard"], "Layout.")
_CORPUS_DIR = flags.DEFINE_string("corpus_dir", None,
                                  "Existing corpus (default: make one).")
_MARKDOWN = flags.DEFINE_bool("markdown", False, "Print the table as Markdown.")


def _stage_times(utt, crop: int) -> list[tuple[str, float]]:
  """CPU seconds per stage for one clip, in this process."""
  out = []
  detector = landmarks.LandmarkDetector(
      detect_width=360 if utt.video.name.endswith(".mov") else None)
  start = time.process_time()
  frames = video.read_video(utt.video.member).frames
  out.append((f"decode video ({len(frames)} frames; ffmpeg not counted)",
              time.process_time() - start))
  start = time.process_time()
  lm = detector.detect_clip(frames)
  out.append(("detect + 68 landmarks, per frame", (time.process_time() - start) / len(frames)))
  start = time.process_time()
  aligned, _, _ = align.align_clip(frames, lm, crop)
  out.append(("align (warp), per frame", (time.process_time() - start) / len(frames)))
  start = time.process_time()
  for f in aligned:
    clip_example.encode_jpeg(f)
  out.append(("JPEG encode, per frame", (time.process_time() - start) / len(frames)))
  return out


def main(argv):
  del argv
  with tempfile.TemporaryDirectory() as tmp:
    corpus = _CORPUS_DIR.value
    if corpus is None:
      corpus = os.path.join(tmp, "corpus")
      synthetic.make_corpus(corpus, _SPEAKERS.value, _UTTERANCES.value, seed=0,
                            layout=_LAYOUT.value)
    dataset = "grid" if _LAYOUT.value == "grid" else "lombard_grid"
    layout = grid_layout if dataset == "grid" else lombard_layout
    utterances = layout.find_utterances(corpus)
    speakers = sorted({u.speaker for u in utterances}, key=grid_layout.speaker_number)
    start = time.perf_counter()
    builder = build.build(dataset, corpus, os.path.join(tmp, "data"), _CROP.value,
                          test_speakers=speakers[-1:], val_every=0,
                          num_workers=_NUM_WORKERS.value)
    wall = time.perf_counter() - start
    examples = sum(s.num_examples for s in builder.info.splits.values())
    import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
    frames = 0
    for split in builder.info.splits:
      source = tfds.data_source(f"{dataset}/crop{_CROP.value}", split=split,
                                data_dir=os.path.join(tmp, "data"))
      frames += sum(len(source[i]["landmarks_detected"]) for i in range(len(source)))
    stages = _stage_times(utterances[0], _CROP.value)
  rows = [("corpus", f"{len(utterances)} clips, {len(speakers)} speakers, {dataset}"),
          ("crop / workers / cpus", f"{_CROP.value} / {_NUM_WORKERS.value} / {os.cpu_count()}"),
          ("examples built / skipped", f"{examples} / {builder.skips.total}"),
          ("wall time (s)", f"{wall:.2f}"),
          ("examples / s", f"{examples / wall:.2f}"),
          ("frames / s", f"{frames / wall:.1f}"),
          ("load average (1 min)", f"{os.getloadavg()[0]:.1f}")]
  rows += [(f"cpu: {name} (ms)", f"{sec * 1000:.1f}") for name, sec in stages]
  if _MARKDOWN.value:
    md_table.print_markdown(["metric", "value"], rows, right=[False, True])
    return
  width = max(len(k) for k, _ in rows)
  print(f"{'metric':<{width}}  value")
  print(f"{'-' * width}  {'-' * 30}")
  for key, value in rows:
    print(f"{key:<{width}}  {value}")


if __name__ == "__main__":
  app.run(main)
