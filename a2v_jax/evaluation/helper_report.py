"""The helper networks' report: runs helper_networks' measurements on a split
and writes report.json and report.md.

  report = evaluate_helpers("data/tfds_grid_s1", split="test",
                            ds2="runs/grid_s1/pretrained/ds2/checkpoints",
                            syncnet=..., eye=..., out_dir="eval/helpers")

Each network is optional; one not given is skipped with a one-line reason.
"""
from __future__ import annotations

import json
import math
import os
import time
from typing import Any, Mapping

from absl import logging

from a2v_jax.evaluation import helper_networks as hn

HELPERS = ("ds2", "syncnet", "eye", "lipnet")
SKIP_REASONS = {
    "ds2": "no --ds2 given (the checkpoints of a `ds2_ctc` pretraining run)",
    "syncnet": "no --syncnet given (the checkpoints of a `syncnet` "
               "pretraining run, or a syncnet_v2 weights file)",
    "eye": "no --eye given (the checkpoints of an `eye` pretraining run)",
    "lipnet": "no --lipnet given (the checkpoints of a `lipnet` pretraining "
              "run)",
}


def evaluate_helpers(data_dir: str, *, split: str = "test",
                     dataset: str = "grid", crop: int = 128, ds2: str = "",
                     syncnet: str = "", eye: str = "", lipnet: str = "",
                     out_dir: str | None = None, num_utterances: int = 0,
                     max_shift: int = hn.MAX_SHIFT,
                     progress: bool = False) -> dict:
  """Scores every given helper network on a split; writes the report.

  Args:
    data_dir: TFDS data_dir holding `dataset`/crop{crop}.
    split: the split to judge on ('test'; 'val').
    dataset: 'grid' or 'lombard_grid'.
    crop: the builder config's crop.
    ds2, syncnet, eye, lipnet: checkpoint paths ('' = skip that network).
    out_dir: where report.json and report.md go (None: not written).
    num_utterances: first N utterances (0 = all).
    max_shift: SyncNet shifts k = -max_shift..max_shift frames.
    progress: tqdm bars.

  Returns:
    The report dict.

  Raises:
    HelperEvaluationError / networks.NetworkError: bad input (one line).
  """
  loaded = hn.check_networks(dict(ds2=ds2, syncnet=syncnet, eye=eye,
                                  lipnet=lipnet))
  source = hn.open_split(data_dir, split, dataset, crop)
  n = hn.num_clips(source, num_utterances)
  if n == 0:
    raise hn.HelperEvaluationError(f"split {split!r} holds no utterances; "
                                   "pick another --split")
  paths = dict(ds2=ds2, syncnet=syncnet, eye=eye, lipnet=lipnet)
  rep: dict[str, Any] = {
      "title": f"Helper networks on {dataset}/crop{crop} split {split!r}",
      "info": {"dataset": f"{dataset}/crop{crop}", "split": split,
               "utterances": n},
      "networks": {}, "skipped": {}, "wall_s": {}}
  for name in HELPERS:
    if name not in loaded:
      rep["skipped"][name] = SKIP_REASONS[name]
      continue
    rep["networks"][name] = {"checkpoint": _short(paths[name])}
    t0 = time.time()
    desc = name if progress else ""
    if name == "ds2":
      result = hn.evaluate_ds2(
          (c for _, c in hn.iterate_clips(source, n, False, desc)),
          loaded["ds2"])
      rep["networks"][name]["description"] = loaded["ds2"].description
    elif name == "syncnet":
      result = hn.evaluate_syncnet(source, loaded["syncnet"], n,
                                   max_shift=max_shift, progress=progress)
      rep["networks"][name]["description"] = loaded["syncnet"].description
    elif name == "eye":
      predict, description = loaded["eye"]
      result = hn.evaluate_eye(
          (c for _, c in hn.iterate_clips(source, n, True, desc)), predict)
      rep["networks"][name]["description"] = description
    else:
      result = hn.evaluate_lipnet(
          (c for _, c in hn.iterate_clips(source, n, True, desc)),
          loaded["lipnet"])
      rep["networks"][name]["description"] = loaded["lipnet"].description
    rep[name] = result
    rep["wall_s"][name] = round(time.time() - t0, 1)
    logging.info("%s scored on %d utterances in %.1f s.", name, n,
                 rep["wall_s"][name])
  if out_dir:
    write_report(rep, out_dir)
  return rep


