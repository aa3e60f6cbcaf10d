"""Synthetic GRID / Lombard GRID corpus: layout, speech timing, faces, determinism."""
import glob
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from a2v_jax.data import espeak
from a2v_jax.data import face_motion
from a2v_jax.data import face_render
from a2v_jax.data import grid_grammar
from a2v_jax.data import synthetic
from a2v_jax.face import landmarks as face_landmarks
from a2v_jax.media import video

_TOKENS = set(grid_grammar.VOCABULARY) | {"sil", "sp"}


@pytest.fixture(scope="module")
def grid_corpus(tmp_path_factory):
  out = str(tmp_path_factory.mktemp("grid"))
  synthetic.make_corpus(out, speakers=2, utterances=2, seed=3, workers=1)
  return out


@pytest.fixture(scope="module")
def detector():
  return face_landmarks.LandmarkDetector()


def _gt_files(root):
  return sorted(glob.glob(os.path.join(root, "s*", "*.gt.json")))


def test_espeak_gives_audio_and_ordered_timings():
  speech = espeak.synthesize("bin blue at eigh two now", espeak.Voice("en+m3", rate=160))
  assert speech.sample_rate == 22050
  assert speech.audio.dtype == np.float32 and np.abs(speech.audio).max() > 0.1
  assert [w[2] for w in speech.words] == ["bin", "blue", "at", "eigh", "two", "now"]
  starts = [w[0] for w in speech.words]
  assert starts == sorted(starts) and all(e > s for s, e, _ in speech.words)
  names = [p[2] for p in speech.phonemes]
  assert names[:3] == ["b", "I", "n"] and "u:" in names
  # Every word starts on one of its phonemes.
  assert {round(w[0], 6) for w in speech.words} <= {round(p[0], 6) for p in speech.phonemes}
  assert speech.phonemes[-1][1] <= len(speech.audio) / 22050 + 1e-6


def test_voices_are_distinct_and_valid():
  voices = [synthetic.speaker_voice(i) for i in range(54)]
  assert len({(v.name, v.pitch, v.pitch_range, v.rate) for v in voices}) == 54
  assert "+f" in voices[0].name  # speaker 1 (the astronaut portrait) is female


def test_grid_layout(grid_corpus):
  gts = _gt_files(grid_corpus)
  assert len(gts) == 4
  for speaker in ("s1", "s2"):
    ids = [os.path.basename(p)[:6] for p in gts if f"/{speaker}/" in p]
    assert len(set(ids)) == 2
  for gt_path in gts:
    speaker = os.path.basename(os.path.dirname(gt_path))
    code = os.path.basename(gt_path)[:6]
    words = grid_grammar.id_to_sentence(code)
    frames, fps = video.read_video(gt_path.replace(".gt.json", ".mpg"))
    assert frames.shape == (75, 288, 360, 3) and fps == 25.0
    info = video.probe_streams(gt_path.replace(".gt.json", ".mpg"))
    assert info.audio_duration_s == pytest.approx(3.0, abs=0.1)
    audio, rate = sf.read(os.path.join(grid_corpus, "audio_25k", speaker, f"{code}.wav"))
    assert rate == 25000 and audio.ndim == 1 and len(audio) == 75000
    rows = [line.split() for line in open(
        os.path.join(grid_corpus, "alignments", speaker, f"{code}.align"))]
    assert rows[0][2] == "sil" and int(rows[0][0]) == 0
    assert rows[-1][2] == "sil" and int(rows[-1][1]) == 75000
    assert all(r[2] in _TOKENS for r in rows)
    assert all(int(a[1]) == int(b[0]) for a, b in zip(rows, rows[1:]))  # contiguous
    assert tuple(r[2] for r in rows if r[2] not in ("sil", "sp")) == words
    gt = json.load(open(gt_path))
    assert gt["fps"] == 25 and gt["num_frames"] == 75 and gt["speaker"] == speaker
    assert len(gt["mouth_open"]) == 75 and len(gt["blink"]) == 75
    assert min(gt["mouth_open"]) >= 0 and max(gt["mouth_open"]) <= 1
    assert max(gt["mouth_open"]) > 0.3 and set(gt["blink"]) <= {0, 1}
    assert tuple(w[2] for w in gt["words"]) == words
    for (s, e, w), row in zip(gt["words"], [r for r in rows if r[2] not in ("sil", "sp")]):
      assert abs(int(row[0]) - s * 25000) <= 1 and w == row[2]
    assert 0 < gt["words"][0][0] and gt["words"][-1][1] < 3.0
    assert gt["phonemes"] and gt["voice"]
    # Audio is silent before the first word and carries speech within the words.
    start = int(gt["words"][0][0] * 25000)
    assert np.abs(audio[:start - 500]).max() < 0.01
    assert np.abs(audio[start:int(gt["words"][-1][1] * 25000)]).max() > 0.1


