"""train_state.init_from_checkpoint: what another run's checkpoint replaces."""
import types

import jax
import numpy as np
import optax
import pytest
from jax.sharding import NamedSharding, PartitionSpec as P

from a2v_jax import checkpointing
from a2v_jax import train_state


def _state(value: float, sync_shape=(3,)):
  tree = lambda shape=(2,): {'params': {'w': np.full(shape, value,
                                                     np.float32)}}
  return train_state.TrainState(
      step=np.int32(7), rng=np.zeros([2], np.uint32), g_params=tree(),
      g_opt_state=(), ema_g_params=tree(),
      d_params={'frame': tree(), 'temporal': tree(),
                'sync': tree(sync_shape)},
      d_opt_state={}, g_tx=optax.sgd(1.0), d_tx=optax.sgd(1.0))


def test_a_named_syncnet_is_kept_and_the_rest_is_copied(monkeypatch):
  # The other run's sync D has another structure (e.g. an unused random one
  # without the face_norm scale): copying it would fail; kept, it is not read.
  other = _state(2.0, sync_shape=(5,))
  tree = {'g_params': other.g_params, 'ema_g_params': other.ema_g_params,
          'd_params': other.d_params}
  monkeypatch.setattr(checkpointing, 'load_state_tree',
                      lambda path: (tree, {'curriculum': {'phase': 3}}))
  sharding = NamedSharding(jax.sharding.Mesh(
      np.asarray(jax.devices()[:1]), ('data',)), P())
  everywhere = lambda t: jax.tree.map(lambda _: sharding, t)
  mine = _state(1.0)
  shardings = types.SimpleNamespace(
      g_params=everywhere(mine.g_params),
      ema_g_params=everywhere(mine.ema_g_params),
      d_params={k: everywhere(v) for k, v in mine.d_params.items()})
  out = train_state.init_from_checkpoint(mine, 'unused', shardings,
                                         keep=('sync',))
  for t in (out.g_params, out.ema_g_params, out.d_params['frame'],
            out.d_params['temporal']):
    np.testing.assert_array_equal(t['params']['w'], [2.0, 2.0])
  np.testing.assert_array_equal(out.d_params['sync']['params']['w'],
                                [1.0, 1.0, 1.0])
  assert int(out.step) == 7       # the step and optimisers start afresh
  # Without keep the other run's sync D is copied, and its shape mismatch
  # is a one-line input error naming the network and the fix.
  with pytest.raises(checkpointing.CheckpointError,
                     match=r"its sync network does not fit this config "
                     r"\(other shapes: \['params'\]\['w'\]\); set "
                     r"model.syncnet as that run had it, or name a SyncNet"):
    train_state.init_from_checkpoint(mine, 'unused', shardings)
  # A parameter the other run's network lacks (face_norm's frozen scale).
  tree['d_params'] = dict(other.d_params, sync={'params': {}})
  with pytest.raises(checkpointing.CheckpointError,
                     match=r"only in this config: \['params'\]\['w'\]"):
    train_state.init_from_checkpoint(mine, 'unused', shardings)
