"""Figures for the notebooks: loss curves by curriculum phase, per-utterance
metric distributions, and real / generated / static frames side by side.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from a2v_jax.colab import events as events_lib
from a2v_jax.colab import runtime


def plot_losses_by_phase(events: events_lib.Events, prefix: str = "loss/",
                         terms: Sequence[str] | None = None,
                         columns: int = 4):
  """One panel per loss term, coloured by curriculum phase.

  Args:
    events: from `read_events`.
    prefix: the scalar group ('loss/' unweighted terms, 'loss_weighted/',
      'd_loss/' discriminators).
    terms: names under `prefix` to plot (default: all).
    columns: panels per row.

  Returns:
    The matplotlib Figure.
  """
  from matplotlib import ticker  # pylint: disable=g-import-not-at-top
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  names = sorted(t[len(prefix):] for t in events.scalars
                 if t.startswith(prefix))
  if terms is not None:
    names = [n for n in names if n in terms]
  if not names:
    raise runtime.NotebookError(
        f"no scalars named {prefix}* in the events; train "
        "first, or pick another prefix")
  rows = -(-len(names) // columns)
  cols = min(columns, len(names))
  fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.4 * rows),
                           squeeze=False)
  colours = {1: "tab:blue", 2: "tab:orange", 3: "tab:green"}
  for ax, name in zip(axes.flat, names):
    steps, values = events.scalars[prefix + name]
    phases = events_lib.phase_of_steps(events, steps)
    for phase in np.unique(phases):
      sel = phases == phase
      ax.plot(steps[sel], values[sel], marker=".",
              color=colours.get(int(phase), "tab:gray"),
              label=f"phase {phase}")
    ax.set_title(name, fontsize=9)
    ax.tick_params(labelsize=7)
    ax.xaxis.set_major_locator(ticker.MaxNLocator(integer=True))
  for ax in list(axes.flat)[len(names):]:
    ax.axis("off")
  axes.flat[0].legend(fontsize=7)
  fig.supxlabel("step", fontsize=8)
  fig.tight_layout()
  return fig


def plot_distributions(report: Mapping[str, Any],
                       metrics: Sequence[str] | None = None,
                       columns: int = 4):
  """Per-utterance values of each metric, one panel per metric, one column
  of points per row of the report (model and baselines), with the mean.

  Args:
    report: `a2v_jax.evaluate.evaluate_export`'s report (or report.json).
    metrics: which metrics (default: every one with a finite value).
    columns: panels per row.

  Returns:
    The matplotlib Figure.
  """
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  from a2v_jax.evaluation import report as report_lib  # pylint: disable=g-import-not-at-top
  systems = [row["name"] for row in report["systems"]]
  if metrics is None:
    metrics = list(dict.fromkeys(m for row in report["systems"]
                                 for m in row["values"]))
  series = {m: [report_lib.values_to_array(report, s, m) for s in systems]
            for m in metrics}
  series = {m: v for m, v in series.items()
            if any(np.isfinite(x).any() for x in v)}
  if not series:
    raise runtime.NotebookError(
        "the report has no finite per-utterance values to "
        "plot; evaluate more utterances or other metrics")
  rows = -(-len(series) // columns)
  cols = min(columns, len(series))
  fig, axes = plt.subplots(rows, cols, figsize=(3.4 * cols, 2.8 * rows),
                           squeeze=False)
  rng = np.random.default_rng(0)
  for ax, (metric, per_system) in zip(axes.flat, series.items()):
    for i, values in enumerate(per_system):
      values = values[np.isfinite(values)]
      if not values.size:
        continue
      ax.scatter(i + rng.uniform(-0.12, 0.12, values.size), values, s=10,
                 alpha=0.6)
      ax.hlines(values.mean(), i - 0.3, i + 0.3, color="black")
    info = report_lib.METRICS.get(metric)
    ax.set_title(info.label + info.arrow if info else metric, fontsize=9)
    ax.set_xticks(range(len(systems)))
    ax.set_xticklabels(systems, rotation=30, ha="right", fontsize=7)
    ax.tick_params(axis="y", labelsize=7)
  for ax in list(axes.flat)[len(series):]:
    ax.axis("off")
  fig.tight_layout()
  return fig


def compare_frames(head, frames: np.ndarray, audio: np.ndarray,
                   indices: Sequence[int], sample_rate: int = 16000
                   ) -> dict[str, np.ndarray]:
  """Real, generated and static frames of one utterance, side by side.

  The model animates the utterance's first (already aligned) frame with its
  audio, as the evaluation does; 'static' is that frame repeated.

  Args:
    head: an a2v_jax.inference.TalkingHead.
    frames: uint8 [T, crop, crop, 3] real aligned frames (the dataset's).
    audio: float32 [N] mono at `sample_rate`.
    indices: frame indices to show (< T).
    sample_rate: of `audio`.

  Returns:
    {'real': strip, 'generated': strip, 'static': strip}, each uint8
    [crop, len(indices) * crop, 3].
  """
  from a2v_jax import inference  # pylint: disable=g-import-not-at-top
  from a2v_jax import photo  # pylint: disable=g-import-not-at-top
  frames = np.asarray(frames, np.uint8)
  if frames.ndim != 4 or frames.shape[1:] != (head.crop, head.crop, 3):
    raise runtime.NotebookError(
        f"frames of shape {frames.shape} do not fit the "
        f"model; pass aligned [T, {head.crop}, {head.crop}, "
        "3] frames")
  bad = [i for i in indices if not 0 <= i < len(frames)]
  if bad:
    raise runtime.NotebookError(f"frame indices {bad} are outside the clip's "
                        f"{len(frames)} frames; pick smaller ones")
  aligned = photo.AlignedPhoto(
      image=frames[0], face=frames[0],
      matrix=np.array([[1, 0, 0], [0, 1, 0]], np.float32),
      landmarks=np.zeros((68, 2), np.float32), num_faces=1, name="reference")
  generated = head.generate(
      inference.Identity(aligned, head.generator_variables), audio,
      sample_rate=sample_rate)
  strip = lambda x: np.concatenate([x[min(i, len(x) - 1)] for i in indices],
                                   axis=1)
  return {"real": strip(frames), "generated": strip(generated),
          "static": strip(np.repeat(frames[:1], len(frames), axis=0))}