def test_landmarks_found_and_mouth_follows_phonemes(grid_corpus, detector):
  found = total = 0
  truth, measured = [], []
  for gt_path in _gt_files(grid_corpus):
    gt = json.load(open(gt_path))
    frames, _ = video.read_video(gt_path.replace(".gt.json", ".mpg"))
    lm = detector.detect_clip(frames)
    ok = ~np.isnan(lm[:, 0, 0])
    found += ok.sum()
    total += len(ok)
    eyes = np.linalg.norm(lm[:, 36:42].mean(1) - lm[:, 42:48].mean(1), axis=-1)
    gap = np.mean([lm[:, b, 1] - lm[:, a, 1] for a, b in ((61, 67), (62, 66), (63, 65))],
                  axis=0) / eyes
    truth.append(np.asarray(gt["mouth_open"])[ok])
    measured.append(gap[ok])
  assert found / total >= 0.99
  r = np.corrcoef(np.concatenate(truth), np.concatenate(measured))[0, 1]
  assert r > 0.7, r


def test_speakers_differ_and_blinks_close_eyes(detector):
  first = face_render.build_speaker(0, 288, 360, seed=0)
  second = face_render.build_speaker(1, 288, 360, seed=0)
  assert np.abs(first.image.astype(int) - second.image.astype(int)).mean() > 10
  assert np.linalg.norm(first.landmarks - second.landmarks, axis=1).mean() > 3
  still = np.zeros((2, 4), np.float32)
  still[:, 3] = 1.0
  frames = face_render.render_frames(first, np.zeros(2), np.zeros(2),
                                     np.array([0.0, 1.0], np.float32), still)

  def eye_aspect(lm):
    return np.mean([(np.linalg.norm(lm[a + 1] - lm[a + 5]) + np.linalg.norm(lm[a + 2] - lm[a + 4]))
                    / (2 * np.linalg.norm(lm[a] - lm[a + 3])) for a in (36, 42)])

  open_eyes, closed_eyes = (eye_aspect(detector.detect(f)) for f in frames)
  assert closed_eyes < 0.8 * open_eyes


def test_visemes_close_lips_on_bilabials():
  phonemes = [(0.2, 0.3, "m"), (0.3, 0.5, "a"), (0.5, 0.6, "p"), (0.6, 0.8, "u:")]
  mouth, width = face_motion.viseme_tracks(phonemes, 25, 25.0)
  assert mouth[int(0.25 * 25)] < 0.1 and mouth[int(0.55 * 25)] < 0.15
  assert mouth[int(0.4 * 25)] > 0.6
  assert width[int(0.72 * 25)] < -0.4  # rounded u:
  assert mouth[0] == 0 and mouth[-1] == 0


def test_espeak_is_deterministic_whatever_came_before():
  voice = espeak.Voice("en+f2", pitch=60)
  first = espeak.synthesize("lay green by q five please", voice)
  espeak.synthesize("set white with z nine again", espeak.Voice("en-us+m4", pitch=30))
  second = espeak.synthesize("lay green by q five please", voice)
  assert np.array_equal(first.audio, second.audio)
  assert first.words == second.words and first.phonemes == second.phonemes


