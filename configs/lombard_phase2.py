"""Lombard GRID, curriculum phase 2: grid_phase2.py on the lombard_grid
builder (front view, 128x128)."""

from configs import common
from configs import grid_phase2


def get_config(arg=None):
  """arg: None or 'runlocal'."""
  return common.variant(common.on_lombard(grid_phase2.get_config()), arg)
