"""The evaluation command on a random export over a tiny synthetic corpus."""
import json
import os

from absl import flags
import numpy as np
import pytest

from a2v_jax import evaluate
from a2v_jax import export
from a2v_jax import networks as a2v_networks
from a2v_jax.evaluation import lip_sync
from a2v_jax.evaluation import networks
from a2v_jax.evaluation import report
import talking_head_testlib as testlib

FAST_EVALS = ("image_quality", "cpbd", "lip_sync", "wer")


@pytest.fixture(scope="session")
def corpus_dir(tmp_path_factory):
  """1 speaker x 3 utterances (train: 2, val: 1), built at crop 64."""
  from a2v_jax.data import synthetic  # pylint: disable=g-import-not-at-top
  root = str(tmp_path_factory.mktemp("eval_corpus"))
  synthetic.make_corpus(os.path.join(root, "raw"), speakers=1, utterances=3,
                        seed=0, workers=1)
  # The first open builds the TFDS dataset (data_sources.ensure_...).
  evaluate.open_split("synthetic", "train", root, 64)
  return root


@pytest.fixture(scope="session")
def export_dirs(tmp_path_factory):
  root = tmp_path_factory.mktemp("eval_exports")
  return [testlib.write_export(str(root / f"p{i}"), seed=i) for i in (1, 2)]


def test_evaluate_export_rows_values_and_layout(corpus_dir, export_dirs,
                                                tmp_path):
  rep = evaluate.evaluate_export(
      export_dirs[0], dataset="synthetic", split="train", data_dir=corpus_dir,
      out_dir=str(tmp_path), evals=FAST_EVALS, max_frames=12)
  names = [r["name"] for r in rep["systems"]]
  assert names == [report.MODEL, *report.BASELINES]
  rows = {r["name"]: r for r in rep["systems"]}
  for row in rows.values():
    assert len(row["utterances"]) == 2
    assert all(len(v) == 2 for v in row["values"].values())
  # Full-reference metrics are left out of the ground-truth row.
  assert "ssim" not in rows[report.GROUND_TRUTH]["values"]
  assert "cpbd" in rows[report.GROUND_TRUTH]["values"]
  # The static baseline's first frame is the reference: close to the real
  # clip; a random generator is far from it.
  assert (rows[report.STATIC]["summary"]["ssim"]["mean"]
          > rows[report.MODEL]["summary"]["ssim"]["mean"])
  # Missing networks are skipped with a reason, never faked.
  assert not any(m in rows[report.MODEL]["values"] for m in ("lse_c", "wer"))
  assert any(n.startswith("lip_sync skipped: no SyncNet") for n in rep["notes"])
  assert any(n.startswith("wer skipped: no LipNet") for n in rep["notes"])
  assert report.FID_NOTE in rep["notes"]
  loaded = json.loads((tmp_path / "report.json").read_text())
  assert loaded["systems"][0]["values"]["psnr"] == rows[report.MODEL][
      "values"]["psnr"]
  md = (tmp_path / "report.md").read_text()
  assert "## Table 1: image quality" in md
  assert "| static |" in md and "| shuffled audio |" in md
  assert "lip_sync skipped" in md and "FID is not reported" in md


def test_cli_test_split_falls_back_to_val_and_ablation(corpus_dir, export_dirs,
                                                       tmp_path, capsys):
  if "ablation" not in flags.FLAGS:
    evaluate.define_flags()
  out = tmp_path / "single"
  flags.FLAGS([
      "evaluate", f"--model={export_dirs[0]}", "--dataset=synthetic",
      "--split=test", f"--data_dir={corpus_dir}", f"--out={out}",
      "--evals=image_quality,cpbd", "--max_frames=8"])
  try:
    evaluate.main(["evaluate"])
    rep = json.loads((out / "report.json").read_text())
    assert rep["info"]["split"] == "val (asked: test)"
    assert rep["info"]["utterances"] == 1
    assert any("shuffled audio skipped" in n for n in rep["notes"])
    assert "Wrote the report" in capsys.readouterr().out

    ab = tmp_path / "ablation"
    flags.FLAGS.model = ",".join(export_dirs)
    flags.FLAGS.ablation = True
    flags.FLAGS.out = str(ab)
    flags.FLAGS.split = "train"
    evaluate.main(["evaluate"])
    rep = json.loads((ab / "ablation.json").read_text())
    assert [r["name"] for r in rep["systems"]] == ["phase 1", "phase 2"]
    md = (ab / "ablation.md").read_text()
    assert "BM + CL + TAL (phase 2)" in md and "SSIM" in md

    flags.FLAGS.dataset = "grid"
    flags.FLAGS.data_dir = str(tmp_path / "nothing")
    with pytest.raises(SystemExit, match="^error: cannot open dataset grid"):
      evaluate.main(["evaluate"])
  finally:
    flags.FLAGS.unparse_flags()


def test_official_syncnet_windows_follow_frame_times():
  # A click at frame 10's time shows up in frame 12's window (frames
  # 10..14 are paired with the window of frame 12), at its first step.
  audio = np.zeros(16000, np.float32)
  audio[10 * 640:10 * 640 + 80] = 0.5
  windows = networks._official_windows(audio, 25.0, 25)  # pylint: disable=protected-access
  energy = windows[:, :, 0]
  assert np.argmax(energy[12]) in (0, 1)
  assert energy[12].max() > energy[20].max()


SYNCNET_FIXTURE = os.path.join(os.path.dirname(__file__), "data",
                               "syncnet_synthetic.npz")


def _fixture_syncnet() -> networks.SyncNetSpec:
  """The demo's pretrained SyncNet (tests/data/save_syncnet_fixture.py), or
  the run in A2V_SYNCNET_CKPT when set."""
  if os.environ.get("A2V_SYNCNET_CKPT"):
    return networks.load_syncnet(os.environ["A2V_SYNCNET_CKPT"])
  from a2v_jax.models import syncnet  # pylint: disable=g-import-not-at-top
  from flax import traverse_util  # pylint: disable=g-import-not-at-top
  with np.load(SYNCNET_FIXTURE) as f:
    meta = json.loads(str(f["__meta__"]))
    variables = traverse_util.unflatten_dict(
        {k: f[k] for k in f.files if k != "__meta__"}, sep="/")
  model = syncnet.SyncNet(**a2v_networks.lists_to_tuples(meta["syncnet"]))
  return networks.SyncNetSpec(
      audio_windows=networks._mfcc_windows,  # pylint: disable=protected-access
      description=f"fixture, step {meta['step']}",
      **networks.syncnet_options(model, variables))


@pytest.mark.parametrize("k", [-3, 4])
def test_lse_finds_audio_shift_with_trained_syncnet(corpus_dir, k):
  spec = _fixture_syncnet()
  source, _, _ = evaluate.open_split("synthetic", "train", corpus_dir, 64)
  u = evaluate.load_utterance(source[0], 64)
  # Audio delayed by k frames: audio window i + k matches video window i.
  shifted = np.roll(u.audio, k * 640)
  mfcc = spec.audio_windows(shifted, u.fps, len(u.frames))
  result = lip_sync.evaluate_lip_sync(spec.prepare_faces(u.frames), mfcc,
                                      spec.embed_video, spec.embed_audio)
  assert result.offset == k
