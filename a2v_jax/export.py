r"""Inference export: only what `a2v_jax.inference` needs, as one orbax checkpoint.

  python -m a2v_jax.export --workdir=runs/demo --out=exports/demo

An export directory is an orbax checkpoint with two items:
  * `params`: {'generator': the generator's EMA variables ({'params', and
    'batch_stats' when spectral norm is on}), 'ds2': the audio encoder's
    variables} (StandardSave);
  * `metadata`: JSON with `format_version`, the generator and audio encoder
    ('ds2') configs
    (constructor keyword arguments of `spade.SPADEGenerator` and
    `deepspeech2.DeepSpeech2`), the preprocessing constants (crop size, fps,
    sample rate, audio feature kind and sizes, the alignment template) and
    the training config it came from.

Loading reads `metadata` first and refuses an export whose format version it
does not read (`READ_VERSIONS`), then restores the arrays into the shapes the configs
build, so a corrupt, truncated or mismatched export is one `ExportError` line.
Writing is atomic: the export is written beside `out_dir` and renamed onto
it only when complete.
"""
from __future__ import annotations

import dataclasses
import datetime
import functools
import json
import os
import shutil
import tempfile
from typing import Any, Mapping, Sequence

from absl import app
from absl import flags
from absl import logging
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import orbax.checkpoint as ocp

from a2v_jax import cli
from a2v_jax import networks
from a2v_jax.audio import features as features_lib
from a2v_jax.face import align
from a2v_jax.models import deepspeech2
from a2v_jax.models import spade

# Bump when the layout of an export changes; loading refuses other versions.
# Version 1 named the audio encoder 'encoder' (tree key, config and window
# keys); version 2 calls it 'ds2', as training, the configs and the networks
# table do. Both are read.
FORMAT_VERSION = 2
READ_VERSIONS = (1, 2)
_V1_NAMES = {"ds2": "encoder", "ds2_config": "encoder_config",
             "ds2_window_frames": "encoder_window_frames"}
EXPORT_KIND = "a2v_jax.inference_export"
# Preprocessing keys and their defaults (None = required).
_PREPROCESSING_DEFAULTS = {
    "crop": None,
    "fps": 25.0,
    "sample_rate": 16000,
    "audio_features": "mfcc",
    "n_mfcc": 13,
    "n_mels": None,  # 40 (inside the MFCC) or 80 (log-mel), as the loader
    "window_s": 0.2,
    # Frames per encoder window in training (config.dataset.num_frames); the
    # encoder's BiGRU and its input normalisation see this much context.
    "ds2_window_frames": 5,
    "template": None,  # [68, 2] in the unit square; CANONICAL_TEMPLATE if None
}


class ExportError(ValueError):
  """An export cannot be written or read; the message names the fix."""


@dataclasses.dataclass(frozen=True)
class Export:
  """A loaded export.

  Attributes:
    generator_config: SPADEGenerator keyword arguments.
    generator_variables: {'params': ..., ['batch_stats': ...]} (EMA weights).
    ds2_config: DeepSpeech2 keyword arguments.
    ds2_variables: {'params': ...}.
    preprocessing: crop, fps, sample_rate, audio_features, n_mfcc, n_mels,
      window_s, template (float32 [68, 2] numpy).
    train_config: the training config as a plain dict (may be empty).
    format_version: FORMAT_VERSION.
  """
  generator_config: dict
  generator_variables: Any
  ds2_config: dict
  ds2_variables: Any
  preprocessing: dict
  train_config: dict
  format_version: int


def default_preprocessing(crop: int, audio_features: str = "mfcc",
                          **overrides) -> dict:
  """Preprocessing constants for a crop size with the project's defaults."""
  return resolve_preprocessing(dict(crop=crop, audio_features=audio_features,
                                    **overrides))


