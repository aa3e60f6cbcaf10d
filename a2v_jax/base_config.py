"""The base config: every key any run may set, with its default.

The config files (configs/*.py) start from `get_config()` and change values;
start-up validation (a2v_jax/config_validation.py) rejects any key that is
not here, so a typo in a config file fails at once with the valid names.

Counts carry their unit in the name (`log_every_steps`, `constant_epochs`).
The loss weights of each curriculum phase (paper §4) are data in
`curriculum.weights` (a2v_jax/curriculum.py holds the paper's).
"""

import ml_collections

from a2v_jax import curriculum


def _run(c: ml_collections.ConfigDict) -> None:
  """The run: task, seed, steps, batch and device mesh."""
  # 'a2v' trains OneShotA2V; the others pretrain a helper network
  # (a2v_jax/pretrain.py).
  c.task = 'a2v'
  c.seed = 0
  # Total optimiser steps; -1 = (constant_epochs + decay_epochs) epochs.
  c.num_train_steps = -1
  # Examples per optimiser step, over all devices and hosts. Must equal
  # per_device_batch_size x jax.device_count() x grad_accum_steps (checked
  # at start-up); per_device_batch_size=-1 derives it from the other two.
  c.batch_size = 16
  c.per_device_batch_size = -1
  # Micro-batches per optimiser step: the step sums their G and D gradients
  # (lax.scan) before one update, for global batches larger than memory.
  c.grad_accum_steps = 1
  # Device mesh (a2v_jax/parallel.py): 'data' splits the batch; 'fsdp' also
  # shards the parameters and optimiser states of G and the Ds (for
  # generators too big for one device). data=-1: every device not in fsdp.
  c.mesh = ml_collections.ConfigDict(dict(data=-1, fsdp=1))


def _data(c: ml_collections.ConfigDict) -> None:
  """The training data and the optimiser."""
  c.dataset = ml_collections.ConfigDict(dict(
      name='grid',            # 'grid' | 'lombard_grid' | 'synthetic' | 'random'
      data_dir='',            # TFDS data_dir ('' = TFDS default)
      crop=128,               # 64 | 128 | 256 (builder config crop{N})
      split='train',
      eval_split='test',
      num_frames=5,           # T frames per training window
      audio_features='mfcc',  # 'mfcc' | 'log_mel'
      worker_count=0,         # grain worker processes
      # Appearance augmentation of the GAN's training windows (the same
      # draw for a window and its reference; data/pipeline.py
      # AugmentAppearance): mirror half the examples, colour jitter
      # strength (0 = off).
      flip=False,
      color_jitter=0.0,
      # 'synthetic': the corpus is generated + built on first use.
      corpus_dir='',          # '' = <workdir>/../synthetic_corpus
      synthetic_speakers=3,
      synthetic_utterances=20,
      synthetic_seed=0,
      # 'random': an in-memory corpus of noise clips (smoke tests only).
      random_examples=8,
      random_utterance_frames=12,
  ))

  c.optimizer = ml_collections.ConfigDict(dict(
      lr=0.002, b1=0.0, b2=0.9,  # paper §6.1, for G and every D
      eps=1e-8,                  # Adam's epsilon (optax's default)
      constant_epochs=50.0,
      decay_epochs=100.0,
      steps_per_epoch=-1,        # -1 = examples in split // batch_size
  ))
  c.ema_decay = 0.999


def _objective(c: ml_collections.ConfigDict) -> None:
  """The loss terms, the curriculum of their weights, the compute dtype."""
  c.loss = ml_collections.ConfigDict(dict(
      gan_mode='hinge',            # 'hinge' | 'lsgan' | 'vanilla'
      contrastive_margin=1.0,
      # False (default): every term is computed every step and multiplied
      # by its weight. True: terms (and discriminator updates) whose weight
      # is 0 run under lax.cond(weight > 0) and cost nothing. Off by
      # default: with 8 simulated CPU devices, collectives inside the cond
      # branches intermittently hit XLA CPU's rendezvous timeout (abort);
      # and on XLA:CPU the cond branches run far slower than the same ops
      # inline (the synthetic demo's phase-3 step, every term on, about 3x).
      gate_inactive_terms=False,
      # Frames of each window the perceptual loss sees (evenly spaced);
      # 0 = all. The VGG dominates the cost of a small CPU run.
      perceptual_frames=0,
  ))

  c.curriculum = ml_collections.ConfigDict(dict(
      start_phase=1,
      last_phase=1,
      advance='steps',             # 'steps' | 'stable' | 'either'
      phase_start_steps=(0, 0),    # steps at which phases 2 and 3 start
      window_steps=200,            # moving-average window for 'stable'
      rel_tol=0.01,
      min_phase_steps=1000,
      weights=curriculum.paper_weights(),
  ))

  # Compute dtype of the generator, the frame and temporal discriminators
  # (their `dtype` attribute) and the perceptual VGG: 'float32', or
  # 'bfloat16' for mixed precision on GPU/TPU (parameters, optimiser states,
  # norm statistics and losses stay float32). The frozen helpers (DS2,
  # SyncNet, eye) run in float32.
  c.compute_dtype = 'float32'


