"""Models for the notebooks: exports from a path, archive or URL, and the
synthetic demo (its config, helper pretraining, training and export).
"""
from __future__ import annotations

import os
import shutil
import tarfile
import tempfile
from typing import Sequence
import urllib.parse
import urllib.request
import zipfile

from a2v_jax.colab import runtime

_ARCHIVES = (".zip", ".tar.gz", ".tgz", ".tar")


def _is_url(source: str) -> bool:
  return urllib.parse.urlparse(source).scheme in ("http", "https")


def _archive_kind(name: str) -> str:
  name = name.lower()
  return next((a for a in _ARCHIVES if name.endswith(a)), "")


def _download(url: str, out_dir: str) -> str:
  name = os.path.basename(urllib.parse.urlparse(url).path) or "download"
  path = os.path.join(out_dir, name)
  os.makedirs(out_dir, exist_ok=True)
  fd, tmp = tempfile.mkstemp(prefix=".partial-", dir=out_dir)
  try:
    with os.fdopen(fd, "wb") as f, urllib.request.urlopen(url) as r:
      shutil.copyfileobj(r, f)
    os.replace(tmp, path)
  except OSError as e:
    raise runtime.NotebookError(
        f"cannot download {url} ({e}); check the URL and the "
        "runtime's internet access") from None
  finally:
    if os.path.exists(tmp):
      os.remove(tmp)
  return path


def _extract(archive: str, out_dir: str) -> str:
  """Unpacks a .zip / .tar(.gz) into a fresh out_dir, refusing unsafe paths."""
  staging = tempfile.mkdtemp(prefix=".partial-extract-",
                             dir=os.path.dirname(out_dir) or ".")
  try:
    if _archive_kind(archive) == ".zip":
      with zipfile.ZipFile(archive) as z:
        for member in z.namelist():
          target = os.path.realpath(os.path.join(staging, member))
          if not target.startswith(os.path.realpath(staging) + os.sep):
            raise runtime.NotebookError(
                f"{archive} holds an unsafe path {member!r}; "
                "use an archive made by archive_export")
        z.extractall(staging)
    else:
      with tarfile.open(archive) as t:
        t.extractall(staging, filter="data")
    if os.path.exists(out_dir):
      shutil.rmtree(out_dir)
    os.replace(staging, out_dir)
  except (zipfile.BadZipFile, tarfile.TarError, OSError) as e:
    raise runtime.NotebookError(
        f"cannot unpack {archive} ({e}); pass a .zip or "
        ".tar.gz of an export folder") from None
  finally:
    shutil.rmtree(staging, ignore_errors=True)
  return out_dir


def _find_export(root: str) -> str:
  """The folder under `root` that holds an export's metadata."""
  for folder, dirs, _ in os.walk(root):
    if "metadata" in dirs and "params" in dirs:
      return folder
  raise runtime.NotebookError(
      f"no a2v_jax export found in {root}; pass the folder "
      "(or an archive of it) written by a2v_jax.export")


def fetch_export(source: str, out_dir: str) -> str:
  """An export folder from a path, an archive, or an http(s) URL.

  Args:
    source: an export folder; a .zip / .tar.gz / .tgz / .tar of one (as
      `archive_export` writes); or an http(s) URL of such an archive.
    out_dir: where a downloaded or unpacked export goes.

  Returns:
    The export folder (checked with a2v_jax.export.read_metadata).

  Raises:
    runtime.NotebookError / export.ExportError: a one-line reason and the fix.
  """
  from a2v_jax import export  # pylint: disable=g-import-not-at-top
  source = os.path.expanduser(str(source).strip())
  if not source:
    raise runtime.NotebookError(
        "no model given; pass an export folder, archive or "
        "URL")
  if _is_url(source):
    if not _archive_kind(urllib.parse.urlparse(source).path):
      raise runtime.NotebookError(
          f"{source} does not end in one of {_ARCHIVES}; "
          "pass the URL of an archive of an export folder")
    source = _download(source, os.path.join(out_dir + ".download"))
  if os.path.isfile(source):
    if not _archive_kind(source):
      raise runtime.NotebookError(
          f"{source} is a file but not one of {_ARCHIVES}; "
          "pass an export folder or an archive of one")
    source = _find_export(_extract(source, out_dir))
  elif not os.path.isdir(source):
    raise runtime.NotebookError(
        f"{source} does not exist; pass an export folder, "
        "archive or URL")
  export.read_metadata(source)
  return source


