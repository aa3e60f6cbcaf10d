"""The helper-network report: measurements with known answers, the command
end to end on tiny checkpoints, and its one-line errors."""
import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest

from a2v_jax import checkpointing
from a2v_jax import data_sources
from a2v_jax import pretrain
from a2v_jax import networks as a2v_networks
from a2v_jax.evaluation import helper_networks as hn
from a2v_jax.evaluation import helper_report
from a2v_jax.evaluation import networks
from a2v_jax.face import align

FPS = 25.0
HOP = 640  # audio samples per video frame at 16 kHz, 25 fps


def _example(i, frames, audio, landmarks, words=("bin", "blue", "at", "f")):
  t = len(frames)
  return {"frames": [data_sources.encode_jpeg(f) for f in frames],
          "audio": np.asarray(audio, np.float32), "fps": FPS,
          "landmarks": np.asarray(landmarks, np.float32),
          "landmarks_detected": np.ones([t], bool), "words": list(words),
          "speaker": b"s1", "utterance": f"u{i}".encode()}


# ------------------------------------------------------- SyncNet offsets --


def _coded_clip(i, t=40, size=16):
  """Each frame's brightness and its 40 ms of audio carry the same random
  code, so only the alignment of the two streams makes them agree."""
  code = np.random.default_rng(i).uniform(0.1, 0.9, t)
  frames = np.broadcast_to((code * 255).astype(np.uint8)[:, None, None, None],
                           (t, size, size, 3))
  audio = np.repeat(code, HOP) * np.where(np.arange(t * HOP) % 2, 1.0, -1.0)
  landmarks = np.broadcast_to(align.CANONICAL_TEMPLATE * size, (t, 68, 2))
  return _example(i, frames, audio, landmarks)


def _code_syncnet():
  """A 'SyncNet' that reads the code back: the middle frame's brightness,
  the amplitude of the window's frame."""
  def audio_windows(audio, fps, t):
    hop = int(round(16000 / fps))
    amp = np.abs(np.asarray(audio)[:t * hop]).reshape(t, hop).max(-1)
    return np.broadcast_to(amp[:, None, None], (t, 20, 13)).astype(np.float32)
  return networks.SyncNetSpec(
      embed_video=lambda v: np.asarray(v)[:, 2, 0, 0, :1],
      embed_audio=lambda a: np.asarray(a)[:, 0, :1],
      prepare_faces=lambda f: np.asarray(f, np.float32) / 255.0,
      audio_windows=audio_windows, description="code reader")


def test_shift_audio_delays_and_advances_by_whole_frames():
  audio = np.arange(1, 5 * HOP + 1, dtype=np.float32)
  late = hn.shift_audio(audio, 2, FPS)
  np.testing.assert_array_equal(late[:2 * HOP], 0)
  np.testing.assert_array_equal(late[2 * HOP:], audio[:3 * HOP])
  early = hn.shift_audio(audio, -1, FPS)
  np.testing.assert_array_equal(early[:4 * HOP], audio[HOP:])
  np.testing.assert_array_equal(early[4 * HOP:], 0)


def test_offset_search_finds_every_known_shift():
  source = [_coded_clip(i) for i in range(3)]
  r = hn.evaluate_syncnet(source, _code_syncnet(), max_shift=5)
  assert list(r["shifts"]) == [str(k) for k in range(-5, 6)]
  for k, share in r["shifts"].items():
    assert r["offsets"][k] == [int(k)] * 3
    assert share["count"] == 3 and share["share"] == 1.0
  assert r["all"]["count"] == 33 and r["all"]["n"] == 33
  lse = r["lse"]
  # In sync the codes agree exactly (up to JPEG rounding); the static frame
  # and another clip's audio agree at no offset.
  assert lse["real"]["lse_d"]["mean"] < 0.01
  assert lse["real"]["lse_c"]["mean"] > 5 * lse["static"]["lse_c"]["mean"]
  assert lse["real"]["lse_c"]["mean"] > 2 * lse["shuffled audio"]["lse_c"][
      "mean"]
  assert r["paired"]["real − static"]["lse_c"]["ci_low"] > 0


def test_wilson_interval():
  low, high = hn.wilson_interval(9, 10)
  assert low == pytest.approx(0.5958, abs=1e-3)
  assert high == pytest.approx(0.9821, abs=1e-3)
  assert hn.wilson_interval(0, 5)[0] == 0.0


# ------------------------------------------------------------------- eye --


