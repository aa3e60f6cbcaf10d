"""Every command-line mistake ends in one `error:` line, status 1, no traceback.

One subprocess per mistake and entry point. The input is checked before a
model loads (and, for a2v_jax.main and the data commands, before jax is
imported), so each case takes a second or two.
"""
import logging
import os
import subprocess
import sys

import pytest

from a2v_jax import cli
from a2v_jax import run_plan
from configs import synthetic

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MAIN = ['-m', 'a2v_jax.main', '--config=configs/synthetic.py:runlocal']


def _cases(tmp):
  """(entry point and args, words the error line must hold)."""
  a_file = os.path.join(tmp, 'a_file')
  folder = os.path.join(tmp, 'folder')
  return {
      'main: misspelt config key': (
          MAIN + [f'--workdir={folder}', '--config.num_train_step=5'],
          ["no key 'num_train_step'", '--config.num_train_steps']),
      'main: misspelt nested key': (
          MAIN + [f'--workdir={folder}', '--config.dataset.nme=grid'],
          ["no key 'nme'", '--config.dataset.name']),
      'main: unknown flag': (
          MAIN + [f'--workdirr={folder}'],
          ['unknown flag --workdirr', 'did you mean --workdir']),
      'main: bad value': (
          MAIN + [f'--workdir={folder}', '--config.num_train_steps=many'],
          ['--config.num_train_steps=many', 'invalid literal']),
      'main: bad variant': (
          ['-m', 'a2v_jax.main', '--config=configs/synthetic.py:tiny',
           f'--workdir={folder}'],
          ["unknown config variant 'tiny'", 'runlocal']),
      'main: no config file': (
          ['-m', 'a2v_jax.main', '--config=configs/synthtic.py',
           f'--workdir={folder}'],
          ['configs/synthtic.py does not exist', 'configs/synthetic.py']),
      'main: workdir missing': (MAIN, ['--workdir is required']),
      'main: workdir is a file': (
          MAIN + [f'--workdir={a_file}'], ['is a file, not a folder']),
      'main: workdir under a file': (
          MAIN + [f'--workdir={a_file}/run'], ['cannot be made']),
      'main: stray argument': (
          MAIN + [f'--workdir={folder}', 'runs/x'],
          ['unexpected arguments runs/x']),
      'main: no dataset folder': (
          ['-m', 'a2v_jax.main', '--config=configs/grid_phase1.py',
           f'--config.dataset.data_dir={folder}/tfds', f'--workdir={folder}'],
          ['cannot open dataset grid/crop128', 'a2v_jax.data.build']),
      'main: init_from is not a checkpoints folder': (
          MAIN + [f'--workdir={folder}', f'--config.init_from={tmp}'],
          ['config.init_from', 'no checkpoint', 'checkpoints/ folder']),
      'build: no corpus folder': (
          ['-m', 'a2v_jax.data.build', f'--manual_dir={folder}/none',
           f'--data_dir={folder}'], ['--manual_dir', 'not a folder']),
      'build: bad crop': (
          ['-m', 'a2v_jax.data.build', '--crop=100'],
          ['--crop=100', 'one of']),
      'build: data_dir is a file': (
          ['-m', 'a2v_jax.data.build', f'--manual_dir={tmp}',
           f'--data_dir={a_file}'], ['--data_dir', 'is a file']),
      'synthetic: unknown flag': (
          ['-m', 'a2v_jax.data.synthetic', f'--out={folder}'],
          ['unknown flag --out', '--out_dir']),
      'synthetic: speakers out of range': (
          ['-m', 'a2v_jax.data.synthetic', f'--out_dir={folder}',
           '--speakers=0'], ['--speakers=0', 'out of range']),
      'export: no run': (
          ['-m', 'a2v_jax.export', f'--workdir={folder}/none',
           f'--out={folder}/export'], ['--workdir', 'does not exist']),
      'export: not a run': (
          ['-m', 'a2v_jax.export', f'--workdir={tmp}',
           f'--out={folder}/export'], ['no checkpoints/ folder']),
      'generate: not an export': (
          ['-m', 'a2v_jax.generate', f'--model={tmp}', f'--image={a_file}',
           f'--audio={a_file}', f'--out={folder}/o.mp4'],
          ['not an a2v_jax export']),
      'generate: no photo': (
          ['-m', 'a2v_jax.generate', f'--model={tmp}', '--image=me.jpg',
           f'--audio={a_file}', f'--out={folder}/o.mp4'],
          ['photo me.jpg does not exist', '--image']),
      'evaluate: no export': (
          ['-m', 'a2v_jax.evaluate', f'--model={folder}/none',
           f'--out={folder}/report'], ['--model', 'does not exist']),
      'evaluate_helpers: no dataset': (
          ['-m', 'a2v_jax.evaluate_helpers', f'--data_dir={folder}/none',
           f'--out={folder}/report'], ['--data_dir', 'does not exist']),
      'pretrain: not a pretraining config': (
          ['-m', 'a2v_jax.pretrain', '--config=configs/synthetic.py:runlocal',
           f'--workdir={folder}'], ["config.task='a2v'", 'a2v_jax.main']),
  }


