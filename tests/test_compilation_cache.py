"""JAX's persistent compilation cache: where it lives, and that the entry
points' shared wrapper (cli.run) turns it on."""
import os
import subprocess
import sys

import pytest

from a2v_jax import cli

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_cache_dir_defaults_to_the_user_cache_folder():
  home = os.path.expanduser('~')
  assert cli.compilation_cache_dir({}) == os.path.join(
      home, '.cache', 'a2v_jax', 'jax')
  assert cli.compilation_cache_dir({'XDG_CACHE_HOME': '/c'}) == os.path.join(
      '/c', 'a2v_jax', 'jax')
  assert cli.compilation_cache_dir(
      {'XDG_CACHE_HOME': '/c', cli.CACHE_ENV: '/elsewhere'}) == '/elsewhere'
  assert cli.compilation_cache_dir({cli.CACHE_ENV: ''}) is None  # off


def test_configure_sets_jax_env_and_keeps_the_users_own():
  env = {cli.CACHE_ENV: '/a'}
  assert cli.configure_compilation_cache(env) == '/a'
  assert env['JAX_COMPILATION_CACHE_DIR'] == '/a'
  env = {cli.CACHE_ENV: '/a', 'JAX_COMPILATION_CACHE_DIR': '/mine'}
  assert cli.configure_compilation_cache(env) == '/mine'
  env = {cli.CACHE_ENV: ''}
  assert cli.configure_compilation_cache(env) is None
  assert 'JAX_COMPILATION_CACHE_DIR' not in env


# A command as the entry points are written: cli.run(main), with jax
# imported before (generate, evaluate, web) or inside main (a2v_jax.main).
_COMMAND = """
import sys
{early}
from a2v_jax import cli
def main(argv):
  import jax, jax.numpy as jnp
  print(float(jax.jit(lambda x: jnp.sin(x).sum() * 3)(jnp.ones(7))))
cli.run(main)
"""


@pytest.mark.parametrize('early', ['', 'import jax'])
def test_a_command_writes_cache_entries(tmp_path, early):
  cache = tmp_path / 'cache'
  env = dict(os.environ, **{cli.CACHE_ENV: str(cache),
                            'JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS': '0'})
  env.pop('JAX_COMPILATION_CACHE_DIR', None)
  proc = subprocess.run([sys.executable, '-c', _COMMAND.format(early=early)],
                        cwd=REPO, env=env, capture_output=True, text=True,
                        timeout=120, check=False)
  assert proc.returncode == 0, proc.stderr[-2000:]
  assert cache.is_dir() and any(cache.iterdir()), proc.stderr[-2000:]