def test_same_seed_same_corpus_with_workers(grid_corpus, tmp_path):
  # Speaker s1 of a 1-speaker corpus made by 2 worker processes must equal s1
  # of the fixture corpus made in this process.
  other = str(tmp_path / "again")
  synthetic.make_corpus(other, speakers=1, utterances=2, seed=3, workers=2)
  names = sorted(os.path.relpath(p, other)
                 for p in glob.glob(os.path.join(other, "**", "*"), recursive=True)
                 if os.path.isfile(p))
  assert len(names) == 8
  for name in names:
    assert os.path.isfile(os.path.join(grid_corpus, name)), name
    if name.endswith((".wav", ".align", ".gt.json")):
      with open(os.path.join(grid_corpus, name), "rb") as a, \
          open(os.path.join(other, name), "rb") as b:
        assert a.read() == b.read(), name
  different = str(tmp_path / "seed4")
  synthetic.make_corpus(different, speakers=1, utterances=1, seed=4, workers=1)
  code = os.listdir(os.path.join(different, "alignments", "s1"))[0]
  assert code not in os.listdir(os.path.join(grid_corpus, "alignments", "s1"))


def test_lombard_layout(tmp_path):
  out = str(tmp_path)
  synthetic.make_corpus(out, speakers=1, utterances=2, seed=0, layout="lombard", workers=1)
  root = os.path.join(out, "lombardgrid")
  movs = sorted(glob.glob(os.path.join(root, "front", "*.mov")))
  assert [os.path.basename(m)[:5] for m in movs] == ["s2_l_", "s2_p_"]
  loudness = {}
  for mov in movs:
    stem = os.path.basename(mov)[:-4]
    frames, fps = video.read_video(mov)
    assert frames.shape == (72, 480, 720, 3) and fps == pytest.approx(24.0)
    audio, rate = sf.read(os.path.join(root, "audio", f"{stem}.wav"))
    assert rate == 48000 and len(audio) == 144000
    loudness[stem[3]] = np.sqrt(np.mean(audio ** 2))
    align = json.load(open(os.path.join(root, "alignment", f"{stem}.json")))
    phones = align[stem]
    assert phones[0]["phone"] == "sil" and phones[-1]["phone"] == "sil"
    starts = sum(p["phone"].endswith(("_B", "_S")) for p in phones)
    assert starts == 6
    assert all(set(p) == {"duration", "offset", "phone"} for p in phones)
    gt = json.load(open(mov[:-4] + ".gt.json"))
    assert gt["num_frames"] == 72 and gt["speaker"] == "s2"
  assert loudness["l"] > loudness["p"]  # Lombard speech is louder
  rows = json.load(open(os.path.join(root, "json", "s2.json")))
  assert {(r["COND"], r["STATUS"]) for r in rows} == {("p", "CORRECT"), ("l", "CORRECT")}


@pytest.mark.parametrize("kwargs, message", [
    (dict(speakers=35), "1 to 34 speakers"),
    (dict(speakers=0), "1 to 34 speakers"),
    (dict(utterances=64001), "64000"),
    (dict(layout="vox"), "--layout"),
])
def test_bad_arguments(tmp_path, kwargs, message):
  args = dict(out_dir=str(tmp_path), speakers=1, utterances=1, seed=0) | kwargs
  with pytest.raises(synthetic.SyntheticCorpusError, match=message) as err:
    synthetic.make_corpus(**args)
  assert "\n" not in str(err.value)


def test_unwritable_out_dir_cli(tmp_path):
  blocker = tmp_path / "a_file"
  blocker.write_text("x")
  proc = subprocess.run(
      [sys.executable, "-m", "a2v_jax.data.synthetic", f"--out_dir={blocker}/corpus",
       "--speakers=1", "--utterances=1"], capture_output=True, text=True, check=False)
  assert proc.returncode == 1
  lines = [l for l in proc.stderr.splitlines() if l.strip()]
  assert lines[-1].startswith("error: cannot write to --out_dir") and len(lines) == 1
