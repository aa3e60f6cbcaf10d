"""report.json and report.md: per-utterance values, means with 95% CIs, and
the paper's tables with the baseline rows beside the model.

A report holds one row per system: the model, and the baselines every report
carries so that each figure can be read:
- "ground truth": real video scored as if generated (for the no-reference
  metrics: CPBD, blink rate, LSE, WER, mouth correlation);
- "static": the reference frame repeated;
- "shuffled audio": the model driven by another utterance's audio.

Tables (report.md):
- Table 1 (as the paper's): SSIM, PSNR, CPBD;
- Table 2 (as the paper's): WER, ACD-C, ACD-E;
- Table 3: LSE-C, LSE-D, blink rate, blink duration, mouth correlation, LPIPS;
- Ablation (as the paper's Table 4): phases 1/2/3 in one table;
- the model minus the static and shuffled-audio rows, paired by utterance.
FID is left out, and the report says why.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import tempfile
from typing import Mapping, Sequence

from absl import logging
import numpy as np

from a2v_jax.evaluation import stats
from a2v_jax.media import video

MODEL = "model"
GROUND_TRUTH = "ground truth"
STATIC = "static"
SHUFFLED_AUDIO = "shuffled audio"
BASELINES = (GROUND_TRUTH, STATIC, SHUFFLED_AUDIO)

FID_NOTE = ("FID is not reported: no Inception weights are available offline, "
            "and a substitute network would not give comparable numbers.")


@dataclasses.dataclass(frozen=True)
class MetricInfo:
  """label, direction (True = higher is better, False = lower, None =
  closest to the ground-truth row), decimals shown, table."""
  label: str
  higher_is_better: bool | None
  decimals: int
  table: str

  @property
  def arrow(self) -> str:
    return {True: " ↑", False: " ↓", None: " (≈ GT)"}[self.higher_is_better]


METRICS: dict[str, MetricInfo] = {
    "ssim": MetricInfo("SSIM", True, 3, "table1"),
    "psnr": MetricInfo("PSNR", True, 3, "table1"),
    "cpbd": MetricInfo("CPBD", True, 3, "table1"),
    "wer": MetricInfo("WER (%)", False, 1, "table2"),
    "acd_c": MetricInfo("ACD-C", False, 4, "table2"),
    "acd_e": MetricInfo("ACD-E", False, 3, "table2"),
    "lse_c": MetricInfo("LSE-C", True, 3, "table3"),
    "lse_d": MetricInfo("LSE-D", False, 3, "table3"),
    # Blinks: closer to the ground-truth row is better, not more or less.
    "blink_rate": MetricInfo("blinks/s", None, 3, "table3"),
    "blink_duration": MetricInfo("blink s", None, 3, "table3"),
    "mouth_corr": MetricInfo("mouth r", True, 3, "table3"),
    "lpips": MetricInfo("LPIPS", False, 3, "table3"),
    "lower_l1": MetricInfo("lower-face L1", False, 4, "table3"),
    "lower_psnr": MetricInfo("lower-face PSNR", True, 3, "table3"),
}

TABLES = {
    "table1": "Table 1: image quality (as the paper's Table 1)",
    "table2": "Table 2: lip reading and identity (as the paper's Table 2)",
    "table3": "Table 3: lip sync, blinks, mouth motion and perceptual distance",
}

# The paper's own numbers (GRID), printed for orientation only: they come
# from other evaluators (a pretrained LipNet, OpenFace) and other data.
PAPER_ROWS = {
    "OneShotA2V (paper, GRID)": {"ssim": 0.881, "psnr": 28.571, "cpbd": 0.262,
                                  "wer": 27.5, "acd_c": 0.005, "acd_e": 0.09},
}


class ReportError(ValueError):
  """Inputs a report cannot be built from."""


@dataclasses.dataclass
class SystemResult:
  """Per-utterance values of one row.

  Attributes:
    name: row name (MODEL or one of BASELINES, or a phase name).
    utterances: ids, e.g. "s1/bbaf2n".
    values: metric -> per-utterance values (NaN = undefined for that one).
    corpus: metric -> corpus-level value that replaces the mean (e.g. WER
      pooled over all words, as LipNet reports it); CI still from `values`.
  """
  name: str
  utterances: list[str]
  values: dict[str, list[float]]
  corpus: dict[str, float] = dataclasses.field(default_factory=dict)


def _check(system: SystemResult) -> None:
  unknown = sorted(set(system.values) - set(METRICS))
  if unknown:
    raise ReportError(f"row {system.name!r} has unknown metrics {unknown}; "
                      f"valid metrics are {sorted(METRICS)}")
  for metric, values in system.values.items():
    if len(values) != len(system.utterances):
      raise ReportError(
          f"row {system.name!r}: {metric} has {len(values)} values for "
          f"{len(system.utterances)} utterances; give one per utterance "
          "(NaN where undefined)")


def build_report(systems: Sequence[SystemResult], *, title: str,
                 info: Mapping[str, object] | None = None,
                 confidence: float = 0.95) -> dict:
  """The report as a JSON-ready dict.

  Args:
    systems: rows; the model first, then baselines (any order is sorted to
      model, ground truth, static, shuffled audio, then the rest).
    title: first line of report.md (e.g. "grid test, export ...").
    info: extra key -> value facts printed under the title (dataset, split,
      evaluator networks and whether they were trained here).
    confidence: CI coverage.

  Returns:
    {"title", "info", "confidence", "systems": [{"name", "summary":
    {metric: MeanCI dict}, "utterances": [...], "values": {...}}], "notes"}.
  """
  order = {MODEL: 0, GROUND_TRUTH: 1, STATIC: 2, SHUFFLED_AUDIO: 3}
  names = [s.name for s in systems]
  if len(set(names)) != len(names):
    raise ReportError(f"row names repeat: {names}")
  missing = [b for b in BASELINES if b not in names]
  if MODEL in names and missing:
    logging.warning("report lacks the baseline rows %s", missing)
  rows = []
  for system in sorted(systems, key=lambda s: order.get(s.name, 4)):
    _check(system)
    summary = {}
    for metric, values in system.values.items():
      ci = stats.mean_confidence_interval(values, confidence).to_dict()
      if metric in system.corpus:
        ci["per_utterance_mean"] = ci["mean"]
        ci["mean"] = _json_value(system.corpus[metric])
      summary[metric] = ci
    rows.append({"name": system.name, "summary": summary,
                 "utterances": list(system.utterances),
                 "values": {m: [_json_value(v) for v in vals]
                            for m, vals in system.values.items()}})
  return {"title": title, "info": dict(info or {}), "confidence": confidence,
          "systems": rows, "paired": paired_differences(rows, confidence),
          "notes": [FID_NOTE]}


def paired_differences(rows: Sequence[Mapping], confidence: float = 0.95
                       ) -> dict[str, dict[str, dict]]:
  """Model minus each of the static and shuffled-audio baselines, paired by
  utterance: {baseline: {metric: MeanCI dict}} over the utterances where
  both values are finite. Pairing removes the spread between utterances,
  which dominates the per-row intervals."""
  by_name = {r["name"]: r for r in rows}
  model = by_name.get(MODEL)
  out = {}
  for name in (STATIC, SHUFFLED_AUDIO):
    base = by_name.get(name)
    if model is None or base is None:
      continue
    diffs = {}
    for metric, values in model["values"].items():
      if metric not in base["values"]:
        continue
      theirs = dict(zip(base["utterances"], base["values"][metric]))
      d = [v - theirs[u] for u, v in zip(model["utterances"], values)
           if v is not None and theirs.get(u) is not None]
      diffs[metric] = stats.mean_confidence_interval(d, confidence).to_dict()
    out[name] = diffs
  return out


def _json_value(x) -> float | None:
  x = float(x)
  return x if math.isfinite(x) else None


def _cell(summary: Mapping[str, dict] | None, metric: str) -> str:
  if not summary or metric not in summary:
    return "—"
  ci = summary[metric]
  if ci["mean"] is None:
    return "n/a"
  decimals = METRICS[metric].decimals
  text = f"{ci['mean']:.{decimals}f}"
  if ci["ci_low"] is not None:
    half = (ci["ci_high"] - ci["ci_low"]) / 2
    text += f" ± {half:.{decimals}f}"
  return text


def _table(rows: Sequence[tuple[str, Mapping[str, dict] | None]],
           metrics: Sequence[str]) -> list[str]:
  head = ["Method"] + [
      METRICS[m].label + METRICS[m].arrow for m in metrics]
  lines = ["| " + " | ".join(head) + " |",
           "|" + "|".join(["---"] + ["---:"] * len(metrics)) + "|"]
  for name, summary in rows:
    lines.append("| " + " | ".join([name] + [_cell(summary, m)
                                             for m in metrics]) + " |")
  return lines


def _paper_summary(values: Mapping[str, float]) -> dict:
  return {m: {"mean": v, "ci_low": None, "ci_high": None}
          for m, v in values.items()}


def render_markdown(report: Mapping) -> str:
  """report.md text for a report from build_report."""
  lines = [f"# {report['title']}", ""]
  for key, value in report["info"].items():
    lines.append(f"- {key}: {value}")
  if report["info"]:
    lines.append("")
  conf = int(round(100 * report["confidence"]))
  lines += [f"Means over utterances ± half the {conf}% confidence interval "
            "(Student t); n/a = undefined for every utterance, — = not "
            "applicable to that row.", ""]
  rows = [(r["name"], r["summary"]) for r in report["systems"]]
  for table, caption in TABLES.items():
    metrics = [m for m, info in METRICS.items() if info.table == table]
    present = [m for m in metrics if any(m in s for _, s in rows)]
    if not present:
      continue
    lines += [f"## {caption}", ""]
    paper = [(name, _paper_summary(v)) for name, v in PAPER_ROWS.items()
             if any(m in v for m in present)]
    lines += _table(rows + paper, present) + [""]
  paired = report.get("paired") or {}
  metrics = [m for m in METRICS
             if any(m in d for d in paired.values())]
  if metrics:
    lines += ["## Model minus baseline, paired by utterance", "",
              f"Mean difference ± half its {conf}% interval; an interval "
              "that excludes 0 is a difference the utterances bear out.", ""]
    lines += _table([(f"model − {b}", d) for b, d in paired.items()],
                    metrics) + [""]
  lines += ["## Notes", ""] + [f"- {n}" for n in report["notes"]]
  if PAPER_ROWS:
    lines.append("- The paper's rows are its published numbers, measured with "
                 "other evaluator networks and data; read them as orientation,"
                 " not as a like-for-like comparison.")
  return "\n".join(lines) + "\n"


def _write_atomic(path: str, text: str) -> None:
  directory = os.path.dirname(os.path.abspath(path))
  os.makedirs(directory, exist_ok=True)
  fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp_")
  try:
    with os.fdopen(fd, "w", encoding="utf-8") as f:
      f.write(text)
    video.make_public(tmp)
    os.replace(tmp, path)
  except BaseException:
    if os.path.exists(tmp):
      os.remove(tmp)
    raise


def write_report(report: Mapping, out_dir: str) -> tuple[str, str]:
  """Writes report.json and report.md into out_dir (atomically each).

  Returns:
    (json_path, md_path).
  """
  json_path = os.path.join(out_dir, "report.json")
  md_path = os.path.join(out_dir, "report.md")
  _write_atomic(json_path, json.dumps(report, indent=1, allow_nan=False) + "\n")
  _write_atomic(md_path, render_markdown(report))
  return json_path, md_path


ABLATION_PHASES = (
    ("phase 1", "Base model (BM): GAN + feature matching + perceptual"),
    ("phase 2", "BM + CL + TAL"),
    ("phase 3", "BM + CL + TAL + BL"),
)
ABLATION_METRICS = ("ssim", "psnr", "cpbd", "lse_c", "lse_d", "blink_rate")


def build_ablation(phase_systems: Mapping[str, SystemResult], *, title: str,
                   confidence: float = 0.95) -> dict:
  """Phases 1/2/3 of the curriculum in one table (the paper's Table 4).

  Args:
    phase_systems: "phase 1" / "phase 2" / "phase 3" -> that checkpoint's
      model row.
    title: report title.

  Returns:
    A report dict (same layout as build_report) whose rows are the phases.
  """
  unknown = sorted(set(phase_systems) - {p for p, _ in ABLATION_PHASES})
  if unknown:
    raise ReportError(f"unknown phases {unknown}; use "
                      f"{[p for p, _ in ABLATION_PHASES]}")
  systems = [dataclasses.replace(phase_systems[p], name=p)
             for p, _ in ABLATION_PHASES if p in phase_systems]
  return build_report(systems, title=title, confidence=confidence)


def render_ablation_markdown(report: Mapping) -> str:
  """ablation.md: one row per phase, labelled with its losses."""
  labels = dict(ABLATION_PHASES)
  rows = [(f"{labels.get(r['name'], r['name'])} ({r['name']})", r["summary"])
          for r in report["systems"]]
  metrics = [m for m in ABLATION_METRICS if any(m in s for _, s in rows)]
  lines = [f"# {report['title']}", "",
           "CL = contrastive (SyncNet) loss, TAL = multi-scale temporal "
           "adversarial loss, BL = blink loss.", ""]
  lines += _table(rows, metrics)
  return "\n".join(lines) + "\n"


def write_ablation(report: Mapping, out_dir: str) -> tuple[str, str]:
  """Writes ablation.json and ablation.md into out_dir."""
  json_path = os.path.join(out_dir, "ablation.json")
  md_path = os.path.join(out_dir, "ablation.md")
  _write_atomic(json_path, json.dumps(report, indent=1, allow_nan=False) + "\n")
  _write_atomic(md_path, render_ablation_markdown(report))
  return json_path, md_path


def values_to_array(report: Mapping, system: str, metric: str) -> np.ndarray:
  """Per-utterance values of one row and metric from a report (NaN = null)."""
  for row in report["systems"]:
    if row["name"] == system:
      return np.array([np.nan if v is None else v
                       for v in row["values"].get(metric, [])], np.float64)
  raise ReportError(f"no row {system!r} in the report")
