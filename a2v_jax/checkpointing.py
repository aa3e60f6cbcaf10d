"""Orbax checkpoints: train state + JSON metadata + data-iterator state.

Each step directory holds three items:
- `state`: the TrainState pytree (StandardSave; async, so training resumes
  while the arrays are written);
- `metadata`: JSON with the config, the curriculum phase, why it was entered,
  the phase controller's state, and anything else the caller adds;
- `data`: the grain iterator state of every process, so a resumed run reads
  exactly the batches the uninterrupted run would have read.

Orbax writes each step into a temporary directory and renames it only when
every item is complete, so a process killed during a save leaves the previous
step as `latest_step()`; the half-written directory is ignored (and removed on
the next start).
"""

from __future__ import annotations

import json
import os
from typing import Any, Mapping, Sequence

from absl import logging
from etils import epath
import grain
import jax
import orbax.checkpoint as ocp


class CheckpointError(ValueError):
  """A checkpoint is missing or does not match what the run expects."""


def resolve_path(path: str) -> str:
  """An absolute local path, or a remote one (gs://...) unchanged.

  os.path would turn 'gs://bucket/run' into a local 'gs:/bucket/run'.
  """
  path = str(path)
  return path if '://' in path else os.path.abspath(path)


def _json_safe(obj: Any) -> Any:
  """Round-trips `obj` through JSON, turning unknown leaves into strings."""
  def encode(o):
    return o.tolist() if hasattr(o, 'tolist') else str(o)
  return json.loads(json.dumps(obj, default=encode))


class Checkpointer:
  """Saves and restores training checkpoints in `directory`.

  Args:
    directory: where step directories go (created if needed).
    max_to_keep: keep only the newest this many steps.
    async_save: write arrays in a background thread.
    keep_steps: also keep these steps whatever max_to_keep says, e.g. the
      curriculum's phase ends, for the per-phase ablation.
  """

  def __init__(self, directory: str, *, max_to_keep: int = 3,
               async_save: bool = True, keep_steps: Sequence[int] = ()):
    self.directory = resolve_path(directory)
    keep = {}
    if keep_steps:
      keep['preservation_policy'] = ocp.checkpoint_managers.AnyPreservationPolicy(
          [ocp.checkpoint_managers.LatestN(max_to_keep),
           ocp.checkpoint_managers.CustomSteps(sorted(set(keep_steps)))])
    else:
      keep['max_to_keep'] = max_to_keep
    options = ocp.CheckpointManagerOptions(
        **keep,
        create=True,
        cleanup_tmp_directories=True,
        enable_async_checkpointing=async_save,
    )
    self._manager = ocp.CheckpointManager(
        self.directory,
        options=options,
        item_handlers={
            'state': ocp.StandardCheckpointHandler(),
            'metadata': ocp.JsonCheckpointHandler(),
            'data': grain.checkpoint.CheckpointHandler(),
        },
    )

  def latest_step(self) -> int | None:
    """Newest committed step, or None when there is none."""
    return self._manager.latest_step()

  def all_steps(self) -> list[int]:
    """Every committed step, oldest first."""
    return sorted(self._manager.all_steps())

  def save(self, step: int, state: Any, metadata: Mapping[str, Any],
           data_iterator: Any = None) -> None:
    """Starts saving `state` at `step`; returns once arrays are on the host.

    Args:
      step: the number of optimiser steps `state` has taken.
      state: the TrainState pytree (may be donated after this returns).
      metadata: JSON-able dict (config, phase, reason, ...).
      data_iterator: a grain iterator whose state to save, or None.
    """
    items = {
        'state': ocp.args.StandardSave(state),
        'metadata': ocp.args.JsonSave(_json_safe(dict(metadata))),
    }
    if data_iterator is not None:
      items['data'] = grain.checkpoint.CheckpointSave(data_iterator)
    self._manager.save(step, args=ocp.args.Composite(**items), force=True)
    logging.info('Checkpoint: saving step %d to %s', step, self.directory)

  def restore(self, step: int, abstract_state: Any,
              data_iterator: Any = None) -> tuple[Any, dict[str, Any]]:
    """Restores (state, metadata) at `step` into `abstract_state`'s layout.

    Args:
      step: a committed step (see `latest_step`).
      abstract_state: pytree of jax.ShapeDtypeStruct with shardings.
      data_iterator: a grain iterator to set to the saved position, or None.
    """
    items = {
        'state': ocp.args.StandardRestore(abstract_state),
        'metadata': ocp.args.JsonRestore(),
    }
    if data_iterator is not None:
      items['data'] = grain.checkpoint.CheckpointRestore(data_iterator)
    restored = self._manager.restore(step, args=ocp.args.Composite(**items))
    logging.info('Checkpoint: restored step %d from %s', step, self.directory)
    return restored['state'], dict(restored['metadata'])

  def restore_metadata(self, step: int) -> dict[str, Any]:
    """The JSON metadata saved at `step`."""
    restored = self._manager.restore(
        step, args=ocp.args.Composite(metadata=ocp.args.JsonRestore()))
    return dict(restored['metadata'])

  def wait_until_finished(self) -> None:
    """Blocks until every pending async save has been committed."""
    self._manager.wait_until_finished()

  def close(self) -> None:
    """Waits for pending saves and releases the manager."""
    self._manager.wait_until_finished()
    self._manager.close()


