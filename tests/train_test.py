"""End-to-end tests of OneShotA2V training with the `runlocal` config.

- 6 uninterrupted steps == 3 steps, SIGKILL, (a half-written later save), 3
  more steps: identical parameters;
- the curriculum changes phase (1 -> 2 -> 3) without re-tracing the step;
- 8 simulated devices give the same losses and parameters as 1 device for the
  same global batch;
- a NaN stops the run naming the step and the term; the last good checkpoint
  is untouched.

Compiles dominate the run time, so the runs share XLA's persistent
compilation cache (the subprocess too).
"""

import os
import signal
import subprocess
import sys
import time

import jax
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
import numpy as np
import pytest

from a2v_jax import checkpointing
from a2v_jax import curriculum
from a2v_jax import gan_step
from a2v_jax import losses
from a2v_jax import networks
from a2v_jax import pretrain
from a2v_jax import train
from a2v_jax import train_state
from configs import synthetic

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope='module')
def cache_dir(tmp_path_factory):
  path = str(tmp_path_factory.mktemp('xla_cache'))
  jax.config.update('jax_compilation_cache_dir', path)
  jax.config.update('jax_persistent_cache_min_compile_time_secs', 0.0)
  jax.config.update('jax_persistent_cache_min_entry_size_bytes', 0)
  yield path
  jax.config.update('jax_compilation_cache_dir', None)


def _config(**debug):
  c = synthetic.get_config('runlocal')
  c.num_train_steps = 6
  c.ckpt_every_steps = 3
  c.log_every_steps = 3
  c.sample_every_steps = 6
  c.curriculum.phase_start_steps = (2, 4)
  c.debug.update(debug)
  return c


# The child of the kill test: trains _config() with a hook that blocks, once
# step 3's checkpoint is committed, until the process is killed.
_HANG_AFTER_STEP_3 = '''
import sys, time
from absl import logging
from a2v_jax import train
from tests import train_test

def hang_after_step_3(step, checkpointer):
  if step == 3:
    checkpointer.wait_until_finished()
    logging.warning('step 3 is committed; blocking until killed.')
    while True:
      time.sleep(1)

train.train_and_evaluate(train_test._config(), sys.argv[1],
                         hooks=[hang_after_step_3])
'''


def _leaves(state):
  """[(path, array)] of every trained array of a TrainState."""
  tree = {'g': state.g_params, 'd': state.d_params, 'ema': state.ema_g_params,
          'g_opt': state.g_opt_state, 'd_opt': state.d_opt_state}
  return [(jax.tree_util.keystr(k), v) for k, v in
          jax.tree_util.tree_flatten_with_path(jax.device_get(tree))[0]]


def _assert_same_grad_norms(leaves_a, leaves_b, what: str) -> None:
  """Each network's gradient norm after one step, from Adam's nu (= 0.1 g^2),
  agrees to 2% between two `_leaves` lists."""
  for net in ('g_opt', "d_opt']['frame", "d_opt']['temporal",
              "d_opt']['sync"):
    norms = [np.sqrt(sum(float(np.sum(v)) for p, v in leaves
                         if p.startswith(f"['{net}']") and '.nu' in p))
             for leaves in (leaves_a, leaves_b)]
    np.testing.assert_allclose(norms[0], norms[1], rtol=2e-2,
                               err_msg=f'{what}: {net} grad norm')


@pytest.fixture(scope='module')
def straight_run(cache_dir, tmp_path_factory):
  """6 steps without a stop; phases advance at steps 2 and 4."""
  workdir = str(tmp_path_factory.mktemp('straight'))
  traces = gan_step.TRAIN_STEP_TRACES
  state = train.train_and_evaluate(_config(), workdir)
  return state, gan_step.TRAIN_STEP_TRACES - traces, workdir


def test_phase_change_does_not_retrace(straight_run):
  state, traces, workdir = straight_run
  assert int(state.step) == 6
  assert traces == 1  # phases 1, 2 and 3 ran on one traced step
  meta = checkpointing.Checkpointer(
      os.path.join(workdir, 'checkpoints')).restore_metadata(6)
  assert meta['phase'] == 3 and meta['phase_reason'] == 'reached step 4'
  assert os.listdir(os.path.join(workdir, 'tensorboard', 'clips'))


