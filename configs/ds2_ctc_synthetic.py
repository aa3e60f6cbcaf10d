"""Pretraining on the synthetic corpus: DeepSpeech2 audio encoder with CTC on the GRID transcripts (§3.1.1).

The same settings that configs/synthetic.py uses when it pretrains this
helper itself (pretrained.missing='pretrain'), as a stand-alone run:

  python -m a2v_jax.main --config=configs/ds2_ctc_synthetic.py --workdir=runs/ds2_ctc_syn
"""

from a2v_jax import pretrain
from configs import common
from configs import synthetic


def get_config(arg=None):
  """arg: None or 'runlocal'."""
  c = pretrain.helper_config('ds2', synthetic.get_config())
  c.log_every_steps = 50
  c.ckpt_every_steps = 500
  if arg == 'runlocal':
    common.apply_runlocal(c)
    c.num_train_steps = 3
  elif arg:
    raise ValueError(f'unknown config variant {arg!r}; valid: runlocal')
  return c
