"""The networks of a run: which module each config section builds, how
they are applied, and the one path from audio windows to frames.

`NETWORKS` maps each `config.model` section to the flax module it builds
(config validation, training, pretraining and export all read it); `build`
makes one, choosing its convolution lowering for the backend then and only
then. `create_networks` builds every module of a training run;
`generate_frames` (audio encoder -> SPADE generator) is the path that
training, the sample writer, evaluation and inference all take from audio
features to frames.
"""

from __future__ import annotations

import dataclasses
import inspect
from typing import Any, Mapping

import jax
from jax import lax
import jax.numpy as jnp
import ml_collections

from a2v_jax.models import conv_lowering
from a2v_jax.models import deepspeech2
from a2v_jax.models import eye
from a2v_jax.models import patchgan
from a2v_jax.models import spade
from a2v_jax.models import syncnet
from a2v_jax.models import temporal
from a2v_jax.models import vgg

# Variables are initialised once per run: compile that unoptimised.
INIT_COMPILER_OPTIONS = {'xla_backend_optimization_level': 0}

# config.model.<section> -> the flax module it builds; the section's keys
# are the module's attributes. (config.model.perceptual holds
# vgg.default_config() keys instead.)
NETWORKS = {
    'generator': spade.SPADEGenerator,
    'frame_d': patchgan.MultiScalePatchGAN,
    'temporal_d': temporal.MultiScaleTemporalDiscriminator,
    'syncnet': syncnet.SyncNet,
    'ds2': deepspeech2.DeepSpeech2,
    'eye': eye.EyeLandmarkNet,
}
# A config's conv_lowering when its section names none: chosen by the
# backend when the networks are built (conv_lowering.resolve).
_DEFAULT_LOWERING = 'auto'
# Settings that older checkpoints and exports record but no module takes
# any more, with the only value they may have had there.
_RETIRED = {'matmul_kernel_grad': False}


def lists_to_tuples(obj: Any) -> Any:
  """JSON lists back to tuples (flax module attributes must be hashable)."""
  if isinstance(obj, Mapping):
    return {k: lists_to_tuples(v) for k, v in obj.items()}
  if isinstance(obj, list):
    return tuple(lists_to_tuples(v) for v in obj)
  return obj


def module_config(module: Any) -> dict:
  """Every constructor attribute of a flax module (its full config)."""
  return {f.name: getattr(module, f.name) for f in dataclasses.fields(module)
          if f.name not in ('parent', 'name')}


def module_fields(section: str) -> tuple[str, ...]:
  """Names a config.model.<section> may set (the module's attributes)."""
  return tuple(f.name for f in dataclasses.fields(NETWORKS[section])
               if f.name not in ('parent', 'name'))


def _settings(section: str, settings: Mapping[str, Any]) -> dict[str, Any]:
  """A section's settings as module keyword arguments, conv_lowering left
  as the config has it ('auto' when absent), retired settings dropped."""
  out = lists_to_tuples(dict(settings))
  for key, only in _RETIRED.items():
    if key in out and (value := out.pop(key)) != only:
      raise ValueError(f'{section}.{key}={value!r} is no longer supported')
  if 'conv_lowering' in module_fields(section):
    out.setdefault('conv_lowering', _DEFAULT_LOWERING)
  return out


def build(section: str, settings: Mapping[str, Any],
          backend: str | None = None, **overrides):
  """The module of config.model.<section> from its settings, its
  conv_lowering resolved for `backend` (default: JAX's default backend)."""
  kwargs = {**_settings(section, settings), **overrides}
  if 'conv_lowering' in kwargs:
    kwargs['conv_lowering'] = conv_lowering.resolve(kwargs['conv_lowering'],
                                                    backend)
  return NETWORKS[section](**kwargs)


def network_config(section: str, settings: Mapping[str, Any]) -> dict:
  """Every attribute of the module `build` makes from `settings`, with the
  conv_lowering the config names (portable: 'auto' stays 'auto'); what
  checkpoints and exports record."""
  out = module_config(build(section, settings))
  if 'conv_lowering' in out:
    out['conv_lowering'] = _settings(section, settings)['conv_lowering']
  return out


@dataclasses.dataclass(frozen=True, eq=False)
class Networks:
  """The flax modules of one run (no parameters)."""
  generator: spade.SPADEGenerator
  frame_d: patchgan.MultiScalePatchGAN
  temporal_d: temporal.MultiScaleTemporalDiscriminator
  syncnet: syncnet.SyncNet
  ds2: deepspeech2.DeepSpeech2
  eye: eye.EyeLandmarkNet
  perceptual: vgg.VGG
  perceptual_layer_weights: tuple[float, ...]


