"""Finds GRID utterances in a manual-download folder, zipped or extracted.

Two public layouts are read, in any mix of archives and extracted folders:

* Sheffield (spandh.dcs.shef.ac.uk/gridcorpus): `s{N}.mpg_vcd.zip` (holding
  `s{N}/*.mpg`), `audio/s{N}.tar` or `audio/s{N}_50kHz.tar` (`s{N}/*.wav`) and
  `align/s{N}.tar` (`align/*.align`, the speaker only in the archive's name).
* Zenodo (doi 10.5281/zenodo.3625687): `s{N}.zip` (`s{N}/*.mpg`),
  `audio_25k.zip` (`audio_25k/s{N}/*.wav`) and `alignments.zip`
  (`alignments/s{N}/*.align`). In that alignments.zip many speaker folders hold
  another speaker's files (s5 and s6 are swapped, s14 and s15, and more). The
  folders are re-assigned here by matching their utterance ids against the
  video ids of each speaker, so the fix needs no hard-coded table.

Speaker s21 has no video; a speaker with no videos simply yields nothing.

Everything here is pure Python (zipfile, tarfile), with no decoding, so it is
quick to test. Files are referred to by `FileRef`, which workers can pickle.
"""
from __future__ import annotations

import collections
import dataclasses
import os
import re
import tarfile
import zipfile

from absl import logging

from a2v_jax.data import grid_grammar

VIDEO_SUFFIXES = (".mpg", ".mpeg", ".mp4", ".mov", ".avi")
AUDIO_SUFFIXES = (".wav", ".flac")
GT_SUFFIX = ".gt.json"
ALIGN_SUFFIX = ".align"
ALIGN_UNITS_PER_S = 25000.0  # GRID .align times are in 1/25000 s.
SILENCE_TOKENS = ("sil", "sp")

EXPECTED_ARCHIVES = (
    "Sheffield layout: s{N}.mpg_vcd.zip, audio/s{N}.tar (or s{N}_50kHz.tar) and"
    " align/s{N}.tar; or Zenodo layout: s{N}.zip, audio_25k.zip and"
    " alignments.zip; zipped or extracted (s{N}/*.mpg, audio_25k/s{N}/*.wav,"
    " alignments/s{N}/*.align)")

_SPEAKER_DIR = re.compile(r"^s(\d+)$")
_SPEAKER_ARCHIVE = re.compile(r"^s(\d+)(?:[._].*)?$")
_GRID_ID = re.compile(r"^[a-z]{4}[0-9z][a-z]$")


class LayoutError(ValueError):
  """The manual-download folder does not hold the expected files."""


@dataclasses.dataclass(frozen=True)
class FileRef:
  """A file on disk, or a member of a zip or tar archive.

  Attributes:
    archive: path of the zip/tar, or None for a plain file.
    member: name inside the archive, or the plain file's path.
    offset: for members of uncompressed tars, where the data starts (lets a
      worker read it without scanning the tar); -1 otherwise.
    size: member size in bytes (-1 if unknown).
  """
  archive: str | None
  member: str
  offset: int = -1
  size: int = -1

  def __str__(self) -> str:
    return self.member if self.archive is None else f"{self.archive}:{self.member}"

  @property
  def name(self) -> str:
    return self.member.rsplit("/", 1)[-1]

  def read_bytes(self) -> bytes:
    """The file's contents."""
    if self.archive is None:
      with open(self.member, "rb") as f:
        return f.read()
    if self.offset >= 0:
      with open(self.archive, "rb") as f:
        f.seek(self.offset)
        return f.read(self.size)
    if zipfile.is_zipfile(self.archive):
      with zipfile.ZipFile(self.archive) as zf:
        return zf.read(self.member)
    with tarfile.open(self.archive) as tf:
      member = tf.extractfile(self.member)
      if member is None:
        raise LayoutError(f"{self} is not a regular file")
      return member.read()

  def local_path(self, tmp_dir: str) -> str:
    """A path on disk with the file's contents (a copy in tmp_dir if archived)."""
    if self.archive is None:
      return self.member
    path = os.path.join(tmp_dir, self.name)
    with open(path, "wb") as f:
      f.write(self.read_bytes())
    return path


