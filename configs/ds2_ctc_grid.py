"""Pretraining on GRID: DeepSpeech2 audio encoder with CTC on the GRID transcripts (§3.1.1).

  python -m a2v_jax.main --config=configs/ds2_ctc_grid.py --workdir=runs/ds2_ctc

The main configs load the result frozen: --config.pretrained.ds2_ckpt=runs/ds2_ctc/checkpoints
"""

from configs import pretraining


def get_config(arg=None):
  """arg: None or 'runlocal'."""
  return pretraining.get_config('ds2_ctc', 'grid', arg)