def resolve_preprocessing(preprocessing: Mapping[str, Any]) -> dict:
  """Fills defaults and checks the preprocessing constants.

  Returns:
    dict with every key of _PREPROCESSING_DEFAULTS; `template` as float32
    [68, 2] numpy.
  """
  unknown = sorted(set(preprocessing) - set(_PREPROCESSING_DEFAULTS))
  if unknown:
    raise ExportError(f"unknown preprocessing keys {unknown}; valid: "
                      f"{sorted(_PREPROCESSING_DEFAULTS)}")
  out = dict(_PREPROCESSING_DEFAULTS)
  out.update({k: v for k, v in preprocessing.items() if v is not None})
  if out["crop"] is None:
    raise ExportError("preprocessing needs 'crop' (the aligned face size)")
  out["crop"] = int(out["crop"])
  if out["audio_features"] not in features_lib.AUDIO_FEATURES:
    raise ExportError(f"preprocessing audio_features="
                      f"{out['audio_features']!r}; use one of {features_lib.AUDIO_FEATURES}")
  out["fps"] = float(out["fps"])
  out["sample_rate"] = int(out["sample_rate"])
  out["n_mfcc"] = int(out["n_mfcc"])
  if out["n_mels"] is None:
    out["n_mels"] = 40 if out["audio_features"] == "mfcc" else 80
  out["n_mels"] = int(out["n_mels"])
  out["window_s"] = float(out["window_s"])
  out["ds2_window_frames"] = int(out["ds2_window_frames"])
  if out["ds2_window_frames"] < 1:
    raise ExportError("preprocessing ds2_window_frames must be >= 1")
  template = (align.CANONICAL_TEMPLATE if out["template"] is None
              else out["template"])
  template = np.asarray(template, np.float32)
  if template.shape != (68, 2):
    raise ExportError(f"preprocessing template must be [68, 2], got "
                      f"{template.shape}")
  out["template"] = template
  return out


def audio_feature_size(preprocessing: Mapping[str, Any]) -> int:
  """Coefficients per short-time frame: n_mfcc or n_mels."""
  if preprocessing["audio_features"] == "mfcc":
    return int(preprocessing["n_mfcc"])
  return int(preprocessing["n_mels"])


def window_steps(preprocessing: Mapping[str, Any]) -> int:
  """Short-time frames per 200 ms window (10 ms hop): 20."""
  return int(round(preprocessing["window_s"] / 0.010))


def _plain(obj: Any) -> Any:
  """ConfigDict / numpy / tuples -> JSON-safe Python values."""
  if isinstance(obj, ml_collections.ConfigDict):
    obj = obj.to_dict()
  if isinstance(obj, Mapping):
    return {str(k): _plain(v) for k, v in obj.items()}
  if isinstance(obj, (list, tuple)):
    return [_plain(v) for v in obj]
  if isinstance(obj, np.ndarray):
    return obj.tolist()
  if isinstance(obj, (np.generic,)):
    return obj.item()
  if isinstance(obj, (str, int, float, bool)) or obj is None:
    return obj
  return str(obj)


def _as_variables(tree: Any) -> dict:
  """Accepts a variables dict or a bare params tree."""
  tree = dict(tree)
  if "params" not in tree:
    tree = {"params": tree}
  return jax.tree.map(np.asarray, tree)


def create_generator(generator_config: Mapping[str, Any]) -> spade.SPADEGenerator:
  """SPADEGenerator from its keyword arguments (an ExportError if invalid),
  its convolution lowering chosen for this process's backend."""
  try:
    return networks.build("generator", generator_config)
  except (TypeError, ValueError) as e:
    raise ExportError(f"generator config does not fit this version's "
                      f"SPADEGenerator ({_one_line(e)}); re-export the model "
                      "with this version of a2v_jax") from None


def create_ds2(ds2_config: Mapping[str, Any],
                   **overrides) -> deepspeech2.DeepSpeech2:
  """DeepSpeech2 from its keyword arguments (an ExportError if invalid)."""
  try:
    return networks.build("ds2", ds2_config, **overrides)
  except (TypeError, ValueError) as e:
    raise ExportError(f"audio encoder config does not fit this version's "
                      f"DeepSpeech2 ({_one_line(e)}); re-export the model "
                      "with this version of a2v_jax") from None


