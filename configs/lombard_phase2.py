"""Lombard GRID, curriculum phase 2: grid_phase2.py on the lombard_grid
builder (front view, 128x128)."""

from configs import common
from configs import grid_phase2


def get_config(arg=None):
  """arg: None or 'runlocal'."""
  c = grid_phase2.get_config()
  c.dataset.name = 'lombard_grid'
  if c.init_from:
    c.init_from = c.init_from.replace('grid_phase', 'lombard_phase')
  if arg == 'runlocal':
    common.apply_runlocal(c)
    c.init_from = ''
  elif arg:
    raise ValueError(f'unknown config variant {arg!r}; valid: runlocal')
  return c