def _blinking_landmarks(t, crop, closed):
  """Canonical landmarks whose eyelids close on the `closed` frames."""
  lm = np.array(np.broadcast_to(align.CANONICAL_TEMPLATE * crop, (t, 68, 2)))
  for eye in (range(36, 42), range(42, 48)):
    idx = np.array(list(eye))
    centre = lm[:, idx, 1].mean(-1, keepdims=True)
    squeeze = np.where(closed, 0.1, 1.0)[:, None]
    lm[:, idx, 1] = centre + (lm[:, idx, 1] - centre) * squeeze
  return lm


def test_eye_report_sees_the_blinks_of_a_perfect_network_only():
  t, crop = 30, 32
  closed = [np.isin(np.arange(t), [5, 6, 7, 20, 21]),
            np.zeros(t, bool), np.isin(np.arange(t), [12, 13, 14])]
  frames = np.zeros((t, crop, crop, 3), np.uint8)
  clips = [hn.read_clip(_example(i, frames, np.zeros(t * HOP),
                                 _blinking_landmarks(t, crop, c)))
           for i, c in enumerate(closed)]

  def perfect():
    truth = iter([c.landmarks[:, 36:48] / crop for c in clips])
    return lambda faces: next(truth)

  r = hn.evaluate_eye(clips, perfect(), batch_size=t)
  assert r["ear_mae"]["mean"] < 1e-4 and r["ear_r_frames"] > 0.999
  b = r["blinks"]
  assert (b["reference"], b["found"], b["matched_reference"]) == (3, 3, 3)
  assert b["recall"]["share"] == 1.0 and b["precision"]["share"] == 1.0
  open_eyes = clips[1].landmarks[:, 36:48] / crop
  r = hn.evaluate_eye(clips, lambda faces: open_eyes, batch_size=t)
  assert r["blinks"]["found"] == 0 and r["blinks"]["recall"]["share"] == 0.0
  assert r["ear_mae"]["mean"] > 0.01


def test_match_blinks_tolerance():
  assert hn.match_blinks([(5, 8)], [(9, 11)], tolerance=2) == (1, 1)
  assert hn.match_blinks([(5, 8)], [(12, 14)], tolerance=2) == (0, 0)
  assert hn.match_blinks([(5, 8), (20, 22)], [], tolerance=2) == (0, 0)


# ------------------------------------------------------------ transcripts --


def test_text_metrics_pool_over_the_split():
  r = hn.text_metrics(["bin blue at f two now", "lay red"],
                      ["bin blue at f two now", "lay rid"])
  assert r["wer"] == pytest.approx(1 / 8)
  assert r["cer"] == pytest.approx(1 / (21 + 7))
  assert r["exact"]["count"] == 1


def test_ctc_inputs_match_pretraining():
  """DS2 is scored on exactly the windows its pretraining fed it."""
  from ml_collections import ConfigDict  # pylint: disable=g-import-not-at-top
  t = 20
  rng = np.random.default_rng(0)
  ex = _example(0, np.zeros((t, 8, 8, 3), np.uint8),
                0.1 * rng.standard_normal(t * HOP),
                np.zeros((t, 68, 2)), words=("set", "white"))
  config = ConfigDict({"pretrain": {"num_frames": 24}})
  batch = next(pretrain._ctc_batches([ex], config, 1, 0))  # pylint: disable=protected-access
  windows, paddings = hn.ctc_inputs(hn.read_clip(ex, False), 24)
  np.testing.assert_array_equal(windows, batch["windows"][0])
  np.testing.assert_array_equal(paddings, batch["paddings"][0])


# --------------------------------------------------- the command, end to end --


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
  """A TFDS grid/crop64 of 1 synthetic speaker x 3 utterances (train 2,
  val 1)."""
  from a2v_jax import evaluate  # pylint: disable=g-import-not-at-top
  from a2v_jax.data import synthetic  # pylint: disable=g-import-not-at-top
  root = str(tmp_path_factory.mktemp("helpers_corpus"))
  synthetic.make_corpus(os.path.join(root, "raw"), speakers=1, utterances=3,
                        seed=0, workers=1)
  evaluate.open_split("synthetic", "train", root, 64)
  return os.path.join(root, "tfds")


def _init_inputs(task, config):
  m = config.model
  if task == "ds2_ctc":
    return (np.zeros((1, 4, 20, 13), np.float32),)
  if task == "syncnet":
    return (np.zeros((1, 5, *m.syncnet["input_hw"], 3), np.float32),
            np.zeros((1, 20, 13), np.float32))
  if task == "eye":
    return (np.zeros((1, 32, 32, 3), np.float32),)
  hw = tuple(pretrain.lipnet_config(config).mouth_hw)
  return (np.zeros((1, 4, *hw, 3), np.float32),)


