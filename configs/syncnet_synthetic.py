"""Pretraining on the synthetic corpus: SyncNet with the contrastive loss, genuine vs time-shifted pairs (§3.2.3).

The same settings that configs/synthetic.py uses when it pretrains this
helper itself (pretrained.missing='pretrain'), as a stand-alone run:

  python -m a2v_jax.main --config=configs/syncnet_synthetic.py --workdir=runs/syncnet_syn
"""

from configs import pretraining


def get_config(arg=None):
  """arg: None or 'runlocal'."""
  return pretraining.get_config('syncnet', 'synthetic', arg)
