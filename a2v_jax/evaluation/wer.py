"""Word error rate of lip-read transcripts (jiwer), and CTC greedy decoding.

WER = (substitutions + deletions + insertions) / reference words, computed
over the whole corpus (jiwer pools the counts, as LipNet's paper reports it)
and per utterance. Texts are normalised like the CTC vocabulary: lower case,
single spaces.
"""
from __future__ import annotations

from typing import Sequence

import jiwer
import numpy as np

from a2v_jax.models import vocab


class TranscriptError(ValueError):
  """References and hypotheses that cannot be paired."""


def decode_ctc_greedy(ctc_logits: np.ndarray,
                      lengths: Sequence[int] | None = None) -> list[str]:
  """Best-path decoding: argmax per step, collapse repeats, drop blanks.

  Args:
    ctc_logits: [B, T, V] float logits over vocab.CHARACTERS (blank = 0).
    lengths: optional valid steps per item; later steps are ignored.

  Returns:
    B strings.
  """
  ctc_logits = np.asarray(ctc_logits)
  paddings = None
  if lengths is not None:
    steps = np.arange(ctc_logits.shape[1])[None, :]
    paddings = (steps >= np.asarray(lengths)[:, None]).astype(np.float32)
  return vocab.decode_greedy(ctc_logits, paddings)


def _pair(references: Sequence[str], hypotheses: Sequence[str]
          ) -> tuple[list[str], list[str]]:
  if len(references) != len(hypotheses):
    raise TranscriptError(
        f"{len(references)} references but {len(hypotheses)} hypotheses; "
        "decode one transcript per evaluated video")
  refs = [vocab.normalize_text(r) for r in references]
  if any(not r for r in refs):
    raise TranscriptError("a reference transcript is empty; drop utterances "
                          "without words from the evaluation")
  return refs, [vocab.normalize_text(h) for h in hypotheses]


def word_error_rate(references: Sequence[str],
                    hypotheses: Sequence[str]) -> float:
  """Corpus WER in [0, inf): pooled edit counts / pooled reference words."""
  refs, hyps = _pair(references, hypotheses)
  return float(jiwer.wer(refs, hyps))


def utterance_word_error_rates(references: Sequence[str],
                               hypotheses: Sequence[str]) -> np.ndarray:
  """float64 [N]: the WER of each utterance on its own."""
  refs, hyps = _pair(references, hypotheses)
  return np.array([jiwer.wer(r, h) for r, h in zip(refs, hyps)], np.float64)


def character_error_rate(references: Sequence[str],
                         hypotheses: Sequence[str]) -> float:
  """Corpus CER (LipNet's second metric)."""
  refs, hyps = _pair(references, hypotheses)
  return float(jiwer.cer(refs, hyps))
