"""Scale-out tests: real processes joined by jax.distributed (gloo on CPU).

- 2 processes started by launch/local_multiprocess.sh train 2 `runlocal`
  steps; a restart of the same command in the same workdir resumes from the
  step-2 checkpoint (saved and restored collectively: each process's data
  iterator state is in it) and trains to step 4. Every step's losses and the
  final parameters match one process that runs the same train step on the
  same global batches (the two processes' shards side by side). Only process
  0 writes TensorBoard, clips and progress lines.
- Killing one of 2 processes makes the survivor exit with the coordination
  service's error within a bounded time instead of hanging in a collective.
- Gradient accumulation: 2 micro-batches of 4 give the losses and gradients
  of one batch of 8.

The 2-process runs and their reference use Adam with eps = 1e-3 (the
paper's 1e-8 otherwise): with b1 = 0 and a tiny eps, Adam turns the float
noise of gradients whose true value is 0 (a conv bias before an instance
norm) into full +-3 lr steps that differ with the device layout, and after
a step or two the runs no longer compare. With eps = 1e-3 such noise moves
a parameter by ~1e-6 lr, while real gradients still take Adam steps. They
also use layer norm in the generator's SPADE layers: at 32 px its first
blocks see 1x1 and 2x2 maps, where instance norm divides float noise by
sqrt(1e-5) (reordering the batch alone moved some of its gradients by
100%), and the runs would part after one step.

Compiles dominate: the subprocesses share XLA's persistent compilation cache
(the restart and the kill test hit it), and everything runs with
jax_disable_most_optimizations.
"""

import glob
import os
import re
import signal
import struct
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from a2v_jax import checkpointing
from a2v_jax import curriculum
from a2v_jax import data_sources
from a2v_jax import parallel
from a2v_jax import gan_step
from a2v_jax import networks
from a2v_jax import train_state
from a2v_jax.data import pipeline
from configs import synthetic

# Minutes of compiling per process on 2 CPU cores: outside CI's budget,
# run with `pytest -m slow`.
pytestmark = pytest.mark.slow

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = 'configs/synthetic.py:runlocal'
NUM_STEPS = 4
ADAM_EPS = 1e-3
# Heartbeat timeouts: generous for the training runs (on a loaded 2-core
# machine a 5 s timeout declared a busy, compiling process dead), shorter
# for the kill test. A survivor must exit within its timeout plus slack.
HEARTBEAT_S = 60
KILL_TEST_HEARTBEAT_S = 15
EXIT_BOUND_S = 120


def _config():
  c = synthetic.get_config('runlocal')
  c.num_train_steps = NUM_STEPS
  c.ckpt_every_steps = 2
  c.sample_every_steps = NUM_STEPS
  c.optimizer.eps = ADAM_EPS
  c.model.generator.norm = 'layer'
  return c


def _flags(num_steps):
  return [f'--config={CONFIG}', f'--config.num_train_steps={num_steps}',
          '--config.ckpt_every_steps=2',
          f'--config.sample_every_steps={NUM_STEPS}',
          f'--config.optimizer.eps={ADAM_EPS}',
          '--config.model.generator.norm=layer']


@pytest.fixture(scope='module')
def env(tmp_path_factory):
  """Subprocess environment: 1 CPU device per process, shared XLA cache."""
  cache = str(tmp_path_factory.mktemp('xla_cache'))
  e = {k: v for k, v in os.environ.items() if not k.startswith('A2V_')}
  e.update(JAX_PLATFORMS='cpu', XLA_FLAGS='', PYTHON=sys.executable,
           JAX_COMPILATION_CACHE_DIR=cache,
           JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS='0',
           JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES='0',
           JAX_DISABLE_MOST_OPTIMIZATIONS=str(
               jax.config.read('jax_disable_most_optimizations')).lower(),
           A2V_HEARTBEAT_TIMEOUT_S=str(HEARTBEAT_S),
           A2V_SHUTDOWN_TIMEOUT_S='20')
  # This process (the reference runs) shares the cache too.
  jax.config.update('jax_compilation_cache_dir', cache)
  jax.config.update('jax_persistent_cache_min_compile_time_secs', 0.0)
  jax.config.update('jax_persistent_cache_min_entry_size_bytes', 0)
  yield e
  jax.config.update('jax_compilation_cache_dir', None)


