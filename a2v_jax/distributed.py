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

Keeping processes in step. XLA's gloo communicator connects the processes on
the first cross-process collective, and a process that arrives there gives
its peers only 30 s (hard-coded: "Gloo context initialization failed:
DEADLINE_EXCEEDED: GetKeyValue() timed out"). Processes that compile at
different speeds drift further apart than that: on CPU only process 0 ever
hits the persistent compilation cache (JAX writes entries from process 0
only, and the CPU topology in the cache key differs per process), so a
restart finds process 0 ready in seconds and process 1 still compiling. So
`initialize` waits at a coordination-service barrier (A2V_INIT_TIMEOUT_S) and
then runs one tiny collective over every device: the connection is made
while the processes are together, and later collectives wait for a slow peer
for XLA's collective timeout (minutes), not 30 s. Orbax's checkpoint barriers
go through the coordination service too (with timeouts) instead of
collectives.
"""
from __future__ import annotations

import os

from absl import flags
from absl import logging
import jax
from jax.experimental import multihost_utils
import orbax.checkpoint as ocp


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
  _use_coordination_barriers_in_orbax()
  connect_collectives(kwargs['initialization_timeout'])
  logging.info('jax.distributed: process %d of %d, %d local / %d global '
               'devices', jax.process_index(), jax.process_count(),
               jax.local_device_count(), jax.device_count())
  if jax.process_index() != 0:
    logging.set_verbosity(logging.WARNING)


def connect_collectives(timeout_s: int) -> None:
  """Connects every process's collectives while they are together.

  A barrier of the coordination service (waits up to `timeout_s`), then one
  small all-gather over every device: its first run sets up the
  cross-process communicator (gloo on CPU), which gives a late peer only
  30 s. Call on every process, right after `jax.distributed.initialize`.
  """
  if jax.process_count() == 1:
    return
  ocp.multihost.get_barrier_sync_fn()(key='a2v_jax_connect_collectives',
                                      timeout_ms=1000 * timeout_s)
  multihost_utils.sync_global_devices('a2v_jax_connect_collectives')


def _use_coordination_barriers_in_orbax() -> None:
  """Orbax's barriers through the coordination service (with timeouts)
  rather than through collectives. Orbax reads its absl flag, so this takes
  effect once flags are parsed (`python -m a2v_jax.main`); before that orbax
  keeps collective barriers, which `connect_collectives` also makes safe."""
  name = ocp.multihost.EXPERIMENTAL_ORBAX_USE_DISTRIBUTED_BARRIER.name
  if flags.FLAGS.is_parsed():
    flags.FLAGS[name].value = True


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
