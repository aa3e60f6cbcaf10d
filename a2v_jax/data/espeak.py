"""Speech synthesis with libespeak-ng through ctypes, with word and phoneme times.

The `espeakng_loader` wheel ships libespeak-ng and its data folder, so nothing is
installed system-wide. espeak-ng's C API (synchronous mode) hands every chunk of
synthesized 16-bit audio to a callback together with a list of events; with
`espeakINITIALIZE_PHONEME_EVENTS` that list holds one `espeakEVENT_PHONEME` per
phoneme and one `espeakEVENT_WORD` per word, each stamped with its exact sample
position. (`espeak-ng --pho` needs mbrola, so the C events are the only source of
phoneme timing without extra voices.)

The library keeps global state, so it is initialised once per process and every
call holds a lock.
"""
from __future__ import annotations

import ctypes
import dataclasses
import os
import pickle
import threading

import numpy as np

# espeak_AUDIO_OUTPUT
_AUDIO_OUTPUT_SYNCHRONOUS = 2
# espeak_Initialize options
_INITIALIZE_PHONEME_EVENTS = 0x0001
_INITIALIZE_PHONEME_IPA = 0x0002
_INITIALIZE_DONT_EXIT = 0x8000
# espeak_EVENT_TYPE
_EVENT_LIST_TERMINATED = 0
_EVENT_WORD = 1
_EVENT_END = 5
_EVENT_MSG_TERMINATED = 6
_EVENT_PHONEME = 7
# espeak_POSITION_TYPE
_POS_CHARACTER = 1
# espeak_Synth flags
_CHARS_UTF8 = 1
# espeak_PARAMETER
_PARAM_RATE = 1
_PARAM_VOLUME = 2
_PARAM_PITCH = 3
_PARAM_RANGE = 4
_PARAM_WORDGAP = 7
_EE_OK = 0

# espeak's pause phonemes (short, long).
PAUSES = ("_", "_:", "_!", "_|")
# Rate limits espeak-ng accepts (words per minute).
MIN_RATE = 80
MAX_RATE = 450


class EspeakError(ValueError):
  """libespeak-ng could not be loaded or refused a request."""


class _EventId(ctypes.Union):
  _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p),
              ("string", ctypes.c_char * 8)]


class _Event(ctypes.Structure):
  _fields_ = [("type", ctypes.c_int), ("unique_identifier", ctypes.c_uint),
              ("text_position", ctypes.c_int), ("length", ctypes.c_int),
              ("audio_position", ctypes.c_int), ("sample", ctypes.c_int),
              ("user_data", ctypes.c_void_p), ("id", _EventId)]


_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short),
                             ctypes.c_int, ctypes.POINTER(_Event))


@dataclasses.dataclass(frozen=True)
class Voice:
  """One espeak-ng voice setting.

  Attributes:
    name: espeak voice name with an optional variant, e.g. "en+m3", "en-us+f2".
    pitch: base pitch 0..99 (espeak default 50).
    pitch_range: pitch range 0..99 (espeak default 50).
    rate: speaking rate in words per minute (espeak default 175).
    volume: amplitude 0..200 (espeak default 100).
  """
  name: str
  pitch: int = 50
  pitch_range: int = 50
  rate: int = 175
  volume: int = 100

  def replace(self, **changes) -> "Voice":
    return dataclasses.replace(self, **changes)


@dataclasses.dataclass(frozen=True)
class Speech:
  """A synthesized utterance.

  Attributes:
    audio: float32 [N] mono in [-1, 1] at `sample_rate`.
    sample_rate: Hz (22050 for espeak-ng).
    words: list of (start_s, end_s, word) for each word of the text, in order.
    phonemes: list of (start_s, end_s, phoneme) in espeak's ASCII phoneme
      mnemonics without stress marks (e.g. "b", "I", "n", "aI", "u:"); pauses
      are "_" and "_:".
  """
  audio: np.ndarray
  sample_rate: int
  words: list[tuple[float, float, str]]
  phonemes: list[tuple[float, float, str]]


