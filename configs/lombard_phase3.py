"""Lombard GRID, curriculum phase 3: grid_phase3.py on the lombard_grid
builder (front view, 128x128)."""

from configs import common
from configs import grid_phase3


def get_config(arg=None):
  """arg: None or 'runlocal'."""
  return common.variant(common.on_lombard(grid_phase3.get_config()), arg)
