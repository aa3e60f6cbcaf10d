"""Pretraining on GRID: the LipNet lip reader of the WER evaluator (Assael et al. 2016).

CTC on the transcripts of the training speakers' whole utterances (75 frames),
from mouth crops of the aligned frames (the dataset's landmarks give one box
per clip); LipNet's sizes: 50x100 crops, STCNN 32/64/96, 2 x Bi-GRU 256.

  python -m a2v_jax.pretrain --config=configs/lipnet_grid.py --workdir=runs/lipnet
  python -m a2v_jax.evaluate --model=EXPORT --lipnet=runs/lipnet/checkpoints ...
"""

from configs import pretraining


def get_config(arg=None):
  """arg: None or 'runlocal'."""
  return pretraining.get_config('lipnet', 'grid', arg)