def archive_export(export_dir: str, out_path: str) -> str:
  """Zips an export folder (for download; `fetch_export` reads it back).

  Returns:
    out_path, written atomically.
  """
  if not _archive_kind(out_path) == ".zip":
    raise runtime.NotebookError(f"{out_path}: name the archive *.zip")
  export_dir = os.path.abspath(export_dir)
  out_dir = os.path.dirname(os.path.abspath(out_path))
  os.makedirs(out_dir, exist_ok=True)
  fd, tmp = tempfile.mkstemp(prefix=".partial-", suffix=".zip", dir=out_dir)
  os.close(fd)
  try:
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as z:
      name = os.path.basename(export_dir)
      for folder, _, files in os.walk(export_dir):
        for f in sorted(files):
          path = os.path.join(folder, f)
          z.write(path, os.path.join(name, os.path.relpath(path, export_dir)))
    os.replace(tmp, out_path)
  finally:
    if os.path.exists(tmp):
      os.remove(tmp)
  return out_path


def pretrain_helpers(config, workdir: str,
                     names: Sequence[str] = ("ds2", "syncnet", "eye")):
  """Pretrains the frozen helper networks `names` (or reuses them) into
  <workdir>/pretrained/<name> and points `config.pretrained` at them.

  Helpers not in `names` stay as `config.pretrained.missing` says ('random'
  in the SMALL config, from `:runlocal`). The audio encoder ('ds2') is
  needed for an export.

  Returns:
    config, updated in place.
  """
  from a2v_jax import data_sources  # pylint: disable=g-import-not-at-top
  from a2v_jax import pretrain  # pylint: disable=g-import-not-at-top
  corpus_dir = data_sources.default_corpus_dir(config, workdir)
  for name in names:
    config.pretrained[f"{name}_ckpt"] = pretrain.pretrain_helper(
        name, config, os.path.join(os.path.abspath(workdir), "pretrained",
                                   name), corpus_dir=corpus_dir)
  return config


def export_random_demo(out_dir: str, config) -> str:
  """An export with random weights in the shapes `config.model` builds
  (a stand-in model for CI runs; its videos are noise)."""
  from a2v_jax import export  # pylint: disable=g-import-not-at-top
  from a2v_jax import networks  # pylint: disable=g-import-not-at-top
  d = config.dataset
  return export.export_random_model(
      out_dir,
      generator_config=networks.network_config("generator",
                                               config.model.generator),
      ds2_config=networks.network_config("ds2", config.model.ds2),
      preprocessing=export.default_preprocessing(
          d.crop, d.audio_features, ds2_window_frames=d.num_frames),
      train_config=config.to_dict(), seed=config.seed)


def train_demo(config, workdir: str, out_dir: str,
               helpers: Sequence[str] = ("ds2", "syncnet", "eye")) -> str:
  """Trains the synthetic demo model of `config` (configs/synthetic.py's
  notebook_config) and exports it.

  Makes and builds the corpus on first use, pretrains the helper networks
  `helpers` (the audio encoder at least), runs the three curriculum phases
  (resuming a run already in `workdir`) and writes the export.

  Returns:
    The export folder `out_dir`.
  """
  from a2v_jax import export  # pylint: disable=g-import-not-at-top
  from a2v_jax import train  # pylint: disable=g-import-not-at-top
  pretrain_helpers(config, workdir, helpers)
  train.train_and_evaluate(config, workdir)
  return export.export_from_workdir(workdir, out_dir)