def _launch(env, workdir, num_steps, log_path):
  """launch/local_multiprocess.sh 2 ... with output in log_path."""
  log = open(log_path, 'w')
  proc = subprocess.Popen(
      ['bash', 'launch/local_multiprocess.sh', '2', f'--workdir={workdir}',
       *_flags(num_steps)], cwd=REPO, env=env, stdout=log,
      stderr=subprocess.STDOUT)
  return proc, log


def _wait(proc, log, log_path, timeout=900):
  try:
    proc.wait(timeout)
  finally:
    if proc.poll() is None:
      proc.kill()
    log.close()
  with open(log_path) as f:
    text = f.read()
  assert proc.returncode == 0, text[-4000:]
  return text


def read_scalars(logdir):
  """{tag: {step: value}} from tensorboardX event files (TFRecord framing:
  u64 length, u32 crc, Event proto, u32 crc)."""
  from tensorboardX.proto import event_pb2  # pylint: disable=g-import-not-at-top
  out = {}
  for path in sorted(glob.glob(os.path.join(logdir, 'events.out.tfevents.*'))):
    with open(path, 'rb') as f:
      data = f.read()
    pos = 0
    while pos + 12 <= len(data):
      (length,) = struct.unpack('<Q', data[pos:pos + 8])
      event = event_pb2.Event.FromString(data[pos + 12:pos + 12 + length])
      pos += 12 + length + 4
      for v in event.summary.value:
        if v.HasField('simple_value'):
          out.setdefault(v.tag, {})[event.step] = v.simple_value
  return out


def _global_batches(config, num_steps, num_processes=2):
  """The global batches of a run with `num_processes` processes: each
  process's shard batch, side by side (process order)."""
  source = data_sources.create_source(config, '.', 'train')
  iters = [iter(pipeline.create_loader(
      source, batch_size=config.batch_size // num_processes,
      num_frames=config.dataset.num_frames, seed=config.seed,
      shard_index=p, shard_count=num_processes))
           for p in range(num_processes)]
  batches = []
  for _ in range(num_steps):
    parts = [next(it) for it in iters]
    batches.append({k: np.concatenate([p[f] for p in parts])
                    for k, f in (('frames', 'frames'),
                                 ('reference', 'reference'),
                                 ('audio', 'mfcc'))})
  return batches


def _reference_run(config, batches):
  """One process, one device: the jitted train step over the batches, the
  curriculum advanced as the training loop does.
  -> (losses, final state, initial state)."""
  mesh = parallel.create_mesh(None, jax.devices()[:1])
  nets = networks.create_networks(config)
  state, frozen = train_state.create_train_state(
      config, nets, batches[0], config.optimizer.steps_per_epoch, {},
      mesh=mesh)
  step_fn = gan_step.jit_train_step(nets, config, mesh)
  controller = curriculum.PhaseController.from_config(config.curriculum)
  initial = jax.device_get(state)  # before the step donates it
  losses = []
  for i, batch in enumerate(batches):
    weights = curriculum.phase_weights(config.curriculum, controller.phase)
    state, metrics = step_fn(state, batch, weights, frozen)
    metrics = jax.device_get(metrics)
    controller.update(i + 1, weights, metrics['terms'])
    losses.append(metrics)
  return losses, jax.device_get(state), initial


@pytest.fixture(scope='module')
def two_process_run(env, tmp_path_factory):
  """Steps 1-2 (launcher), then a restart of the same command for 3-4; the
  single-process reference is computed while the first launch runs."""
  tmp = tmp_path_factory.mktemp('two_proc')
  workdir = str(tmp / 'run')
  proc, log = _launch(env, workdir, 2, str(tmp / 'first.log'))
  try:
    config = _config()
    reference = _reference_run(config, _global_batches(config, NUM_STEPS))
  finally:
    first = _wait(proc, log, str(tmp / 'first.log'))
  steps_after_first = checkpointing.Checkpointer(
      os.path.join(workdir, 'checkpoints')).all_steps()
  proc, log = _launch(env, workdir, NUM_STEPS, str(tmp / 'second.log'))
  second = _wait(proc, log, str(tmp / 'second.log'))
  return dict(workdir=workdir, logs=(first, second), reference=reference,
              steps_after_first=steps_after_first)


