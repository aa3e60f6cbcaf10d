"""Tests for a2v_jax.data.grid_layout and a2v_jax.data.lombard_layout (pure Python)."""
import io
import json
import os
import struct
import tarfile
import zipfile

import pytest

from a2v_jax.data import grid_layout
from a2v_jax.data import lombard_layout

_SENTENCES = {"bbaf2n": "bin blue at f two now", "lgiz1s": "lay green in z one soon",
              "pwbyzp": "place white by y zero please", "srim5a": "set red in m five again"}


def _align_text(utt_id):
  words = _SENTENCES[utt_id].split()
  lines, t = ["0 5000 sil"], 5000
  for w in words:
    lines.append(f"{t} {t + 5000} {w}")
    t += 5000
  lines.append(f"{t} {t + 2500} sp")
  return "\n".join(lines + [f"{t + 2500} 75000 sil"]) + "\n"


def _write(path, data=b"x"):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with open(path, "wb") as f:
    f.write(data if isinstance(data, bytes) else data.encode())


def _add_to_tar(tf, name, data):
  data = data.encode() if isinstance(data, str) else data
  info = tarfile.TarInfo(name)
  info.size = len(data)
  tf.addfile(info, io.BytesIO(data))


def test_parse_align_drops_silence_and_converts_units():
  words, starts, ends = grid_layout.parse_align(_align_text("bbaf2n"))
  assert words == ["bin", "blue", "at", "f", "two", "now"]
  assert starts[0] == pytest.approx(0.2) and ends[-1] == pytest.approx(1.4)
  with pytest.raises(grid_layout.LayoutError, match="line 2"):
    grid_layout.parse_align("0 1 sil\n1 2\n")


def test_grid_words_accepts_z_for_zero():
  assert grid_layout.grid_words("pwbyzp") == grid_layout.grid_words("pwby0p")
  assert grid_layout.grid_words("pwbyzp")[4] == "zero"
  assert grid_layout.is_grid_id("bbaf2n") and not grid_layout.is_grid_id("xxxxxx")


def test_zenodo_layout_extracted_with_gt_and_s21_audio_only(tmp_path):
  root = str(tmp_path)
  for spk, ids in {"s1": ["bbaf2n", "lgiz1s"], "s3": ["pwbyzp"]}.items():
    for u in ids:
      _write(f"{root}/{spk}/{u}.mpg")
      _write(f"{root}/audio_25k/{spk}/{u}.wav")
      _write(f"{root}/alignments/{spk}/{u}.align", _align_text(u))
  _write(f"{root}/s1/bbaf2n.gt.json", "{}")
  _write(f"{root}/audio_25k/s21/srim5a.wav")  # s21: audio, no video
  _write(f"{root}/alignments/s21/srim5a.align", _align_text("srim5a"))
  utts = grid_layout.find_utterances(root)
  assert [(u.speaker, u.utterance) for u in utts] == [
      ("s1", "bbaf2n"), ("s1", "lgiz1s"), ("s3", "pwbyzp")]
  first = utts[0]
  assert first.speaker_id == 1
  assert first.audio.name == "bbaf2n.wav" and first.align.name == "bbaf2n.align"
  assert first.ground_truth is not None and utts[1].ground_truth is None
  assert first.align.read_bytes().decode() == _align_text("bbaf2n")


def test_zenodo_zips_with_swapped_alignment_folders(tmp_path):
  root = str(tmp_path)
  ids = {"s5": ["bbaf2n", "lgiz1s"], "s6": ["pwbyzp", "srim5a"], "s7": ["bbaf2n"]}
  for spk, utts in ids.items():
    with zipfile.ZipFile(f"{root}/{spk}.zip", "w") as zf:
      for u in utts:
        zf.writestr(f"{spk}/{u}.mpg", b"video")
  with zipfile.ZipFile(f"{root}/audio_25k.zip", "w") as zf:
    for spk, utts in ids.items():
      for u in utts:
        zf.writestr(f"audio_25k/{spk}/{u}.wav", b"audio")
  with zipfile.ZipFile(f"{root}/alignments.zip", "w") as zf:
    # As on Zenodo: folder s5 holds s6's files and s6 holds s5's.
    swapped = {"s5": "s6", "s6": "s5", "s7": "s7"}
    for folder, true in swapped.items():
      for u in ids[true]:
        zf.writestr(f"alignments/{folder}/{u}.align", _align_text(u))
  utts = {(u.speaker, u.utterance): u for u in grid_layout.find_utterances(root)}
  assert len(utts) == 5
  assert utts[("s5", "bbaf2n")].align.member == "alignments/s6/bbaf2n.align"
  assert utts[("s6", "srim5a")].align.member == "alignments/s5/srim5a.align"
  assert utts[("s7", "bbaf2n")].align.member == "alignments/s7/bbaf2n.align"
  assert utts[("s5", "bbaf2n")].video.archive.endswith("s5.zip")
  assert utts[("s6", "pwbyzp")].audio.read_bytes() == b"audio"


