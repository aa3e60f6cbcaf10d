"""One progress bar per stage of a run (tqdm, as the command-line tools use).

On a terminal a stage shows one bar with its rate and ETA, and the loop's
numbers (losses, phase) ride on the bar; where stderr is not a terminal (a
log file, CI) there is no bar and the loop logs its progress lines instead.
"""

from __future__ import annotations

import os
import sys

import tqdm


def interactive() -> bool:
  """Whether stderr is a terminal (bars) or a file (log lines)."""
  return sys.stderr.isatty()


def _reports_a_width() -> bool:
  """Whether the terminal says how wide it is (a pty made by `script` or a
  CI runner can say 0 columns, where a dynamic bar draws nothing)."""
  try:
    return os.get_terminal_size(sys.stderr.fileno()).columns > 0
  except OSError:
    return False


def stage_bar(desc: str, total: int, initial: int = 0,
              unit: str = 'step') -> tqdm.tqdm:
  """A stage's bar: steps initial..total; disabled off a terminal."""
  width = (dict(dynamic_ncols=True) if _reports_a_width()
           else dict(ncols=100, nrows=30))
  return tqdm.tqdm(total=total, initial=initial, desc=desc, unit=unit,
                   disable=not interactive(), **width)
