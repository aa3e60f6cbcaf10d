"""What the config files share: the base config and the `:runlocal` variant.

Every config starts from `get_config()`, the library's base config
(a2v_jax/base_config.py: every key any run may set); start-up validation
rejects any other key, so a typo in a config file fails at once with the
valid names.
"""

from typing import Callable

import ml_collections

from a2v_jax import base_config

# Tiny discriminators for :runlocal smoke runs (module attributes).
# (Fewer scales/layers than the paper's: compile time dominates smoke runs.)
TINY_FRAME_D = dict(ndf=4, n_layers=1, num_scales=2)
TINY_TEMPORAL_D = dict(ndf=4, n_layers=1, num_scales=1, audio_channels=4)


def get_config(arg=None) -> ml_collections.ConfigDict:
  """The base config (GRID, 128x128, phase 1 only)."""
  del arg
  return base_config.get_config()


def apply_runlocal(c: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """Shrinks `c` to a seconds-long CPU smoke run on in-memory noise clips.

  Keeps the task and the curriculum's shape; every phase of the config still
  runs (phases advance at steps 2 and 3), with tiny networks at 32x32. No
  run is initialised from another; a helper network's pretraining runs 3
  steps.
  """
  c.num_train_steps = 4 if c.task == 'a2v' else 3
  c.batch_size = 8  # one example per simulated device in tests
  c.dataset.update(dict(name='random', crop=32, num_frames=5, split='train',
                        eval_split='test', random_examples=8,
                        random_utterance_frames=12))
  c.optimizer.steps_per_epoch = 2
  c.model.generator = dict(ngf=2, num_upsampling_layers='normal',
                           spectral_norm=True, spade_hidden=4, norm='instance')
  c.model.frame_d = dict(TINY_FRAME_D)
  c.model.temporal_d = dict(TINY_TEMPORAL_D)
  c.model.syncnet = dict(input_hw=(52, 52), width=0.05, embed_dim=16)
  c.model.ds2 = dict(conv_features=(4, 4), rnn_hidden=8, rnn_layers=1)
  c.model.eye = dict(input_size=16, features=(4,), hidden=8)
  c.model.perceptual = dict(layers=('relu1_1',), layer_weights=(1.0,))
  if c.curriculum.last_phase > c.curriculum.start_phase:
    c.curriculum.advance = 'steps'
    c.curriculum.phase_start_steps = (2, 3)
  c.init_from = ''
  c.pretrained.missing = 'random'
  c.pretrain.num_frames = 12
  c.pretrain.max_shift = 3
  if c.task == 'lipnet':
    c.pretrain.lipnet = dict(conv_features=(4, 4, 4), gru_hidden=8,
                             gru_layers=1, dropout_rate=0.5,
                             gru_dropout_rate=0.5, mouth_hw=(16, 32))
  c.log_every_steps = 1
  c.ckpt_every_steps = 2
  c.sample_every_steps = 4
  c.sample_clip_frames = 6
  c.eval_every_steps = 4
  return c


def on_lombard(c: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """A GRID config moved to the Lombard GRID builder (front view), its
  init_from pointing at the matching Lombard run."""
  c.dataset.name = 'lombard_grid'
  c.init_from = c.init_from.replace('grid_phase', 'lombard_phase')
  return c


def variant(c: ml_collections.ConfigDict, arg: str | None,
            **variants: Callable[[ml_collections.ConfigDict],
                                 ml_collections.ConfigDict]
            ) -> ml_collections.ConfigDict:
  """Config `c` in the variant `arg` of `--config=FILE:arg`.

  None is `c` itself and 'runlocal' its smoke-run size (`apply_runlocal`);
  `variants` names the file's other variants, each a function c -> c.

  Raises:
    ValueError: for any other name, listing the valid ones.
  """
  if not arg:
    return c
  if arg == 'runlocal':
    return apply_runlocal(c)
  if arg not in variants:
    raise ValueError(f'unknown config variant {arg!r}; valid: '
                     + ', '.join(['runlocal', *variants]))
  return variants[arg](c)