def test_match_align_folders_keeps_identity_and_fixes_swaps():
  video = {"s1": {"a", "b"}, "s5": {"c", "d"}, "s6": {"e", "f"}}
  align_ids = {"s1": {"a", "b"}, "s5": {"e", "f"}, "s6": {"c", "d"},
               "s21": {"x"}}
  assert grid_layout.match_align_folders(video, align_ids) == {
      "s1": "s1", "s5": "s6", "s6": "s5"}


def test_sheffield_layout_tars_and_vcd_zip(tmp_path):
  root = str(tmp_path)
  with zipfile.ZipFile(f"{root}/s2.mpg_vcd.zip", "w") as zf:
    zf.writestr("s2/bbaf2n.mpg", b"v1")
    zf.writestr("s2/lgiz1s.mpg", b"v2")
    zf.writestr("s2/readme.txt", b"")
  os.makedirs(f"{root}/audio")
  with tarfile.open(f"{root}/audio/s2_50kHz.tar", "w") as tf:
    _add_to_tar(tf, "s2_50kHz/bbaf2n.wav", b"wav-bytes")
  os.makedirs(f"{root}/align")
  with tarfile.open(f"{root}/align/s2.tar", "w") as tf:
    # Sheffield align tars have no speaker folder: the tar's name says it.
    _add_to_tar(tf, "align/bbaf2n.align", _align_text("bbaf2n"))
    _add_to_tar(tf, "align/lgiz1s.align", _align_text("lgiz1s"))
  utts = grid_layout.find_utterances(root)
  assert [(u.speaker, u.utterance) for u in utts] == [("s2", "bbaf2n"),
                                                     ("s2", "lgiz1s")]
  assert utts[0].audio.offset >= 0 and utts[0].audio.read_bytes() == b"wav-bytes"
  assert utts[1].audio is None  # the builder then uses the video's track
  assert utts[1].align.read_bytes().decode() == _align_text("lgiz1s")
  assert utts[0].video.read_bytes() == b"v1"
  os.makedirs(tmp_path / "out")
  local = utts[0].video.local_path(str(tmp_path / "out"))
  with open(local, "rb") as f:
    assert f.read() == b"v1"


def test_missing_or_empty_manual_dir_names_the_archives(tmp_path):
  with pytest.raises(grid_layout.LayoutError, match="alignments.zip"):
    grid_layout.find_utterances(str(tmp_path / "nope"))
  _write(str(tmp_path / "notes.txt"))
  with pytest.raises(grid_layout.LayoutError, match="s{N}.mpg_vcd.zip"):
    grid_layout.find_utterances(str(tmp_path))


def test_bad_names_and_broken_archives_are_skipped_and_counted(tmp_path):
  root = str(tmp_path)
  _write(f"{root}/s1/bbaf2n.mpg")
  _write(f"{root}/s1/notagridid.mpg")
  _write(f"{root}/loose/lgiz1s.mpg")  # no speaker folder
  _write(f"{root}/s9.zip", b"this is not a zip")
  skips = grid_layout.SkipLog()
  utts = grid_layout.find_utterances(root, skips)
  assert [(u.speaker, u.utterance) for u in utts] == [("s1", "bbaf2n")]
  assert skips.counts == {"video name is not a GRID id": 1,
                          "cannot tell the speaker from the path": 1,
                          "unreadable archive": 1}
  assert "skipped 3" in skips.summary()


def test_assign_splits_is_speaker_disjoint_with_val():
  utts = [grid_layout.Utterance(s, u, grid_layout.FileRef(None, f"{s}/{u}.mpg"))
          for s in ("s1", "s2", "s3") for u in sorted(_SENTENCES)]
  splits = grid_layout.assign_splits(utts, ["s2"], val_every=2)
  assert {u.speaker for u in splits["test"]} == {"s2"}
  assert len(splits["test"]) == 4 and len(splits["val"]) == 4
  assert len(splits["train"]) == 4
  train_keys = {(u.speaker, u.utterance) for u in splits["train"]}
  val_keys = {(u.speaker, u.utterance) for u in splits["val"]}
  assert not train_keys & val_keys
  assert {u.speaker for u in splits["val"]} == {"s1", "s3"}
  # Fewer utterances than val_every: each training speaker's last goes to val.
  splits = grid_layout.assign_splits(utts, ["s2"], val_every=20)
  assert [(u.speaker, u.utterance) for u in splits["val"]] == [
      ("s1", "srim5a"), ("s3", "srim5a")]
  assert len(splits["train"]) == 6
  assert not grid_layout.assign_splits(utts, ["s2"], val_every=0)["val"]


