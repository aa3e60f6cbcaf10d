"""The real-data path on four real GRID utterances (tests/data/grid_s1).

MPEG-1 video with 44.1 kHz stereo MP2 audio, decoded by the bundled ffmpeg;
dlib's face detection and landmarks on real faces; the GRID builder end to
end with the utterance-level split; the skip of a clip whose stream starts
without a key frame.
"""
import os

import numpy as np
import pytest
import tensorflow_datasets as tfds

from a2v_jax.audio import io as audio_io
from a2v_jax.data import build
from a2v_jax.data import grid_layout
from a2v_jax.face import align
from a2v_jax.face import landmarks as landmarks_lib
from a2v_jax.media import video as video_lib

CORPUS = os.path.join(os.path.dirname(__file__), "data", "grid_s1")
GOOD = ("bbaf2n", "lgaz8p", "srbo4p")
BROKEN = "brwa4p"  # its first 12 frames decode to no picture


def _mpg(utterance: str) -> str:
  return os.path.join(CORPUS, "s1", f"{utterance}.mpg")


def test_mpeg1_video_and_mp2_audio_decode():
  clip = video_lib.read_video(_mpg(GOOD[0]))
  assert clip.frames.shape == (75, 288, 360, 3) and clip.frames.dtype == np.uint8
  assert clip.fps == pytest.approx(25.0)
  info = video_lib.probe_streams(_mpg(GOOD[0]))
  assert info.video_codec == "mpeg1video" and info.audio_codec == "mp2"
  audio = audio_io.load_audio(_mpg(GOOD[0]), sample_rate=16000)
  assert audio.ndim == 1 and audio.dtype == np.float32
  assert len(audio) / 16000 == pytest.approx(3.0, abs=0.1)
  # Speech, not silence: the loudest 100 ms is far above the quietest.
  frames = audio[:len(audio) // 1600 * 1600].reshape(-1, 1600)
  rms = np.sqrt((frames ** 2).mean(axis=1))
  assert rms.max() > 0.02 and rms.max() > 10 * rms.min()


@pytest.fixture(scope="module")
def detector():
  return landmarks_lib.LandmarkDetector()


def test_faces_found_and_aligned_in_99_percent_of_real_frames(detector):
  found = []
  for utterance in GOOD:
    frames = video_lib.read_video(_mpg(utterance)).frames
    pts = detector.detect_clip(frames)
    ok = ~np.isnan(pts[:, 0, 0])
    found.append(ok)
    aligned, aligned_pts, _ = align.align_clip(frames, pts, crop=64)
    assert aligned.shape == (75, 64, 64, 3)
    # The eyes of the aligned face sit where the template puts them (within
    # 3 px of 64) on every frame; the mouth, which speaks, within 6 px.
    template = align.CANONICAL_TEMPLATE * 64
    for group, tol in ((slice(36, 42), 3.0), (slice(42, 48), 3.0),
                       (slice(48, 68), 6.0)):
      err = np.abs(aligned_pts[:, group].mean(1) - template[group].mean(0))
      assert err.max() < tol, (utterance, group, err.max())
  assert np.concatenate(found).mean() >= 0.99


def test_builder_end_to_end_with_an_utterance_split(tmp_path):
  data_dir = str(tmp_path / "data")
  builder = build.build("grid", CORPUS, data_dir, 64, test_speakers=(),
                        val_every=0, test_every=3, num_workers=2)
  # The broken clip is skipped with its reason; the others all build.
  assert builder.skips.total == 1
  assert "without a face" in builder.skips.summary()
  splits = {k: v.num_examples for k, v in builder.info.splits.items()}
  # Sorted usable clips bbaf2n, lgaz8p, srbo4p: the 3rd goes to test.
  assert splits == {"train": 2, "test": 1}
  test = tfds.data_source("grid/crop64", split="test", data_dir=data_dir)
  assert test[0]["utterance"] == b"srbo4p"
  train = tfds.data_source("grid/crop64", split="train", data_dir=data_dir)
  for i in range(len(train)):
    ex = train[i]
    utt = ex["utterance"].decode()
    assert [w.decode() for w in ex["words"]] == list(grid_layout.grid_words(utt))
    assert len(ex["frames"]) == 75 and np.mean(ex["landmarks_detected"]) >= 0.99
    assert len(ex["audio"]) / 16000 == pytest.approx(3.0, abs=0.1)
    assert not ex["has_ground_truth"]
  assert builder.info.metadata["test_every"] == 3


def test_one_speaker_as_test_speaker_hints_at_the_utterance_split(tmp_path):
  with pytest.raises(build.BuildError, match="--test_every=5"):
    build.build("grid", CORPUS, str(tmp_path / "data"), 64,
                test_speakers=["s1"], num_workers=1)
  with pytest.raises(build.BuildError, match="test_every"):
    build.build("grid", CORPUS, str(tmp_path / "data"), 64, test_speakers=(),
                test_every=1, num_workers=1)


def test_split_rule_counts_val_among_the_utterances_left():
  utts = [grid_layout.Utterance(speaker="s1", utterance=f"u{i:03d}", video=None)
          for i in range(40)]
  splits = grid_layout.assign_splits(utts, (), val_every=4, test_every=5)
  assert len(splits["test"]) == 8
  assert [u.utterance for u in splits["test"]][:2] == ["u004", "u009"]
  assert len(splits["val"]) == 8 and len(splits["train"]) == 24
  assert not {u.utterance for u in splits["val"]} & {u.utterance for u in splits["test"]}