def abstract_variables(generator_config: Mapping[str, Any],
                       ds2_config: Mapping[str, Any],
                       preprocessing: Mapping[str, Any]) -> dict:
  """Shapes and dtypes of {'generator', 'ds2'} variables, from configs."""
  return _abstract_variables(
      json.dumps(_plain(generator_config), sort_keys=True),
      json.dumps(_plain(ds2_config), sort_keys=True),
      int(preprocessing["crop"]), window_steps(preprocessing),
      audio_feature_size(preprocessing))


@functools.lru_cache(maxsize=16)
def _abstract_variables(generator_json: str, ds2_json: str, crop: int,
                        steps: int, coeffs: int) -> dict:
  # Cached: tracing the generator's init takes seconds.
  generator = create_generator(json.loads(generator_json))
  ds2 = create_ds2(json.loads(ds2_json))
  windows = jax.ShapeDtypeStruct((1, 2, steps, coeffs), jnp.float32)
  rng = jax.random.PRNGKey(0)
  try:
    enc = jax.eval_shape(ds2.init, rng, windows)
    feats = jax.eval_shape(ds2.apply, enc, windows)
    dim = feats[0].shape[-1]
    gen = jax.eval_shape(generator.init, rng,
                         jax.ShapeDtypeStruct((1, crop, crop, 3), jnp.float32),
                         jax.ShapeDtypeStruct((1, dim), jnp.float32))
  except (TypeError, ValueError) as e:
    raise ExportError(f"the export's model configs cannot be built "
                      f"({_one_line(e)}); re-export it with this version of "
                      "a2v_jax") from None
  return {"generator": jax.tree.map(_unbox, gen),
          "ds2": jax.tree.map(_unbox, enc)}


def _unbox(x):
  return jax.ShapeDtypeStruct(x.shape, x.dtype)


def export_model(out_dir: str | os.PathLike, *,
                 generator_config: Mapping[str, Any],
                 generator_params: Any,
                 ds2_config: Mapping[str, Any],
                 ds2_params: Any,
                 preprocessing: Mapping[str, Any],
                 train_config: Mapping[str, Any] | None = None) -> str:
  """Writes an inference export, atomically.

  Args:
    out_dir: the export directory; replaced if it already holds an export.
    generator_config: SPADEGenerator keyword arguments.
    generator_params: the generator's (EMA) variables, or a bare params tree.
    ds2_config: DeepSpeech2 keyword arguments.
    ds2_params: the audio encoder's variables, or a bare params tree.
    preprocessing: see `resolve_preprocessing` (crop required).
    train_config: the training config (ConfigDict or dict), stored as JSON.

  Returns:
    The absolute export directory.
  """
  out_dir = os.path.abspath(os.fspath(out_dir))
  parent = os.path.dirname(out_dir)
  if os.path.exists(out_dir) and not _is_export(out_dir) and os.listdir(out_dir):
    raise ExportError(f"{out_dir} exists and is not an a2v_jax export; choose "
                      "an empty or new --out")
  os.makedirs(parent, exist_ok=True)
  if not os.access(parent, os.W_OK):
    raise ExportError(f"cannot write to {parent}; choose another --out")
  prep = resolve_preprocessing(preprocessing)
  generator_config = _plain(generator_config)
  ds2_config = _plain(ds2_config)
  variables = {"generator": _as_variables(generator_params),
               "ds2": _as_variables(ds2_params)}
  # Check that the arrays fit the configs now rather than at load time.
  expected = abstract_variables(generator_config, ds2_config, prep)
  _check_shapes(expected, variables)
  metadata = {
      "kind": EXPORT_KIND,
      "format_version": FORMAT_VERSION,
      "created": datetime.datetime.now(datetime.timezone.utc).isoformat(),
      "generator_config": generator_config,
      "ds2_config": ds2_config,
      "preprocessing": _plain(prep),
      "train_config": _plain(train_config or {}),
  }
  staging = tempfile.mkdtemp(prefix=".partial-export-", dir=parent)
  try:
    ckpt_dir = os.path.join(staging, "export")
    with ocp.Checkpointer(ocp.CompositeCheckpointHandler()) as ckptr:
      ckptr.save(ckpt_dir, args=ocp.args.Composite(
          params=ocp.args.StandardSave(variables),
          metadata=ocp.args.JsonSave(metadata)))
    # orbax's commit markers record the staging path; an export is meant to
    # be moved and shipped, so keep the marker and drop the path.
    for root, _, files in os.walk(ckpt_dir):
      if "commit_success.txt" in files:
        with open(os.path.join(root, "commit_success.txt"), "w") as f:
          f.write("Checkpoint commit was successful.\n")
    old = None
    if os.path.exists(out_dir):
      old = os.path.join(staging, "old")
      os.replace(out_dir, old)
    os.replace(ckpt_dir, out_dir)
  finally:
    shutil.rmtree(staging, ignore_errors=True)
  logging.info("Exported %s (format %d, crop %d).", out_dir, FORMAT_VERSION,
               prep["crop"])
  return out_dir


