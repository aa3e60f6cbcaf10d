"""Mean/CI statistics, report layout, and the evaluator plug-ins."""
import json

import numpy as np
import pytest
from scipy import ndimage
import skimage.data

from a2v_jax.evaluation import evaluators
from a2v_jax.evaluation import report
from a2v_jax.evaluation import stats


def test_t_interval_known_values():
  ci = stats.mean_confidence_interval([1.0, 2.0, 3.0, 4.0, 5.0])
  # mean 3, s = sqrt(2.5), t_{0.975, 4} = 2.7764451
  half = 2.7764451051977934 * np.sqrt(2.5) / np.sqrt(5)
  assert ci.mean == 3.0 and ci.n == 5
  assert ci.low == pytest.approx(3 - half) and ci.high == pytest.approx(3 + half)
  with_nan = stats.mean_confidence_interval([1.0, np.nan, 3.0])
  assert with_nan.n == 2 and with_nan.mean == 2.0
  single = stats.mean_confidence_interval([7.0])
  assert single.mean == 7.0 and np.isnan(single.low)
  assert np.isnan(stats.mean_confidence_interval([]).mean)
  assert stats.MeanCI(1.0, np.nan, np.nan, 1).to_dict()["ci_low"] is None


def test_bootstrap_interval_covers_mean_and_is_seeded():
  x = np.random.default_rng(0).normal(10, 2, 200)
  a = stats.bootstrap_confidence_interval(x, seed=1)
  b = stats.bootstrap_confidence_interval(x, seed=1)
  t = stats.mean_confidence_interval(x)
  assert a == b and a.low < a.mean < a.high
  assert a.half_width == pytest.approx(t.half_width, rel=0.2)


def _systems():
  utts = ["s1/a", "s1/b", "s2/c"]
  return [
      report.SystemResult(report.STATIC, utts, {
          "ssim": [0.7, 0.72, 0.71], "psnr": [20.0, 21.0, 22.0],
          "cpbd": [0.3, 0.3, 0.3], "lse_d": [9.0, 9.5, 9.2]}),
      report.SystemResult(report.MODEL, utts, {
          "ssim": [0.8, 0.82, 0.84], "psnr": [25.0, 26.0, np.inf],
          "cpbd": [0.25, np.nan, 0.27], "wer": [10.0, 20.0, 30.0],
          "lse_d": [7.0, 7.5, 7.2], "lse_c": [3.0, 2.5, 2.0]},
          corpus={"wer": 18.0}),
      report.SystemResult(report.GROUND_TRUTH, utts, {
          "cpbd": [0.3, 0.31, 0.32], "wer": [0.0, 0.0, 10.0],
          "lse_d": [6.0, 6.1, 6.2]}),
      report.SystemResult(report.SHUFFLED_AUDIO, utts, {
          "ssim": [0.79, 0.8, 0.8], "lse_d": [9.9, 9.8, 9.7]}),
  ]


def test_report_json_and_markdown_layout(tmp_path):
  rep = report.build_report(_systems(), title="grid test",
                            info={"dataset": "grid", "split": "test"})
  json_path, md_path = report.write_report(rep, str(tmp_path))
  loaded = json.loads(open(json_path).read())
  names = [r["name"] for r in loaded["systems"]]
  assert names == [report.MODEL, report.GROUND_TRUTH, report.STATIC,
                   report.SHUFFLED_AUDIO]
  model = loaded["systems"][0]
  assert model["utterances"] == ["s1/a", "s1/b", "s2/c"]
  assert model["values"]["psnr"][2] is None  # inf -> null
  assert model["summary"]["cpbd"]["n"] == 2
  assert model["summary"]["wer"]["mean"] == 18.0  # corpus-level WER
  assert model["summary"]["wer"]["per_utterance_mean"] == 20.0
  assert model["summary"]["ssim"]["mean"] == pytest.approx(0.82)
  md = open(md_path).read()
  assert md.startswith("# grid test\n")
  t1 = md.index("## Table 1")
  t2 = md.index("## Table 2")
  t3 = md.index("## Table 3")
  assert t1 < t2 < t3
  assert "| Method | SSIM ↑ | PSNR ↑ | CPBD ↑ |" in md
  assert "| Method | WER (%) ↓ | ACD-C ↓ | ACD-E ↓ |" not in md  # no ACD
  assert "| Method | WER (%) ↓ |" in md
  model_row = [l for l in md[t1:t2].splitlines() if l.startswith("| model")][0]
  assert "0.820 ± " in model_row and "25.500 ± " in model_row
  gt_row = [l for l in md[t1:t2].splitlines()
            if l.startswith("| ground truth")][0]
  assert gt_row.split("|")[2].strip() == "—"  # SSIM not applicable
  assert "OneShotA2V (paper, GRID) | 0.881 | 28.571 | 0.262 |" in md
  assert "FID is not reported" in md
  assert not list(tmp_path.glob(".tmp_*"))
  # Paired by utterance; the inf PSNR of s2/c leaves 2 pairs of +5 dB.
  paired = loaded["paired"]
  assert paired["static"]["psnr"]["mean"] == 5.0
  assert paired["static"]["psnr"]["n"] == 2
  assert paired["static"]["psnr"]["ci_low"] == pytest.approx(5.0)
  assert paired["static"]["ssim"]["mean"] == pytest.approx(0.11)
  assert paired["shuffled audio"]["ssim"]["mean"] == pytest.approx(0.07 / 3)
  assert "wer" not in paired["static"]
  assert "## Model minus baseline, paired by utterance" in md
  assert "| model − static | 0.110 ± " in md


