"""Mouth correlation on real data, and unseen faces driven by real speech.

Known answers on constructed inputs (landmarks, mouth series, photos), then
both commands on the four real GRID clips of tests/data/grid_s1, built into
a temporary TFDS dir once for the module.
"""
import json
import os
import zipfile

from absl import flags
import cv2
import numpy as np
import pytest

from a2v_jax import evaluate
from a2v_jax import evaluate_unseen_faces
from a2v_jax import export
from a2v_jax.evaluation import mouth
from a2v_jax.evaluation import report
from a2v_jax.evaluation import unseen_faces
from a2v_jax.face import landmarks as landmarks_lib
import talking_head_testlib as testlib

CORPUS = os.path.join(os.path.dirname(__file__), "data", "grid_s1")


def _face_landmarks(gaps: np.ndarray) -> np.ndarray:
  """[T, 68, 2] landmarks with inner corners 10 px apart and an inner-lip
  gap of `gaps` px."""
  pts = np.zeros((len(gaps), 68, 2), np.float32)
  pts[:, 60] = (45.0, 80.0)
  pts[:, 64] = (55.0, 80.0)
  pts[:, 62] = (50.0, 80.0)
  pts[:, 66, 0] = 50.0
  pts[:, 66, 1] = 80.0 + gaps
  return pts


def test_real_mouth_opening_is_the_gap_over_the_width_without_gaps():
  gaps = np.array([0.0, 2.0, 5.0, 1.0], np.float32)
  pts = _face_landmarks(gaps)
  # A similarity transform (the alignment into crop px) changes nothing.
  angle = np.deg2rad(20.0)
  rot = np.array([[np.cos(angle), -np.sin(angle)],
                  [np.sin(angle), np.cos(angle)]], np.float32)
  moved = 1.7 * pts @ rot.T + np.float32(30.0)
  detected = np.array([True, True, False, True])
  got = mouth.real_mouth_opening(moved, detected)
  np.testing.assert_allclose(got[[0, 1, 3]], [0.0, 0.2, 0.1], atol=1e-6)
  assert np.isnan(got[2])  # interpolated by the builder: not a measurement
  with pytest.raises(mouth.MouthError, match="3 detection flags for 4"):
    mouth.real_mouth_opening(pts, detected[:3])


def _sine(i: int, t: int = 40) -> np.ndarray:
  return np.sin(np.linspace(0, 6 * np.pi, t) + i).astype(np.float32)


def test_score_photo_pairs_each_real_mouth_with_its_own_and_another_audio():
  # The "audio" of utterance i is its real mouth series, and the fake
  # renderer mouths it back (scaled, offset, slightly noisy): the model row
  # finds r ~ 1. Real mouths alternate in sign, so the next utterance's
  # audio mouths exactly the opposite of this utterance's: r ~ -1.
  rng = np.random.default_rng(0)
  real = [_sine(0) * (1 if i % 2 == 0 else -1) for i in range(4)]
  audios = [r.copy() for r in real]
  calls = []

  def opening_for_audio(audio):
    calls.append(len(audio))
    return 0.3 * audio + 2.0 + 0.01 * rng.standard_normal(len(audio))

  real[1][5] = np.nan  # an unmeasured real frame is left out
  r_model, r_shuffled = unseen_faces.score_photo(opening_for_audio, audios,
                                                 real)
  assert calls == [40] * 4  # equal lengths: shuffled clips are reused
  np.testing.assert_allclose(r_model, 1.0, atol=0.01)
  np.testing.assert_allclose(r_shuffled, -1.0, atol=0.01)
  s = unseen_faces.summarize(r_model, r_shuffled)
  assert s["disjoint"]
  assert s["difference"]["mean"] == pytest.approx(2.0, abs=0.01)

  # Utterances of other lengths: the partner's audio is looped or cut to
  # this one's length and rendered anew.
  audios = [_sine(0, 40), _sine(0, 30)]
  real = [_sine(0, 40), _sine(0, 30)]
  calls.clear()
  r_model, r_shuffled = unseen_faces.score_photo(opening_for_audio, audios,
                                                 real)
  assert calls == [40, 30, 40, 30]
  np.testing.assert_allclose(r_model, 1.0, atol=0.01)
  # Utterance 0's shuffled clip loops the 30-sample audio to 40 samples.
  looped = np.resize(audios[1], 40)
  assert r_shuffled[0] == pytest.approx(
      mouth.pearson_correlation(looped, real[0]), abs=0.01)