def random_variables(abstract: Any, seed: int = 0) -> Any:
  """Random numpy variables shaped like `abstract` (no init compile needed).

  Kernels ~ N(0, 1/fan_in), biases 0, norm scales 1, spectral-norm vectors
  random unit vectors. Used for benchmarks and tests: flax `init` of the full
  generator takes minutes to compile on CPU.
  """
  rng = np.random.default_rng(seed)

  def fill(path, leaf):
    name = str(getattr(path[-1], "key", path[-1]))
    shape, dtype = leaf.shape, leaf.dtype
    if name == "kernel":
      fan_in = int(np.prod(shape[:-1])) or 1
      return (rng.standard_normal(shape) / np.sqrt(fan_in)).astype(dtype)
    if name == "scale":
      return np.ones(shape, dtype)
    if name == "bias":
      return np.zeros(shape, dtype)
    if name == "u":
      u = rng.standard_normal(shape)
      return (u / np.linalg.norm(u)).astype(dtype)
    return (0.02 * rng.standard_normal(shape)).astype(dtype)

  return jax.tree_util.tree_map_with_path(fill, abstract)


def export_random_model(out_dir: str | os.PathLike, *,
                        generator_config: Mapping[str, Any],
                        ds2_config: Mapping[str, Any],
                        preprocessing: Mapping[str, Any],
                        train_config: Mapping[str, Any] | None = None,
                        seed: int = 0) -> str:
  """Writes an export with random weights (benchmarks and tests only)."""
  prep = resolve_preprocessing(preprocessing)
  variables = random_variables(
      abstract_variables(generator_config, ds2_config, prep), seed)
  return export_model(out_dir, generator_config=generator_config,
                      generator_params=variables["generator"],
                      ds2_config=ds2_config,
                      ds2_params=variables["ds2"],
                      preprocessing=prep,
                      train_config=dict(train_config or {}, random_weights=True))


def _check_shapes(expected: Any, actual: Any) -> None:
  exp = {jax.tree_util.keystr(k): v.shape for k, v in
         jax.tree_util.tree_leaves_with_path(expected)}
  got = {jax.tree_util.keystr(k): np.shape(v) for k, v in
         jax.tree_util.tree_leaves_with_path(actual)}
  missing = sorted(set(exp) - set(got))
  extra = sorted(set(got) - set(exp))
  wrong = sorted(k for k in set(exp) & set(got) if exp[k] != got[k])
  if missing or extra or wrong:
    first = (missing or extra or wrong)[0]
    raise ExportError(
        f"the parameters do not fit their config ({len(missing)} missing, "
        f"{len(extra)} unexpected, {len(wrong)} of the wrong shape, e.g. "
        f"{first}); pass the config the parameters were trained with")


def _is_export(path: str) -> bool:
  return os.path.isdir(os.path.join(path, "metadata"))


