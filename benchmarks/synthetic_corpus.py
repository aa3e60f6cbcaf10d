"""Times the synthetic GRID corpus: 3 speakers x 10 utterances on 2 workers.

  python benchmarks/synthetic_corpus.py [--speakers=3] [--utterances=10]
      [--workers=2] [--layout=grid]

Target: under 30 s on 2 cores. Prints a table: wall time, utterances/s, the
CPU seconds of all processes (a load-independent measure on a shared machine),
and the time per stage measured in this process for one utterance.
"""
from __future__ import annotations

import os
import resource
import tempfile
import time

from absl import app
from absl import flags

import md_table

from a2v_jax.data import espeak
from a2v_jax.data import face_motion
from a2v_jax.data import face_render
from a2v_jax.data import grid_grammar
from a2v_jax.data import synthetic

_SPEAKERS = flags.DEFINE_integer("speakers", 3, "Speakers.")
_UTTERANCES = flags.DEFINE_integer("utterances", 10, "Utterances per speaker.")
_WORKERS = flags.DEFINE_integer("workers", 2, "Worker processes.")
_LAYOUT = flags.DEFINE_enum("layout", "grid", list(synthetic.LAYOUTS), "Layout.")
_MARKDOWN = flags.DEFINE_bool("markdown", False, "Print the table as Markdown.")


def _stage_times(layout: str) -> list[tuple[str, float]]:
  """Seconds for each stage of one utterance, run in this process."""
  cfg = synthetic.LAYOUTS[layout]
  out = []
  start = time.perf_counter()
  face = face_render.build_speaker(1, cfg["height"], cfg["width"], seed=0)
  out.append(("build one speaker face", time.perf_counter() - start))
  words = grid_grammar.id_to_sentence("bbaf2n")
  start = time.perf_counter()
  speech, _ = synthetic.synthesize_sentence(words, synthetic.speaker_voice(1), 2.5)
  out.append(("espeak-ng synthesis", time.perf_counter() - start))
  num_frames = int(round(synthetic.DURATION_S * cfg["fps"]))
  start = time.perf_counter()
  mouth_open, width = face_motion.viseme_tracks(speech.phonemes, num_frames, cfg["fps"])
  import numpy as np  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(0)
  blink = face_motion.blink_track(rng, num_frames, cfg["fps"])
  pose = face_motion.head_motion(rng, num_frames, cfg["fps"], face.face_width)
  face_render.render_frames(face, mouth_open, width, blink, pose)
  out.append((f"render {num_frames} frames", time.perf_counter() - start))
  with tempfile.TemporaryDirectory() as tmp:
    task = dict(layout=layout, out_dir=tmp, speaker="s2", speaker_index=1, words=words,
                voice=synthetic.speaker_voice(1), condition="p", rng_key=[0, 1, 0, 7],
                face=face)
    start = time.perf_counter()
    synthetic.render_utterance(task)
    out.append(("whole utterance (incl. encode)", time.perf_counter() - start))
  return out


def _cpu_seconds() -> float:
  """User + system CPU of this process and of every finished child process."""
  own = resource.getrusage(resource.RUSAGE_SELF)
  kids = resource.getrusage(resource.RUSAGE_CHILDREN)
  return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def main(argv):
  del argv
  espeak.get_engine()
  with tempfile.TemporaryDirectory() as tmp:
    cpu_before = _cpu_seconds()
    start = time.perf_counter()
    files = synthetic.make_corpus(os.path.join(tmp, "corpus"), _SPEAKERS.value,
                                  _UTTERANCES.value, seed=0, layout=_LAYOUT.value,
                                  workers=_WORKERS.value)
    wall = time.perf_counter() - start
    cpu = _cpu_seconds() - cpu_before
  count = _SPEAKERS.value * _UTTERANCES.value
  stages = _stage_times(_LAYOUT.value)
  rows = [("corpus", f"{_SPEAKERS.value} spk x {_UTTERANCES.value} utt, "
           f"{_WORKERS.value} workers, {_LAYOUT.value}"),
          ("files written", str(len(files))),
          ("wall time (s)", f"{wall:.2f}"),
          ("utterances / s", f"{count / wall:.2f}"),
          ("CPU s, all processes (incl. ffmpeg)", f"{cpu:.2f}"),
          ("CPU s / workers (idle-machine wall estimate)",
           f"{cpu / max(min(_WORKERS.value, os.cpu_count() or 1), 1):.2f}"),
          ("load average (1 min) at end", f"{os.getloadavg()[0]:.1f}"),
          ("target", "< 30 s for 3 x 10 on 2 cores"),
          ("cpus visible", str(os.cpu_count()))]
  rows += [(f"stage: {name} (s)", f"{sec:.3f}") for name, sec in stages]
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
