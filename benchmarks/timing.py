"""Helpers shared by the benchmark scripts: CPU pinning, best-of timing,
XLA's FLOP count and accelerators' peak FLOP/s."""

import os
import time


def pin_threads(threads: int) -> None:
  """Pins the process to `threads` cores; call it before JAX starts.

  sched_setaffinity keeps XLA:CPU's threads on those cores (2 threads ran
  the 64 px SPADE step 1.8x faster than 1). Nothing is added to XLA_FLAGS:
  XLA stops reading XLA_FLAGS at the first token that is not a `--flag`,
  so a stray `intra_op_parallelism_threads=N` there (not an XLA flag)
  silently dropped every flag after it, a2v_jax's own (a2v_jax/xla_cpu.py)
  included.
  """
  cores = sorted(os.sched_getaffinity(0))[:threads]
  os.sched_setaffinity(0, cores)


def best_seconds(fn, args, steps: int, repeats: int) -> float:
  """Seconds per call of fn(*args): best of `repeats` runs of `steps` calls,
  after one untimed warm-up call."""
  import jax  # pylint: disable=import-outside-toplevel
  jax.block_until_ready(fn(*args))
  best = float("inf")
  for _ in range(repeats):
    start = time.perf_counter()
    for _ in range(steps):
      out = fn(*args)
    jax.block_until_ready(out)
    best = min(best, (time.perf_counter() - start) / steps)
  return best


def compiled_flops(compiled) -> float:
  """FLOPs of one call of a compiled executable (XLA's cost analysis)."""
  analysis = compiled.cost_analysis()
  if isinstance(analysis, (list, tuple)):
    analysis = analysis[0]
  return float(analysis.get("flops", float("nan")))


# Dense bfloat16 peak FLOP/s per chip from the vendors' data sheets (no
# sparsity), matched against jax.Device.device_kind, most specific first.
BF16_PEAK_FLOPS = (
    ("H100 PCIe", 756e12),
    ("H100", 989.4e12),   # SXM5 / HBM3
    ("H200", 989.4e12),
    ("A100", 312e12),
    ("L4", 121e12),
    ("TPU v6 lite", 918e12),
    ("TPU v5 lite", 197e12),
    ("TPU v5", 459e12),   # v5p
    ("TPU v4", 275e12),
)


def peak_flops(device, override_tflops: float = 0.0) -> float | None:
  """Peak bf16 FLOP/s of `device`: override_tflops if > 0, else the data
  sheet's for a known accelerator, else None (CPUs: give --peak_tflops)."""
  if override_tflops > 0:
    return override_tflops * 1e12
  kind = getattr(device, "device_kind", "")
  for name, flops in BF16_PEAK_FLOPS:
    if name in kind:
      return flops
  return None
