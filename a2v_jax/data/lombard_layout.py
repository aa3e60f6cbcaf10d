"""Finds Lombard GRID utterances in a manual-download folder.

The Audio-Visual Lombard GRID corpus (spandh.dcs.shef.ac.uk/avlombard,
Alghamdi et al. 2018) has speakers s2-s55, each saying GRID sentences in plain
(`p`) and Lombard (`l`) conditions, filmed from the front and the side:

  lombardgrid/front/s{N}_{p|l}_{id}.mov      H.264, 720x480, about 24 fps
  lombardgrid/audio/s{N}_{p|l}_{id}.wav
  lombardgrid/alignment/s{N}_{p|l}_{id}.json phone alignment

shipped as lombardgrid_front.zip, lombardgrid_audio.zip and
lombardgrid_alignment.zip (and lombardgrid_side.zip, unused here). Zipped or
extracted both work. Only the front view is used. Skipped, with a count:

* files with `_WRONG_` in the name (mislabelled takes kept by the corpus);
* MOV files with no `moov` atom (known truncated uploads ffmpeg cannot open);
* takes whose STATUS in the per-speaker `lombardgrid/json/s{N}.json` says
  WRONG.

The alignment JSON maps the utterance name to a list of phones
{"phone", "offset", "duration"} (seconds); phone labels carry a word-position
tag (`_B`, `_I`, `_E`, `_S`), which regroups phones into the six words that the
GRID id names.
"""
from __future__ import annotations

import io
import json
import os
import re
import struct
from typing import BinaryIO

from a2v_jax.data import grid_layout
from a2v_jax.data.grid_layout import FileRef
from a2v_jax.data.grid_layout import LayoutError
from a2v_jax.data.grid_layout import SkipLog
from a2v_jax.data.grid_layout import Utterance

EXPECTED_ARCHIVES = (
    "lombardgrid_front.zip, lombardgrid_audio.zip and lombardgrid_alignment.zip"
    " from the Lombard GRID corpus, zipped or extracted (lombardgrid/front/"
    "s{N}_{p|l}_{id}.mov, lombardgrid/audio/..., lombardgrid/alignment/...)")
VIEW = "front"

_NAME = re.compile(r"^(s\d+)_([pl])_([a-z0-9]{6})$", re.IGNORECASE)
_SILENCE = re.compile(r"^(sil|sp|spn|<eps>|)$", re.IGNORECASE)


def parse_name(stem: str) -> tuple[str, str, str] | None:
  """"s2_l_bbim3a" -> ("s2", "l", "bbim3a"); None if not a Lombard name."""
  m = _NAME.match(stem)
  if not m or not grid_layout.is_grid_id(m.group(3)):
    return None
  return f"s{int(m.group(1)[1:])}", m.group(2).lower(), m.group(3).lower()


def has_moov_atom(f: BinaryIO) -> bool:
  """Whether a QuickTime/MP4 file has a top-level `moov` atom.

  Walks the top-level atom headers with seeks, so only a few bytes are read
  even when a large `mdat` comes first.

  Args:
    f: the file, opened in binary mode and seekable (or io.BytesIO).
  """
  f.seek(0, io.SEEK_END)
  end = f.tell()
  pos = 0
  while pos + 8 <= end:
    f.seek(pos)
    header = f.read(16)
    size, kind = struct.unpack(">I4s", header[:8])
    if kind == b"moov":
      return True
    if size == 1:
      if len(header) < 16:
        return False
      size = struct.unpack(">Q", header[8:16])[0]
    elif size == 0:
      return False  # the last atom runs to the end of the file
    if size < 8:
      return False
    pos += size
  return False


def ref_has_moov_atom(ref: FileRef) -> bool:
  """has_moov_atom for a plain file or an archive member."""
  if ref.archive is None:
    with open(ref.member, "rb") as f:
      return has_moov_atom(f)
  return has_moov_atom(io.BytesIO(ref.read_bytes()))


