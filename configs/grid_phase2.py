"""GRID, curriculum phase 2 (paper §4): adds the temporal and sync
discriminators, lower-half L1 reconstruction and the contrastive loss.

Starts from the phase-1 run's checkpoint (G, its EMA and the discriminators;
optimiser states and the schedule start afresh):

  python -m a2v_jax.main --config=configs/grid_phase2.py --workdir=runs/grid2 \
      --config.init_from=runs/grid1/checkpoints ...
"""

from configs import common
from configs import grid_phase1


def get_config(arg=None):
  """arg: None or 'runlocal'."""
  c = grid_phase1.get_config()
  c.curriculum.update(dict(start_phase=2, last_phase=2))
  c.init_from = 'runs/grid_phase1/checkpoints'
  return common.variant(c, arg)
