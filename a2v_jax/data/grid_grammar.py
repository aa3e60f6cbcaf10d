"""The GRID corpus sentence grammar and its utterance-id naming rule.

Every GRID sentence is six words:

  command  colour  preposition  letter  digit  adverb
  bin      blue    at           a..z    zero   again
  lay      green   by           (no w)  ..     now
  place    red     in                   nine   please
  set      white   with                        soon

An utterance id is the first character of each word, with the digit written as
a numeral: "bin blue at f two now" -> "bbaf2n". That gives
4 * 4 * 4 * 25 * 10 * 4 = 64000 distinct sentences.
"""
from __future__ import annotations

import numpy as np

COMMANDS = ("bin", "lay", "place", "set")
COLOURS = ("blue", "green", "red", "white")
PREPOSITIONS = ("at", "by", "in", "with")
LETTERS = tuple("abcdefghijklmnopqrstuvxyz")  # GRID has no "w".
DIGITS = ("zero", "one", "two", "three", "four", "five", "six", "seven",
          "eight", "nine")
ADVERBS = ("again", "now", "please", "soon")

SLOTS = (COMMANDS, COLOURS, PREPOSITIONS, LETTERS, DIGITS, ADVERBS)
SLOT_NAMES = ("command", "colour", "preposition", "letter", "digit", "adverb")
NUM_SENTENCES = int(np.prod([len(s) for s in SLOTS]))  # 64000

# Every word the grammar can produce (51 words), in slot order.
VOCABULARY = tuple(w for slot in SLOTS for w in slot)


class GridGrammarError(ValueError):
  """A sentence or id does not follow the GRID grammar."""


def _id_char(slot: int, word: str) -> str:
  if slot == 4:
    return str(DIGITS.index(word))
  return word[0]


def sentence_to_id(words) -> str:
  """GRID id of a sentence.

  Args:
    words: six words (sequence of str) or one string "bin blue at f two now".

  Returns:
    the six-character id, e.g. "bbaf2n".
  """
  if isinstance(words, str):
    words = words.split()
  words = [w.lower() for w in words]
  if len(words) != 6:
    raise GridGrammarError(f"a GRID sentence has 6 words, got {len(words)}:"
                           f" {' '.join(words)!r}")
  for slot, (word, options) in enumerate(zip(words, SLOTS)):
    if word not in options:
      raise GridGrammarError(
          f"{word!r} is not a GRID {SLOT_NAMES[slot]}; use one of {list(options)}")
  return "".join(_id_char(slot, w) for slot, w in enumerate(words))


def id_to_sentence(utterance_id: str) -> tuple[str, ...]:
  """Words of a GRID id: "bbaf2n" -> ("bin", "blue", "at", "f", "two", "now")."""
  code = utterance_id.lower()
  if len(code) != 6:
    raise GridGrammarError(f"a GRID id has 6 characters, got {utterance_id!r}")
  words = []
  for slot, (char, options) in enumerate(zip(code, SLOTS)):
    if slot == 4:
      if not char.isdigit():
        raise GridGrammarError(f"character 5 of GRID id {utterance_id!r} must be"
                               " a digit 0-9")
      words.append(DIGITS[int(char)])
      continue
    matches = [w for w in options if w[0] == char]
    if len(matches) != 1:
      raise GridGrammarError(
          f"character {slot + 1} ({char!r}) of GRID id {utterance_id!r} is not a"
          f" {SLOT_NAMES[slot]} initial; use one of {[w[0] for w in options]}")
    words.append(matches[0])
  return tuple(words)


def index_to_sentence(index: int) -> tuple[str, ...]:
  """The index-th sentence (0 <= index < NUM_SENTENCES) in a fixed mixed-radix order."""
  if not 0 <= index < NUM_SENTENCES:
    raise GridGrammarError(f"sentence index {index} is outside 0..{NUM_SENTENCES - 1}")
  words = []
  for options in reversed(SLOTS):
    index, r = divmod(int(index), len(options))
    words.append(options[r])
  return tuple(reversed(words))


def sentence_to_index(words) -> int:
  """Inverse of `index_to_sentence`."""
  if isinstance(words, str):
    words = words.split()
  sentence_to_id(words)  # validates
  index = 0
  for word, options in zip(words, SLOTS):
    index = index * len(options) + options.index(word.lower())
  return index


def sample_sentences(rng: np.random.Generator, count: int) -> list[tuple[str, ...]]:
  """Draws `count` distinct sentences (without replacement) uniformly.

  Args:
    rng: numpy Generator (seeded by the caller for reproducibility).
    count: 0 <= count <= NUM_SENTENCES.

  Returns:
    list of 6-word tuples, all distinct.
  """
  if not 0 <= count <= NUM_SENTENCES:
    raise GridGrammarError(f"cannot draw {count} distinct GRID sentences; the"
                           f" grammar has {NUM_SENTENCES}")
  picks = rng.choice(NUM_SENTENCES, size=count, replace=False)
  return [index_to_sentence(int(i)) for i in picks]