class _Engine:
  """Process-wide libespeak-ng handle."""

  def __init__(self):
    try:
      import espeakng_loader  # pylint: disable=g-import-not-at-top
      lib_path = espeakng_loader.get_library_path()
      data_path = espeakng_loader.get_data_path()
      self._lib = ctypes.CDLL(lib_path)
    except (ImportError, OSError, RuntimeError) as e:
      raise EspeakError(
          f"cannot load libespeak-ng ({e}); run `pip install espeakng-loader`"
      ) from None
    lib = self._lib
    lib.espeak_Initialize.restype = ctypes.c_int
    lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int,
                                      ctypes.c_char_p, ctypes.c_int]
    lib.espeak_SetSynthCallback.argtypes = [_CALLBACK]
    lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
    lib.espeak_SetVoiceByName.restype = ctypes.c_int
    lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
    lib.espeak_SetParameter.restype = ctypes.c_int
    lib.espeak_Synth.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint,
                                 ctypes.c_int, ctypes.c_uint, ctypes.c_uint,
                                 ctypes.POINTER(ctypes.c_uint), ctypes.c_void_p]
    lib.espeak_Synth.restype = ctypes.c_int
    lib.espeak_Synchronize.restype = ctypes.c_int
    rate = lib.espeak_Initialize(
        _AUDIO_OUTPUT_SYNCHRONOUS, 0, data_path.encode(),
        _INITIALIZE_PHONEME_EVENTS | _INITIALIZE_DONT_EXIT)
    if rate <= 0:
      raise EspeakError(f"espeak_Initialize failed with data at {data_path};"
                        " reinstall espeakng-loader")
    self.sample_rate = int(rate)
    # espeak-ng seeds its noise generator from the clock; fix it so that
    # fricative noise is the same in every run.
    if hasattr(lib, "espeak_ng_SetRandSeed"):
      lib.espeak_ng_SetRandSeed.argtypes = [ctypes.c_long]
      lib.espeak_ng_SetRandSeed(1)
    self._chunks: list[np.ndarray] = []
    self._events: list[tuple[int, int, int, int, bytes]] = []
    # Keep a reference: ctypes frees the thunk when the Python object dies.
    self._callback = _CALLBACK(self._on_synth)
    lib.espeak_SetSynthCallback(self._callback)
    self.lock = threading.Lock()

  def _on_synth(self, wav, num_samples, events) -> int:
    if num_samples > 0:
      self._chunks.append(np.ctypeslib.as_array(wav, shape=(num_samples,)).copy())
    i = 0
    while True:
      ev = events[i]
      if ev.type == _EVENT_LIST_TERMINATED:
        break
      if ev.type == _EVENT_PHONEME:
        name = bytes(ev.id.string).split(b"\0", 1)[0]
      else:
        name = b""
      number = ev.id.number if ev.type == _EVENT_WORD else 0
      self._events.append((ev.type, ev.sample, ev.text_position, ev.length
                           if ev.type == _EVENT_WORD else number, name))
      i += 1
    return 0

  def synthesize(self, text: str, voice: Voice) -> Speech:
    """Synthesizes in this process (the result depends on earlier calls)."""
    with self.lock:
      return self._run(text, voice)

  def synthesize_isolated(self, text: str, voice: Voice) -> Speech:
    """Synthesizes in a forked child, so that every call starts from the same state.

    libespeak-ng keeps waveform state (glottal phase, pitch flutter) from one
    call to the next, which shifts later outputs by a few samples. This process
    never synthesizes itself; each call forks a child from the pristine
    engine, so the same text and voice always give the same bytes and times.
    """
    with self.lock:
      read_fd, write_fd = os.pipe()
      pid = os.fork()
      if pid == 0:  # child
        os.close(read_fd)
        try:
          payload = pickle.dumps(("ok", self._run(text, voice)))
        except BaseException as e:  # pylint: disable=broad-except
          payload = pickle.dumps(("error", EspeakError(str(e))))
        with os.fdopen(write_fd, "wb") as pipe:
          pipe.write(payload)
        os._exit(0)  # pylint: disable=protected-access
      os.close(write_fd)
      with os.fdopen(read_fd, "rb") as pipe:
        payload = pipe.read()
      os.waitpid(pid, 0)
    if not payload:
      raise EspeakError(f"the espeak-ng child process died while synthesizing {text!r}")
    status, value = pickle.loads(payload)
    if status == "error":
      raise value
    return value

  def _run(self, text: str, voice: Voice) -> Speech:
    lib = self._lib
    if lib.espeak_SetVoiceByName(voice.name.encode()) != _EE_OK:
      raise EspeakError(f"espeak-ng has no voice {voice.name!r}; use a name"
                        " like 'en', 'en-us' with a variant like '+m3'")
    for param, value in ((_PARAM_RATE, voice.rate), (_PARAM_PITCH, voice.pitch),
                         (_PARAM_RANGE, voice.pitch_range),
                         (_PARAM_VOLUME, voice.volume), (_PARAM_WORDGAP, 0)):
      lib.espeak_SetParameter(param, int(value), 0)
    self._chunks, self._events = [], []
    data = text.encode("utf-8") + b"\0"
    buf = ctypes.create_string_buffer(data)
    err = lib.espeak_Synth(buf, len(data), 0, _POS_CHARACTER, 0, _CHARS_UTF8,
                           None, None)
    if err != _EE_OK:
      raise EspeakError(f"espeak_Synth failed (error {err}) for {text!r}")
    lib.espeak_Synchronize()
    chunks, events = self._chunks, self._events
    self._chunks, self._events = [], []
    pcm = np.concatenate(chunks) if chunks else np.zeros(0, np.int16)
    audio = pcm.astype(np.float32) / 32768.0
    return _collect_timings(text, audio, self.sample_rate, events)


