"""Pretraining on GRID: SyncNet with the contrastive loss, genuine vs time-shifted pairs (§3.2.3).

  python -m a2v_jax.main --config=configs/syncnet_grid.py --workdir=runs/syncnet

The main configs load the result frozen: --config.pretrained.syncnet_ckpt=runs/syncnet/checkpoints
"""

from configs import pretraining


def get_config(arg=None):
  """arg: None or 'runlocal'."""
  return pretraining.get_config('syncnet', 'grid', arg)
