"""Pretraining on GRID: SyncNet with the contrastive loss, genuine vs time-shifted pairs (§3.2.3).

  python -m a2v_jax.main --config=configs/syncnet_grid.py --workdir=runs/syncnet

The main configs load the result frozen: --config.pretrained.syncnet_ckpt=runs/syncnet/checkpoints
"""

from configs import common


def get_config(arg=None):
  """arg: None or 'runlocal'."""
  c = common.get_config()
  c.task = 'syncnet'
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
