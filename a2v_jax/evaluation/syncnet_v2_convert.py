"""Converts the official syncnet_python weights to a2v_jax.models.syncnet_v2.

`syncnet_v2.model` (from syncnet_python's download_model.sh; a user brings
their own copy, nothing is downloaded here) is a PyTorch state_dict with keys
`<stream>.<index>.<tensor>` for the streams netcnnaud, netcnnlip, netfcaud and
netfclip (see SyncNetV2's docstring for the layers). Reading it needs the
`[torch]` extra (`torch.load(weights_only=True)`, imported only then); a
`.safetensors` or `.npz` file with the same keys needs no torch.

Layouts: Conv2d weight [O, I, H, W] -> kernel [H, W, I, O]; Conv3d [O, I, D,
H, W] -> [D, H, W, I, O]; Linear [O, I] -> [I, O]; BatchNorm weight/bias ->
scale/bias (params) and running_mean/running_var -> mean/var (batch_stats);
`num_batches_tracked` is dropped.

Command line:
  python -m a2v_jax.evaluation.syncnet_v2_convert --src=syncnet_v2.model \
      --out=syncnet_v2.npz
"""
from __future__ import annotations

import os
import re
import tempfile
from typing import Mapping

from absl import app
from absl import flags
from absl import logging
import jax
import numpy as np

from a2v_jax.media import video
from a2v_jax.models import syncnet_v2

_KEY = re.compile(r"^(netcnnaud|netcnnlip|netfcaud|netfclip)\.(\d+)\."
                  r"(weight|bias|running_mean|running_var|num_batches_tracked)$")


class ConversionError(ValueError):
  """A weights file that is not a syncnet_v2 state_dict."""


def load_state_dict(path: str) -> dict[str, np.ndarray]:
  """Reads a state_dict file into numpy arrays.

  Args:
    path: `.model`/`.pt`/`.pth` (PyTorch, needs torch), `.safetensors` or
      `.npz`.

  Returns:
    key -> float32/int64 numpy array.
  """
  if not os.path.isfile(path):
    raise ConversionError(f"weights file {path} does not exist; pass the path "
                          "of syncnet_v2.model from syncnet_python")
  suffix = os.path.splitext(path)[1].lower()
  if suffix == ".safetensors":
    from safetensors.numpy import load_file  # pylint: disable=g-import-not-at-top
    return dict(load_file(path))
  if suffix == ".npz":
    with np.load(path) as data:
      return {k: data[k] for k in data.files}
  try:
    import torch  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise ConversionError(
        "reading a PyTorch weights file needs torch; install the extra with "
        "`pip install 'a2v-jax[torch]'`, or convert it to .safetensors") from e
  try:
    state = torch.load(path, map_location="cpu", weights_only=True)
  except Exception as e:  # torch raises many types for a bad file.
    raise ConversionError(f"{path} is not a readable PyTorch state_dict "
                          f"({type(e).__name__}); re-download syncnet_v2.model"
                          ) from e
  if not isinstance(state, Mapping):
    raise ConversionError(f"{path} holds a {type(state).__name__}, not a "
                          "state_dict")
  return {k: v.detach().cpu().numpy() for k, v in state.items()}


def _kernel(weight: np.ndarray) -> np.ndarray:
  """PyTorch conv/linear weight -> Flax kernel."""
  if weight.ndim == 2:  # Linear [O, I]
    return weight.T
  # Conv [O, I, *spatial] -> [*spatial, I, O]
  return np.transpose(weight, tuple(range(2, weight.ndim)) + (1, 0))