def test_kill_and_resume_gives_identical_params(straight_run, cache_dir,
                                                tmp_path):
  workdir = str(tmp_path / 'killed')
  # Same compile options as this process, so the subprocess hits the cache.
  env = dict(os.environ, JAX_COMPILATION_CACHE_DIR=cache_dir,
             JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS='0',
             JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES='0',
             JAX_DISABLE_MOST_OPTIMIZATIONS=str(
                 jax.config.read('jax_disable_most_optimizations')).lower())
  # The child runs _config() and blocks once step 3 is committed, so it is
  # killed at a known point.
  cmd = [sys.executable, '-c', _HANG_AFTER_STEP_3, workdir]
  # Logs go to a file: an unread pipe would fill up and block the child.
  log_path = str(tmp_path / 'train.log')
  log = open(log_path, 'w')
  proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=log, stderr=log)
  ckpt_dir = os.path.join(workdir, 'checkpoints')
  deadline = time.time() + 600
  try:
    while time.time() < deadline:
      if proc.poll() is not None:
        with open(log_path) as f:
          pytest.fail(f'training exited early:\n{f.read()[-3000:]}')
      # Orbax renames '3.orbax-checkpoint-tmp' to '3' on commit. (Opening a
      # Checkpointer here would clean up the writer's temporary dirs.)
      if os.path.isdir(os.path.join(ckpt_dir, '3')):
        break
      time.sleep(0.5)
    else:
      pytest.fail('no committed step-3 checkpoint within the deadline')
  finally:
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    log.close()
  assert proc.returncode == -signal.SIGKILL
  # A later save cut off by the kill: orbax's uncommitted temporary dir.
  partial = os.path.join(ckpt_dir, '6.orbax-checkpoint-tmp', 'state')
  os.makedirs(partial)
  with open(os.path.join(partial, 'half_written'), 'wb') as f:
    f.write(b'\0' * 100)

  resumed = train.train_and_evaluate(_config(), workdir)
  straight = straight_run[0]
  assert int(resumed.step) == 6
  assert not os.path.exists(os.path.dirname(partial))  # cleaned up
  for (path, a), (_, b) in zip(_leaves(straight), _leaves(resumed)):
    np.testing.assert_array_equal(a, b, err_msg=path)


def test_nan_stops_with_step_and_term(cache_dir, tmp_path):
  workdir = str(tmp_path / 'nan')
  with pytest.raises(losses.NonFiniteLossError) as err:
    train.train_and_evaluate(
        _config(nan_term='perceptual', nan_at_step=5), workdir)
  message = str(err.value)
  assert 'step 5' in message and "'weighted perceptual'" in message
  assert 'checkpoint (step 4)' in message
  ckpt = checkpointing.Checkpointer(os.path.join(workdir, 'checkpoints'))
  assert ckpt.latest_step() == 4
  meta = ckpt.restore_metadata(4)
  assert meta['step'] == 4 and meta['phase'] == 3
  tree, _ = checkpointing.load_state_tree(os.path.join(workdir, 'checkpoints'))
  assert all(np.all(np.isfinite(x)) for x in jax.tree.leaves(tree))


@pytest.mark.slow  # a second compile of the whole step: `pytest -m slow`
def test_bfloat16_compute_trains_with_float32_state(straight_run, cache_dir,
                                                     tmp_path):
  config = _config()
  config.compute_dtype = 'bfloat16'
  state = train.train_and_evaluate(config, str(tmp_path / 'bf16'))
  leaves = _leaves(state)
  floats = {v.dtype for _, v in leaves if v.dtype.kind == 'f'}
  assert floats == {np.dtype(np.float32)}
  assert all(np.all(np.isfinite(v)) for _, v in leaves)
  # Same run as the float32 straight run up to bf16 rounding: every
  # generator weight moved by Adam (steps of about lr) a little
  # differently, none far.
  diff = {p: np.max(np.abs(a - b)) for (p, a), (_, b) in
          zip(leaves, _leaves(straight_run[0]))
          if p.startswith("['g']['params']")}
  assert max(diff.values()) > 0
  assert max(diff.values()) < 10 * config.optimizer.lr * 6, diff


