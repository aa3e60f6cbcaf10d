"""Helpers shared by the benchmark scripts: CPU pinning and best-of timing."""

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
