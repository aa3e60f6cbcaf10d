"""The trained models shipped inside the package, found by name.

`grid_s1`, the default of `a2v_jax.generate` and `TalkingHead.pretrained()`,
is the generator and audio encoder of `configs/grid_s1.py`, trained on real
speech and faces (500 utterances of GRID speaker s1, CC BY 4.0; see
MODEL_CARD.md in its folder for what it is and is not, and its numbers).
"""
from __future__ import annotations

import os

DEFAULT_MODEL = "grid_s1"
_ROOT = os.path.dirname(os.path.abspath(__file__))


class ShippedModelError(ValueError):
  """A shipped model name that is not there."""


def available() -> list[str]:
  """Names of the shipped models (folders holding an export)."""
  return sorted(name for name in os.listdir(_ROOT)
                if os.path.isdir(os.path.join(_ROOT, name, "metadata")))


def model_dir(name: str = DEFAULT_MODEL) -> str:
  """The export directory of shipped model `name`."""
  path = os.path.join(_ROOT, name)
  if not os.path.isdir(os.path.join(path, "metadata")):
    have = ", ".join(available()) or "none"
    raise ShippedModelError(
        f"no shipped model {name!r} (shipped: {have}); pass --model=EXPORT_DIR"
        " written by python -m a2v_jax.export")
  return path
