"""Prints a benchmark's table as Markdown (the scripts' --markdown flag), so
that a table in docs/ is what a script printed and can be regenerated."""

from typing import Sequence


def print_markdown(header: Sequence[str], rows: Sequence[Sequence[object]],
                   right: Sequence[bool] | None = None) -> None:
  """Prints `rows` under `header` as a Markdown table.

  Cells are printed with str(); format numbers before. `right` says which
  columns are right-aligned (default: every column but the first).
  """
  if right is None:
    right = [i > 0 for i in range(len(header))]
  print("| " + " | ".join(str(h) for h in header) + " |")
  print("|" + "|".join("---:" if r else "---" for r in right) + "|")
  for row in rows:
    print("| " + " | ".join(str(c).replace("|", "\\|") for c in row) + " |")