def _strip_stress(name: str) -> str:
  return name.replace("'", "").replace(",", "")


def _collect_timings(text, audio, sample_rate, events) -> Speech:
  """Turns the raw event list into word and phoneme intervals in seconds."""
  total = len(audio)
  phone_starts = [(s, _strip_stress(n.decode("utf-8", "replace")))
                  for t, s, _, _, n in events if t == _EVENT_PHONEME]
  end_sample = max([s for t, s, *_ in events if t in (_EVENT_END, _EVENT_MSG_TERMINATED)]
                   + [total])
  phonemes = []
  for i, (start, name) in enumerate(phone_starts):
    stop = phone_starts[i + 1][0] if i + 1 < len(phone_starts) else end_sample
    if stop > start:
      phonemes.append((start, stop, name))
  word_events = [(s, pos, length) for t, s, pos, length, _ in events if t == _EVENT_WORD]
  # A word event is stamped up to a few tens of ms before the word's first
  # phoneme; snap each word to the first phoneme at or after its event.
  tolerance = int(0.005 * sample_rate)
  starts = []
  for sample, _, _ in word_events:
    first = next((p[0] for p in phonemes if p[0] >= sample - tolerance
                  and p[2] not in PAUSES), sample)
    starts.append(max(first, starts[-1] if starts else 0))
  words = []
  for i, (_, pos, length) in enumerate(word_events):
    # text_position is 1-based in characters.
    word = text[pos - 1:pos - 1 + length] if pos > 0 else ""
    start = starts[i]
    next_start = starts[i + 1] if i + 1 < len(starts) else end_sample
    # The word ends with its last non-pause phoneme before the next word.
    inside = [p for p in phonemes if start <= p[0] < next_start and p[2] not in PAUSES]
    stop = inside[-1][1] if inside else next_start
    words.append((start, stop, word))
  rate = float(sample_rate)
  return Speech(
      audio=audio, sample_rate=sample_rate,
      words=[(a / rate, b / rate, w) for a, b, w in words],
      phonemes=[(a / rate, b / rate, p) for a, b, p in phonemes])


_ENGINE: _Engine | None = None
_ENGINE_LOCK = threading.Lock()


def get_engine() -> _Engine:
  """The process-wide engine, initialised on first use."""
  global _ENGINE
  with _ENGINE_LOCK:
    if _ENGINE is None:
      _ENGINE = _Engine()
    return _ENGINE


def synthesize(text: str, voice: Voice) -> Speech:
  """Synthesizes `text` with `voice`.

  Args:
    text: UTF-8 text.
    voice: espeak voice, pitch, range, rate and volume.

  Returns:
    Speech with float32 [N] audio at 22050 Hz and word / phoneme intervals.
    Where os.fork exists (Linux, macOS) every call runs in a fresh child of
    the engine, so the result does not depend on earlier calls.
  """
  if not MIN_RATE <= voice.rate <= MAX_RATE:
    raise EspeakError(f"rate {voice.rate} wpm is outside espeak-ng's range"
                      f" {MIN_RATE}..{MAX_RATE}; pick a rate inside it")
  engine = get_engine()
  if hasattr(os, "fork"):
    return engine.synthesize_isolated(text, voice)
  return engine.synthesize(text, voice)