def load_state_tree(path: str, step: int | None = None) -> tuple[Any, dict]:
  """Loads the raw saved state (nested dicts of arrays) and its metadata.

  Used to initialise from another run (a phase-2 run from the phase-1
  checkpoint) and to load frozen helper networks written by pretraining.

  Args:
    path: a checkpoint directory written by `Checkpointer` (the one holding
      the step directories).
    step: the step to load; the newest when None.

  Returns:
    (tree, metadata): tree is nested dicts of numpy/jax arrays on the host.
  """
  if not epath.Path(path).is_dir():
    raise CheckpointError(
        f'checkpoint directory {path!r} does not exist; train the run that '
        f'writes it first or fix the path in the config')
  with ocp.CheckpointManager(
      resolve_path(path),
      options=ocp.CheckpointManagerOptions(create=False),
      item_handlers={
          'state': ocp.StandardCheckpointHandler(),
          'metadata': ocp.JsonCheckpointHandler(),
      }) as manager:
    step = manager.latest_step() if step is None else step
    if step is None:
      raise CheckpointError(
          f'{path!r} holds no committed checkpoint; the run that writes it '
          f'did not finish a save')
    if step not in manager.all_steps():
      have = ', '.join(str(s) for s in sorted(manager.all_steps())) or 'none'
      raise CheckpointError(
          f'{path!r} has no checkpoint of step {step}; pass one of its '
          f'steps ({have})')
    target = _local_target(manager.item_metadata(step)['state'])
    restored = manager.restore(step, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(target),
        metadata=ocp.args.JsonRestore()))
  tree = jax.tree.map(lambda x: jax.device_get(x), restored['state'])
  logging.info('Loaded checkpoint step %d from %s', step, path)
  return tree, dict(restored['metadata'])


def _local_target(metadata: Any) -> Any:
  """Whole arrays on this process's first device, shaped as saved.

  Without a target orbax restores each array onto the devices it was saved
  from, which fails ("Topology mismatch") for a checkpoint written by
  another topology: N processes, FSDP shards, or another process's device.

  Args:
    metadata: the `state` item's tree metadata (`item_metadata(step)`).

  Returns:
    A pytree of jax.ShapeDtypeStruct, or None (orbax's default) when the
    metadata does not give every leaf's shape and dtype.
  """
  tree = getattr(metadata, 'tree', metadata)
  leaves = jax.tree.leaves(tree)
  if not leaves or not all(hasattr(x, 'shape') and hasattr(x, 'dtype')
                           for x in leaves):
    return None
  device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
  return jax.tree.map(
      lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=device), tree)
