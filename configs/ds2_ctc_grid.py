"""Pretraining on GRID: DeepSpeech2 audio encoder with CTC on the GRID transcripts (§3.1.1).

  python -m a2v_jax.main --config=configs/ds2_ctc_grid.py --workdir=runs/ds2_ctc

The main configs load the result frozen: --config.pretrained.ds2_ckpt=runs/ds2_ctc/checkpoints
"""

from configs import common


def get_config(arg=None):
  """arg: None or 'runlocal'."""
  c = common.get_config()
  c.task = 'ds2_ctc'
  c.dataset.update(dict(name='grid', crop=128))
  c.batch_size = 32
  c.num_train_steps = 20000
  c.pretrain.lr = 1e-3
  c.log_every_steps = 100
  c.ckpt_every_steps = 2000
  if arg == 'runlocal':
    common.apply_runlocal(c)
    c.num_train_steps = 3
  elif arg:
    raise ValueError(f'unknown config variant {arg!r}; valid: runlocal')
  return c
