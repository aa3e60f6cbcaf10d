"""Start-up checks of every config name and value.

A misspelt key or an unknown choice fails before anything is built or read,
with one line that names the key and lists what is valid. The reference for
names is the base config, a2v_jax/base_config.py; network sections are checked
against the attributes of the flax module they configure.
"""

from __future__ import annotations

import importlib
from typing import Any, Iterable

import ml_collections

from a2v_jax import base_config
from a2v_jax import curriculum
from a2v_jax import losses
from a2v_jax import networks
from a2v_jax.audio import features
from a2v_jax.models import conv_lowering
from a2v_jax.models import layers

TASKS = ('a2v', 'ds2_ctc', 'syncnet', 'eye', 'lipnet')
DATASETS = ('grid', 'lombard_grid', 'synthetic', 'random')
CROPS = (64, 128, 256)
MISSING_PRETRAINED = ('error', 'pretrain', 'random')

# config.model.perceptual holds vgg.default_config() keys (arch, layers,
# layer_weights, weights_path), not module attributes.
_PERCEPTUAL_KEYS = ('arch', 'layers', 'layer_weights', 'weights_path')


class ConfigError(ValueError):
  """A config key or value is invalid."""


def _choices(values: Iterable[Any]) -> str:
  return ', '.join(repr(v) for v in values)


def _check_choice(path: str, value: Any, valid: Iterable[Any]) -> None:
  valid = tuple(valid)
  if value not in valid:
    raise ConfigError(
        f'config.{path}={value!r} is invalid; valid choices: {_choices(valid)}')


def _check_keys(path: str, cfg: Any, reference: Any) -> None:
  """Every key of cfg must be in reference, recursively; types must agree."""
  for key in cfg.keys():
    full = f'{path}{key}'
    if key not in reference:
      raise ConfigError(
          f'config.{full} is not a known setting; valid names under '
          f'config.{path or ""}: {_choices(sorted(reference.keys()))}')
    value, ref = cfg[key], reference[key]
    if full in ('model', 'curriculum.weights'):
      continue  # checked against the networks and the loss terms below
    if isinstance(ref, (ml_collections.ConfigDict, dict)):
      if not isinstance(value, (ml_collections.ConfigDict, dict)):
        raise ConfigError(f'config.{full} must be a group of settings, got '
                          f'{type(value).__name__}')
      _check_keys(f'{full}.', value, ref)
    elif ref is not None and value is not None:
      ok = isinstance(value, type(ref)) or (
          isinstance(ref, float) and isinstance(value, int)) or (
              isinstance(ref, (tuple, list)) and isinstance(value, (tuple, list)))
      if isinstance(ref, int) and isinstance(value, bool) != isinstance(ref, bool):
        ok = False
      if not ok:
        raise ConfigError(
            f'config.{full}={value!r} has type {type(value).__name__}; '
            f'expected {type(ref).__name__}')


def _check_models(config: Any) -> None:
  _check_keys('model.', {k: None for k in config.model.keys()},
              {k: None for k in (*networks.NETWORKS, 'perceptual')})
  needed = ('ds2', 'syncnet', 'eye') if config.task != 'a2v' else (
      *networks.NETWORKS, 'perceptual')
  for key in config.model.keys():
    if key not in needed:
      continue
    valid = (_PERCEPTUAL_KEYS if key == 'perceptual'
             else networks.module_fields(key))
    for name in config.model[key].keys():
      if name not in valid:
        raise ConfigError(
            f'config.model.{key}.{name} is not a setting of that network; '
            f'valid names: {_choices(valid)}')
    if 'conv_lowering' in config.model[key]:
      _check_choice(f'model.{key}.conv_lowering',
                    config.model[key].conv_lowering,
                    conv_lowering.CONFIG_CHOICES)


def _check_curriculum(c: Any) -> None:
  for phase in c.weights.keys():
    _check_choice(f'curriculum.weights (phase name {phase!r})', phase,
                  curriculum.PHASE_NAMES)
    for term, weight in c.weights[phase].items():
      _check_choice(f'curriculum.weights.{phase} (term {term!r})', term,
                    curriculum.LOSS_TERMS)
      if not weight >= 0:
        raise ConfigError(
            f'config.curriculum.weights.{phase}.{term}={weight} must be >= 0')
  _check_choice('curriculum.advance', c.advance, curriculum.ADVANCE_MODES)
  if not 1 <= c.start_phase <= c.last_phase <= len(curriculum.PHASE_NAMES):
    raise ConfigError(
        f'config.curriculum needs 1 <= start_phase <= last_phase <= 3, got '
        f'start_phase={c.start_phase}, last_phase={c.last_phase}')
  if c.advance in ('steps', 'either'):
    starts = list(c.phase_start_steps)[:c.last_phase - 1]
    needed = c.last_phase - 1
    if len(starts) < needed or starts != sorted(starts):
      raise ConfigError(
          f'config.curriculum.phase_start_steps={tuple(c.phase_start_steps)} '
          f'must give {needed} increasing steps (when phases 2..3 start)')


