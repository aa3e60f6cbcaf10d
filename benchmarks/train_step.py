"""Compile time and speed of the full GAN train step, per XLA setting.

  python benchmarks/train_step.py [--config=configs/synthetic.py]
      [--opt_levels=0,3] [--steps=10]

For each XLA CPU backend optimisation level it prints the seconds to compile
the train step (and the variables' init), then steps/s and frames/s over
`--steps` steps on random data, with every loss term on (phase 3). On a
2-core CPU the compile time of a GAN this size dominates a short run, which
is why `config.xla_backend_optimization_level` exists (a2v_jax/train.py).
"""
import functools
import time

from absl import app
from absl import flags
import jax
import numpy as np
from ml_collections import config_flags

from a2v_jax import curriculum
from a2v_jax import train

_CONFIG = config_flags.DEFINE_config_file(
    'config', 'configs/synthetic.py', 'run config', lock_config=False)
_OPT_LEVELS = flags.DEFINE_list('opt_levels', ['0', '3'],
                                'XLA backend optimisation levels to compare')
_STEPS = flags.DEFINE_integer('steps', 10, 'timed steps per setting')


def random_batch(config, rng: np.random.Generator) -> dict[str, np.ndarray]:
  d = config.dataset
  b, t, h = config.batch_size, d.num_frames, d.crop
  return {
      'frames': rng.uniform(-1, 1, (b, t, h, h, 3)).astype(np.float32),
      'reference': rng.uniform(-1, 1, (b, h, h, 3)).astype(np.float32),
      'mfcc': rng.normal(size=(b, t, 20, 13)).astype(np.float32),
  }


def measure(config, level: int, steps: int) -> dict[str, float]:
  config.xla_backend_optimization_level = level
  nets = train.create_networks(config)
  batch = random_batch(config, np.random.default_rng(0))
  t0 = time.perf_counter()
  state, frozen = train.create_train_state(
      config, nets, batch, 10, {'ds2': None, 'syncnet': None, 'eye': None})
  init_s = time.perf_counter() - t0
  mesh = train.create_mesh()
  step_fn = train.jit_train_step(nets, config, mesh)
  weights = curriculum.phase_weights(config.curriculum, 3)
  t0 = time.perf_counter()
  compiled = step_fn.lower(state, batch, weights, frozen).compile()
  compile_s = time.perf_counter() - t0
  state, metrics = compiled(state, batch, weights, frozen)
  jax.block_until_ready(metrics)
  t0 = time.perf_counter()
  for _ in range(steps):
    state, metrics = compiled(state, batch, weights, frozen)
  jax.block_until_ready(metrics)
  step_s = (time.perf_counter() - t0) / steps
  frames = config.batch_size * config.dataset.num_frames
  return dict(init_s=init_s, compile_s=compile_s, steps_per_s=1 / step_s,
              frames_per_s=frames / step_s)


def main(argv):
  del argv
  config = _CONFIG.value
  config.curriculum.last_phase = 3
  print(f'config: crop {config.dataset.crop}, batch {config.batch_size} x '
        f'{config.dataset.num_frames} frames, {jax.device_count()} device(s)')
  print(f'{"opt level":>9} {"init s":>8} {"compile s":>10} {"steps/s":>8} '
        f'{"frames/s":>9}')
  for level in _OPT_LEVELS.value:
    r = measure(config, int(level), _STEPS.value)
    print(f'{level:>9} {r["init_s"]:8.1f} {r["compile_s"]:10.1f} '
          f'{r["steps_per_s"]:8.3f} {r["frames_per_s"]:9.1f}', flush=True)


if __name__ == '__main__':
  app.run(main)
