"""The embedded default: all three phases on the synthetic corpus, CPU-sized.

  python -m a2v_jax.main --config=configs/synthetic.py --workdir=runs/demo

Needs nothing downloaded: the synthetic GRID-layout corpus is generated and
built on first use (beside the workdir), the helper networks (DeepSpeech2,
SyncNet, eye landmarks) are pretrained into <workdir>/pretrained/ or reused,
then the curriculum runs phase 1 -> 2 -> 3, advancing at fixed steps.
64x64 crops, narrow networks (2-scale frame discriminator, 1-scale temporal
one), the perceptual loss on the middle frame of each window through VGG16's
first two blocks, and 400 steps of batch 4 keep it CPU-sized (the README
gives its wall time).
`:runlocal` gives a seconds-long smoke run on in-memory noise clips.
"""

from configs import common


def get_config(arg=None):
  """arg: None or 'runlocal'."""
  c = common.get_config()
  c.dataset.update(dict(name='synthetic', crop=64, num_frames=5, split='train',
                        eval_split='val', synthetic_speakers=3,
                        synthetic_utterances=20))
  c.batch_size = 4
  c.num_train_steps = 400
  # The paper's schedule in 10-step epochs; 400 steps stay in its constant
  # part (a longer run, --config.num_train_steps=1500, reaches the decay).
  c.optimizer.steps_per_epoch = 10
  c.optimizer.constant_epochs = 100.0
  c.optimizer.decay_epochs = 50.0
  c.ema_decay = 0.99
  # output='residual': the untrained generator returns the reference, so
  # the CPU steps go to the mouth instead of to redrawing the face.
  # conv_lowering='stride1_2d': XLA:CPU runs the discriminators' 3-D and
  # strided 4x4 convs' gradients on slow generic loops; rewritten as stride-1
  # 2-D convs (same parameters) the step is several times faster
  # (a2v_jax/models/conv_lowering.py).
  # conv_lowering='xla' for the generator: its CPU-tuned forms (the 'auto'
  # default) pay off for wide generators, but this ngf-8 one trains a little
  # faster with XLA's convs and compiles sooner (benchmarks/train_step.py).
  c.model.generator = dict(ngf=8, num_upsampling_layers='normal',
                           spectral_norm=True, spade_hidden=32,
                           output='residual', conv_lowering='xla')
  c.model.frame_d = dict(ndf=16, n_layers=2, num_scales=2,
                         conv_lowering='stride1_2d')
  c.model.temporal_d = dict(ndf=8, n_layers=1, num_scales=1, audio_channels=8,
                            conv_lowering='stride1_2d')
  c.model.syncnet = dict(input_hw=(64, 64), width=0.125, embed_dim=128)
  c.model.ds2 = dict(conv_features=(16, 16), rnn_hidden=64, rnn_layers=2)
  c.model.eye = dict(input_size=32, features=(16, 32, 32), hidden=64)
  c.model.perceptual = dict(layers=('relu1_2', 'relu2_2'),
                            layer_weights=(0.5, 1.0))
  # The VGG is the costliest network here: the middle frame of each window.
  c.loss.perceptual_frames = 1
  c.curriculum.update(dict(start_phase=1, last_phase=3, advance='steps',
                           phase_start_steps=(40, 120)))
  c.pretrained.missing = 'pretrain'
  c.pretrain.update(dict(ds2_steps=300, syncnet_steps=400, eye_steps=200))
  c.log_every_steps = 5
  # Each save blocks about 0.6 s; the phase ends are saved as well.
  c.ckpt_every_steps = 100
  c.sample_every_steps = 100
  return common.variant(c, arg)


def notebook_config(small: bool, corpus_dir: str = ''):
  """The notebooks' demo config: this file's config, or its SMALL
  variant: `:runlocal`-sized networks on a 1-speaker x 2-utterance corpus at
  64 px, 3 steps (one per curriculum phase), for CI and quick looks.

  Args:
    small: the CI-sized variant.
    corpus_dir: where the synthetic corpus is made and built ('' = beside
      the workdir, as configs/synthetic.py does).

  Returns:
    An unlocked ml_collections.ConfigDict.
  """
  import jax  # pylint: disable=g-import-not-at-top  # not at flag parsing
  c = get_config('runlocal' if small else None)
  if small:
    c.dataset.update(dict(name='synthetic', crop=64, split='train',
                          eval_split='val', synthetic_speakers=1,
                          synthetic_utterances=2))
    # One example per device: the smallest batch the data mesh accepts.
    c.batch_size = jax.device_count()
    c.num_train_steps = 3
    c.curriculum.phase_start_steps = (1, 2)
    c.sample_every_steps = 3
    c.ckpt_every_steps = 3
    c.sample_clip_frames = 6
    c.eval_num_clips = 1
    c.pretrain.update(dict(batch_size=jax.device_count(), ds2_steps=1,
                           syncnet_steps=1, eye_steps=1))
  c.dataset.corpus_dir = corpus_dir
  return c
