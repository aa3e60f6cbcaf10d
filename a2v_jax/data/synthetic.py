r"""Synthetic audio-visual corpus in the on-disk layout of GRID or Lombard GRID.

  python -m a2v_jax.data.synthetic --out_dir=DIR --speakers=3 --utterances=10 \
      --seed=0 [--layout=grid|lombard]

GRID (Zenodo) layout, 3 s utterances:
  DIR/s{N}/{id}.mpg                MPEG-1 video 360x288, 25 fps, 75 frames, MP2 audio
  DIR/s{N}/{id}.gt.json            ground truth (mouth opening, blinks, words, phonemes)
  DIR/audio_25k/s{N}/{id}.wav      25 kHz mono, 16-bit
  DIR/alignments/s{N}/{id}.align   "start end word" in 1/25000 s, with sil and sp

Lombard GRID layout (speakers s2.., as in the real corpus, which has s2-s55):
  DIR/lombardgrid/front/s{N}_{p|l}_{id}.mov      H.264 720x480, 24 fps, AAC audio
  DIR/lombardgrid/front/s{N}_{p|l}_{id}.gt.json  ground truth
  DIR/lombardgrid/audio/s{N}_{p|l}_{id}.wav      48 kHz mono, 16-bit
  DIR/lombardgrid/alignment/s{N}_{p|l}_{id}.json {"s2_l_bbim3a": [{"duration", "offset",
                                                  "phone"}, ...]}: seconds, lowercase
                                                  ARPAbet with _B/_I/_E/_S word
                                                  position tags, and "sil"
  DIR/lombardgrid/json/s{N}.json                 [{"SPKR", "COND", "UTTERANCE",
                                                  "STATUS"}, ...] per speaker
"p" is plain speech, "l" Lombard speech (louder, slower, higher pitch, and
hyper-articulated on video); utterances alternate p, l, p, ...

Speech comes from espeak-ng (a distinct voice per speaker) with word and phoneme
times from its synthesis events; faces come from `face_render`. A speaker's
sentences are drawn without replacement from the GRID grammar. The corpus is a
pure function of the arguments: the same seed gives identical audio, alignments
and ground truth, whatever the number of workers.
"""
from __future__ import annotations

import json
import multiprocessing
import os
import tempfile
import time

from absl import app
from absl import flags
from absl import logging
import numpy as np
import scipy.signal
import soundfile as sf

from a2v_jax import cli
from a2v_jax.data import espeak
from a2v_jax.data import face_motion
from a2v_jax.data import face_render
from a2v_jax.data import grid_grammar
from a2v_jax.media import video

DURATION_S = 3.0
LAYOUTS = {
    # frame height, width, fps, audio rate, video suffix, max speakers
    "grid": dict(height=288, width=360, fps=25.0, sample_rate=25000, max_speakers=34),
    "lombard": dict(height=480, width=720, fps=24.0, sample_rate=48000, max_speakers=54),
}
ESPEAK_RATE = 22050
ALIGN_UNITS = 25000  # GRID .align files count in 1/25000 s.
_ACCENTS = ("en", "en-us", "en-gb-x-rp", "en-gb-scotland", "en-us-nyc", "en-029",
            "en-gb-x-gbclan", "en-gb-x-gbcwmd", "en")
_FEMALE = ("f2", "f1", "f3", "f4", "f5")
_MALE = ("m1", "m3", "m2", "m4", "m5", "m6", "m7")
# How a letter is written for espeak so that it says the letter's name.
_LETTER_TEXT = {"a": "eigh"}
# espeak-ng phoneme mnemonic -> lowercase ARPAbet (Lombard GRID alignments).
_ARPABET = {
    "p": "p", "b": "b", "t": "t", "d": "d", "k": "k", "g": "g", "m": "m", "n": "n",
    "N": "ng", "f": "f", "v": "v", "T": "th", "D": "dh", "s": "s", "z": "z",
    "S": "sh", "Z": "zh", "tS": "ch", "dZ": "jh", "h": "hh", "l": "l", "r": "r",
    "w": "w", "j": "y", "a": "ae", "A:": "aa", "A@": "aa", "aa": "ae", "V": "ah",
    "@": "ah", "3": "er", "3:": "er", "E": "eh", "e": "eh", "I": "ih", "i": "iy",
    "i:": "iy", "0": "aa", "O": "ao", "O:": "ao", "O@": "ao", "U": "uh",
    "u:": "uw", "aI": "ay", "aU": "aw", "eI": "ey", "oU": "ow", "@U": "ow",
    "OI": "oy", "I@": "ih", "e@": "eh", "U@": "uh", "i@": "ih", "@L": "l",
}


