"""Compile time and speed of the full GAN train step, per XLA setting.

  python benchmarks/train_step.py [--config=configs/synthetic.py]
      [--opt_levels=0,3] [--steps=10]
  # the paper-sized step on a GPU, mixed precision, against the bf16 peak
  python benchmarks/train_step.py --config=configs/grid_phase1.py \
      --config.compute_dtype=bfloat16 --opt_levels=3

For each XLA CPU backend optimisation level it prints the seconds to compile
the train step (and the variables' init), then steps/s and frames/s over
`--steps` steps on random data, with every loss term on (phase 3), XLA's
FLOP count of one step and the achieved TFLOP/s, both per device (XLA's
count of the partitioned program), as a percentage of one device's
bf16 peak where it is known (benchmarks/timing.py) or given by
`--peak_tflops`. The frozen helpers are random (their speed does not
depend on their weights). On a
2-core CPU the compile time of a GAN this size dominates a short run, which
is why `config.xla_backend_optimization_level` exists (a2v_jax/gan_step.py).
"""
import functools
import time

from absl import app
from absl import flags
import jax
import numpy as np
from ml_collections import config_flags

import md_table
import timing

from a2v_jax import curriculum
from a2v_jax import gan_step
from a2v_jax import networks
from a2v_jax import train
from a2v_jax import train_state

_CONFIG = config_flags.DEFINE_config_file(
    'config', 'configs/synthetic.py', 'run config', lock_config=False)
_OPT_LEVELS = flags.DEFINE_list('opt_levels', ['0', '3'],
                                'XLA backend optimisation levels to compare')
_STEPS = flags.DEFINE_integer('steps', 10, 'timed steps per setting')
_PEAK_TFLOPS = flags.DEFINE_float(
    'peak_tflops', 0.0, 'peak TFLOP/s for the % column; 0 = the data '
    "sheet's bf16 peak of a known GPU/TPU")
_MARKDOWN = flags.DEFINE_bool(
    'markdown', False, 'print one Markdown table at the end instead of rows '
    'as they come')


def random_batch(config, rng: np.random.Generator) -> dict[str, np.ndarray]:
  d = config.dataset
  b, t, h = config.batch_size, d.num_frames, d.crop
  return {
      'frames': rng.uniform(-1, 1, (b, t, h, h, 3)).astype(np.float32),
      'reference': rng.uniform(-1, 1, (b, h, h, 3)).astype(np.float32),
      'audio': rng.normal(size=(b, t, 20, 13)).astype(np.float32),
  }


def measure(config, level: int, steps: int) -> dict[str, float]:
  config.xla_backend_optimization_level = level
  nets = networks.create_networks(config)
  batch = random_batch(config, np.random.default_rng(0))
  t0 = time.perf_counter()
  state, frozen = train_state.create_train_state(
      config, nets, batch, 10, {'ds2': None, 'syncnet': None, 'eye': None})
  init_s = time.perf_counter() - t0
  mesh = train.create_mesh()
  step_fn = gan_step.jit_train_step(nets, config, mesh)
  weights = curriculum.phase_weights(config.curriculum, 3)
  t0 = time.perf_counter()
  compiled = step_fn.lower(state, batch, weights, frozen).compile()
  compile_s = time.perf_counter() - t0
  flops = timing.compiled_flops(compiled)
  state, metrics = compiled(state, batch, weights, frozen)
  jax.block_until_ready(metrics)
  t0 = time.perf_counter()
  for _ in range(steps):
    state, metrics = compiled(state, batch, weights, frozen)
  jax.block_until_ready(metrics)
  step_s = (time.perf_counter() - t0) / steps
  frames = config.batch_size * config.dataset.num_frames
  return dict(init_s=init_s, compile_s=compile_s, steps_per_s=1 / step_s,
              frames_per_s=frames / step_s, tflop=flops / 1e12,
              tflop_s=flops / step_s / 1e12)


def main(argv):
  del argv
  config = _CONFIG.value
  config.curriculum.last_phase = 3
  device = jax.devices()[0]
  peak = timing.peak_flops(device, _PEAK_TFLOPS.value)
  print(f'config: crop {config.dataset.crop}, batch {config.batch_size} x '
        f'{config.dataset.num_frames} frames, compute_dtype '
        f'{config.compute_dtype}, {jax.device_count()} x {device.device_kind}'
        f', peak {peak / 1e12 if peak else float("nan"):.0f} TFLOP/s each')
  if not _MARKDOWN.value:
    print(f'{"opt level":>9} {"init s":>8} {"compile s":>10} {"steps/s":>8} '
          f'{"frames/s":>9} {"TFLOP/step/dev":>14} {"TFLOP/s/dev":>11} '
          f'{"% peak":>7}')
  md_rows = []
  for level in _OPT_LEVELS.value:
    r = measure(config, int(level), _STEPS.value)
    pct = 100 * r['tflop_s'] * 1e12 / peak if peak else float('nan')
    md_rows.append((level, f'{r["init_s"]:.1f}', f'{r["compile_s"]:.1f}',
                    f'{r["steps_per_s"]:.3f}', f'{r["frames_per_s"]:.1f}',
                    f'{r["tflop"]:.3f}', f'{r["tflop_s"]:.3f}', f'{pct:.1f}'))
    if not _MARKDOWN.value:
      print(f'{level:>9} {r["init_s"]:8.1f} {r["compile_s"]:10.1f} '
            f'{r["steps_per_s"]:8.3f} {r["frames_per_s"]:9.1f} '
            f'{r["tflop"]:14.3f} {r["tflop_s"]:11.3f} {pct:7.1f}',
            flush=True)
  if _MARKDOWN.value:
    md_table.print_markdown(
        ['opt level', 'init s', 'compile s', 'steps/s', 'frames/s',
         'TFLOP/step/dev', 'TFLOP/s/dev', '% peak'], md_rows)


if __name__ == '__main__':
  app.run(main)