def convert_state_dict(state: Mapping[str, np.ndarray],
                       embed_dim: int | None = None) -> dict:
  """syncnet_python state_dict -> {'params', 'batch_stats'} for SyncNetV2.

  Every key must be known and every expected tensor present with the shape
  SyncNetV2 builds (checked against a freshly initialised tree).

  Args:
    state: key -> array, PyTorch layout.
    embed_dim: output size; read from the file when None (1024 officially).

  Returns:
    Flax variables (float32 numpy leaves).
  """
  params: dict = {}
  batch_stats: dict = {}
  unknown = []
  for key, value in state.items():
    match = _KEY.match(key)
    if match is None:
      unknown.append(key)
      continue
    stream, index, tensor = match.groups()
    value = np.asarray(value)
    if tensor == "num_batches_tracked":
      continue
    if tensor in ("running_mean", "running_var"):
      node = batch_stats.setdefault(stream, {}).setdefault(index, {})
      node[tensor[len("running_"):]] = value
      continue
    node = params.setdefault(stream, {}).setdefault(index, {})
    if tensor == "bias":
      node["bias"] = value
    elif value.ndim == 1:  # BatchNorm weight
      node["scale"] = value
    else:
      node["kernel"] = _kernel(value)
  if unknown:
    raise ConversionError(
        f"{len(unknown)} keys are not syncnet_v2's (e.g. {unknown[0]!r}); "
        "this file is not syncnet_python's syncnet_v2.model")
  if embed_dim is None:
    embed_dim = int(params.get("netfcaud", {}).get("3", {}).get(
        "bias", np.zeros(syncnet_v2.EMBED_DIM)).shape[0])
  variables = {"params": params, "batch_stats": batch_stats}
  want = jax.eval_shape(lambda: syncnet_v2.init_params(0, embed_dim))
  want_flat = dict(jax.tree_util.tree_flatten_with_path(want)[0])
  got_flat = dict(jax.tree_util.tree_flatten_with_path(variables)[0])
  missing = sorted(jax.tree_util.keystr(k) for k in want_flat.keys() - got_flat.keys())
  extra = sorted(jax.tree_util.keystr(k) for k in got_flat.keys() - want_flat.keys())
  if missing or extra:
    raise ConversionError(
        f"state_dict does not match SyncNet v2: missing {missing[:3]}, "
        f"unexpected {extra[:3]}; is this the official syncnet_v2.model?")
  for path, leaf in want_flat.items():
    if tuple(got_flat[path].shape) != tuple(leaf.shape):
      raise ConversionError(
          f"{jax.tree_util.keystr(path)} has shape {got_flat[path].shape}, "
          f"SyncNet v2 needs {leaf.shape}")
  return jax.tree_util.tree_map(lambda x: np.asarray(x, np.float32), variables)


def load_syncnet_v2(path: str) -> tuple[syncnet_v2.SyncNetV2, dict]:
  """(module, variables) ready for `module.apply(variables, ..., method=...)`.

  Accepts the official state_dict (any format load_state_dict reads) or an
  `.npz` written by `save_converted`.
  """
  state = load_state_dict(path)
  if any(k.startswith(("params/", "batch_stats/")) for k in state):
    variables = _unflatten(state)
  else:
    variables = convert_state_dict(state)
  embed_dim = variables["params"]["netfcaud"]["3"]["bias"].shape[0]
  return syncnet_v2.SyncNetV2(embed_dim), variables


def _unflatten(flat: Mapping[str, np.ndarray]) -> dict:
  tree: dict = {}
  for key, value in flat.items():
    node = tree
    parts = key.split("/")
    for part in parts[:-1]:
      node = node.setdefault(part, {})
    node[parts[-1]] = np.asarray(value, np.float32)
  return tree


def save_converted(variables: dict, out_path: str) -> None:
  """Writes converted variables atomically as an `.npz` whose keys are the
  tree paths ('params/netcnnaud/0/kernel', ...)."""
  flat = {}
  for path, leaf in jax.tree_util.tree_flatten_with_path(variables)[0]:
    flat["/".join(str(k.key) for k in path)] = np.asarray(leaf)
  out_dir = os.path.dirname(os.path.abspath(out_path))
  os.makedirs(out_dir, exist_ok=True)
  fd, tmp = tempfile.mkstemp(suffix=".npz", dir=out_dir)
  try:
    with os.fdopen(fd, "wb") as f:
      np.savez(f, **flat)
    video.make_public(tmp)
    os.replace(tmp, out_path)
  except BaseException:
    if os.path.exists(tmp):
      os.remove(tmp)
    raise


def main(argv):
  del argv
  src, out = flags.FLAGS.src, flags.FLAGS.out
  if not src or not out:
    raise app.UsageError("pass --src=syncnet_v2.model and --out=FILE.npz")
  variables = convert_state_dict(load_state_dict(src))
  save_converted(variables, out)
  logging.info("converted %s", src)
  print(f"wrote {out}")


if __name__ == "__main__":
  # Flags are defined only when run as a command, so importing this module
  # from another command (whose --out it would clash with) is safe.
  flags.DEFINE_string("src", None, "syncnet_v2.model (PyTorch), .safetensors"
                      " or .npz state_dict.")
  flags.DEFINE_string("out", None, "Output .npz of Flax variables.")
  app.run(main)
