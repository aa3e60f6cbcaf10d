"""Pretraining on the synthetic corpus: the LipNet lip reader of the WER evaluator.

The synthetic twin of configs/lipnet_grid.py: the demo's corpus (64x64
crops, shared beside the workdir like the demo's helpers), narrower LipNet
on 24x48 mouth crops, sized for a CPU.

  python -m a2v_jax.pretrain --config=configs/lipnet_synthetic.py --workdir=runs/lipnet_syn
  python -m a2v_jax.evaluate --model=EXPORT --dataset=synthetic \
      --data_dir=runs/synthetic_corpus --lipnet=runs/lipnet_syn/checkpoints ...
"""

from configs import common
from configs import synthetic


def get_config(arg=None):
  """arg: None or 'runlocal'."""
  c = synthetic.get_config()
  c.task = 'lipnet'
  c.init_from = ''
  c.batch_size = 8
  c.num_train_steps = 1500
  c.pretrain.lr = 1e-3
  c.pretrain.num_frames = 75
  c.pretrain.lipnet = dict(conv_features=(16, 32, 48), gru_hidden=96,
                           gru_layers=2, dropout_rate=0.2,
                           gru_dropout_rate=0.2, mouth_hw=(24, 48))
  c.log_every_steps = 25
  c.ckpt_every_steps = 250
  if arg == 'runlocal':
    common.apply_runlocal(c)
    c.num_train_steps = 3
    c.pretrain.lipnet = dict(conv_features=(4, 4, 4), gru_hidden=8,
                             gru_layers=1, dropout_rate=0.5,
                             gru_dropout_rate=0.5, mouth_hw=(16, 32))
  elif arg:
    raise ValueError(f'unknown config variant {arg!r}; valid: runlocal')
  return c
