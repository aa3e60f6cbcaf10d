"""Start-up of JAX's own multi-process runtime (`jax.distributed`).

The launchers in `launch/` describe the job through environment variables, so
`python -m a2v_jax.main --jax_distributed ...` is the same command on every
process:

  A2V_COORDINATOR_ADDRESS  host:port of process 0 (unset: JAX detects SLURM,
                           Open MPI or a Cloud TPU slice by itself)
  A2V_NUM_PROCESSES        number of processes in the job
  A2V_PROCESS_ID           this process's index, 0-based
  A2V_LOCAL_DEVICE_IDS     optional comma list of the local devices to use
  A2V_HEARTBEAT_TIMEOUT_S  seconds without a heartbeat before the coordination
                           service declares a process dead and stops the
                           others with an error (default 60): a killed
                           process never leaves the job hanging
  A2V_SHUTDOWN_TIMEOUT_S   seconds a finishing process waits for the others
                           at exit (default 60)
  A2V_INIT_TIMEOUT_S       seconds to wait for every process to join
                           (default 300)

CPU processes all-reduce through gloo; GPUs and TPUs bring their own
collectives (NCCL, ICI/DCN).
"""
from __future__ import annotations

import os

import jax
from absl import logging


class DistributedConfigError(ValueError):
  """The A2V_* environment does not describe a job."""


def initialize() -> None:
  """Calls `jax.distributed.initialize` with the launcher's settings.

  Processes other than 0 then log warnings and errors only, so the terminal
  shows one progress stream (TensorBoard and samples are process 0's too).
  """
  env = os.environ
  kwargs = {
      'heartbeat_timeout_seconds': _int(env, 'A2V_HEARTBEAT_TIMEOUT_S', 60),
      'shutdown_timeout_seconds': _int(env, 'A2V_SHUTDOWN_TIMEOUT_S', 60),
      'initialization_timeout': _int(env, 'A2V_INIT_TIMEOUT_S', 300),
  }
  if env.get('A2V_COORDINATOR_ADDRESS'):
    kwargs['coordinator_address'] = env['A2V_COORDINATOR_ADDRESS']
    kwargs['num_processes'] = int(_required(env, 'A2V_NUM_PROCESSES'))
    kwargs['process_id'] = int(_required(env, 'A2V_PROCESS_ID'))
  if env.get('A2V_LOCAL_DEVICE_IDS'):
    kwargs['local_device_ids'] = [
        int(i) for i in env['A2V_LOCAL_DEVICE_IDS'].split(',')]
  # CPU devices of different processes all-reduce through gloo (it only
  # affects the CPU backend; GPUs and TPUs keep NCCL / ICI).
  if not env.get('JAX_CPU_COLLECTIVES_IMPLEMENTATION'):
    jax.config.update('jax_cpu_collectives_implementation', 'gloo')
  jax.distributed.initialize(**kwargs)
  logging.info('jax.distributed: process %d of %d, %d local / %d global '
               'devices', jax.process_index(), jax.process_count(),
               jax.local_device_count(), jax.device_count())
  if jax.process_index() != 0:
    logging.set_verbosity(logging.WARNING)


def _int(env, name: str, default: int) -> int:
  value = env.get(name, '')
  if not value:
    return default
  if not value.isdigit():
    raise DistributedConfigError(f'{name}={value!r} must be a whole number '
                                 'of seconds')
  return int(value)


def _required(env, name: str) -> str:
  if not env.get(name):
    raise DistributedConfigError(
        f'{name} is not set but A2V_COORDINATOR_ADDRESS is; set all three '
        'A2V_* variables or none (see launch/)')
  return env[name]