def read_metadata(export_dir: str | os.PathLike) -> dict:
  """The export's JSON metadata, with its format version checked."""
  export_dir = os.path.abspath(os.fspath(export_dir))
  if not os.path.isdir(export_dir):
    raise ExportError(f"no export at {export_dir}; run `python -m "
                      "a2v_jax.export --workdir=RUN --out=DIR` first")
  if not _is_export(export_dir):
    raise ExportError(f"{export_dir} is not an a2v_jax export (no metadata); "
                      "pass the directory written by a2v_jax.export")
  try:
    with ocp.Checkpointer(ocp.CompositeCheckpointHandler()) as ckptr:
      metadata = ckptr.restore(export_dir, args=ocp.args.Composite(
          metadata=ocp.args.JsonRestore()))["metadata"]
  except Exception as e:  # pylint: disable=broad-except
    raise ExportError(f"the export at {export_dir} is corrupt or truncated "
                      f"({_one_line(e)}); export the model again") from None
  if not isinstance(metadata, Mapping) or metadata.get("kind") != EXPORT_KIND:
    raise ExportError(f"{export_dir} is not an a2v_jax inference export; pass "
                      "the directory written by a2v_jax.export")
  version = metadata.get("format_version")
  if version not in READ_VERSIONS:
    raise ExportError(
        f"the export at {export_dir} has format version {version}, but this "
        f"a2v_jax reads versions {', '.join(map(str, READ_VERSIONS))}; "
        "re-export the model with `python -m a2v_jax.export` from this version")
  metadata = dict(metadata)
  if version == 1:
    metadata["ds2_config"] = metadata.pop(_V1_NAMES["ds2_config"], None)
    prep = dict(metadata.get("preprocessing") or {})
    if _V1_NAMES["ds2_window_frames"] in prep:
      prep["ds2_window_frames"] = prep.pop(_V1_NAMES["ds2_window_frames"])
    metadata["preprocessing"] = prep
  return metadata


def load_export(export_dir: str | os.PathLike) -> Export:
  """Reads an export written by `export_model`.

  Raises:
    ExportError: missing, not an export, another format version, configs this
      version cannot build, or corrupt/truncated arrays.
  """
  export_dir = os.path.abspath(os.fspath(export_dir))
  metadata = read_metadata(export_dir)
  try:
    prep = resolve_preprocessing(metadata["preprocessing"])
    gen_cfg = dict(metadata["generator_config"])
    enc_cfg = dict(metadata["ds2_config"])
  except (KeyError, TypeError) as e:
    raise ExportError(f"the export's metadata at {export_dir} lacks "
                      f"{_one_line(e)}; export the model again") from None
  abstract = abstract_variables(gen_cfg, enc_cfg, prep)
  sharding = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
  abstract = jax.tree.map(
      lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding),
      abstract)
  # Version 1 stored the audio encoder under 'encoder'.
  stored = ({"generator": "generator", "ds2": _V1_NAMES["ds2"]}
            if metadata["format_version"] == 1 else
            {"generator": "generator", "ds2": "ds2"})
  try:
    with ocp.Checkpointer(ocp.CompositeCheckpointHandler()) as ckptr:
      restored = ckptr.restore(export_dir, args=ocp.args.Composite(
          params=ocp.args.StandardRestore(
              {stored[k]: v for k, v in abstract.items()})))["params"]
    variables = {k: restored[stored[k]] for k in abstract}
    variables = jax.tree.map(np.asarray, variables)
    _check_shapes(abstract, variables)
  except ExportError:
    raise
  except Exception as e:  # pylint: disable=broad-except
    raise ExportError(f"the export's arrays at {export_dir} are corrupt, "
                      f"truncated or do not fit its config ({_one_line(e)}); "
                      "export the model again") from None
  return Export(
      generator_config=networks.lists_to_tuples(gen_cfg),
      generator_variables=variables["generator"],
      ds2_config=networks.lists_to_tuples(enc_cfg),
      ds2_variables=variables["ds2"],
      preprocessing=prep,
      train_config=dict(metadata.get("train_config") or {}),
      format_version=int(metadata["format_version"]))


def _one_line(e: BaseException) -> str:
  text = " ".join(str(e).split())
  text = text if text else type(e).__name__
  return text[:200] + ("..." if len(text) > 200 else "")