# Lombard GRID.


def _mov_bytes(with_moov: bool, mdat_size: int = 1000) -> bytes:
  ftyp = struct.pack(">I4s", 16, b"ftyp") + b"qt  \x00\x00\x00\x00"
  mdat = struct.pack(">I4s", mdat_size, b"mdat") + b"\x00" * (mdat_size - 8)
  moov = struct.pack(">I4s", 16, b"moov") + b"\x00" * 8
  return ftyp + mdat + (moov if with_moov else b"")


def test_moov_atom_check():
  assert lombard_layout.has_moov_atom(io.BytesIO(_mov_bytes(True)))
  assert not lombard_layout.has_moov_atom(io.BytesIO(_mov_bytes(False)))
  assert not lombard_layout.has_moov_atom(io.BytesIO(b""))
  truncated = _mov_bytes(True, mdat_size=5000)[:3000]
  assert not lombard_layout.has_moov_atom(io.BytesIO(truncated))


def test_phone_alignment_regroups_words():
  phones = []
  t = 0.1
  for word_phones in (["b", "ih", "n"], ["b", "l", "uw"], ["ae", "t"], ["eh", "f"],
                      ["t", "uw"], ["n", "aw"]):
    for i, ph in enumerate(word_phones):
      tag = "B" if i == 0 else ("E" if i == len(word_phones) - 1 else "I")
      phones.append({"phone": f"{ph}_{tag}", "offset": t, "duration": 0.05})
      t += 0.05
  phones.insert(0, {"phone": "SIL", "offset": 0.0, "duration": 0.1})
  data = json.dumps({"s2_l_bbaf2n": phones})
  words, starts, ends = lombard_layout.parse_phone_alignment(data, "bbaf2n")
  assert words == ["bin", "blue", "at", "f", "two", "now"]
  assert starts[0] == pytest.approx(0.1) and ends[0] == pytest.approx(0.25)
  assert ends[-1] == pytest.approx(t)
  with pytest.raises(grid_layout.LayoutError, match="has 6"):
    lombard_layout.parse_phone_alignment(json.dumps({"x": phones[:5]}), "bbaf2n")


def test_lombard_layout_front_only_and_wrong_files_skipped(tmp_path):
  root = str(tmp_path / "lombardgrid")
  _write(f"{root}/front/s2_l_bbaf2n.mov", _mov_bytes(True))
  _write(f"{root}/front/s2_p_bbaf2n.mov", _mov_bytes(True))
  _write(f"{root}/front/s30_p_lgiz1s_WRONG_.mov", _mov_bytes(True))
  _write(f"{root}/side/s2_l_bbaf2n.mov", _mov_bytes(True))
  _write(f"{root}/audio/s2_l_bbaf2n.wav")
  _write(f"{root}/alignment/s2_l_bbaf2n.json", "{}")
  _write(f"{root}/front/s2_l_bbaf2n.gt.json", "{}")
  _write(f"{root}/front/s3_l_lgiz1s.mov", _mov_bytes(True))
  _write(f"{root}/json/s3.json", json.dumps([
      {"SPKR": "s3", "COND": "l", "UTTERANCE": "lgiz1s", "STATUS": "WRONG"}]))
  skips = grid_layout.SkipLog()
  utts = lombard_layout.find_utterances(str(tmp_path), skips)
  assert [(u.speaker, u.utterance) for u in utts] == [("s2", "l_bbaf2n"),
                                                     ("s2", "p_bbaf2n")]
  assert utts[0].audio is not None and utts[0].align is not None
  assert utts[0].ground_truth is not None and utts[1].audio is None
  assert "front" in utts[0].video.member
  assert lombard_layout.grid_id_of(utts[0]) == "bbaf2n"
  assert skips.counts == {"_WRONG_ file": 1,
                          "take marked WRONG in lombardgrid/json": 1}
  with pytest.raises(grid_layout.LayoutError, match="lombardgrid_front.zip"):
    lombard_layout.find_utterances(str(tmp_path / "nope"))