def _short(path: str) -> str:
  """The path as given when relative, else its last three parts (reports
  are shared; the machine's layout is not part of them)."""
  path = os.path.normpath(path)
  if not os.path.isabs(path):
    return path
  return os.path.join("…", *path.split(os.sep)[-3:])


def write_report(rep: Mapping, out_dir: str) -> tuple[str, str]:
  """Writes report.json and report.md into out_dir; returns their paths."""
  os.makedirs(out_dir, exist_ok=True)
  json_path = os.path.join(out_dir, "report.json")
  md_path = os.path.join(out_dir, "report.md")
  _write_atomic(json_path, json.dumps(_finite(rep), indent=1,
                                      default=_json_default))
  _write_atomic(md_path, render_markdown(rep) + "\n")
  return json_path, md_path


def _write_atomic(path: str, text: str) -> None:
  tmp = path + ".tmp"
  with open(tmp, "w") as f:
    f.write(text)
  os.replace(tmp, path)


def _finite(x):
  """JSON has no NaN: NaN and inf become null."""
  if isinstance(x, Mapping):
    return {str(k): _finite(v) for k, v in x.items()}
  if isinstance(x, (list, tuple)):
    return [_finite(v) for v in x]
  if isinstance(x, float) and not math.isfinite(x):
    return None
  if hasattr(x, "item") and getattr(x, "ndim", 1) == 0:
    return _finite(x.item())
  return x


def _json_default(x):
  if hasattr(x, "tolist"):
    return x.tolist()
  raise TypeError(f"not JSON serialisable: {type(x).__name__}")


def _ci(ci: Mapping | None, decimals: int = 3) -> str:
  if not ci or ci.get("mean") is None:
    return "n/a"
  text = f"{ci['mean']:.{decimals}f}"
  if ci.get("ci_low") is not None:
    text += f" ± {(ci['ci_high'] - ci['ci_low']) / 2:.{decimals}f}"
  return text


def _share(s: Mapping | None) -> str:
  if not s or not s.get("n"):
    return "n/a"
  return (f"{s['count']}/{s['n']} = {s['share']:.3f} "
          f"[{s['ci_low']:.3f}, {s['ci_high']:.3f}]")


def _num(x, decimals: int = 3) -> str:
  return "n/a" if x is None or x != x else f"{x:.{decimals}f}"


def _text_table(name: str, r: Mapping) -> list[str]:
  lines = [
      "| network | CER ↓ | WER ↓ | WER per utterance ↓ | utterances read "
      "exactly ↑ |", "|---|---:|---:|---:|---:|",
      f"| {name} | {r['cer']:.3f} | {r['wer']:.3f} | "
      f"{_ci(r['utterance_wer'])} | {_share(r['exact'])} |", "",
      "Greedy CTC transcripts (reference → decoded):", ""]
  lines += [f"- `{e['reference']}` → `{e['hypothesis']}`"
            for e in r["examples"]]
  return lines + [""]


