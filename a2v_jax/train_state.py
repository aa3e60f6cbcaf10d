"""The GAN train state: one pytree for the generator, every discriminator, EMA.

MAGVIT-style: a single `flax.struct.dataclass` holds all trainable state, and
the optimisers sit in static fields, so the whole state is one argument of the
jitted step (donated) and one item of a checkpoint.
"""

from __future__ import annotations

from typing import Any

import flax
import jax
import jax.numpy as jnp
import optax

# The discriminators of the paper (§3.2), in a fixed order.
DISCRIMINATORS = ('frame', 'temporal', 'sync')


@flax.struct.dataclass
class TrainState:
  """Everything a training step reads and writes.

  Attributes:
    step: int32 [] number of optimiser steps taken.
    rng: uint32 [2] base key; step k uses fold_in(rng, k).
    g_params: generator variables ({'params': ...}).
    g_opt_state: the generator optimiser's state.
    ema_g_params: exponential moving average of g_params (used for samples).
    d_params: {name: variables} for name in DISCRIMINATORS.
    d_opt_state: {name: optimiser state} for name in DISCRIMINATORS.
    g_tx: the generator optimiser (static).
    d_tx: the discriminators' optimiser (static; one instance, separate states).
  """
  step: jax.Array
  rng: jax.Array
  g_params: Any
  g_opt_state: Any
  ema_g_params: Any
  d_params: dict[str, Any]
  d_opt_state: dict[str, Any]
  g_tx: optax.GradientTransformation = flax.struct.field(pytree_node=False)
  d_tx: optax.GradientTransformation = flax.struct.field(pytree_node=False)

  @classmethod
  def create(cls, *, rng: jax.Array, g_params: Any, d_params: dict[str, Any],
             g_tx: optax.GradientTransformation,
             d_tx: optax.GradientTransformation) -> 'TrainState':
    """A fresh state at step 0; the EMA starts equal to the generator."""
    return cls(
        step=jnp.zeros([], jnp.int32),
        rng=rng,
        g_params=g_params,
        g_opt_state=g_tx.init(g_params['params']),
        ema_g_params=jax.tree.map(jnp.array, g_params),
        d_params=dict(d_params),
        d_opt_state={k: d_tx.init(v['params']) for k, v in d_params.items()},
        g_tx=g_tx,
        d_tx=d_tx,
    )


def create_learning_rate_schedule(optimizer_cfg: Any,
                                  steps_per_epoch: int) -> optax.Schedule:
  """The paper's schedule (§6.1): constant, then linear decay to 0.

  Args:
    optimizer_cfg: `config.optimizer` with `lr`, `constant_epochs` and
      `decay_epochs`.
    steps_per_epoch: optimiser steps per pass over the training split.

  Returns:
    step -> learning rate.
  """
  constant_steps = int(optimizer_cfg.constant_epochs * steps_per_epoch)
  decay_steps = max(1, int(optimizer_cfg.decay_epochs * steps_per_epoch))
  return optax.join_schedules(
      [optax.constant_schedule(optimizer_cfg.lr),
       optax.linear_schedule(optimizer_cfg.lr, 0.0, decay_steps)],
      boundaries=[constant_steps])


def create_optimizer(optimizer_cfg: Any,
                     steps_per_epoch: int) -> optax.GradientTransformation:
  """Adam(lr schedule, b1, b2, eps) as in the paper: lr 0.002, b1 0.0, b2 0.9.

  eps (optax's 1e-8 in configs/common.py) also bounds how far float
  noise moves a parameter: with b1 = 0 a gradient g makes a step of
  lr * g / (sqrt(1 - b2) |g| + eps), about +-3 lr for any |g| >> eps, true
  gradients of 1e-9 included.
  """
  return optax.adam(
      create_learning_rate_schedule(optimizer_cfg, steps_per_epoch),
      b1=optimizer_cfg.b1, b2=optimizer_cfg.b2,
      eps=optimizer_cfg.eps)


def update_ema(ema: Any, params: Any, decay: float) -> Any:
  """ema <- decay * ema + (1 - decay) * params, leaf by leaf."""
  return jax.tree.map(lambda e, p: decay * e + (1.0 - decay) * p, ema, params)
