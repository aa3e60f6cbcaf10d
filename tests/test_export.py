"""Inference export: round trip, version check, corrupt exports, workdir CLI."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from a2v_jax import checkpointing
from a2v_jax import export
from configs import common

import talking_head_testlib as lib


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory):
  return lib.write_export(str(tmp_path_factory.mktemp("exp") / "model"),
                          spectral_norm=True)


def _metadata_file(export_dir):
  for root, _, files in os.walk(os.path.join(export_dir, "metadata")):
    for name in files:
      path = os.path.join(root, name)
      try:
        with open(path) as f:
          data = json.load(f)
      except (UnicodeDecodeError, json.JSONDecodeError):
        continue
      if isinstance(data, dict) and "format_version" in data:
        return path, data
  raise AssertionError("no metadata JSON in the export")


def test_round_trip_keeps_arrays_configs_and_preprocessing(export_dir):
  loaded = export.load_export(export_dir)
  prep = export.default_preprocessing(lib.CROP)
  expected = export.random_variables(export.abstract_variables(
      lib.generator_config(True), lib.ds2_config(), prep), seed=0)
  assert loaded.format_version == export.FORMAT_VERSION
  assert set(loaded.generator_variables) == {"params", "batch_stats"}
  for got, want in ((loaded.generator_variables, expected["generator"]),
                    (loaded.ds2_variables, expected["ds2"])):
    flat_got = dict(_flatten(got))
    flat_want = dict(_flatten(want))
    assert flat_got.keys() == flat_want.keys()
    for k in flat_want:
      np.testing.assert_array_equal(flat_got[k], flat_want[k], err_msg=k)
  assert loaded.generator_config["ngf"] == 2
  assert loaded.ds2_config["conv_features"] == (4, 4)
  p = loaded.preprocessing
  assert (p["crop"], p["fps"], p["sample_rate"], p["audio_features"]) == (
      lib.CROP, 25.0, 16000, "mfcc")
  assert p["n_mfcc"] == 13 and p["n_mels"] == 40 and p["window_s"] == 0.2
  np.testing.assert_allclose(p["template"], export.align.CANONICAL_TEMPLATE)
  assert loaded.train_config["model"]["perceptual"]["layers"] == ["relu1_1"]


def test_a_version_1_export_still_loads(export_dir, tmp_path):
  """Version 1 named the audio encoder 'encoder'; it loads as 'ds2'."""
  import orbax.checkpoint as ocp  # pylint: disable=g-import-not-at-top
  new = export.load_export(export_dir)
  _, meta = _metadata_file(export_dir)
  meta = dict(meta, format_version=1,
              encoder_config=meta.pop("ds2_config"))
  prep = dict(meta["preprocessing"])
  prep["encoder_window_frames"] = prep.pop("ds2_window_frames")
  meta["preprocessing"] = prep
  old = str(tmp_path / "v1")
  with ocp.Checkpointer(ocp.CompositeCheckpointHandler()) as ckptr:
    ckptr.save(old, args=ocp.args.Composite(
        params=ocp.args.StandardSave({"generator": new.generator_variables,
                                      "encoder": new.ds2_variables}),
        metadata=ocp.args.JsonSave(meta)))
  loaded = export.load_export(old)
  assert loaded.format_version == 1
  assert loaded.ds2_config == new.ds2_config
  assert loaded.preprocessing["ds2_window_frames"] == (
      new.preprocessing["ds2_window_frames"])
  for (k, got), (_, want) in zip(_flatten(loaded.ds2_variables),
                                 _flatten(new.ds2_variables)):
    np.testing.assert_array_equal(got, want, err_msg=k)


def _flatten(tree, prefix=""):
  for k, v in tree.items():
    if isinstance(v, dict):
      yield from _flatten(v, f"{prefix}{k}/")
    else:
      yield f"{prefix}{k}", np.asarray(v)


def test_re_export_replaces_and_foreign_dir_is_refused(tmp_path):
  path = lib.write_export(str(tmp_path / "m"), seed=1)
  lib.write_export(path, seed=2)  # replaces an existing export atomically
  assert export.load_export(path).format_version == export.FORMAT_VERSION
  assert not [n for n in os.listdir(tmp_path) if n.startswith(".partial")]
  foreign = tmp_path / "notes"
  foreign.mkdir()
  (foreign / "keep.txt").write_text("mine")
  with pytest.raises(export.ExportError, match="not an a2v_jax export"):
    lib.write_export(str(foreign))
  assert (foreign / "keep.txt").read_text() == "mine"


def test_incompatible_format_version_is_one_line_error(export_dir, tmp_path):
  import shutil
  copy = str(tmp_path / "old")
  shutil.copytree(export_dir, copy)
  path, data = _metadata_file(copy)
  data["format_version"] = export.FORMAT_VERSION + 1
  with open(path, "w") as f:
    json.dump(data, f)
  with pytest.raises(export.ExportError) as e:
    export.load_export(copy)
  message = str(e.value)
  assert "format version" in message and "re-export" in message
  assert "\n" not in message


@pytest.mark.parametrize("damage", ["truncate_arrays", "drop_arrays",
                                    "garble_metadata", "missing_dir",
                                    "not_export"])
def test_corrupt_or_missing_export_is_one_line_error(export_dir, tmp_path,
                                                      damage):
  import shutil
  copy = str(tmp_path / "bad")
  shutil.copytree(export_dir, copy)
  if damage == "truncate_arrays":
    for root, _, files in os.walk(os.path.join(copy, "params")):
      for name in files:
        p = os.path.join(root, name)
        if os.path.getsize(p) > 64:
          with open(p, "r+b") as f:
            f.truncate(os.path.getsize(p) // 3)
  elif damage == "drop_arrays":
    shutil.rmtree(os.path.join(copy, "params"))
  elif damage == "garble_metadata":
    path, _ = _metadata_file(copy)
    with open(path, "w") as f:
      f.write('{"format_version": 1, "kind": ')
  elif damage == "missing_dir":
    copy = str(tmp_path / "nowhere")
  else:
    shutil.rmtree(os.path.join(copy, "metadata"))
  with pytest.raises(export.ExportError) as e:
    export.load_export(copy)
  assert "\n" not in str(e.value)


def test_params_that_do_not_fit_the_config_are_refused(tmp_path):
  prep = export.default_preprocessing(lib.CROP)
  variables = export.random_variables(export.abstract_variables(
      lib.generator_config(), lib.ds2_config(), prep))
  wider = dict(lib.generator_config(), ngf=4)
  with pytest.raises(export.ExportError, match="do not fit their config"):
    export.export_model(
        str(tmp_path / "x"), generator_config=wider,
        generator_params=variables["generator"],
        ds2_config=lib.ds2_config(),
        ds2_params=variables["ds2"], preprocessing=prep,
        train_config={})
  assert not os.path.exists(tmp_path / "x")


def _fake_run(workdir, *, with_ds2=True):
  """A workdir laid out as a2v_jax.train writes it, with tiny networks."""
  config = common.get_config()
  config.dataset.crop = lib.CROP
  config.dataset.num_frames = 7
  config.model.generator = dict(ngf=2, spade_hidden=4, spectral_norm=True)
  config.model.ds2 = dict(conv_features=(4, 4), rnn_hidden=8, rnn_layers=1)
  prep = export.default_preprocessing(lib.CROP)
  variables = export.random_variables(export.abstract_variables(
      lib.generator_config(True), lib.ds2_config(), prep), seed=3)
  ckpt = checkpointing.Checkpointer(os.path.join(workdir, "checkpoints"),
                                    async_save=False)
  state = {"step": np.int32(10), "g_params": variables["generator"],
           "ema_g_params": variables["generator"]}
  ckpt.save(10, state, {"config": config.to_dict(), "step": 10})
  ckpt.close()
  if with_ds2:
    ds2 = checkpointing.Checkpointer(
        # Where pretrain.pretrain_helper writes it for the run.
        os.path.join(workdir, "pretrained", "ds2", "checkpoints"),
        async_save=False)
    ds2.save(5, {"variables": variables["ds2"]}, {"config": {}})
    ds2.close()
  return variables


def test_export_from_workdir_takes_ema_and_pretrained_encoder(tmp_path):
  variables = _fake_run(str(tmp_path / "run"))
  out = export.export_from_workdir(str(tmp_path / "run"), str(tmp_path / "e"))
  loaded = export.load_export(out)
  k = loaded.generator_variables["params"]["head_0"]["conv_0"]["kernel"]
  np.testing.assert_array_equal(
      k, variables["generator"]["params"]["head_0"]["conv_0"]["kernel"])
  assert loaded.preprocessing["ds2_window_frames"] == 7
  assert loaded.train_config["exported_step"] == 10


def test_export_cli_bad_workdir_is_one_line_error(tmp_path):
  _fake_run(str(tmp_path / "run"), with_ds2=False)
  proc = subprocess.run(
      [sys.executable, "-m", "a2v_jax.export", f"--workdir={tmp_path / 'run'}",
       f"--out={tmp_path / 'e'}"], capture_output=True, text=True,
      check=False, env=dict(os.environ, JAX_PLATFORMS="cpu"))
  assert proc.returncode == 1
  last = proc.stderr.strip().splitlines()[-1]
  assert last.startswith("error:") and "ds2" in last
  assert "Traceback" not in proc.stderr
  assert not os.path.exists(tmp_path / "e")