def _write_checkpoint(workdir, name):
  """A randomly initialised helper saved as its pretraining run saves it."""
  import importlib  # pylint: disable=g-import-not-at-top
  config = importlib.import_module(f"configs.{name}_synthetic").get_config(
      "runlocal")
  model, _, _ = pretrain._setup(config)  # pylint: disable=protected-access
  # Compiled unoptimised, as pretraining's init: faster than eager here.
  variables = jax.jit(model.init, compiler_options=a2v_networks.INIT_COMPILER_OPTIONS)(
      jax.random.PRNGKey(0), *_init_inputs(config.task, config))
  helper = {t: n for n, t in pretrain.HELPER_TASKS.items()}.get(config.task)
  meta = {"config": config.to_dict(), "task": config.task, "step": 3}
  if helper:
    meta["network_config"] = pretrain.network_config(helper,
                                                     config.model[helper])
  ckpt = checkpointing.Checkpointer(os.path.join(workdir, "checkpoints"))
  ckpt.save(3, {"variables": variables, "step": np.int32(3)}, meta)
  ckpt.close()
  return os.path.join(workdir, "checkpoints")


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
  root = tmp_path_factory.mktemp("helpers_ckpt")
  return {n: _write_checkpoint(str(root / n), t) for n, t in (
      ("ds2", "ds2_ctc"), ("syncnet", "syncnet"), ("eye", "eye"),
      ("lipnet", "lipnet"))}


def _run_cli(*args):
  env = dict(os.environ, JAX_DISABLE_MOST_OPTIMIZATIONS="true")
  return subprocess.run(
      [sys.executable, "-m", "a2v_jax.evaluate_helpers", *args],
      capture_output=True, text=True, env=env, timeout=600,
      cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_cli_writes_every_table(data_dir, checkpoints, tmp_path):
  out = tmp_path / "report"
  proc = _run_cli(f"--data_dir={data_dir}", "--crop=64", "--split=train",
                  f"--out={out}", "--max_shift=2",
                  *(f"--{n}={p}" for n, p in checkpoints.items()))
  assert proc.returncode == 0, proc.stderr[-3000:]
  rep = json.loads((out / "report.json").read_text())
  assert rep["info"]["utterances"] == 2 and not rep["skipped"]
  assert set(rep["wall_s"]) == {"ds2", "syncnet", "eye", "lipnet"}
  for name in ("ds2", "lipnet"):
    assert len(rep[name]["hypotheses"]) == 2 and rep[name]["wer"] >= 0
  assert list(rep["syncnet"]["shifts"]) == ["-2", "-1", "0", "1", "2"]
  assert all(len(v) == 2 for v in rep["syncnet"]["offsets"].values())
  assert rep["eye"]["frames"] > 0
  md = (out / "report.md").read_text()
  for heading in ("## DeepSpeech2", "## SyncNet", "### Offset",
                  "## Eye network", "## LipNet", "| all |"):
    assert heading in md
  assert md in proc.stdout


def test_cli_skips_networks_not_given_and_one_line_errors(
    data_dir, checkpoints, tmp_path):
  rep = helper_report.evaluate_helpers(
      data_dir, split="val", crop=64, eye=checkpoints["eye"],
      out_dir=str(tmp_path))
  assert set(rep["skipped"]) == {"ds2", "syncnet", "lipnet"}
  assert "eye" in rep and "ds2" not in rep
  assert "- ds2 skipped: no --ds2 given" in (tmp_path / "report.md").read_text()
  with pytest.raises(networks.NetworkError,
                     match="holds a 'syncnet' checkpoint, not 'ds2_ctc'"):
    helper_report.evaluate_helpers(data_dir, split="val", crop=64,
                                   ds2=checkpoints["syncnet"])
  with pytest.raises(hn.HelperEvaluationError,
                     match="has no split 'test'; pass --split= one of "
                           "train, val"):
    helper_report.evaluate_helpers(data_dir, split="test", crop=64)
  with pytest.raises(hn.HelperEvaluationError, match="not built in"):
    helper_report.evaluate_helpers(str(tmp_path / "none"), crop=64)
  proc = _run_cli(f"--data_dir={data_dir}", "--crop=64", f"--out={tmp_path}",
                  f"--eye={tmp_path / 'missing'}")
  assert proc.returncode == 1
  last = proc.stderr.strip().splitlines()[-1]
  assert last.startswith("error: ") and "does not exist" in last
  assert "`eye` pretraining run" in last

