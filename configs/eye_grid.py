"""Pretraining on GRID: EyeLandmarkNet regressing the stored dlib eye landmarks (blink loss, §4.1.6).

  python -m a2v_jax.main --config=configs/eye_grid.py --workdir=runs/eye

The main configs load the result frozen: --config.pretrained.eye_ckpt=runs/eye/checkpoints
"""

from configs import common


def get_config(arg=None):
  """arg: None or 'runlocal'."""
  c = common.get_config()
  c.task = 'eye'
  c.dataset.update(dict(name='grid', crop=128))
  c.batch_size = 32
  c.num_train_steps = 20000
  c.pretrain.lr = 1e-3
  c.dataset.num_frames = 2  # frames per clip in a batch (B*2 faces)
  c.log_every_steps = 100
  c.ckpt_every_steps = 2000
  if arg == 'runlocal':
    common.apply_runlocal(c)
    c.num_train_steps = 3
  elif arg:
    raise ValueError(f'unknown config variant {arg!r}; valid: runlocal')
  return c