def export_from_workdir(workdir: str | os.PathLike, out_dir: str | os.PathLike,
                        step: int | None = None) -> str:
  """Exports a training run's generator EMA and its frozen audio encoder.

  Args:
    workdir: the --workdir of `python -m a2v_jax.main` (an 'a2v' task).
    out_dir: the export directory.
    step: the checkpoint step; the newest when None.

  Returns:
    The absolute export directory.
  """
  # Imported here: the training stack is not needed to read an export.
  from a2v_jax import checkpointing  # pylint: disable=g-import-not-at-top

  workdir = os.path.abspath(os.fspath(workdir))
  ckpt_dir = os.path.join(workdir, "checkpoints")
  if not os.path.isdir(ckpt_dir):
    raise ExportError(f"{workdir} has no checkpoints/ folder; pass the "
                      "--workdir of a training run (python -m a2v_jax.main)")
  try:
    tree, meta = checkpointing.load_state_tree(ckpt_dir, step)
  except checkpointing.CheckpointError as e:
    raise ExportError(str(e)) from None
  config = ml_collections.ConfigDict(meta.get("config") or {})
  if config.get("task", "a2v") != "a2v" or "ema_g_params" not in tree:
    raise ExportError(f"{workdir} is not a OneShotA2V training run (task "
                      f"{config.get('task')!r}); export the run of the main "
                      "model, not a helper network's pretraining")
  generator_config = networks.network_config("generator",
                                              config.model.generator)
  ds2_config = networks.network_config("ds2", config.model.ds2)
  # pretrained.missing='pretrain' trains it into <workdir>/pretrained/ds2
  # (pretrain.load_pretrained -> pretrain.pretrain_helper), checkpoints/ inside.
  ds2_path = config.pretrained.ds2_ckpt or os.path.join(
      workdir, "pretrained", "ds2", "checkpoints")
  if not os.path.isdir(ds2_path):
    raise ExportError(
        f"the run's audio encoder checkpoint {ds2_path} is missing (the run "
        "used a random encoder or the path moved); set "
        "config.pretrained.ds2_ckpt to the DeepSpeech2 pretraining checkpoint")
  try:
    ds2_tree, _ = checkpointing.load_state_tree(ds2_path)
  except checkpointing.CheckpointError as e:
    raise ExportError(str(e)) from None
  dataset = config.dataset
  preprocessing = dict(crop=dataset.crop, audio_features=dataset.audio_features,
                       ds2_window_frames=dataset.num_frames)
  logging.info("Exporting step %s of %s.", meta.get("step"), workdir)
  return export_model(out_dir,
                      generator_config=generator_config,
                      generator_params=tree["ema_g_params"],
                      ds2_config=ds2_config,
                      ds2_params=ds2_tree["variables"],
                      preprocessing=preprocessing,
                      train_config=dict(config.to_dict(),
                                        exported_step=meta.get("step")))


def define_flags() -> None:
  """Defines the command's flags (at start-up, not import: no clashes)."""
  defined = flags.FLAGS
  if "workdir" not in defined:
    flags.DEFINE_string("workdir", None, "Training run to export.")
  if "out" not in defined:
    flags.DEFINE_string("out", None, "Export directory to write.")
  if "step" not in defined:
    flags.DEFINE_integer("step", None, "Checkpoint step (default newest).")


def main(argv: Sequence[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments {' '.join(argv[1:])}; flags "
                         "take the form --name=value")
  fl = flags.FLAGS
  cli.check_dir(fl.workdir, "--workdir", "a training run",
                "pass the --workdir of `python -m a2v_jax.main`")
  if not fl.out:
    raise cli.InputError("--out is required; pass --out=EXPORT_DIR")
  if os.path.exists(fl.out) and not os.path.isdir(fl.out):
    raise cli.InputError(f"--out={fl.out} is a file; pass a new folder (or "
                         "an earlier export, which is replaced)")
  try:
    out = export_from_workdir(fl.workdir, fl.out, fl.step)
  except ExportError as e:
    cli.fail(e)
  print(f"exported {out}")


if __name__ == "__main__":
  define_flags()
  cli.run(main)
