"""Pretraining on GRID: EyeLandmarkNet regressing the stored dlib eye landmarks (blink loss, §4.1.6).

  python -m a2v_jax.main --config=configs/eye_grid.py --workdir=runs/eye

The main configs load the result frozen: --config.pretrained.eye_ckpt=runs/eye/checkpoints
"""

from configs import pretraining


def get_config(arg=None):
  """arg: None or 'runlocal'."""
  return pretraining.get_config('eye', 'grid', arg)