def parse_phone_alignment(data: bytes | str, utterance_id: str
                          ) -> tuple[list[str], list[float], list[float]]:
  """Word times of a Lombard GRID utterance from its phone alignment JSON.

  Args:
    data: JSON {name: [{"phone": "b_B", "offset": s, "duration": s}, ...]}
      (a bare list of phones is accepted too).
    utterance_id: the GRID id; its six words name the phone groups.

  Returns:
    (words, start seconds, end seconds), six of each.

  Raises:
    LayoutError: the phones do not group into the id's six words.
  """
  payload = json.loads(data)
  if isinstance(payload, dict):
    if len(payload) != 1:
      raise LayoutError(f"alignment JSON has {len(payload)} entries, expected 1")
    payload = next(iter(payload.values()))
  words = list(grid_layout.grid_words(utterance_id))
  groups, current = [], None
  for item in payload:
    label = str(item["phone"])
    start = float(item["offset"])
    end = start + float(item["duration"])
    base, _, tag = label.rpartition("_")
    if not base:
      base, tag = label, ""
    if _SILENCE.match(base):
      current = None
      continue
    tag = tag.upper()
    if tag in ("B", "S") or current is None:
      current = [start, end]
      groups.append(current)
    current[1] = end
    if tag in ("E", "S"):
      current = None
  if len(groups) != len(words):
    raise LayoutError(f"alignment has {len(groups)} words, the id"
                      f" {utterance_id!r} has {len(words)}")
  return words, [g[0] for g in groups], [g[1] for g in groups]


def find_utterances(manual_dir: str, skips: SkipLog | None = None
                    ) -> list[Utterance]:
  """Every front-view Lombard GRID utterance under manual_dir.

  The utterance field is "{condition}_{id}" (e.g. "l_bbim3a"), unique per
  speaker because a sentence may be said in both conditions.

  Raises:
    LayoutError: manual_dir is missing or holds no front-view video.
  """
  skips = skips if skips is not None else SkipLog()
  if not manual_dir or not os.path.isdir(manual_dir):
    raise LayoutError(f"Lombard GRID manual_dir {manual_dir!r} is not a folder;"
                      f" download into it {EXPECTED_ARCHIVES}")
  videos, audios, aligns, gts = {}, {}, {}, {}
  wrong = set()  # (speaker, "{cond}_{id}") marked WRONG in lombardgrid/json
  for ref in grid_layout.list_files(manual_dir, skips):
    name = ref.name
    lower = name.lower()
    folders = ref.member.replace("\\", "/").lower().split("/")[:-1]
    if lower.endswith(grid_layout.GT_SUFFIX):
      kind, stem = "gt", name[:-len(grid_layout.GT_SUFFIX)]
    elif lower.endswith(grid_layout.VIDEO_SUFFIXES):
      if "side" in folders:
        continue
      kind, stem = "video", os.path.splitext(name)[0]
    elif lower.endswith(grid_layout.AUDIO_SUFFIXES):
      kind, stem = "audio", os.path.splitext(name)[0]
    elif lower.endswith(".json") and "alignment" in folders:
      kind, stem = "align", os.path.splitext(name)[0]
    elif lower.endswith(".json") and "json" in folders:
      wrong.update(_wrong_takes(ref))
      continue
    else:
      continue
    if "_wrong_" in lower:
      if kind == "video":
        skips.skip(ref, "_WRONG_ file")
      continue
    parsed = parse_name(stem)
    if parsed is None:
      if kind == "video":
        skips.skip(ref, "video name is not s{N}_{p|l}_{GRID id}")
      continue
    speaker, condition, code = parsed
    key = (speaker, f"{condition}_{code}")
    {"video": videos, "audio": audios, "align": aligns, "gt": gts}[kind].setdefault(key, ref)

  if not videos:
    raise LayoutError(f"no Lombard GRID front videos found in {manual_dir};"
                      f" expected {EXPECTED_ARCHIVES}")
  utterances = []
  for key in sorted(videos, key=lambda k: (grid_layout.speaker_number(k[0]), k[1])):
    if key in wrong:
      skips.skip(videos[key], "take marked WRONG in lombardgrid/json")
      continue
    utterances.append(Utterance(
        speaker=key[0], utterance=key[1], video=videos[key],
        audio=audios.get(key), align=aligns.get(key), ground_truth=gts.get(key)))
  return utterances


def _wrong_takes(ref: FileRef) -> set[tuple[str, str]]:
  """Takes a per-speaker lombardgrid/json/s{N}.json file marks as WRONG.

  Rows look like {"SPKR": "s2", "COND": "l", "UTTERANCE": "bbim3a",
  "STATUS": "CORRECT"}; an unreadable file marks nothing.
  """
  try:
    rows = json.loads(ref.read_bytes())
    return {(f"s{grid_layout.speaker_number(str(r['SPKR']).lower())}",
             f"{str(r['COND']).lower()}_{str(r['UTTERANCE']).lower()}")
            for r in rows if "WRONG" in str(r.get("STATUS", "")).upper()}
  except (ValueError, KeyError, TypeError, AttributeError):
    return set()


def grid_id_of(utterance: Utterance) -> str:
  """The GRID id inside a Lombard utterance name: "l_bbim3a" -> "bbim3a"."""
  return utterance.utterance.split("_", 1)[-1]
