"""GRID, curriculum phase 3 (paper §4): adds the blink loss; starts from the
phase-2 run's checkpoint (--config.init_from=runs/grid2/checkpoints)."""

from configs import common
from configs import grid_phase2


def get_config(arg=None):
  """arg: None or 'runlocal'."""
  c = grid_phase2.get_config()
  c.curriculum.update(dict(start_phase=3, last_phase=3))
  c.init_from = 'runs/grid_phase2/checkpoints'
  return common.variant(c, arg)