def _networks(c: ml_collections.ConfigDict) -> None:
  """The networks, their pretrained helpers and helper pretraining."""
  # Module attributes passed to each network's constructor (a2v_jax/models).
  c.model = ml_collections.ConfigDict(dict(
      generator=dict(ngf=64, num_upsampling_layers='normal',
                     spectral_norm=True),
      frame_d=dict(),
      temporal_d=dict(),
      syncnet=dict(),
      ds2=dict(rnn_hidden=256, rnn_layers=3),
      eye=dict(),
      perceptual=dict(),
  ))

  # Frozen helper networks, each a checkpoint directory written by
  # a2v_jax/pretrain.py. missing: 'error' (stop at start-up), 'pretrain'
  # (train it into <workdir>/pretrained/<name> with the *_synthetic twin
  # settings, or reuse it) or 'random' (random init; smoke tests only).
  c.pretrained = ml_collections.ConfigDict(dict(
      ds2_ckpt='', syncnet_ckpt='', eye_ckpt='', missing='error',
      # A LipNet (configs/lipnet_grid.py) for the 'wer' evaluator only.
      lipnet_ckpt=''))
  # A checkpoint directory to initialise G, the EMA and the discriminators
  # from (phase 2 starts from phase 1). Ignored when the workdir already
  # has a checkpoint (then the run resumes).
  c.init_from = ''

  # Helper-network pretraining (task != 'a2v').
  c.pretrain = ml_collections.ConfigDict(dict(
      lr=1e-3,
      batch_size=16,
      # Steps of each helper when pretrained automatically
      # (pretrained.missing='pretrain').
      ds2_steps=1000, syncnet_steps=1000, eye_steps=500,
      num_frames=75,      # ds2_ctc: frames of each utterance (75 = 3 s)
      max_shift=6,        # syncnet: false pairs shift audio 2..this frames
      # syncnet: 'multiway' (pick the genuine audio among offsets
      # -max_shift..max_shift, Chung et al. 2019), 'multiway_clip' (that and
      # the own clip among the batch's) or 'contrastive' (the paper's
      # genuine-vs-shifted pairs); see pretrain._syncnet_loss.
      syncnet_objective='multiway',
      syncnet_temperature=0.1,
      eye_weight=1.0,
      # task 'lipnet' (the WER evaluator's lip reader): LipNet module
      # attributes (models/lipnet.py) and its mouth crop (height, width).
      lipnet=dict(conv_features=(32, 64, 96), gru_hidden=256, gru_layers=2,
                  dropout_rate=0.5, gru_dropout_rate=0.5, mouth_hw=(50, 100),
                  conv_lowering='auto'),
  ))


def _reporting(c: ml_collections.ConfigDict) -> None:
  """Compilation, logging, checkpoints, samples, evaluations, debugging."""
  # 0 compiles several times faster on CPU (benchmarks/train_step.py).
  c.xla_backend_optimization_level = -1

  c.log_every_steps = 50
  c.ckpt_every_steps = 1000
  c.sample_every_steps = 1000  # image grid + clip with audio
  c.sample_clip_frames = 25
  c.max_to_keep = 3
  # Also keep each phase's last checkpoint (the steps in
  # curriculum.phase_start_steps, when advance='steps'), for the ablation.
  c.ckpt_keep_phase_ends = True
  c.eval_every_steps = 5000
  # Evaluator names (a2v_jax/evaluation/evaluators.py), run every
  # eval_every_steps on the first eval_num_clips clips of eval_split.
  c.evals = ()
  c.eval_num_clips = 4

  c.debug = ml_collections.ConfigDict(dict(
      nan_term='',      # inject NaN into this loss term ...
      nan_at_step=-1,   # ... at this step (tests the NaN stop)
  ))


def get_config() -> ml_collections.ConfigDict:
  """The base config (GRID, 128x128, phase 1 only)."""
  c = ml_collections.ConfigDict()
  for section in (_run, _data, _objective, _networks, _reporting):
    section(c)
  return c