def test_summary_over_photos_averages_photos_per_utterance():
  model = np.array([0.6, 0.5, 0.7, 0.6])
  flat = np.array([0.0, 0.1, -0.1, 0.0])
  per_photo = {"a": (model, flat), "b": (model - 0.2, flat.copy()),
               "c": (np.full(4, np.nan), flat)}  # no face in any clip
  s = unseen_faces.summarize_photos(per_photo)
  assert s["photos"]["a"]["disjoint"]
  assert s["photos"]["c"]["model"]["mean"] is None
  assert not s["photos"]["c"]["disjoint"]
  assert s["overall"]["model"]["mean"] == pytest.approx(0.5)
  assert s["overall"]["model"]["n"] == 4
  # Same r with and without the audio: the intervals overlap.
  same = unseen_faces.summarize(flat, flat)
  assert not same["disjoint"] and same["difference"]["mean"] == 0.0


def _png(path, image):
  cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
  return str(path)


def test_photos_without_exactly_one_face_are_skipped_with_a_reason(tmp_path):
  face = testlib.astronaut()
  folder = tmp_path / "photos"
  folder.mkdir()
  _png(folder / "grey.png", np.full((200, 200, 3), 128, np.uint8))
  _png(folder / "two.png", np.concatenate([face, face], axis=1))
  (folder / "broken.jpg").write_bytes(b"not a jpeg")
  archive = tmp_path / "photos.whl"
  with zipfile.ZipFile(archive, "w") as z:
    z.write(folder / "grey.png", "pkg/data/images/grey.png")
    z.writestr("pkg/__init__.py", "")
  photos = unseen_faces.load_photos(["astronaut", str(folder), str(archive),
                                     _png(tmp_path / "small.png",
                                          face[::5, ::5])])
  names = [p.name for p in photos]
  assert names == ["astronaut", "broken.jpg", "grey.png", "two.png",
                   "photos.whl!grey.png", "small.png"]
  unseen_faces.check_faces(photos, landmarks_lib.LandmarkDetector(), 128)
  skip = {p.name: p.skip for p in photos}
  assert skip["astronaut"] == ""
  assert skip["broken.jpg"].startswith("photo ") and "\n" not in skip[
      "broken.jpg"]
  assert skip["grey.png"] == skip["photos.whl!grey.png"] == "no face found"
  # (dlib also finds a false face on the suit's patch at this image size)
  assert skip["two.png"].endswith("faces found; a one-shot photo needs "
                                  "exactly one")
  small = photos[-1]  # 103 px: upscaled to the crop, and said so
  assert small.image.shape[:2] == (128, 128)
  assert "upscaled from 103x103" in small.note
  for bad in ("synthetic:0", str(tmp_path / "missing.jpg")):
    with pytest.raises(unseen_faces.UnseenFacesError, match="--photos"):
      unseen_faces.load_photos([bad])


def test_contact_sheet_layout():
  rows = [("real", [np.zeros((64, 64, 3), np.uint8)] * 3),
          ("a very long photo name that wraps over several lines",
           [np.full((32, 32, 3), 200, np.uint8)] * 2)]
  sheet = unseen_faces.contact_sheet(rows, tile=48, label_width=100)
  assert sheet.shape == (96, 100 + 3 * 48, 3)
  assert (sheet[48:, 100:196] == 200).all()  # resized tiles, in place
  assert (sheet[48:, 196:] == 255).all()  # a short row leaves white
  assert (sheet[:48, :100] < 255).any()  # the label is drawn