def _syncnet_sections(r: Mapping) -> list[str]:
  lines = [
      f"### Offset of audio shifted by k frames (search over ±{r['vshift']})",
      "", "| k (frames) | offset found = k ↑ (95% Wilson CI) | within ±1 ↑ |",
      "|---:|---:|---:|"]
  for k, s in r["shifts"].items():
    lines.append(f"| {int(k):+d} | {_share(s)} | {_share(s['within_1'])} |")
  lines += [f"| all | {_share(r['all'])} | {_share(r['all_within_1'])} |",
            "", f"Per clip, share of the {len(r['shifts'])} shifts found: "
            f"{_ci(r['per_clip_share'])} (mean ± half the 95% CI).", "",
            "### LSE (mean ± half the 95% CI over utterances)", "",
            "| video / audio | LSE-C ↑ | LSE-D ↓ | best offset = 0 |",
            "|---|---:|---:|---:|"]
  labels = {"real": "real video, its own audio",
            "static": "first frame repeated (static), its own audio",
            "shuffled audio": "real video, the next utterance's audio"}
  for name, row in r["lse"].items():
    lines.append(f"| {labels[name]} | {_ci(row['lse_c'])} | "
                 f"{_ci(row['lse_d'])} | {_share(row['offset_zero'])} |")
  lines += ["", "Paired on the same utterance:", "",
            "| difference | LSE-C | LSE-D |", "|---|---:|---:|"]
  for name, d in r["paired"].items():
    lines.append(f"| {name} | {_ci(d['lse_c'])} | {_ci(d['lse_d'])} |")
  return lines + [""]


def _eye_sections(r: Mapping) -> list[str]:
  b = r["blinks"]
  return [
      "| measure | value |", "|---|---:|",
      f"| frames (dlib found the face) | {r['frames']} |",
      f"| EAR mean absolute error ↓ (per clip) | {_ci(r['ear_mae'], 4)} |",
      f"| same, a constant EAR (the split's mean dlib EAR) | "
      f"{_num(r['constant_mae'], 4)} |",
      f"| EAR correlation r ↑ (all frames) | {_num(r['ear_r_frames'])} |",
      f"| EAR correlation r ↑ (within a clip, mean) | "
      f"{_ci(r['ear_r_clip'])} |",
      f"| mean EAR: dlib / network | {_num(r['ear_mean_reference'])} / "
      f"{_num(r['ear_mean_network'])} |",
      f"| eye landmark error, px ↓ | {_ci(r['landmark_px'], 2)} |", "",
      f"Blinks (EAR below 0.7 × the clip's median for ≥ 2 frames; matched "
      f"within {b['tolerance_frames']} frames):", "",
      "| blinks from dlib's EAR | from the network's EAR | recall ↑ | "
      "precision ↑ | clips with a blink (dlib / network) | per-clip count "
      "r |", "|---:|---:|---:|---:|---:|---:|",
      f"| {b['reference']} | {b['found']} | {_share(b['recall'])} | "
      f"{_share(b['precision'])} | {b['clips_with_reference_blink']} / "
      f"{b['clips_with_found_blink']} | {_num(b['count_r'])} |", ""]


def render_markdown(rep: Mapping) -> str:
  """report.md text of an evaluate_helpers report."""
  info = rep["info"]
  lines = [f"# {rep['title']}", "",
           f"{info['utterances']} utterances. Wall time: " + ", ".join(
               f"{k} {v:.0f} s" for k, v in rep["wall_s"].items()), ""]
  for name, net in rep["networks"].items():
    lines.append(f"- {name}: {net['description']} — `{net['checkpoint']}`")
  for name, reason in rep["skipped"].items():
    lines.append(f"- {name} skipped: {reason}")
  lines.append("")
  if "ds2" in rep:
    lines += ["## DeepSpeech2 (CTC, greedy decoding)", ""]
    lines += _text_table("DeepSpeech2", rep["ds2"])
  if "syncnet" in rep:
    lines += ["## SyncNet", ""] + _syncnet_sections(rep["syncnet"])
  if "eye" in rep:
    lines += ["## Eye network against dlib", ""] + _eye_sections(rep["eye"])
  if "lipnet" in rep:
    lines += ["## LipNet", ""] + _text_table("LipNet", rep["lipnet"])
  return "\n".join(lines)