def test_report_rejects_bad_rows():
  with pytest.raises(report.ReportError, match="unknown metrics"):
    report.build_report([report.SystemResult("model", ["a"], {"fid": [1.0]})],
                        title="x")
  with pytest.raises(report.ReportError, match="one per utterance"):
    report.build_report([report.SystemResult("model", ["a", "b"],
                                             {"ssim": [1.0]})], title="x")


def test_ablation_table(tmp_path):
  utts = ["a", "b"]
  phases = {p: report.SystemResult("model", utts, {"ssim": [s, s + 0.01],
                                                   "psnr": [27.0, 28.0],
                                                   "cpbd": [0.2, 0.21]})
            for p, s in [("phase 3", 0.88), ("phase 1", 0.86),
                         ("phase 2", 0.87)]}
  rep = report.build_ablation(phases, title="ablation")
  assert [r["name"] for r in rep["systems"]] == ["phase 1", "phase 2",
                                                 "phase 3"]
  _, md_path = report.write_ablation(rep, str(tmp_path))
  md = open(md_path).read().splitlines()
  rows = [l for l in md if l.startswith("| ")][1:]
  assert rows[0].startswith("| Base model (BM)")
  assert rows[2].startswith("| BM + CL + TAL + BL (phase 3) | 0.885")
  with pytest.raises(report.ReportError, match="unknown phases"):
    report.build_ablation({"phase 9": phases["phase 1"]}, title="x")


def test_evaluator_names_are_validated_at_start():
  with pytest.raises(evaluators.EvaluatorError, match="valid choices"):
    evaluators.create_evaluators(["cpbd", "fid"])
  assert evaluators.validate_names("cpbd, image_quality,cpbd") == [
      "cpbd", "image_quality"]
  with pytest.raises(evaluators.EvaluatorError, match="cannot be built"):
    evaluators.create_evaluators(["lip_sync"])
  with pytest.raises(evaluators.EvaluatorError, match="not in config.evals"):
    evaluators.create_evaluators(["cpbd"], {"wer": {}})


def test_evaluators_on_known_clips():
  face = skimage.data.astronaut()[:128:2, 160:288:2]  # 64x64
  real = np.stack([face] * 8)
  blurred = np.round(ndimage.gaussian_filter(real.astype(float),
                                             (0, 1.5, 1.5, 0))).astype(np.uint8)
  rng = np.random.default_rng(0)
  codes = rng.normal(size=(8, 4))
  mfcc = np.zeros((8, 20, 13))
  mfcc[:, 0, :4] = codes
  faces_code = np.broadcast_to(codes[:, None, None, :3], (8, 2, 2, 3))
  synced = {"embed_video": lambda w: w[:, 2, 0, 0, :],
            "embed_audio": lambda a: a[:, 0, :3],
            "prepare_faces": lambda f: faces_code}
  evals = evaluators.create_evaluators(
      ["image_quality", "cpbd", "lip_sync"], {"lip_sync": synced})
  clips = [evaluators.Clip("s1/a", real, real=real, mfcc=mfcc),
           evaluators.Clip("s1/b", blurred, real=real, mfcc=mfcc)]
  values = evaluators.run_all(evals, clips)
  assert values["ssim"][0] == pytest.approx(1.0) and values["ssim"][1] < 0.95
  assert np.isnan(values["psnr"][0]) and 15 < values["psnr"][1] < 40
  assert values["cpbd"][0] > values["cpbd"][1]
  assert values["lse_d"][0] < 1e-4  # perfect sync: distance 0 at offset 0
  means = dict(evals[0].run(clips))
  assert means["ssim"] == pytest.approx(np.mean(values["ssim"]))
  with pytest.raises(evaluators.EvaluatorError, match="needs clip.real"):
    evals[0].collect([evaluators.Clip("s1/c", real)])


def test_lower_face_evaluator_sees_only_the_lower_half():
  rng = np.random.default_rng(1)
  real = rng.integers(0, 256, (3, 16, 16, 3), dtype=np.uint8)
  upper_changed = real.copy()
  upper_changed[:, :8] = 255 - upper_changed[:, :8]
  lower_changed = real.copy()
  lower_changed[:, 8:] = np.clip(lower_changed[:, 8:].astype(int) + 51, 0,
                                 255).astype(np.uint8)
  (ev,) = evaluators.create_evaluators(["lower_face"])
  values = ev.collect([evaluators.Clip("a", upper_changed, real=real),
                       evaluators.Clip("b", lower_changed, real=real)])
  assert values["lower_l1"][0] == 0.0 and np.isnan(values["lower_psnr"][0])
  expected_l1 = np.mean(np.abs(lower_changed[:, 8:].astype(float)
                               - real[:, 8:]) / 255.0)
  assert values["lower_l1"][1] == pytest.approx(expected_l1, rel=1e-5)
  assert 10 < values["lower_psnr"][1] < 30
  with pytest.raises(evaluators.EvaluatorError, match="differ"):
    ev.collect([evaluators.Clip("c", real[:, :8], real=real)])