def test_eight_devices_match_one_device(cache_dir):
  if jax.device_count() < 8:
    pytest.skip('needs XLA_FLAGS=--xla_force_host_platform_device_count=8')
  from a2v_jax import data_sources
  from a2v_jax.data import pipeline
  c = _config()
  source = data_sources.create_source(c, '.', 'train')
  loader = pipeline.create_loader(source, batch_size=8, num_frames=5, seed=0)
  it = iter(loader)
  batches = [next(it) for _ in range(2)]
  batches = [{'frames': b['frames'], 'reference': b['reference'],
              'audio': b['mfcc']} for b in batches]
  nets = networks.create_networks(c)
  state, frozen = train_state.create_train_state(c, nets, batches[0], 2, {})
  state, frozen = jax.device_get((state, frozen))
  meshes = [Mesh(np.asarray(d), ('data',))
            for d in (jax.devices()[:1], jax.devices()[:8])]
  step_fns = [gan_step.jit_train_step(nets, c, m) for m in meshes]
  # Both meshes take each step from the same state, so every comparison is
  # of one step's arithmetic (Adam with b1=0 turns later float differences
  # into +-lr parameter changes, and random-init helper nets amplify them).
  # Phase 1 then phase 3 weights: one compiled program serves both.
  for batch, phase in zip(batches, (1, 3)):
    weights = curriculum.phase_weights(c.curriculum, phase)
    outs = []
    for mesh, step_fn in zip(meshes, step_fns):
      replicated = NamedSharding(mesh, P())
      s_in, f_in = jax.device_put((state, frozen), replicated)
      s_out, metrics = step_fn(s_in, batch, weights, f_in)
      outs.append((jax.device_get(metrics['terms']), _leaves(s_out),
                   jax.device_get(s_out)))
    (l1, leaves1, state), (l8, leaves8, _) = outs
    for name in curriculum.LOSS_TERMS:
      np.testing.assert_allclose(l1[name], l8[name], rtol=1e-4, atol=1e-6,
                                 err_msg=f'phase {phase}: {name}')
    for (path, a), (_, b) in zip(leaves1, leaves8):
      if '_opt' not in path:
        # Parameters whose true gradient is 0 (e.g. a conv bias right before
        # an instance norm) get float-noise gradients that Adam (b1=0)
        # scales to about +-lr, differently per device count; Adam moves a
        # parameter by at most lr / sqrt(1 - b2^t) < 2.3 lr per step at
        # t <= 2, so the two runs differ by less than 5 lr.
        np.testing.assert_allclose(a, b, rtol=0, atol=5 * c.optimizer.lr,
                                   err_msg=f'phase {phase}: {path}')
    # Gradient norm of each network, from Adam's nu (= 0.1 g^2 after one
    # step). Single elements are ill-conditioned at this toy size (instance
    # norm over the generator's 2x2 maps), the norms are not; a lost mean
    # over the 8 devices would be off by 8x.
    _assert_same_grad_norms(leaves1, leaves8, f'phase {phase}')
  assert [f._cache_size() for f in step_fns] == [1, 1]

