r"""Scores the frozen helper networks on a held-out split of a built dataset.

  python -m a2v_jax.evaluate_helpers --data_dir=data/tfds_grid_s1 \
      --split=test --out=eval/helpers_test \
      --ds2=runs/grid_s1/pretrained/ds2/checkpoints \
      --syncnet=runs/grid_s1/pretrained/syncnet/checkpoints \
      --eye=runs/grid_s1/pretrained/eye/checkpoints \
      [--lipnet=runs/grid_s1/lipnet/checkpoints]

Writes report.json and report.md into --out and prints the markdown:
DeepSpeech2's CER/WER, SyncNet's offset recovery on shifted audio and LSE of
real / static / shuffled-audio clips, the eye network's EAR against dlib's
and the blinks it sees, LipNet's CER/WER (a2v_jax/evaluation/
helper_networks.py says how each is measured). A network not given is
skipped with a one-line reason. Bad input ends in one `error:` line.
"""
from __future__ import annotations

import os
from typing import Sequence

from absl import app
from absl import flags

from a2v_jax import cli
from a2v_jax.evaluation import helper_networks
from a2v_jax.evaluation import helper_report


def define_flags() -> None:
  """Defines the command's flags (at start-up, not import: a2v_jax.evaluate
  defines some of the same names)."""
  f = flags
  f.DEFINE_string("data_dir", None, "TFDS data_dir of the built dataset.")
  f.DEFINE_enum("dataset", "grid", list(helper_networks.DATASETS),
                "Dataset builder.")
  f.DEFINE_integer("crop", 128, "Builder config crop{N}.")
  f.DEFINE_string("split", "test", "Split to judge on.")
  f.DEFINE_string("out", None, "Directory for report.json and report.md.")
  f.DEFINE_string("ds2", "", "`ds2_ctc` pretraining checkpoints.")
  f.DEFINE_string("syncnet", "", "`syncnet` pretraining checkpoints or a "
                  "syncnet_v2 weights file.")
  f.DEFINE_string("eye", "", "`eye` pretraining checkpoints.")
  f.DEFINE_string("lipnet", "", "`lipnet` pretraining checkpoints.")
  f.DEFINE_integer("num_utterances", 0, "First N utterances (0 = all).")
  f.DEFINE_integer("max_shift", helper_networks.MAX_SHIFT,
                   "SyncNet: audio shifts k = -N..N frames.")


def main(argv: Sequence[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments {' '.join(argv[1:])}; flags"
                         " take the form --name=value")
  f = flags.FLAGS
  cli.check_dir(f.data_dir, "--data_dir", "the built dataset",
                "build it with python -m a2v_jax.data.build")
  cli.check_writable_dir(f.out, "--out")
  for name in ("ds2", "syncnet", "eye", "lipnet"):
    path = f[name].value
    if path and not (os.path.exists(path) if name == "syncnet"
                     else os.path.isdir(path)):
      what = "does not exist" if not os.path.exists(path) else (
          "is not a checkpoint folder")
      raise cli.InputError(f"--{name}={path} {what}; pass the "
                           f"workdir/checkpoints of its `{name}` pretraining "
                           "run")
  try:
    rep = helper_report.evaluate_helpers(
        f.data_dir, split=f.split, dataset=f.dataset, crop=f.crop,
        ds2=f.ds2, syncnet=f.syncnet, eye=f.eye, lipnet=f.lipnet,
        out_dir=f.out, num_utterances=f.num_utterances,
        max_shift=f.max_shift, progress=True)
  except ValueError as e:  # every project error is a ValueError subclass
    raise SystemExit(f"error: {' '.join(str(e).split())}") from None
  print(helper_report.render_markdown(rep))
  print(f"Wrote the report to {os.path.abspath(f.out)}")


if __name__ == "__main__":
  define_flags()
  cli.run(main)