def validate_config(config: Any) -> None:
  """Checks every name and value of a training config.

  Raises:
    ConfigError: with one line naming the bad key and the valid choices.
  """
  reference = base_config.get_config()
  _check_keys('', config, reference)
  _check_choice('task', config.task, TASKS)
  d = config.dataset
  _check_choice('dataset.name', d.name, DATASETS)
  if d.name != 'random':
    _check_choice('dataset.crop', d.crop, CROPS)
  _check_choice('dataset.audio_features', d.audio_features,
                features.AUDIO_FEATURES)
  _check_choice('loss.gan_mode', config.loss.gan_mode, losses.GAN_MODES)
  _check_choice('compute_dtype', config.compute_dtype, layers.COMPUTE_DTYPES)
  _check_choice('pretrain.syncnet_objective',
                config.pretrain.syncnet_objective,
                ('multiway', 'multiway_clip', 'contrastive'))
  _check_choice('pretrained.missing', config.pretrained.missing,
                MISSING_PRETRAINED)
  for key in ('batch_size', 'log_every_steps', 'ckpt_every_steps',
              'sample_every_steps', 'max_to_keep', 'eval_every_steps'):
    if config[key] < 1:
      raise ConfigError(f'config.{key}={config[key]} must be >= 1')
  if config.grad_accum_steps < 1 or config.batch_size % config.grad_accum_steps:
    raise ConfigError(
        f'config.grad_accum_steps={config.grad_accum_steps} must be >= 1 and '
        f'divide config.batch_size={config.batch_size}')
  if config.per_device_batch_size < 1 and config.per_device_batch_size != -1:
    raise ConfigError(
        f'config.per_device_batch_size={config.per_device_batch_size} must be '
        f'>= 1, or -1 for batch_size / (devices x grad_accum_steps)')
  if config.mesh.fsdp < 1 or (config.mesh.data < 1 and config.mesh.data != -1):
    raise ConfigError(
        f'config.mesh.data={config.mesh.data}, mesh.fsdp={config.mesh.fsdp}: '
        f'fsdp must be >= 1 and data >= 1 or -1 (all remaining devices)')
  if config.num_train_steps == 0 or config.num_train_steps < -1:
    raise ConfigError(
        f'config.num_train_steps={config.num_train_steps} must be >= 1, or -1 '
        f'for (constant_epochs + decay_epochs) epochs')
  if not 0.0 <= config.ema_decay < 1.0:
    raise ConfigError(f'config.ema_decay={config.ema_decay} must be in [0, 1)')
  _check_curriculum(config.curriculum)
  if config.task == 'a2v' and config.curriculum.last_phase >= 2 and (
      d.num_frames < 5):
    raise ConfigError(
        f'config.dataset.num_frames={d.num_frames}: phases 2-3 feed 5 frames '
        f'to SyncNet; use num_frames >= 5')
  if config.debug.nan_term:
    _check_choice('debug.nan_term', config.debug.nan_term, curriculum.LOSS_TERMS)
  if config.evals:
    evaluators = importlib.import_module('a2v_jax.evaluation.evaluators')
    for name in config.evals:
      _check_choice('evals', name, tuple(evaluators.EVALUATORS))
  _check_models(config)
  ds2_norm = config.model.ds2.get('normalize_input', 'global')
  if ds2_norm not in (True, False):
    from a2v_jax.models import deepspeech2  # pylint: disable=g-import-not-at-top
    _check_choice('model.ds2.normalize_input', ds2_norm,
                  deepspeech2.INPUT_NORMALIZATIONS)
  if d.audio_features != 'mfcc' and ds2_norm == 'global':
    raise ConfigError(
        f"config.model.ds2.normalize_input='global' holds MFCC statistics but "
        f"dataset.audio_features={d.audio_features!r}; set "
        f"model.ds2.normalize_input='window'")