@dataclasses.dataclass(frozen=True)
class Utterance:
  """One utterance: its speaker, id and the files that hold it."""
  speaker: str          # "s1"
  utterance: str        # "bbaf2n"
  video: FileRef
  audio: FileRef | None = None
  align: FileRef | None = None
  ground_truth: FileRef | None = None

  @property
  def speaker_id(self) -> int:
    return speaker_number(self.speaker)


class SkipLog:
  """Counts and logs every file or utterance that is skipped, by reason."""

  def __init__(self):
    self.counts = collections.Counter()
    self.examples = {}

  def skip(self, what, reason: str, detail: str = "") -> None:
    """Counts one skip. reason: a short category; detail: this file's specifics."""
    self.counts[reason] += 1
    self.examples.setdefault(reason, str(what))
    logging.warning("skipping %s: %s%s", what, reason,
                    f" ({detail})" if detail else "")

  def update(self, other: "SkipLog") -> None:
    """Adds another log's counts to this one."""
    self.counts.update(other.counts)
    for reason, what in other.examples.items():
      self.examples.setdefault(reason, what)

  @property
  def total(self) -> int:
    return sum(self.counts.values())

  def summary(self) -> str:
    if not self.counts:
      return "nothing skipped"
    parts = [f"{n} x {reason} (e.g. {self.examples[reason]})"
             for reason, n in self.counts.most_common()]
    return f"skipped {self.total}: " + "; ".join(parts)


def speaker_number(speaker: str) -> int:
  """"s12" -> 12."""
  m = _SPEAKER_DIR.match(speaker)
  if not m:
    raise LayoutError(f"speaker names look like 's12', got {speaker!r}")
  return int(m.group(1))


def list_files(root: str, skips: SkipLog | None = None) -> list[FileRef]:
  """Every file under root, looking inside .zip and .tar archives too.

  Archives are opened once here to list them; members of uncompressed tars
  get their data offset so they can be read later without a scan. An archive
  that cannot be opened is skipped (and counted in `skips`).
  """
  refs = []
  for dirpath, dirnames, filenames in os.walk(root):
    dirnames.sort()
    for filename in sorted(filenames):
      path = os.path.join(dirpath, filename)
      lower = filename.lower()
      try:
        if lower.endswith(".zip"):
          with zipfile.ZipFile(path) as zf:
            refs.extend(FileRef(path, info.filename, -1, info.file_size)
                        for info in zf.infolist() if not info.is_dir())
          continue
        if lower.endswith((".tar", ".tar.gz", ".tgz")):
          plain = lower.endswith(".tar")
          with tarfile.open(path) as tf:
            refs.extend(FileRef(path, m.name, m.offset_data if plain else -1,
                                m.size) for m in tf.getmembers() if m.isfile())
          continue
      except (zipfile.BadZipFile, tarfile.TarError, OSError) as e:
        (skips if skips is not None else SkipLog()).skip(
            path, "unreadable archive", str(e))
        continue
      refs.append(FileRef(None, path, -1, -1))
  return refs


def speaker_of(ref: FileRef) -> str | None:
  """The speaker a file belongs to, from its folders or its archive's name.

  The innermost folder named like "s12" wins; failing that, an archive named
  "s12.tar", "s12_50kHz.tar" or "s12.mpg_vcd.zip" gives the speaker.
  """
  parts = ref.member.replace("\\", "/").split("/")[:-1]
  for part in reversed(parts):
    m = _SPEAKER_DIR.match(part)
    if m:
      return f"s{int(m.group(1))}"
  if ref.archive is not None:
    m = _SPEAKER_ARCHIVE.match(os.path.basename(ref.archive).lower())
    if m:
      return f"s{int(m.group(1))}"
  return None


def grid_words(utterance_id: str) -> tuple[str, ...]:
  """Sentence words of a GRID id; the digit may be "0"-"9" or "z" (zero)."""
  code = utterance_id.lower()
  if len(code) == 6 and code[4] == "z":
    code = code[:4] + "0" + code[5]
  return grid_grammar.id_to_sentence(code)


