"""Means with 95% confidence intervals over per-utterance values."""
from __future__ import annotations

import dataclasses
import math
from typing import Sequence

import numpy as np
from scipy import stats as scipy_stats


@dataclasses.dataclass(frozen=True)
class MeanCI:
  """A mean and its confidence interval.

  Attributes:
    mean: mean of the finite values (NaN when there are none).
    low, high: interval bounds (NaN with fewer than 2 values).
    n: number of finite values used; NaNs (a metric undefined for an
      utterance, e.g. CPBD of a flat frame) are left out and not counted.
    confidence: e.g. 0.95.
    method: "t" or "bootstrap".
  """
  mean: float
  low: float
  high: float
  n: int
  confidence: float = 0.95
  method: str = "t"

  @property
  def half_width(self) -> float:
    return (self.high - self.low) / 2.0

  def to_dict(self) -> dict:
    return {"mean": _json_float(self.mean), "ci_low": _json_float(self.low),
            "ci_high": _json_float(self.high), "n": self.n,
            "confidence": self.confidence, "method": self.method}


def _json_float(x: float) -> float | None:
  """JSON has no NaN/inf: they become null."""
  return float(x) if math.isfinite(x) else None


def _finite(values: Sequence[float]) -> np.ndarray:
  values = np.asarray(values, np.float64).reshape(-1)
  return values[np.isfinite(values)]


def mean_confidence_interval(values: Sequence[float],
                             confidence: float = 0.95) -> MeanCI:
  """Mean with a Student-t interval: mean +- t_{(1+c)/2, n-1} s / sqrt(n).

  Args:
    values: per-utterance values; NaN/inf are skipped.
    confidence: coverage of the interval.

  Returns:
    MeanCI (bounds NaN when fewer than 2 finite values).
  """
  x = _finite(values)
  n = len(x)
  if n == 0:
    return MeanCI(math.nan, math.nan, math.nan, 0, confidence, "t")
  mean = float(x.mean())
  if n < 2:
    return MeanCI(mean, math.nan, math.nan, n, confidence, "t")
  sem = float(x.std(ddof=1)) / math.sqrt(n)
  half = float(scipy_stats.t.ppf((1.0 + confidence) / 2.0, n - 1)) * sem
  return MeanCI(mean, mean - half, mean + half, n, confidence, "t")


def bootstrap_confidence_interval(values: Sequence[float],
                                  confidence: float = 0.95,
                                  num_resamples: int = 2000,
                                  seed: int = 0) -> MeanCI:
  """Mean with a percentile-bootstrap interval (seeded, so reproducible)."""
  x = _finite(values)
  n = len(x)
  if n < 2:
    base = mean_confidence_interval(x, confidence)
    return dataclasses.replace(base, method="bootstrap")
  rng = np.random.default_rng(seed)
  means = x[rng.integers(0, n, size=(num_resamples, n))].mean(axis=1)
  alpha = (1.0 - confidence) / 2.0
  low, high = np.quantile(means, [alpha, 1.0 - alpha])
  return MeanCI(float(x.mean()), float(low), float(high), n, confidence,
                "bootstrap")