def perceptual_config(config: ml_collections.ConfigDict
                      ) -> ml_collections.ConfigDict:
  """vgg.default_config() updated by config.model.perceptual."""
  pcfg = vgg.default_config()
  pcfg.update(dict(config.model.perceptual))
  return pcfg


def load_perceptual_vars(config: ml_collections.ConfigDict) -> dict[str, Any]:
  """The frozen perceptual network's pretrained variables."""
  return vgg.load_perceptual_network(perceptual_config(config))[1]


def create_networks(config: ml_collections.ConfigDict) -> Networks:
  """Builds every module from `config.model` (`build`, see NETWORKS).

  `config.compute_dtype` is the compute dtype of the generator, the frame
  and temporal discriminators (unless their own section sets one) and the
  perceptual VGG.
  """
  m = config.model
  pcfg = perceptual_config(config)
  dtype = config.get('compute_dtype', 'float32')
  with_dtype = lambda section: build(section, {'dtype': dtype, **m[section]})
  return Networks(
      generator=with_dtype('generator'),
      frame_d=with_dtype('frame_d'),
      temporal_d=with_dtype('temporal_d'),
      syncnet=build('syncnet', m.syncnet),
      ds2=build('ds2', m.ds2),
      eye=build('eye', m.eye),
      perceptual=vgg.create_model(pcfg, dtype),
      perceptual_layer_weights=tuple(pcfg.layer_weights),
  )


def _takes_update_stats(module) -> bool:
  return 'update_stats' in inspect.signature(module.__call__).parameters


def apply_net(module, variables, *args, update_stats: bool = False):
  """Applies `module`; returns (outputs, non-'params' collections after).

  Spectral-norm modules keep power-iteration vectors in 'batch_stats'; they
  advance only when `update_stats` is True (the networks' own update step).
  """
  extra = [k for k in variables if k != 'params']
  if extra and _takes_update_stats(module):
    out, mutated = module.apply(variables, *args, update_stats=update_stats,
                                mutable=extra)
    return out, dict(mutated)
  kwargs = {'update_stats': False} if _takes_update_stats(module) else {}
  return module.apply(variables, *args, **kwargs), {
      k: variables[k] for k in extra}


def sync_window(num_frames: int) -> tuple[int, int]:
  """(first frame, centre frame) of the 5-frame SyncNet window in T frames."""
  centre = num_frames // 2
  return max(0, centre - syncnet.NUM_FRAMES // 2), centre


def encode_audio(encoder, encoder_vars, windows: jax.Array) -> jax.Array:
  """The frozen audio encoder's features of every frame of each window.

  Args:
    windows: [B, T, S, F] float32 audio windows (MFCC or log-mel), one
      window of T frames per item.

  Returns:
    float32 [B, T, D], no gradient.
  """
  feats, _ = encoder.apply(encoder_vars, windows, train=False)
  return lax.stop_gradient(feats)


def centre_features(encoder, encoder_vars, windows: jax.Array) -> jax.Array:
  """Features of each frame from the centre of its own window, as inference
  feeds the generator: windows [C, W, S, F] -> float32 [C, D]."""
  return encode_audio(encoder, encoder_vars, windows)[:, windows.shape[1] // 2]


def render_frames(generator, g_vars, reference: jax.Array, feats: jax.Array,
                  update_stats: bool = False):
  """Generates one frame per feature vector, one SPADE call per frame.

  Args:
    reference: [B, H, W, 3] float32 in [-1, 1].
    feats: [B, T, D] float32 audio features, one vector per frame.

  Returns:
    (frames [B, T, H, W, 3] float32 in [-1, 1], generator collections
     after the call).
  """
  b, t = feats.shape[:2]
  h, w = reference.shape[1:3]
  ref = jnp.broadcast_to(reference[:, None], (b, t, h, w, 3))
  out, collections = apply_net(
      generator, g_vars, ref.reshape(b * t, h, w, 3),
      feats.reshape(b * t, -1), update_stats=update_stats)
  return out.reshape(b, t, h, w, 3), collections


def generate_frames(nets: Networks, g_vars, ds2_vars, reference, windows,
                    update_stats: bool = False):
  """Every frame of a window: audio encoder, then the generator per frame.

  Args:
    reference: [B, H, W, 3] float32 in [-1, 1].
    windows: [B, T, S, F] float32 audio windows (one per item).

  Returns:
    (frames [B, T, H, W, 3] float32 in [-1, 1], audio features [B, T, D],
     generator collections after the call).
  """
  feats = encode_audio(nets.ds2, ds2_vars, windows)
  frames, collections = render_frames(nets.generator, g_vars, reference,
                                      feats, update_stats)
  return frames, feats, collections
