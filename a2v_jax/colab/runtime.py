"""The notebook's surroundings: Colab or not, SMALL or not, which accelerator.

Also the one place that shows objects (IPython's display, or a log line
outside a kernel) and routes a2v_jax's progress lines into the notebook.
"""
from __future__ import annotations

import dataclasses
import glob
import logging as pylogging
import os
import shutil
import sys
from typing import Any

from absl import logging

SMALL_ENV = "A2V_NOTEBOOK_SMALL"
WORKDIR_ENV = "A2V_NOTEBOOK_WORKDIR"
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("", "0", "false", "no", "off")


class NotebookError(ValueError):
  """A notebook input cannot be used; the message names the fix."""


def in_colab() -> bool:
  """True inside a Google Colab runtime."""
  if "google.colab" in sys.modules:
    return True
  try:
    import google.colab  # pylint: disable=g-import-not-at-top,unused-import
  except ImportError:
    return False
  return True


def small_mode(default: bool = False) -> bool:
  """The notebooks' SMALL setting, from $A2V_NOTEBOOK_SMALL (CI sets it to 1).

  Raises:
    NotebookError: the variable holds something other than a yes/no value.
  """
  value = os.environ.get(SMALL_ENV)
  if value is None:
    return default
  value = value.strip().lower()
  if value in _TRUE:
    return True
  if value in _FALSE:
    return False
  raise NotebookError(f"{SMALL_ENV}={value!r} is not a yes/no value; set it "
                      "to 1 (small, CI-sized run) or 0 (full run)")


def work_dir(name: str = "a2v_notebook") -> str:
  """The folder a notebook writes into: $A2V_NOTEBOOK_WORKDIR, else `name`
  under the current directory (Colab: /content/<name>). Created if needed."""
  path = os.path.abspath(os.environ.get(WORKDIR_ENV) or name)
  os.makedirs(path, exist_ok=True)
  return path


@dataclasses.dataclass(frozen=True)
class Accelerator:
  """What JAX computes on.

  Attributes:
    platform: 'gpu', 'tpu' or 'cpu' (jax.default_backend()).
    count: number of devices of that platform.
    kind: device kind, e.g. 'NVIDIA A100-SXM4-40GB', 'TPU v2', 'cpu'.
    hint: a fix when hardware is attached that JAX does not use, else ''.
  """
  platform: str
  count: int
  kind: str
  hint: str = ""

  def __str__(self) -> str:
    text = f"{self.platform}: {self.count} x {self.kind}"
    return f"{text} ({self.hint})" if self.hint else text


def _attached_hardware() -> str:
  """'gpu' / 'tpu' when the machine has one attached, '' otherwise."""
  if shutil.which("nvidia-smi") or os.path.exists("/dev/nvidia0"):
    return "gpu"
  if (os.environ.get("COLAB_TPU_ADDR") or os.environ.get("TPU_NAME")
      or glob.glob("/dev/accel*") or glob.glob("/dev/vfio/[0-9]*")):
    return "tpu"
  return ""


def detect_accelerator() -> Accelerator:
  """JAX's default backend and its devices; JAX places every array and
  computation there by itself, so the notebooks need no device code."""
  import jax  # pylint: disable=g-import-not-at-top
  platform = jax.default_backend()
  devices = jax.devices()
  hint = ""
  attached = _attached_hardware()
  if platform == "cpu" and attached == "gpu":
    hint = ("a GPU is attached but JAX uses the CPU: run "
            "`pip install -U \"jax[cuda12]\"` and restart the runtime")
  elif platform == "cpu" and attached == "tpu":
    hint = ("a TPU is attached but JAX uses the CPU: run "
            "`pip install -U \"jax[tpu]\"` and restart the runtime")
  return Accelerator(platform=platform, count=len(devices),
                     kind=str(devices[0].device_kind), hint=hint)


def describe_accelerator() -> Accelerator:
  """Logs and returns `detect_accelerator()` (a warning with the fix when
  attached hardware goes unused)."""
  acc = detect_accelerator()
  if acc.hint:
    logging.warning("Accelerator: %s", acc)
  else:
    logging.info("Accelerator: %s", acc)
  return acc


class _ProjectRecords(pylogging.Filter):
  """Passes a2v_jax's own INFO lines and every warning (not orbax's INFO)."""

  def filter(self, record: pylogging.LogRecord) -> bool:
    return (record.levelno >= pylogging.WARNING
            or f"{os.sep}a2v_jax{os.sep}" in record.pathname)


def show_progress_logs(stream=None) -> None:
  """Prints a2v_jax's progress lines (training steps, pretraining, export)
  in the notebook, without the INFO chatter of the libraries underneath."""
  logger = pylogging.getLogger("absl")
  if any(isinstance(f, _ProjectRecords) for h in logger.handlers
         for f in h.filters):
    return
  handler = pylogging.StreamHandler(stream or sys.stdout)
  handler.addFilter(_ProjectRecords())
  handler.setFormatter(pylogging.Formatter("%(message)s"))
  logger.addHandler(handler)
  logging.set_verbosity(logging.INFO)
  logger.propagate = False


def display(obj: Any) -> None:
  """IPython's display() when running in a kernel, else a log line."""
  try:
    from IPython import get_ipython  # pylint: disable=g-import-not-at-top
    from IPython.display import display as ipython_display  # pylint: disable=g-import-not-at-top,line-too-long
  except ImportError:
    get_ipython = lambda: None
  if get_ipython() is None:
    logging.info("(not in a notebook; not displayed: %s)", type(obj).__name__)
    return
  ipython_display(obj)