def is_grid_id(name: str) -> bool:
  """Whether a file stem looks like a GRID id ("bbaf2n")."""
  if not _GRID_ID.match(name.lower()):
    return False
  try:
    grid_words(name)
  except grid_grammar.GridGrammarError:
    return False
  return True


def parse_align(text: str) -> tuple[list[str], list[float], list[float]]:
  """Parses a GRID .align file.

  Args:
    text: lines "start end word", times in 1/25000 s, with sil/sp tokens.

  Returns:
    (words without sil/sp, start seconds, end seconds).
  """
  words, starts, ends = [], [], []
  for line_no, line in enumerate(text.splitlines(), 1):
    fields = line.split()
    if not fields:
      continue
    if len(fields) != 3:
      raise LayoutError(f"align line {line_no} is not 'start end word': {line!r}")
    start, end, word = fields
    if word.lower() in SILENCE_TOKENS:
      continue
    words.append(word.lower())
    starts.append(float(start) / ALIGN_UNITS_PER_S)
    ends.append(float(end) / ALIGN_UNITS_PER_S)
  return words, starts, ends


def _stem(name: str, suffix: str) -> str:
  return name[:-len(suffix)]


def _kind(ref: FileRef) -> tuple[str, str] | None:
  """("video"|"audio"|"align"|"gt", stem) for files the builder uses."""
  lower = ref.name.lower()
  if lower.endswith(GT_SUFFIX):
    return "gt", _stem(ref.name, GT_SUFFIX)
  for kind, suffixes in (("video", VIDEO_SUFFIXES), ("audio", AUDIO_SUFFIXES),
                         ("align", (ALIGN_SUFFIX,))):
    for suffix in suffixes:
      if lower.endswith(suffix):
        return kind, _stem(ref.name, suffix)
  return None


def match_align_folders(video_ids: dict[str, set[str]],
                        align_ids: dict[str, set[str]]) -> dict[str, str]:
  """Maps each alignment folder to the speaker whose videos it matches.

  A folder keeps its own name when at least half of its ids are among that
  speaker's video ids; otherwise it goes to the speaker whose video ids it
  overlaps most (at least half). Each speaker gets at most one folder.

  Args:
    video_ids: speaker -> utterance ids of its videos.
    align_ids: alignment folder speaker -> utterance ids of its .align files.

  Returns:
    folder speaker -> true speaker, for folders that match some speaker.
  """
  def overlap(folder, speaker):
    ids = align_ids[folder]
    return len(ids & video_ids.get(speaker, set())) / max(len(ids), 1)

  mapping, taken = {}, set()
  for folder in sorted(align_ids, key=speaker_number):
    if overlap(folder, folder) >= 0.5:
      mapping[folder] = folder
      taken.add(folder)
  for folder in sorted(align_ids, key=speaker_number):
    if folder in mapping:
      continue
    scores = sorted(((overlap(folder, s), s) for s in video_ids if s not in taken),
                    reverse=True)
    if scores and scores[0][0] >= 0.5:
      mapping[folder] = scores[0][1]
      taken.add(scores[0][1])
  return mapping