CASES = sorted(_cases('TMP'))


@pytest.mark.parametrize('name', CASES)
def test_one_line_error(name, tmp_path):
  tmp = str(tmp_path)
  (tmp_path / 'a_file').write_text('not a folder')
  (tmp_path / 'folder').mkdir()
  args, words = _cases(tmp)[name]
  proc = subprocess.run(
      [sys.executable] + args, cwd=REPO, capture_output=True, text=True,
      timeout=300, env={**os.environ, 'JAX_PLATFORMS': 'cpu'})
  output = proc.stdout + proc.stderr
  errors = [l for l in output.splitlines() if l.startswith('error:')]
  assert proc.returncode == 1, output[-2000:]
  assert len(errors) == 1, output[-2000:]
  assert 'Traceback' not in output, output[-2000:]
  for w in words:
    assert w in errors[0], (w, errors[0])


# An entry point that fails while the train step still compiles on its
# daemon thread (a2v_jax/train.py), as a bad init_from does: the thread's
# return into a finalising interpreter used to abort the process (status
# 134 and a screen of 'Fatal Python error' after the error line).
_FAILS_WHILE_COMPILING = """
import threading, time
import jax, jax.numpy as jnp
from a2v_jax import cli

def chain(x):
  for i in range(1500):
    x = jnp.sin(x @ x.T + i)[:, :64]
  return x

def main(argv):
  lowered = jax.jit(chain).lower(jnp.zeros((64, 64)))
  threading.Thread(target=lowered.compile, daemon=True).start()
  time.sleep(0.3)
  raise cli.InputError('init_from=x: its sync network does not fit')

cli.run(main)
"""


def test_an_error_while_a_compile_runs_exits_with_one_line():
  proc = subprocess.run(
      [sys.executable, '-c', _FAILS_WHILE_COMPILING], cwd=REPO,
      capture_output=True, text=True, timeout=300,
      env={**os.environ, 'JAX_PLATFORMS': 'cpu'})
  output = proc.stdout + proc.stderr
  assert proc.returncode == 1, output[-2000:]
  assert output.strip() == ('error: init_from=x: its sync network does not '
                            'fit'), output[-2000:]


def test_check_writable_dir_makes_the_folder(tmp_path):
  cli.check_writable_dir(str(tmp_path / 'a' / 'b'), '--workdir')
  assert (tmp_path / 'a' / 'b').is_dir()
  with pytest.raises(cli.InputError, match='required'):
    cli.check_writable_dir('', '--out')


def test_plan_names_the_stages_and_what_is_reused(tmp_path):
  config = synthetic.get_config()
  workdir = str(tmp_path / 'demo')
  text = run_plan.plan(config, workdir, {'eye': 'the blink term weighs 0'})
  assert 'corpus: make 3 speakers x 20 utterances' in text
  assert 'build: align the faces' in text
  assert 'helper ds2: pretrain 300 steps' in text
  assert 'helper eye: not needed (the blink term weighs 0)' in text
  assert 'GAN: train 400 steps, phases 1-3' in text
  assert 'Rough estimate: 7 min' in text
  # A second run reuses the corpus, its build and a finished helper.
  corpus = tmp_path / 'synthetic_corpus'
  (corpus / 'raw' / 's1').mkdir(parents=True)
  (corpus / 'tfds').mkdir()
  (corpus / 'tfds' / '.built_crop64').write_text('ok')
  (tmp_path / 'demo' / 'pretrained' / 'ds2' / 'checkpoints' / '300').mkdir(
      parents=True)
  (tmp_path / 'demo' / 'checkpoints' / '100').mkdir(parents=True)
  text = run_plan.plan(config, workdir)
  assert 'corpus: reuse' in text and 'build: reuse' in text
  assert 'helper ds2: reuse' in text and 'resuming at step 100' in text


def test_closing_note_says_where_the_model_is_and_what_next(tmp_path):
  workdir = str(tmp_path / 'demo')
  (tmp_path / 'demo' / 'checkpoints' / '400').mkdir(parents=True)
  text = run_plan.closing_note(synthetic.get_config(), workdir)
  assert f'The model is in {workdir}/checkpoints (step 400).' in text
  assert f'a2v_jax.export --workdir={workdir} --out=exports/demo' in text
  assert 'a2v_jax.generate --model=exports/demo' in text
  assert f'tensorboard --logdir={workdir}' in text


def test_other_libraries_info_logs_are_filtered():
  keep = cli._ProjectFilter().filter  # pylint: disable=protected-access

  def record(name, path, level):
    return logging.LogRecord(name, level, path, 1, 'm', (), None)

  ours = os.path.join(REPO, 'a2v_jax', 'train.py')
  theirs = os.path.join(os.path.dirname(logging.__file__), 'orbax_like.py')
  assert keep(record('absl', ours, logging.INFO))
  assert not keep(record('absl', theirs, logging.INFO))
  assert not keep(record('jax._src.xla_bridge', theirs, logging.INFO))
  assert keep(record('absl', theirs, logging.WARNING))
