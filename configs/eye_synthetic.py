"""Pretraining on the synthetic corpus: EyeLandmarkNet regressing the stored dlib eye landmarks (blink loss, §4.1.6).

The same settings that configs/synthetic.py uses when it pretrains this
helper itself (pretrained.missing='pretrain'), as a stand-alone run:

  python -m a2v_jax.main --config=configs/eye_synthetic.py --workdir=runs/eye_syn
"""

from a2v_jax import pretrain
from configs import common
from configs import synthetic


def get_config(arg=None):
  """arg: None or 'runlocal'."""
  c = pretrain.helper_config('eye', synthetic.get_config())
  c.log_every_steps = 50
  c.ckpt_every_steps = 500
  if arg == 'runlocal':
    common.apply_runlocal(c)
    c.num_train_steps = 3
  elif arg:
    raise ValueError(f'unknown config variant {arg!r}; valid: runlocal')
  return c