def find_utterances(manual_dir: str, skips: SkipLog | None = None
                    ) -> list[Utterance]:
  """Every GRID utterance with a video under manual_dir.

  Args:
    manual_dir: folder with the downloaded archives or their extracted files.
    skips: where skipped files are counted (a new SkipLog if None).

  Returns:
    Utterances sorted by (speaker number, id). Audio or alignment may be None
    when the download lacks them (the builder then uses the video's own
    audio track, or skips the utterance for a missing alignment).

  Raises:
    LayoutError: manual_dir is missing or holds no GRID video.
  """
  skips = skips if skips is not None else SkipLog()
  if not manual_dir or not os.path.isdir(manual_dir):
    raise LayoutError(f"GRID manual_dir {manual_dir!r} is not a folder; download"
                      f" GRID into it: {EXPECTED_ARCHIVES}")
  files = {"video": {}, "audio": {}, "align": {}, "gt": {}}
  for ref in list_files(manual_dir, skips):
    kind = _kind(ref)
    if kind is None:
      continue
    kind, stem = kind
    if not is_grid_id(stem):
      if kind == "video":
        skips.skip(ref, "video name is not a GRID id")
      continue
    speaker = speaker_of(ref)
    if speaker is None:
      skips.skip(ref, "cannot tell the speaker from the path")
      continue
    table = files[kind].setdefault(speaker, {})
    table.setdefault(stem.lower(), ref)

  if not files["video"]:
    raise LayoutError(f"no GRID videos found in {manual_dir}; expected the"
                      f" {EXPECTED_ARCHIVES}")

  video_ids = {s: set(v) for s, v in files["video"].items()}
  align_ids = {s: set(v) for s, v in files["align"].items()}
  mapping = match_align_folders(video_ids, align_ids)
  for folder, speaker in sorted(mapping.items()):
    if folder != speaker:
      logging.info("alignment folder %s holds speaker %s's files; using them"
                   " for %s", folder, speaker, speaker)
  aligns = {mapping[f]: refs for f, refs in files["align"].items() if f in mapping}

  utterances = []
  for speaker in sorted(files["video"], key=speaker_number):
    for utt, video in sorted(files["video"][speaker].items()):
      utterances.append(Utterance(
          speaker=speaker, utterance=utt, video=video,
          audio=files["audio"].get(speaker, {}).get(utt),
          align=aligns.get(speaker, {}).get(utt),
          ground_truth=files["gt"].get(speaker, {}).get(utt)))
  return utterances


def split_of(utterance: Utterance, index_in_speaker: int, num_in_speaker: int,
             test_speakers: frozenset[str], val_every: int,
             test_every: int = 0) -> str:
  """Which split an utterance goes to, by a rule on its speaker and index.

  "test" for held-out speakers. Of the other speakers' utterances (sorted by
  id), every test_every-th goes to "test" (an utterance-level split, the
  paper's protocol for GRID; 0 for none) and, of the rest, every val_every-th
  to "val". A training speaker with fewer than val_every (but at least 2)
  utterances still gives its last one to val, so small corpora get a val
  split too.
  """
  if utterance.speaker in test_speakers:
    return "test"
  if test_every > 0:
    if index_in_speaker % test_every == test_every - 1:
      return "test"
    # Count val among the utterances left after the test rule.
    index_in_speaker -= (index_in_speaker + 1) // test_every
    num_in_speaker -= num_in_speaker // test_every
  if val_every > 0:
    if index_in_speaker % val_every == val_every - 1:
      return "val"
    if 2 <= num_in_speaker < val_every and index_in_speaker == num_in_speaker - 1:
      return "val"
  return "train"


def assign_splits(utterances: list[Utterance], test_speakers, val_every: int,
                  test_every: int = 0) -> dict[str, list[Utterance]]:
  """Train/val/test by speaker and, optionally, by utterance.

  Args:
    utterances: from `find_utterances` (any order).
    test_speakers: speakers held out entirely for the test split.
    val_every: every val_every-th utterance (by sorted id) of each training
      speaker goes to val (its last one if it has fewer); 0 for no val split.
    test_every: every test_every-th utterance (by sorted id) of each training
      speaker goes to test (held-out utterances of seen speakers, e.g. 5 for
      GRID's one-speaker release); 0 for a speaker-disjoint test split only.

  Returns:
    {"train": [...], "val": [...], "test": [...]}, each sorted.
  """
  test_speakers = frozenset(test_speakers)
  by_speaker = collections.defaultdict(list)
  for u in utterances:
    by_speaker[u.speaker].append(u)
  splits = {"train": [], "val": [], "test": []}
  for speaker in sorted(by_speaker, key=speaker_number):
    utts = sorted(by_speaker[speaker], key=lambda u: u.utterance)
    for i, u in enumerate(utts):
      splits[split_of(u, i, len(utts), test_speakers, val_every,
                      test_every)].append(u)
  return splits
