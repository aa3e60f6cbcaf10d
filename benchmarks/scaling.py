r"""Data-parallel scaling of the GAN train step: 1, 2, 4, 8 devices.

  python benchmarks/scaling.py                      # simulated CPU devices
  python benchmarks/scaling.py --devices=1,2 --steps=5 --per_device_batch=2
  python benchmarks/scaling.py --real               # the real local devices
  python benchmarks/scaling.py --markdown           # tables as Markdown

Each device count runs in its own subprocess (the CPU device count is fixed
when JAX starts: XLA_FLAGS=--xla_force_host_platform_device_count=N). The
global batch grows with the device count (weak scaling: per_device_batch
examples per device), so ideal scaling keeps the step time flat and the
per-device throughput constant. Simulated CPU devices share the machine's
cores, so on CPU the step time grows roughly with N / cores: the table
shows the overhead of the sharded program, not real speed-ups. With --real
the local GPUs/TPUs are used (1..local device count).

Communication estimate: data parallelism all-reduces every gradient each
step (generator + 3 discriminators). A ring all-reduce moves
2 (N - 1) / N x gradient bytes through each device's link; divided by a
link bandwidth this is a lower bound on the time per step spent in
communication (XLA overlaps part of it with the backward pass; latency
and protocol overheads add to it). The bandwidths are nominal peak figures.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import md_table

# (label, bytes per second) - nominal per-device peak link bandwidth.
BANDWIDTHS = (
    ('NVLink2 (V100, 300 GB/s)', 300e9),
    ('PCIe 3.0 x16 (16 GB/s)', 16e9),
    ('InfiniBand 100 Gb/s (12.5 GB/s)', 12.5e9),
)


def run_worker(args) -> dict:
  """Times the train step on every visible device; returns the results."""
  import jax  # pylint: disable=g-import-not-at-top
  if args.fast_compile:
    jax.config.update('jax_disable_most_optimizations', True)
  import numpy as np  # pylint: disable=g-import-not-at-top
  from a2v_jax import curriculum  # pylint: disable=g-import-not-at-top
  from a2v_jax import data_sources  # pylint: disable=g-import-not-at-top
  from a2v_jax import parallel  # pylint: disable=g-import-not-at-top
  from a2v_jax import gan_step  # pylint: disable=g-import-not-at-top
  from a2v_jax import networks  # pylint: disable=g-import-not-at-top
  from a2v_jax import train_state  # pylint: disable=g-import-not-at-top
  from a2v_jax.data import pipeline  # pylint: disable=g-import-not-at-top
  import importlib  # pylint: disable=g-import-not-at-top

  name, _, variant = args.config.partition(':')
  config = importlib.import_module(f'configs.{name}').get_config(
      variant or None)
  n = jax.device_count()
  config.dataset.name = 'random'
  config.dataset.random_examples = max(8, args.per_device_batch * n)
  config.dataset.random_utterance_frames = max(12, config.dataset.num_frames)
  config.batch_size = args.per_device_batch * n
  config.pretrained.missing = 'random'
  source = data_sources.create_source(config, '.', 'train')
  loader = pipeline.create_loader(
      source, batch_size=config.batch_size,
      num_frames=config.dataset.num_frames, seed=0, shard_index=0,
      shard_count=1)
  batch = next(iter(loader))
  batch = {'frames': batch['frames'], 'reference': batch['reference'],
           'audio': batch[config.dataset.audio_features]}
  mesh = parallel.create_mesh(config.mesh)
  nets = networks.create_networks(config)
  state, frozen = train_state.create_train_state(config, nets, batch, 10, {},
                                                 mesh=mesh)
  step_fn = gan_step.jit_train_step(nets, config, mesh,
                                    parallel.state_shardings(state, mesh))
  batch = jax.device_put(batch, parallel.batch_sharding(mesh))
  weights = curriculum.phase_weights(config.curriculum, 3)  # every term
  t0 = time.perf_counter()
  state, metrics = step_fn(state, batch, weights, frozen)
  jax.block_until_ready(metrics)
  compile_s = time.perf_counter() - t0
  times = []
  for _ in range(args.steps):
    t0 = time.perf_counter()
    state, metrics = step_fn(state, batch, weights, frozen)
    jax.block_until_ready(metrics)
    times.append(time.perf_counter() - t0)
  grad_bytes = sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(
      (state.g_params['params'],
       [v['params'] for v in state.d_params.values()])))
  return {'devices': n, 'platform': jax.devices()[0].platform,
          'global_batch': config.batch_size,
          'frames_per_example': config.dataset.num_frames,
          'compile_s': compile_s, 'step_s': float(np.median(times)),
          'step_s_min': float(np.min(times)), 'grad_bytes': int(grad_bytes)}


def main():
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--devices', default='1,2,4,8')
  parser.add_argument('--config', default='synthetic:runlocal',
                      help='configs module[:variant]; data is replaced by '
                      'in-memory noise clips of the same shape')
  parser.add_argument('--per_device_batch', type=int, default=2)
  parser.add_argument('--steps', type=int, default=5)
  parser.add_argument('--real', action='store_true',
                      help='use the real local devices instead of '
                      'simulated CPU devices')
  parser.add_argument('--fast_compile', action='store_true',
                      help='jax_disable_most_optimizations (faster compile, '
                      'slower steps)')
  parser.add_argument('--markdown', action='store_true',
                      help='print the tables as Markdown')
  parser.add_argument('--worker', action='store_true', help=argparse.SUPPRESS)
  args = parser.parse_args()
  if args.worker:
    print('RESULT ' + json.dumps(run_worker(args)), flush=True)
    return

  results = []
  for n in [int(x) for x in args.devices.split(',')]:
    env = dict(os.environ)
    if args.real:  # the first n GPUs
      env['CUDA_VISIBLE_DEVICES'] = ','.join(str(i) for i in range(n))
    else:
      env['JAX_PLATFORMS'] = 'cpu'
      env['XLA_FLAGS'] = (env.get('XLA_FLAGS', '') +
                          f' --xla_force_host_platform_device_count={n}')
    cmd = [sys.executable, os.path.abspath(__file__), '--worker',
           f'--config={args.config}',
           f'--per_device_batch={args.per_device_batch}',
           f'--steps={args.steps}'] + (['--fast_compile']
                                       if args.fast_compile else [])
    out = subprocess.run(cmd, env=env, capture_output=True, text=True,
                         check=False, cwd=os.path.dirname(
                             os.path.dirname(os.path.abspath(__file__))))
    line = [l for l in out.stdout.splitlines() if l.startswith('RESULT ')]
    if out.returncode or not line:
      sys.exit(f'{n} devices failed:\n{out.stderr[-3000:]}')
    results.append(json.loads(line[0][len('RESULT '):]))
    r = results[-1]  # as it comes: a CPU run takes minutes per device count
    print(f'measured {n} device(s): compile {r["compile_s"]:.1f} s, step '
          f'{1e3 * r["step_s"]:.1f} ms, '
          f'{r["global_batch"] / r["step_s"] / n:.2f} examples/s per device',
          flush=True)

  base = results[0]
  base_rate = base['global_batch'] / base['step_s'] / base['devices']
  print(f'config {args.config}, {args.per_device_batch} examples per device, '
        f'{base["frames_per_example"]} frames each; platform '
        f'{base["platform"]}{" (simulated devices)" if not args.real else ""}'
        f'; median of {args.steps} steps after the compile')
  if args.markdown:
    rows = []
    for r in results:
      rate = r['global_batch'] / r['step_s']
      per_dev = rate / r['devices']
      rows.append((r['devices'], r['global_batch'], f'{r["compile_s"]:.1f}',
                   f'{1e3 * r["step_s"]:.0f}', f'{rate:.2f}',
                   f'{per_dev:.2f}', f'{per_dev / base_rate:.0%}'))
    md_table.print_markdown(
        ['devices', 'global batch', 'compile s', 'step ms', 'examples/s',
         'per device', 'efficiency'], rows)
  else:
    print(f'{"devices":>7} {"global batch":>12} {"compile s":>9} '
          f'{"step ms":>9} {"examples/s":>10} {"per device":>10} '
          f'{"efficiency":>10}')
    for r in results:
      rate = r['global_batch'] / r['step_s']
      per_dev = rate / r['devices']
      print(f'{r["devices"]:>7} {r["global_batch"]:>12} '
            f'{r["compile_s"]:>9.1f} {1e3 * r["step_s"]:>9.1f} {rate:>10.2f} '
            f'{per_dev:>10.2f} {per_dev / base_rate:>10.0%}')
  gb = base['grad_bytes']
  print(f'\nCommunication estimate: gradients of G + 3 Ds = {gb / 1e6:.2f} MB '
        f'(float32) all-reduced every step; ring all-reduce traffic per '
        f'device = 2(N-1)/N x that; time = traffic / bandwidth (lower bound).')
  if args.markdown:
    rows = []
    for r in results:
      n = r['devices']
      traffic = 2 * (n - 1) / n * gb
      rows.append((n, f'{traffic / 1e6:.2f}', *(f'{1e3 * traffic / bw:.3f}'
                                               for _, bw in BANDWIDTHS)))
    md_table.print_markdown(
        ['devices', 'traffic MB'] + [f'{label} ms' for label, _ in BANDWIDTHS],
        rows)
  else:
    header = f'{"devices":>7} {"traffic MB":>10} ' + ' '.join(
        f'{label:>32}' for label, _ in BANDWIDTHS)
    print(header)
    for r in results:
      n = r['devices']
      traffic = 2 * (n - 1) / n * gb
      cells = ' '.join(f'{1e3 * traffic / bw:>29.3f} ms'
                       for _, bw in BANDWIDTHS)
      print(f'{n:>7} {traffic / 1e6:>10.2f} {cells}')
  print(f'(compare with the measured step time: '
        f'{1e3 * results[-1]["step_s"]:.1f} ms at {results[-1]["devices"]} '
        f'devices)')


if __name__ == '__main__':
  main()