class SyntheticCorpusError(ValueError):
  """Bad arguments for the synthetic corpus; the message names the fix."""


def speaker_voice(index: int) -> espeak.Voice:
  """Distinct espeak-ng voice of speaker `index` (0-based; 0 is female)."""
  female = index % 2 == 0
  variants = _FEMALE if female else _MALE
  slot = index // 2
  variant = variants[slot % len(variants)]
  accent = _ACCENTS[(slot + (0 if female else 3)) % len(_ACCENTS)]
  pitch = (58 + 7 * (slot % 4) if female else 30 + 6 * (slot % 4)) + slot // 8
  return espeak.Voice(name=f"{accent}+{variant}", pitch=min(pitch, 95),
                      pitch_range=45 + 5 * (slot % 3), rate=150 + 5 * (slot % 4) - 3 * (slot % 3))


def speaker_name(index: int, layout: str) -> str:
  """s1, s2, ... for GRID; s2, s3, ... for Lombard GRID (its first talker is s2)."""
  return f"s{index + (2 if layout == 'lombard' else 1)}"


def _speech_text(words) -> str:
  return " ".join(_LETTER_TEXT.get(w, w) if slot == 3 else w
                  for slot, w in enumerate(words))


def _describe(voice: espeak.Voice) -> str:
  return (f"{voice.name} pitch={voice.pitch} range={voice.pitch_range}"
          f" rate={voice.rate} volume={voice.volume}")


def synthesize_sentence(words, voice: espeak.Voice, max_speech_s: float):
  """espeak speech of a GRID sentence that fits in `max_speech_s` seconds.

  Returns:
    (Speech, voice used): the rate is raised until the speech fits.
  """
  text = _speech_text(words)
  for _ in range(6):
    speech = espeak.synthesize(text, voice)
    if len(speech.words) != 6:
      raise SyntheticCorpusError(f"espeak-ng returned {len(speech.words)} words for"
                                 f" {text!r} (voice {voice.name}); expected 6")
    end = speech.words[-1][1]
    if end <= max_speech_s:
      return speech, voice
    voice = voice.replace(rate=min(int(voice.rate * end / max_speech_s * 1.05) + 1,
                                   espeak.MAX_RATE))
  raise SyntheticCorpusError(f"cannot fit {text!r} into {max_speech_s:.2f} s")