@pytest.mark.slow  # a compile per mesh: run with `pytest -m slow`
def test_fsdp_mesh_matches_one_device(cache_dir):
  """config.mesh data=4 x fsdp=2: the networks' parameters and optimiser
  states live sharded along 'fsdp', and one step from a common state gives
  the losses and gradient norms of one device."""
  if jax.device_count() < 8:
    pytest.skip('needs XLA_FLAGS=--xla_force_host_platform_device_count=8')
  from a2v_jax import data_sources
  from a2v_jax import parallel
  from a2v_jax.data import pipeline
  c = _config()
  c.mesh.data, c.mesh.fsdp = 4, 2
  source = data_sources.create_source(c, '.', 'train')
  batch = next(iter(pipeline.create_loader(source, batch_size=8,
                                           num_frames=5, seed=0)))
  batch = {'frames': batch['frames'], 'reference': batch['reference'],
           'audio': batch['mfcc']}
  nets = networks.create_networks(c)
  weights = curriculum.phase_weights(c.curriculum, 3)
  one = Mesh(np.asarray(jax.devices()[:1]).reshape(1, 1), ('data', 'fsdp'))
  state, frozen = train_state.create_train_state(c, nets, batch, 2, {}, mesh=one)
  host_state, host_frozen = jax.device_get((state, frozen))
  outs = []
  for mesh in (one, parallel.create_mesh(c.mesh)):
    shardings = parallel.state_shardings(host_state, mesh)
    s_in = parallel.put_global(host_state, shardings)
    f_in = parallel.put_global(host_frozen, parallel.replicated(mesh))
    step_fn = gan_step.jit_train_step(nets, c, mesh, shardings)
    s_out, metrics = step_fn(s_in, batch, weights, f_in)
    outs.append((jax.device_get(metrics['terms']), s_out))
  (l1, s1), (l2, s2) = outs
  # The big leaves are really split: each device holds half of them.
  kernels = [x for x in jax.tree.leaves(s2.g_params['params'])
             if x.size >= 1024]
  assert kernels and all(
      'fsdp' in tuple(x.sharding.spec) and
      x.addressable_shards[0].data.size == x.size // 2 for x in kernels)
  for name in curriculum.LOSS_TERMS:
    np.testing.assert_allclose(l1[name], l2[name], rtol=1e-4, atol=1e-6,
                               err_msg=name)
  _assert_same_grad_norms(_leaves(s1), _leaves(s2), 'fsdp')

CONFIGS = ('synthetic', 'grid_phase1', 'grid_phase2', 'grid_phase3',
           'lombard_phase1', 'lombard_phase2', 'lombard_phase3',
           'ds2_ctc_grid', 'syncnet_grid', 'eye_grid', 'ds2_ctc_synthetic',
           'syncnet_synthetic', 'eye_synthetic')


@pytest.mark.parametrize('name', CONFIGS)
def test_every_config_validates(name):
  import importlib
  from a2v_jax import config_validation
  module = importlib.import_module(f'configs.{name}')
  for arg in (None, 'runlocal'):
    config = module.get_config(arg)
    config_validation.validate_config(config)
    assert config.num_train_steps >= 1 or config.num_train_steps == -1


def test_entry_point_reports_bad_input_in_one_line(tmp_path):
  """A missing dataset folder: one `error:` line, exit 1, no folder made."""
  data_dir = tmp_path / 'no_tfds'
  proc = subprocess.run(
      [sys.executable, '-m', 'a2v_jax.main', '--config=configs/grid_phase1.py',
       f'--config.dataset.data_dir={data_dir}',
       f'--workdir={tmp_path / "run"}'],
      cwd=REPO, capture_output=True, text=True, timeout=300,
      env={**os.environ, 'JAX_PLATFORMS': 'cpu'})
  assert proc.returncode == 1, proc.stderr[-2000:]
  last = proc.stderr.strip().splitlines()[-1]
  assert last.startswith('error: cannot open dataset grid/crop128'), last
  assert 'nothing built' in last and 'a2v_jax.data.build' in last, last
  assert 'Traceback' not in proc.stderr
  assert not data_dir.exists()


def test_config_typos_fail_with_valid_choices():
  from a2v_jax import config_validation
  c = synthetic.get_config('runlocal')
  c.curriculum.wieghts = {}
  with pytest.raises(config_validation.ConfigError,
                     match=r'curriculum\.wieghts .*valid names.*weights'):
    config_validation.validate_config(c)
  c = synthetic.get_config('runlocal')
  c.dataset.name = 'gird'
  with pytest.raises(config_validation.ConfigError,
                     match=r"dataset\.name='gird' .*'grid'"):
    config_validation.validate_config(c)
  c = synthetic.get_config('runlocal')
  c.model.generator['nfg'] = 8
  with pytest.raises(config_validation.ConfigError, match=r'ngf'):
    config_validation.validate_config(c)
  c = synthetic.get_config('runlocal')
  c.curriculum.weights.phase2['blnk'] = 1.0
  with pytest.raises(config_validation.ConfigError, match=r"'blink'"):
    config_validation.validate_config(c)
  c = synthetic.get_config('runlocal')
  c.dataset.audio_features = 'log_mel'
  with pytest.raises(config_validation.ConfigError,
                     match=r"set model.ds2.normalize_input='window'"):
    config_validation.validate_config(c)
  c.model.ds2['normalize_input'] = 'windw'
  with pytest.raises(config_validation.ConfigError, match=r"'global'"):
    config_validation.validate_config(c)


@pytest.mark.parametrize('name', ('ds2_ctc', 'syncnet', 'eye'))
def test_pretrain_runlocal_writes_loadable_checkpoint(name, tmp_path):
  import importlib
  config = importlib.import_module(f'configs.{name}_synthetic').get_config(
      'runlocal')
  variables = train.train_and_evaluate(config, str(tmp_path))
  tree, meta = checkpointing.load_state_tree(str(tmp_path / 'checkpoints'))
  assert meta['task'] == config.task and meta['step'] == 3
  with pytest.raises(checkpointing.CheckpointError,
                     match=r'no checkpoint of step 7; pass one of its steps '
                     r'\((\d+, )*3\)'):
    checkpointing.load_state_tree(str(tmp_path / 'checkpoints'), 7)
  helper = {t: n for n, t in pretrain.HELPER_TASKS.items()}[name]
  assert meta['network_config'] == pretrain.network_config(
      helper, config.model[helper])
  for a, b in zip(jax.tree.leaves(variables),
                  jax.tree.leaves(tree['variables'])):
    np.testing.assert_array_equal(a, b)


def test_reused_helper_must_match_the_network_config():
  """A helper checkpoint trained with other settings (here an encoder with
  another input normalisation, or one written before checkpoints recorded
  their network config, when per-clip CMVN was the default) is refused."""
  config = synthetic.get_config('runlocal')
  ds2 = dict(config.model.ds2)
  saved = {'network_config': pretrain.network_config('ds2', ds2)}
  pretrain.check_saved_network('ds2', config, saved, 'run/pretrained/ds2/ck')
  legacy = {'config': {'model': {'ds2': ds2}}}
  with pytest.raises(ValueError, match=r"normalize_input='window' but this "
                     r"config has normalize_input='global'; set "
                     r"config.model.ds2 to match, delete run/pretrained/ds2 "
                     r"to pretrain it again"):
    pretrain.check_saved_network('ds2', config, legacy, 'run/pretrained/ds2/ck')
  config.model.ds2['normalize_input'] = 'window'
  pretrain.check_saved_network('ds2', config, legacy, 'run/pretrained/ds2/ck')
  with pytest.raises(ValueError, match='normalize_input'):
    pretrain.check_saved_network('ds2', config, saved, 'run/pretrained/ds2/ck')


def test_sample_clips_window_the_audio_as_inference_does():
  """The TensorBoard clips feed the encoder frame t's W-frame window, W//2
  frames each side (zero audio past the ends), as a2v_jax.inference does."""
  from a2v_jax import sample_writer  # pylint: disable=g-import-not-at-top
  from a2v_jax.audio import features  # pylint: disable=g-import-not-at-top
  audio = np.random.default_rng(0).normal(size=7 * 640).astype(np.float32)
  clip = {'audio': audio, 'fps': 25.0, 'frames': np.zeros((7, 8, 8, 3))}
  windows = sample_writer.clip_windows(clip, 5, 'mfcc')
  assert windows.shape == (7, 5, 20, 13)
  for t in (0, 3, 6):
    want = features.mfcc_windows(audio, 16000, 25.0, num_frames=5,
                                 start_frame=t - 2)
    np.testing.assert_allclose(windows[t], want, rtol=1e-5, atol=1e-4)
  np.testing.assert_allclose(windows[3, 2], features.mfcc_windows(
      audio, 16000, 25.0)[3], rtol=1e-5, atol=1e-4)