def test_two_processes_match_one_process(two_process_run):
  run = two_process_run
  ref_losses, ref_state, init = run['reference']
  scalars = read_scalars(os.path.join(run['workdir'], 'tensorboard'))
  # Step 1 is one forward pass from the same state; later steps follow
  # parameters that differ by float noise, grown by each step.
  for step in range(1, NUM_STEPS + 1):
    rtol = 1e-5 if step == 1 else 1e-3
    for name in curriculum.LOSS_TERMS:
      got = scalars[f'loss/{name}'][step]
      want = float(ref_losses[step - 1]['terms'][name])
      term_rtol = 0.1 if name == 'blink' and step > 1 else rtol
      np.testing.assert_allclose(got, want, rtol=term_rtol, atol=1e-6,
                                 err_msg=f'step {step}: {name}')
    for name, want in ref_losses[step - 1]['d_loss'].items():
      np.testing.assert_allclose(scalars[f'd_loss/{name}'][step], want,
                                 rtol=rtol, atol=1e-6,
                                 err_msg=f'step {step}: D {name}')
  tree, meta = checkpointing.load_state_tree(
      os.path.join(run['workdir'], 'checkpoints'))
  assert meta['step'] == NUM_STEPS and int(tree['step']) == NUM_STEPS
  # The discriminators agree to a fraction of one Adam step (up to ~3 lr);
  # the generator within Adam's bound of < 2.3 lr per step (see above).
  lr = _config().optimizer.lr
  moved = 0
  for key, atol in (('d_params', 0.5 * lr), ('g_params', 2.3 * lr * NUM_STEPS),
                    ('ema_g_params', 2.3 * lr * NUM_STEPS)):
    got = jax.tree_util.tree_flatten_with_path(tree[key])[0]
    want = jax.tree.leaves(getattr(ref_state, key))
    start = jax.tree.leaves(getattr(init, key))
    assert len(got) == len(want) == len(start)
    for (path, a), b, s0 in zip(got, want, start):
      np.testing.assert_allclose(a, b, rtol=0, atol=atol,
                                 err_msg=key + jax.tree_util.keystr(path))
      if key == 'd_params':
        moved += int(np.max(np.abs(np.asarray(b) - np.asarray(s0))) > lr)
  assert moved > 10, moved  # the comparison is not of untrained parameters


def test_restart_resumes_from_last_checkpoint(two_process_run):
  run = two_process_run
  assert run['steps_after_first'] == [2]
  first, second = run['logs']
  assert 'Resuming at step 2' not in first
  assert 'Resuming at step 2, phase 2' in second
  # The resumed run trained steps 3 and 4 only.
  assert re.findall(r'step (\d+)/4 \|', second) == ['3', '4']
  # Saved collectively: every process's data-iterator position is in it.
  data_dir = os.path.join(run['workdir'], 'checkpoints', '4', 'data')
  assert sorted(os.listdir(data_dir)) == [
      'commit_success.txt', 'process_0-of-2.json', 'process_1-of-2.json']


def test_only_process_zero_writes_logs_and_samples(two_process_run):
  run = two_process_run
  first, second = run['logs']
  # One progress line per step, although both processes ran every step.
  assert re.findall(r'step (\d+)/2 \|', first) == ['1', '2']
  assert 'process 1 of 2' in first
  logdir = os.path.join(run['workdir'], 'tensorboard')
  assert len(glob.glob(os.path.join(logdir, 'events.out.tfevents.*'))) == 2
  assert sorted(os.listdir(os.path.join(logdir, 'clips'))) == [
      f'samples_clip_{2:08d}.mp4', f'samples_clip_{NUM_STEPS:08d}.mp4']


