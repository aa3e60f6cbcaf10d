"""Helpers shared by the benchmark scripts: CPU pinning and best-of timing."""

import os
import time


def pin_threads(threads: int) -> None:
  """Pins the process to `threads` cores and sizes XLA's pool; before JAX.

  Must run before JAX starts its backend: it sets sched_setaffinity and
  appends XLA's intra-op thread flags to XLA_FLAGS.
  """
  cores = sorted(os.sched_getaffinity(0))[:threads]
  os.sched_setaffinity(0, cores)
  os.environ["XLA_FLAGS"] = " ".join([
      os.environ.get("XLA_FLAGS", ""),
      f"--xla_cpu_multi_thread_eigen={'true' if threads > 1 else 'false'}",
      f"intra_op_parallelism_threads={threads}"]).strip()


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