def _place_speech(speech, words, rng, sample_rate_out):
  """Puts the speech into a 3 s clip after a random lead-in silence.

  Returns:
    audio float32 [3 s * rate], words [(s, e, w)], phonemes [(s, e, ph)].
  """
  first = speech.words[0][0]
  last = speech.words[-1][1]
  span = last - first
  lead = float(rng.uniform(0.35, 0.75))
  lead = min(lead, DURATION_S - 0.15 - span)
  offset = lead - first
  clip = np.zeros(int(DURATION_S * ESPEAK_RATE), np.float32)
  src = speech.audio
  start = int(round(offset * ESPEAK_RATE))
  lo, hi = max(start, 0), min(start + len(src), len(clip))
  clip[lo:hi] = src[lo - start:hi - start]
  clip += rng.normal(0.0, 3e-4, clip.shape).astype(np.float32)  # room noise floor
  gcd = np.gcd(int(sample_rate_out), ESPEAK_RATE)
  audio = scipy.signal.resample_poly(clip, sample_rate_out // gcd, ESPEAK_RATE // gcd)
  audio = np.clip(audio, -1.0, 1.0).astype(np.float32)
  timed_words = [(s + offset, e + offset, w) for (s, e, _), w in zip(speech.words, words)]
  phonemes = [(s + offset, e + offset, p) for s, e, p in speech.phonemes
              if 0.0 <= s + offset < DURATION_S]
  return audio, timed_words, phonemes


def grid_alignment(words, sp_min_s: float = 0.01) -> list[tuple[int, int, str]]:
  """GRID .align rows (start, end, token) in 1/25000 s with sil and sp."""
  total = int(round(DURATION_S * ALIGN_UNITS))
  rows = []
  cursor = 0
  for i, (start, end, word) in enumerate(words):
    s = int(round(start * ALIGN_UNITS))
    e = int(round(end * ALIGN_UNITS))
    if i == 0:
      rows.append((0, s, "sil"))
    elif s - cursor >= sp_min_s * ALIGN_UNITS:
      rows.append((cursor, s, "sp"))
    else:
      rows[-1] = (rows[-1][0], s, rows[-1][2])  # close tiny gaps
    rows.append((s, e, word))
    cursor = e
  rows.append((cursor, total, "sil"))
  return rows


def _arpabet(phoneme: str) -> str:
  name = phoneme
  while name and name not in _ARPABET and name[-1] in "#-;2345":
    name = name[:-1]
  return _ARPABET.get(name, "".join(c for c in name.lower() if c.isalnum()) or "spn")


def lombard_alignment(words, phonemes) -> list[dict]:
  """Lombard GRID phone alignment: [{"duration", "offset", "phone"}] in seconds."""
  entries = []
  cursor = 0.0
  for start, end, _ in words:
    inside = [p for p in phonemes if start - 1e-6 <= p[0] < end and not p[2].startswith("_")]
    if not inside:
      continue
    if inside[0][0] > cursor + 1e-4:
      entries.append(("sil", cursor, inside[0][0]))
    for k, (s, e, ph) in enumerate(inside):
      tag = "S" if len(inside) == 1 else "B" if k == 0 else "E" if k == len(inside) - 1 else "I"
      entries.append((f"{_arpabet(ph)}_{tag}", s, min(e, end) if k == len(inside) - 1 else e))
    cursor = entries[-1][2]
  entries.append(("sil", cursor, DURATION_S))
  return [{"duration": round(e - s, 4), "offset": round(s, 4), "phone": name}
          for name, s, e in entries if e > s]


def _write_atomic(path: str, write) -> None:
  """Calls write(tmp_path) and renames the result to `path`."""
  folder = os.path.dirname(path)
  os.makedirs(folder, exist_ok=True)
  suffix = os.path.splitext(path)[1]
  fd, tmp = tempfile.mkstemp(prefix=".partial-", suffix=suffix, dir=folder)
  os.close(fd)
  try:
    write(tmp)
    video.make_public(tmp)
    os.replace(tmp, path)
  finally:
    if os.path.exists(tmp):
      os.remove(tmp)


def _write_text(path: str, text: str) -> None:
  def write(tmp):
    with open(tmp, "w", encoding="utf-8") as f:
      f.write(text)
  _write_atomic(path, write)


def _rounded(values, digits=4):
  return [round(float(v), digits) for v in values]


def render_utterance(task: dict) -> list[str]:
  """Synthesizes, animates and writes one utterance; returns the written paths."""
  cfg = LAYOUTS[task["layout"]]
  face: face_render.SpeakerFace = task["face"]
  words = task["words"]
  lombard_speech = task["condition"] == "l"
  rng = np.random.default_rng(task["rng_key"])
  voice = task["voice"]
  if lombard_speech:
    voice = voice.replace(volume=170, rate=max(int(voice.rate * 0.86), espeak.MIN_RATE),
                          pitch=min(voice.pitch + 12, 99))
  speech, voice = synthesize_sentence(words, voice, DURATION_S - 0.5)
  audio, timed_words, phonemes = _place_speech(speech, words, rng, cfg["sample_rate"])
  if lombard_speech:
    audio = np.clip(audio * 1.4, -1.0, 1.0)
  fps = cfg["fps"]
  num_frames = int(round(DURATION_S * fps))
  mouth_open, mouth_width = face_motion.viseme_tracks(
      phonemes, num_frames, fps, gain=1.25 if lombard_speech else 1.0)
  closure = face_motion.blink_track(rng, num_frames, fps)
  pose = face_motion.head_motion(rng, num_frames, fps, face.face_width)
  frames = face_render.render_frames(face, mouth_open, mouth_width, closure, pose)

  speaker = task["speaker"]
  code = grid_grammar.sentence_to_id(words)
  out = task["out_dir"]
  truth = {
      "fps": int(fps) if float(fps).is_integer() else fps,
      "num_frames": num_frames,
      "mouth_open": _rounded(mouth_open),
      "blink": [int(c >= 0.5) for c in closure],
      "words": [[round(s, 6), round(e, 6), w] for s, e, w in timed_words],
      "phonemes": [[round(s, 6), round(e, 6), p] for s, e, p in phonemes],
      "voice": _describe(voice),
      "speaker": speaker,
      "utterance": code,
      "mouth_width": _rounded(mouth_width),
      "eyelid_closure": _rounded(closure),
      "head_pose": [_rounded(p) for p in pose],
  }
  if task["layout"] == "grid":
    stem = code
    video_path = os.path.join(out, speaker, f"{stem}.mpg")
    wav_path = os.path.join(out, "audio_25k", speaker, f"{stem}.wav")
    align_path = os.path.join(out, "alignments", speaker, f"{stem}.align")
    gt_path = os.path.join(out, speaker, f"{stem}.gt.json")
    align_text = "".join(f"{s} {e} {w}\n" for s, e, w in grid_alignment(timed_words))
  else:
    stem = f"{speaker}_{task['condition']}_{code}"
    root = os.path.join(out, "lombardgrid")
    video_path = os.path.join(root, "front", f"{stem}.mov")
    wav_path = os.path.join(root, "audio", f"{stem}.wav")
    align_path = os.path.join(root, "alignment", f"{stem}.json")
    gt_path = os.path.join(root, "front", f"{stem}.gt.json")
    align_text = json.dumps({stem: lombard_alignment(timed_words, phonemes)})
  os.makedirs(os.path.dirname(video_path), exist_ok=True)
  video.write_video(video_path, frames, fps, audio=audio, sample_rate=cfg["sample_rate"])
  _write_atomic(wav_path, lambda tmp: sf.write(tmp, audio, cfg["sample_rate"],
                                               subtype="PCM_16", format="WAV"))
  _write_text(align_path, align_text)
  _write_text(gt_path, json.dumps(truth, separators=(",", ":")))
  return [video_path, wav_path, align_path, gt_path]


def _build_face(args) -> face_render.SpeakerFace:
  index, height, width, seed = args
  return face_render.build_speaker(index, height, width, seed=seed)


def _init_worker() -> None:
  import cv2  # pylint: disable=g-import-not-at-top
  cv2.setNumThreads(1)


def _check_args(out_dir, speakers, utterances, layout) -> None:
  if layout not in LAYOUTS:
    raise SyntheticCorpusError(f"unknown layout {layout!r}; use --layout=grid or"
                               " --layout=lombard")
  limit = LAYOUTS[layout]["max_speakers"]
  if not 1 <= speakers <= limit:
    raise SyntheticCorpusError(
        f"--speakers={speakers} is out of range: the {layout} layout supports 1 to"
        f" {limit} speakers (one distinct espeak-ng voice and face each)")
  if not 1 <= utterances <= grid_grammar.NUM_SENTENCES:
    raise SyntheticCorpusError(
        f"--utterances={utterances} is out of range: each speaker draws distinct"
        f" sentences, and the GRID grammar has {grid_grammar.NUM_SENTENCES}")
  try:
    os.makedirs(out_dir, exist_ok=True)
    fd, probe = tempfile.mkstemp(prefix=".probe-", dir=out_dir)
    os.close(fd)
    os.remove(probe)
  except OSError as e:
    raise SyntheticCorpusError(
        f"cannot write to --out_dir={out_dir} ({e.strerror}); choose a writable"
        " folder") from None


def make_corpus(out_dir: str, speakers: int, utterances: int, seed: int,
                layout: str = "grid", workers: int | None = None,
                show_progress: bool = False) -> list[str]:
  """Writes a synthetic corpus; see the module docstring for the layout.

  Args:
    out_dir: output folder (created if needed).
    speakers: number of speakers (1..34 for grid, 1..54 for lombard).
    utterances: sentences per speaker (distinct per speaker).
    seed: integer seed; the same seed gives the same corpus.
    layout: "grid" or "lombard".
    workers: processes (default: min(2, CPUs)); 1 renders in this process.
    show_progress: show a tqdm progress bar.

  Returns:
    sorted list of the files written.
  """
  out_dir = os.fspath(out_dir)
  _check_args(out_dir, speakers, utterances, layout)
  cfg = LAYOUTS[layout]
  workers = workers or min(2, os.cpu_count() or 1)
  face_args = [(i, cfg["height"], cfg["width"], int(seed)) for i in range(speakers)]
  tasks = []
  for i in range(speakers):
    rng = np.random.default_rng([int(seed), i, 3])
    for j, words in enumerate(grid_grammar.sample_sentences(rng, utterances)):
      tasks.append(dict(layout=layout, out_dir=out_dir, speaker=speaker_name(i, layout),
                        speaker_index=i, words=words, voice=speaker_voice(i),
                        condition="l" if layout == "lombard" and j % 2 else "p",
                        rng_key=[int(seed), i, j, 7]))
  logging.info("Synthetic %s corpus: %d speakers x %d utterances -> %s (%d workers)",
               layout, speakers, utterances, out_dir, workers)
  from tqdm import tqdm  # pylint: disable=g-import-not-at-top
  bar = tqdm(total=len(tasks), desc="utterances", unit="utt", disable=not show_progress)
  written = []
  if workers <= 1:
    faces = [_build_face(a) for a in face_args]
    for task in tasks:
      task["face"] = faces[task["speaker_index"]]
      written += render_utterance(task)
      bar.update()
  else:
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(workers, initializer=_init_worker) as pool:
      faces = pool.map(_build_face, face_args)
      for task in tasks:
        task["face"] = faces[task["speaker_index"]]
      for paths in pool.imap_unordered(render_utterance, tasks):
        written += paths
        bar.update()
  bar.close()
  if layout == "lombard":
    for i in range(speakers):
      name = speaker_name(i, layout)
      rows = [{"SPKR": name, "COND": t["condition"],
               "UTTERANCE": grid_grammar.sentence_to_id(t["words"]), "STATUS": "CORRECT"}
              for t in tasks if t["speaker_index"] == i]
      path = os.path.join(out_dir, "lombardgrid", "json", f"{name}.json")
      _write_text(path, json.dumps(rows, indent=1))
      written.append(path)
  return sorted(written)


def _define_flags():
  flags.DEFINE_string("out_dir", None, "Output folder.", required=True)
  flags.DEFINE_integer("speakers", 3, "Number of speakers.")
  flags.DEFINE_integer("utterances", 10, "Sentences per speaker.")
  flags.DEFINE_integer("seed", 0, "Random seed; the same seed gives the same corpus.")
  flags.DEFINE_enum("layout", "grid", list(LAYOUTS), "On-disk layout.")
  flags.DEFINE_integer("workers", 0, "Worker processes (0: min(2, CPUs)).")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments {' '.join(argv[1:])}; flags"
                         " take the form --name=value")
  cfg = flags.FLAGS
  start = time.perf_counter()
  try:
    files = make_corpus(cfg.out_dir, cfg.speakers, cfg.utterances, cfg.seed,
                        layout=cfg.layout, workers=cfg.workers or None,
                        show_progress=True)
  except SyntheticCorpusError as e:
    cli.fail(e)
  print(f"wrote {len(files)} files for {cfg.speakers} speakers x {cfg.utterances}"
        f" utterances ({cfg.layout} layout) to {cfg.out_dir} in"
        f" {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
  _define_flags()
  cli.run(main)