def test_killed_process_stops_the_others(env, two_process_run, tmp_path):
  """Processes started as the launcher starts them, without its clean-up:
  the survivor must stop by itself (jax.distributed heartbeat, or gloo
  seeing the peer's connection close).

  Process 1 is killed once process 0 has started training: process 0 loads
  the train step from the warm compilation cache and waits in its first
  gradient all-reduce, while process 1 still compiles the step (on CPU only
  process 0 gets persistent-cache hits), so the survivor is blocked in a
  collective on a peer that will never come.
  """
  del two_process_run  # only for its warm compilation cache
  port = 20000 + os.getpid() % 20000
  procs, logs = [], []
  for i in range(2):
    logs.append(open(tmp_path / f'p{i}.log', 'w'))
    e = dict(env, A2V_COORDINATOR_ADDRESS=f'localhost:{port}',
             A2V_NUM_PROCESSES='2', A2V_PROCESS_ID=str(i),
             A2V_HEARTBEAT_TIMEOUT_S=str(KILL_TEST_HEARTBEAT_S))
    procs.append(subprocess.Popen(
        [sys.executable, '-m', 'a2v_jax.main', '--jax_distributed',
         f'--workdir={tmp_path / "run"}', *_flags(50)], cwd=REPO, env=e,
        stdout=logs[i], stderr=subprocess.STDOUT))
  try:
    deadline = time.time() + 600
    while time.time() < deadline:  # until process 0 enters the train loop
      assert procs[0].poll() is None and procs[1].poll() is None
      if 'Training steps 0..50' in (tmp_path / 'p0.log').read_text():
        break
      time.sleep(0.5)
    else:
      pytest.fail('process 0 did not start training within the deadline')
    time.sleep(3)  # into its first step's collectives
    assert 'step 1/50' not in (tmp_path / 'p0.log').read_text(), (
        'process 1 compiled the step already: the kill no longer lands while '
        'process 0 waits for it')
    os.kill(procs[1].pid, signal.SIGKILL)
    killed_at = time.time()
    procs[0].wait(EXIT_BOUND_S)
    took = time.time() - killed_at
  finally:
    for p in procs:
      if p.poll() is None:
        p.kill()
        p.wait()
    for f in logs:
      f.close()
  text = (tmp_path / 'p0.log').read_text()
  assert procs[0].returncode != 0, text[-3000:]
  assert took < EXIT_BOUND_S
  assert re.search(r'heartbeat|another task died|distributed service|'
                   r'Connection closed|Gloo', text), text[-3000:]


def test_gradient_accumulation_matches_one_big_batch(two_process_run):
  """accum=2 x 4 == accum=1 x 8: losses and gradients (one step from the
  same state; the accum=1 step is the reference run's compiled program).

  Gradients are compared leaf by leaf: to 1% of the leaf's largest element
  plus 1e-4 of its network's largest gradient (programs for batches of 4
  and 8 round differently; a leaf whose true gradient is 0, such as a bias
  before a norm, holds only that rounding). Summing instead of averaging,
  or keeping one micro-batch, is off by 50-100%.
  """
  del two_process_run  # its reference compiled the accum=1 step
  config = _config()
  batch = _global_batches(config, 1)[0]
  mesh = parallel.create_mesh(None, jax.devices()[:1])
  nets = networks.create_networks(config)
  weights = curriculum.phase_weights(config.curriculum, 3)
  outs = []
  for accum in (1, 2):
    c = _config()
    c.grad_accum_steps = accum
    state, frozen = train_state.create_train_state(c, nets, batch, 2, {}, mesh=mesh)
    new, metrics = gan_step.jit_train_step(nets, c, mesh)(state, batch, weights,
                                                       frozen)
    outs.append(jax.device_get((metrics, new)))
  (m1, s1), (m2, s2) = outs
  for name in curriculum.LOSS_TERMS:
    np.testing.assert_allclose(m1['terms'][name], m2['terms'][name],
                               rtol=1e-5, atol=1e-6, err_msg=name)
  for name in m1['d_loss']:
    np.testing.assert_allclose(m1['d_loss'][name], m2['d_loss'][name],
                               rtol=1e-5, atol=1e-6, err_msg=name)

  # With b1 = 0, Adam's mu after one step is the gradient itself (signed).
  def grads(state):
    """{network: [(path, gradient)]}."""
    opt_states = {'G': state.g_opt_state, **state.d_opt_state}
    return {net: [(jax.tree_util.keystr(p), np.asarray(x)) for p, x
                  in jax.tree_util.tree_flatten_with_path(opt)[0]
                  if '.mu' in jax.tree_util.keystr(p)]
            for net, opt in opt_states.items()}
  g1, g2 = grads(s1), grads(s2)
  assert g1.keys() == g2.keys() and sum(map(len, g1.values())) > 50
  for net in g1:
    net_scale = max(float(np.max(np.abs(a))) for _, a in g1[net])
    for (path, a), (_, b) in zip(g1[net], g2[net]):
      atol = 1e-2 * float(np.max(np.abs(a))) + 1e-4 * net_scale + 1e-9
      np.testing.assert_allclose(b, a, rtol=0, atol=atol,
                                 err_msg=net + path)
