"""Character vocabulary for the DeepSpeech2 CTC head, and text <-> id helpers.

Id 0 is the CTC blank, id 1 the space, ids 2..27 the letters a..z and id 28
the apostrophe: the 29 symbols of DeepSpeech2's English model (Amodei et al.
2016), the same set deepspeech.pytorch's `labels.json` uses.
"""
from typing import Sequence

import numpy as np

BLANK_ID = 0
BLANK = "_"
CHARACTERS = (BLANK, " ") + tuple("abcdefghijklmnopqrstuvwxyz") + ("'",)
VOCAB_SIZE = len(CHARACTERS)  # 29
_CHAR_TO_ID = {c: i for i, c in enumerate(CHARACTERS) if i != BLANK_ID}


class VocabError(ValueError):
  """Text that cannot be written with the CTC vocabulary."""


def normalize_text(text: str) -> str:
  """Lower-cases `text` and collapses runs of whitespace to one space."""
  return " ".join(text.lower().split())


def encode_text(text: str) -> np.ndarray:
  """Text -> int32 [N] character ids (no blanks); case and spacing normalised.

  Raises:
    VocabError: `text` holds a character outside a-z, space and apostrophe.
  """
  text = normalize_text(text)
  bad = sorted({c for c in text if c not in _CHAR_TO_ID})
  if bad:
    raise VocabError(
        f"text {text!r} has characters {bad} outside the CTC vocabulary "
        "(a-z, space, apostrophe); spell digits and strip punctuation first")
  return np.asarray([_CHAR_TO_ID[c] for c in text], dtype=np.int32)


def decode_ids(ids: Sequence[int]) -> str:
  """int [N] ids -> text; blanks are dropped, nothing is collapsed."""
  return "".join(CHARACTERS[int(i)] for i in ids if int(i) != BLANK_ID)


def encode_batch(texts: Sequence[str], max_length: int | None = None
                 ) -> tuple[np.ndarray, np.ndarray]:
  """Texts -> (labels int32 [B, N], label_paddings float32 [B, N]).

  `label_paddings` is 1.0 where a position is padding, as `optax.ctc_loss`
  expects. N is `max_length`, or the longest text when None.

  Raises:
    VocabError: a text is longer than `max_length` or not encodable.
  """
  encoded = [encode_text(t) for t in texts]
  longest = max((len(e) for e in encoded), default=0)
  length = longest if max_length is None else max_length
  if longest > length:
    raise VocabError(
        f"a transcript has {longest} characters but max_length is {length}; "
        "raise max_length")
  labels = np.zeros((len(texts), length), np.int32)
  paddings = np.ones((len(texts), length), np.float32)
  for b, e in enumerate(encoded):
    labels[b, :len(e)] = e
    paddings[b, :len(e)] = 0.0
  return labels, paddings


def decode_greedy(ctc_logits: np.ndarray,
                  paddings: np.ndarray | None = None) -> list[str]:
  """Best-path CTC decoding: argmax, collapse repeats, drop blanks.

  Args:
    ctc_logits: [B, T, V] float logits (or log-probabilities).
    paddings: optional [B, T], 1.0 at padded steps (ignored).

  Returns:
    B strings.
  """
  best = np.asarray(ctc_logits).argmax(axis=-1)
  texts = []
  for b, row in enumerate(best):
    if paddings is not None:
      row = row[np.asarray(paddings[b]) < 0.5]
    keep = [i for t, i in enumerate(row)
            if i != BLANK_ID and (t == 0 or i != row[t - 1])]
    texts.append(" ".join(decode_ids(keep).split()))
  return texts
