"""Device mesh, sharding rules and batch-size arithmetic of a training run.

The mesh has two axes:
- 'data': data parallelism; every device on it sees other examples.
- 'fsdp': parameter sharding (FSDP / ZeRO-3 style): the generator's and the
  discriminators' parameters, their EMA and their optimiser states are split
  along it, each leaf on its largest dimension that the axis size divides
  (replicated when none does). The batch is split over both axes, so 'fsdp'
  devices also see other examples; XLA gathers each parameter where it is
  used and reduce-scatters its gradient.

`config.mesh.data=-1` (the default) takes every device not used by
`config.mesh.fsdp`. The global batch, the per-device batch and the number of
gradient-accumulation micro-batches are related by

  batch_size = per_device_batch_size * device_count * grad_accum_steps

and checked at start-up against the devices JAX sees.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import jax
from jax.experimental import mesh_utils
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
import numpy as np

from a2v_jax import config_validation

MESH_AXES = ('data', 'fsdp')
# TrainState fields that are sharded along 'fsdp' (the rest is replicated).
SHARDED_STATE_FIELDS = ('g_params', 'g_opt_state', 'ema_g_params', 'd_params',
                        'd_opt_state')


@dataclasses.dataclass(frozen=True)
class BatchSizes:
  """Examples per optimiser step, device, micro-batch and process.

  Attributes:
    global_batch: examples per optimiser step over all devices and processes.
    per_device: examples each device holds in one micro-batch.
    grad_accum_steps: micro-batches whose gradients make one step.
    per_process: examples each process loads per optimiser step.
  """
  global_batch: int
  per_device: int
  grad_accum_steps: int
  per_process: int

  @property
  def micro_batch(self) -> int:
    """Examples per micro-batch over all devices."""
    return self.global_batch // self.grad_accum_steps


def resolve_mesh_shape(mesh_cfg: Any, device_count: int) -> tuple[int, int]:
  """(data, fsdp) sizes from `config.mesh`; -1 for data = the rest.

  Raises:
    ConfigError: when data * fsdp is not the device count.
  """
  data, fsdp = int(mesh_cfg.data), int(mesh_cfg.fsdp)
  if fsdp < 1 or device_count % fsdp:
    raise config_validation.ConfigError(
        f'config.mesh.fsdp={fsdp} must divide the {device_count} devices; '
        f'set --config.mesh.fsdp to a divisor of {device_count}')
  if data == -1:
    data = device_count // fsdp
  if data * fsdp != device_count:
    raise config_validation.ConfigError(
        f'config.mesh.data={data} x config.mesh.fsdp={fsdp} != '
        f'{device_count} devices; set --config.mesh.data=-1 to use them all')
  return data, fsdp


def create_mesh(mesh_cfg: Any = None,
                devices: Sequence[jax.Device] | None = None) -> Mesh:
  """A ('data', 'fsdp') mesh over `devices` (default: every global device).

  'fsdp' is the inner axis, so its devices are the closest ones (one host,
  one NVLink domain or neighbouring TPU chips); on multi-host GPUs 'data'
  spans the hosts.

  Args:
    mesh_cfg: `config.mesh` (data, fsdp); None = all devices on 'data'.
    devices: the devices to use, in order; default jax.devices().
  """
  devices = list(jax.devices() if devices is None else devices)
  if mesh_cfg is None:
    data, fsdp = len(devices), 1
  else:
    data, fsdp = resolve_mesh_shape(mesh_cfg, len(devices))
  platform = devices[0].platform
  num_processes = len({d.process_index for d in devices})
  if platform == 'cpu' or len(devices) == 1:
    # No interconnect topology to respect; jax.devices() lists each
    # process's devices together, which keeps every process's batch rows
    # contiguous.
    grid = np.asarray(devices).reshape(data, fsdp)
  elif platform == 'gpu' and num_processes > 1 and data % num_processes == 0:
    grid = mesh_utils.create_hybrid_device_mesh(
        (data // num_processes, fsdp), (num_processes, 1), devices,
        process_is_granule=True)
  else:
    grid = mesh_utils.create_device_mesh((data, fsdp), devices,
                                         allow_split_physical_axes=True)
  return Mesh(grid, MESH_AXES)


def compiler_options(mesh: Mesh) -> dict[str, Any] | None:
  """XLA options for a program over `mesh`.

  Simulated CPU devices are threads of one process: on a busy machine one
  can reach a collective long after another, and XLA CPU aborts the process
  when a rendezvous waits longer than its timeout. The timeouts are raised
  so that a slow step stays slow instead of crashing.
  """
  if mesh.devices.size == 1 or mesh.devices.flat[0].platform != 'cpu':
    return None
  return {'xla_cpu_collective_call_terminate_timeout_seconds': 1800,
          'xla_cpu_collective_timeout_seconds': 1800,
          'xla_cpu_collective_call_warn_stuck_seconds': 300}


def batch_axes(mesh: Mesh) -> tuple[str, ...]:
  """The mesh axes the batch dimension is split over."""
  return tuple(a for a in MESH_AXES if a in mesh.axis_names)


def batch_sharding(mesh: Mesh) -> NamedSharding:
  """Batch dimension (axis 0) split over every mesh axis."""
  return NamedSharding(mesh, P(batch_axes(mesh)))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def fsdp_spec(shape: Sequence[int], fsdp_size: int) -> P:
  """PartitionSpec putting 'fsdp' on the largest dimension it divides.

  Args:
    shape: the array's shape.
    fsdp_size: size of the mesh's 'fsdp' axis.

  Returns:
    P() (replicated) when fsdp_size is 1 or no dimension is divisible; else
    'fsdp' on the largest divisible dimension (the last of equal ones).
  """
  if fsdp_size <= 1:
    return P()
  best = None
  for i, n in enumerate(shape):
    if n % fsdp_size == 0 and (best is None or n >= shape[best]):
      best = i
  if best is None:
    return P()
  spec = [None] * len(shape)
  spec[best] = 'fsdp'
  return P(*spec)


def state_shardings(state: Any, mesh: Mesh) -> Any:
  """A TrainState of NamedShardings: FSDP rule on the networks, the step and
  the rng replicated.

  Args:
    state: a TrainState of arrays or jax.ShapeDtypeStruct.
    mesh: the training mesh (1-D 'data' meshes give all-replicated).
  """
  fsdp = mesh.shape['fsdp'] if 'fsdp' in mesh.axis_names else 1
  rep = replicated(mesh)
  rule = lambda x: NamedSharding(mesh, fsdp_spec(x.shape, fsdp))
  fields = {f: jax.tree.map(rule, getattr(state, f))
            for f in SHARDED_STATE_FIELDS}
  return state.replace(step=rep, rng=rep, **fields)


def abstract_with_shardings(tree: Any, shardings: Any) -> Any:
  """ShapeDtypeStructs of `tree` carrying `shardings` (for orbax restore)."""
  return jax.tree.map(
      lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s),
      tree, shardings)


def put_global(tree: Any, shardings: Any) -> Any:
  """Places host-identical values (numpy or local jax arrays) on a global
  sharding; every process passes the same values and keeps its own shards.

  Works across processes, where `jax.device_put` of a local array onto
  another process's devices would not.
  """
  if isinstance(shardings, jax.sharding.Sharding):
    shardings = jax.tree.map(lambda _: shardings, tree)

  def put(x, sharding):
    host = np.asarray(jax.device_get(x))
    return jax.make_array_from_callback(host.shape, sharding,
                                        lambda index: host[index])
  return jax.tree.map(put, tree, shardings)


def gather_replicated(tree: Any, mesh: Mesh) -> Any:
  """`tree` fully replicated on `mesh` (a collective: call on every process).

  Lets process 0 read FSDP-sharded parameters with jax.device_get.
  """
  if all(x.is_fully_replicated for x in jax.tree.leaves(tree)):
    return tree
  return jax.jit(lambda t: t, out_shardings=replicated(mesh))(tree)


def split_microbatches(batch: dict[str, jax.Array], grad_accum_steps: int,
                       mesh: Mesh | None = None) -> dict[str, jax.Array]:
  """[B, ...] -> [grad_accum_steps, B / grad_accum_steps, ...].

  Example i goes to micro-batch i % grad_accum_steps, so each device's
  contiguous rows of the batch split into its rows of every micro-batch and
  no example moves between devices.
  """
  def split(x):
    b = x.shape[0]
    x = x.reshape(b // grad_accum_steps, grad_accum_steps, *x.shape[1:])
    x = x.swapaxes(0, 1)
    if mesh is not None:
      x = jax.lax.with_sharding_constraint(
          x, NamedSharding(mesh, P(None, batch_axes(mesh))))
    return x
  return {k: split(v) for k, v in batch.items()}


def check_batch_sizes(config: Any, device_count: int,
                      process_count: int) -> BatchSizes:
  """Checks config.batch_size / per_device_batch_size / grad_accum_steps.

  Args:
    config: the run config.
    device_count: jax.device_count() (all processes).
    process_count: jax.process_count().

  Returns:
    The resolved BatchSizes.

  Raises:
    ConfigError: one line naming the mismatch and a setting that fixes it.
  """
  batch, accum = int(config.batch_size), int(config.grad_accum_steps)
  per_device = int(config.per_device_batch_size)
  if accum < 1:
    raise config_validation.ConfigError(
        f'config.grad_accum_steps={accum} must be >= 1')
  if per_device == -1:
    if batch % (device_count * accum):
      fix = device_count * accum * max(1, round(batch / (device_count * accum)))
      raise config_validation.ConfigError(
          f'config.batch_size={batch} is not divisible by {device_count} '
          f'devices x grad_accum_steps={accum}; set --config.batch_size='
          f'{fix} (or change --config.grad_accum_steps)')
    per_device = batch // (device_count * accum)
  elif per_device * device_count * accum != batch:
    raise config_validation.ConfigError(
        f'config.batch_size={batch} != per_device_batch_size={per_device} x '
        f'{device_count} devices x grad_accum_steps={accum}; set '
        f'--config.batch_size={per_device * device_count * accum} or '
        f'--config.per_device_batch_size=-1 (derived)')
  if batch % process_count:
    raise config_validation.ConfigError(
        f'config.batch_size={batch} is not divisible by the {process_count} '
        f'processes; give every process the same number of devices')
  return BatchSizes(global_batch=batch, per_device=per_device,
                    grad_accum_steps=accum, per_process=batch // process_count)
