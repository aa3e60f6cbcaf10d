"""One progress bar per stage of a run (tqdm, as the command-line tools use).

On a terminal a stage shows one bar with its rate and ETA, and the loop's
numbers (losses, phase) ride on the bar; where stderr is not a terminal (a
log file, CI) there is no bar and the loop logs its progress lines instead.
"""

from __future__ import annotations

import sys

import tqdm


def interactive() -> bool:
  """Whether stderr is a terminal (bars) or a file (log lines)."""
  return sys.stderr.isatty()


def stage_bar(desc: str, total: int, initial: int = 0,
              unit: str = 'step') -> tqdm.tqdm:
  """A stage's bar: steps initial..total; disabled off a terminal."""
  return tqdm.tqdm(total=total, initial=initial, desc=desc, unit=unit,
                   dynamic_ncols=True, disable=not interactive())