@pytest.fixture(scope="module")
def real_data(tmp_path_factory):
  """The real clips built at crop 64: train 2 utterances, test 1."""
  from a2v_jax.data import build  # pylint: disable=g-import-not-at-top
  data_dir = str(tmp_path_factory.mktemp("grid_real") / "data")
  build.build("grid", CORPUS, data_dir, 64, test_speakers=(), val_every=0,
              test_every=3, num_workers=1)  # no fork after JAX started
  return data_dir


@pytest.fixture(scope="module")
def export64(tmp_path_factory):
  return export.export_random_model(
      str(tmp_path_factory.mktemp("export64") / "model"),
      generator_config=testlib.generator_config(),
      ds2_config=testlib.ds2_config(),
      preprocessing=export.default_preprocessing(64),
      train_config={"model": {"perceptual": testlib.PERCEPTUAL}})


def test_evaluate_correlates_with_the_real_mouth_on_real_data(
    real_data, export64, tmp_path):
  rep = evaluate.evaluate_export(
      export64, dataset="grid", split="train", data_dir=real_data,
      out_dir=str(tmp_path), evals=("mouth",))
  rows = {r["name"]: r for r in rep["systems"]}
  assert not any("mouth skipped" in n for n in rep["notes"])
  assert rep["info"]["mouth reference"].startswith("dlib landmarks of the "
                                                   "real video")
  for name in (report.MODEL, *report.BASELINES):
    assert len(rows[name]["values"]["mouth_corr"]) == 2
  # The ground-truth row is dlib on the real 64 px crops against the stored
  # landmarks of the same frames: the measurement agrees with itself.
  gt = rows[report.GROUND_TRUTH]["values"]["mouth_corr"]
  assert min(gt) > 0.8
  # The repeated first frame does not open its mouth with the speech.
  static = [v for v in rows[report.STATIC]["values"]["mouth_corr"]
            if v is not None]
  assert all(abs(v) < 0.5 for v in static)
  assert "mouth r" in (tmp_path / "report.md").read_text()


def test_unseen_faces_command_on_real_audio(real_data, export64, tmp_path,
                                            capsys):
  fv = flags.FlagValues()  # a2v_jax.evaluate's flags share some names
  evaluate_unseen_faces.define_flags(fv)
  grey = _png(tmp_path / "grey.png", np.full((100, 100, 3), 90, np.uint8))
  out = tmp_path / "out"
  fv(["evaluate_unseen_faces", f"--model={export64}",
               f"--data_dir={real_data}", "--split=train", f"--out={out}",
               f"--photos=astronaut,{grey}", "--sheet_frames=3"])
  try:
    evaluate_unseen_faces.main(["evaluate_unseen_faces"], fv)
    rep = json.loads((out / "report.json").read_text())
    assert rep["utterances"] == ["s1/bbaf2n", "s1/lgaz8p"]
    assert [p["skip"] for p in rep["photos"]] == ["", "no face found"]
    assert list(rep["values"]) == ["astronaut"]
    assert len(rep["values"]["astronaut"]["model"]) == 2
    assert rep["ceiling"]["n"] == 2 and rep["ceiling"]["mean"] > 0.5
    md = (out / "report.md").read_text()
    assert "| astronaut |" in md and "grey.png: skipped: no face found" in md
    sheet = cv2.imread(str(out / "contact_sheet.png"))
    # The real clip's row and the astronaut's, 64 px crops shown at 128 px.
    assert sheet.shape[0] == 2 * evaluate_unseen_faces.SHEET_TILE
    assert "Wrote the report" in capsys.readouterr().out

    fv.photos = [grey]
    with pytest.raises(SystemExit, match="^error: no usable photo: grey.png: "
                       "no face found$"):
      evaluate_unseen_faces.main(["evaluate_unseen_faces"], fv)
    fv.photos = ["synthetic:x"]
    with pytest.raises(SystemExit, match="^error: --photos: 'synthetic:x'"):
      evaluate_unseen_faces.main(["evaluate_unseen_faces"], fv)
  finally:
    fv.unparse_flags()
