"""Pretraining on GRID: the LipNet lip reader of the WER evaluator (Assael et al. 2016).

CTC on the transcripts of the training speakers' whole utterances (75 frames),
from mouth crops of the aligned frames (the dataset's landmarks give one box
per clip); LipNet's sizes: 50x100 crops, STCNN 32/64/96, 2 x Bi-GRU 256.

  python -m a2v_jax.pretrain --config=configs/lipnet_grid.py --workdir=runs/lipnet
  python -m a2v_jax.evaluate --model=EXPORT --lipnet=runs/lipnet/checkpoints ...
"""

from configs import common


def get_config(arg=None):
  """arg: None or 'runlocal'."""
  c = common.get_config()
  c.task = 'lipnet'
  c.dataset.update(dict(name='grid', crop=128, split='train'))
  c.batch_size = 48
  c.num_train_steps = 30000
  c.pretrain.lr = 1e-4  # LipNet's Adam learning rate
  c.pretrain.num_frames = 75
  c.log_every_steps = 100
  c.ckpt_every_steps = 2000
  if arg == 'runlocal':
    common.apply_runlocal(c)
    c.num_train_steps = 3
    c.pretrain.lipnet = dict(conv_features=(4, 4, 4), gru_hidden=8,
                             gru_layers=1, dropout_rate=0.5,
                             gru_dropout_rate=0.5, mouth_hw=(16, 32))
  elif arg:
    raise ValueError(f'unknown config variant {arg!r}; valid: runlocal')
  return c
