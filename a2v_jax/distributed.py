"""Start-up of JAX's own multi-process runtime (`jax.distributed`).

The launchers in `launch/` describe the job through environment variables, so
`python -m a2v_jax.main` is the same command on every process:

  A2V_COORDINATOR_ADDRESS  host:port of process 0 (unset: let JAX detect
                           SLURM, Open MPI or a TPU VM slice by itself)
  A2V_NUM_PROCESSES        number of processes in the job
  A2V_PROCESS_ID           this process's index, 0-based
  A2V_LOCAL_DEVICE_IDS     optional comma list of the local devices to use
  A2V_HEARTBEAT_TIMEOUT_S  seconds without a heartbeat before the coordinator
                           declares a process dead and the others stop
                           (default 30, so a killed process never hangs a job)
"""
from __future__ import annotations

import os

import jax
from absl import logging


def initialize() -> None:
  """Calls `jax.distributed.initialize` with the launcher's settings."""
  env = os.environ
  kwargs = {
      "heartbeat_timeout_seconds": int(env.get("A2V_HEARTBEAT_TIMEOUT_S", "30")),
  }
  if env.get("A2V_COORDINATOR_ADDRESS"):
    kwargs["coordinator_address"] = env["A2V_COORDINATOR_ADDRESS"]
    kwargs["num_processes"] = int(_required(env, "A2V_NUM_PROCESSES"))
    kwargs["process_id"] = int(_required(env, "A2V_PROCESS_ID"))
  if env.get("A2V_LOCAL_DEVICE_IDS"):
    kwargs["local_device_ids"] = [int(i) for i in env["A2V_LOCAL_DEVICE_IDS"].split(",")]
  # CPU processes exchange gradients through gloo; GPUs and TPUs bring their
  # own collectives (NCCL, ICI).
  if env.get("JAX_PLATFORMS", "").startswith("cpu"):
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
  jax.distributed.initialize(**kwargs)
  logging.info("jax.distributed: process %d of %d, %d local / %d global devices",
               jax.process_index(), jax.process_count(),
               jax.local_device_count(), jax.device_count())


def _required(env, name: str) -> str:
  if not env.get(name):
    raise ValueError(f"{name} is not set but A2V_COORDINATOR_ADDRESS is; "
                     "set all three A2V_* variables or none (see launch/)")
  return env[name]
