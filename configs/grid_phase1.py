"""GRID, curriculum phase 1 (paper §4): frame adversarial + feature matching
+ perceptual, at 128x128 with the paper's optimiser and schedule (§6.1).

  python -m a2v_jax.main --config=configs/grid_phase1.py --workdir=runs/grid1 \
      --config.dataset.data_dir=DIR \
      --config.pretrained.ds2_ckpt=runs/ds2/checkpoints \
      --config.pretrained.syncnet_ckpt=runs/syncnet/checkpoints \
      --config.pretrained.eye_ckpt=runs/eye/checkpoints

The phase advances to 2 inside this run only if last_phase is raised; the
usual path is to run grid_phase2.py from this run's checkpoint.
"""

from configs import common


def get_config(arg=None):
  """arg: None or 'runlocal'."""
  c = common.get_config()
  c.dataset.update(dict(name='grid', crop=128, num_frames=5))
  c.batch_size = 16
  c.curriculum.update(dict(start_phase=1, last_phase=1))
  # Frozen helper networks are required (pretrain them with
  # ds2_ctc_grid.py, syncnet_grid.py, eye_grid.py); the DS2 and eye nets are
  # used from phase 1 on (audio features) / phase 3 (blink).
  c.pretrained.missing = 'error'
  return common.variant(c, arg)
