"""The training curriculum of OneShotA2V (paper §4) as data: loss-weight vectors.

Each phase is a float32 weight vector over `LOSS_TERMS`. The train step takes
that vector as an array argument and multiplies every loss term by its weight,
so moving to the next phase changes an input value, never the compiled step.

- Phase 1: frame adversarial + feature matching + perceptual.
- Phase 2: adds temporal adversarial, the sync discriminator's contrastive loss
  and the L1 reconstruction of the lower half of the face.
- Phase 3: adds the blink loss.

`PhaseController` decides when to advance: at a configured step, or when the
moving average of every loss the current phase trains has changed by less than
a relative tolerance over a window ("when these losses stabilize", §4). Its
whole state is JSON, so it is stored in checkpoint metadata and a resumed run
advances at exactly the step the uninterrupted run would.
"""

from __future__ import annotations

import collections
import dataclasses
from typing import Any, Mapping, Sequence

from absl import logging
import numpy as np

# Order matters: it is the layout of the weight vector the train step receives.
LOSS_TERMS = (
    'adversarial',           # frame discriminator, generator side (§4.1.1)
    'feature_matching',      # frame discriminator features (§4.1.3)
    'perceptual',            # VGG features (§4.1.4)
    'temporal_adversarial',  # temporal discriminator (§3.2.2)
    'contrastive',           # sync discriminator, SyncNet embeddings (§4.1.5)
    'reconstruction',        # L1 on the lower half of the face (§4.1.2)
    'blink',                 # eye-aspect-ratio L1 (§4.1.6)
    'mouth',                 # L1 in the mouth's box (ours; 0 in the paper)
)

PHASE_NAMES = ('phase1', 'phase2', 'phase3')
ADVANCE_MODES = ('steps', 'stable', 'either')

# Paper §4: phase 1 = adversarial + feature matching + perceptual; phase 2 adds
# temporal adversarial, sync contrastive and lower-half L1; phase 3 adds blink.
# The weights the paper leaves unstated follow pix2pixHD (feature matching
# and VGG weight 10; our choice).
_PHASE1 = dict(adversarial=1.0, feature_matching=10.0, perceptual=10.0)
_PHASE2 = dict(_PHASE1, temporal_adversarial=1.0, contrastive=1.0,
               reconstruction=10.0)
_PHASE3 = dict(_PHASE2, blink=1.0)

# Which discriminator trains alongside which generator term: a discriminator
# whose terms all have weight 0 is held fixed (its update is discarded).
DISCRIMINATOR_TERMS = {
    'frame': ('adversarial', 'feature_matching'),
    'temporal': ('temporal_adversarial',),
    'sync': ('contrastive',),
}


class CurriculumError(ValueError):
  """A curriculum setting is invalid."""


def paper_weights() -> dict[str, dict[str, float]]:
  """The paper's curriculum: phase name -> {term: weight} over every term
  (config.curriculum.weights of the base config)."""
  return {name: {t: float(weights.get(t, 0.0)) for t in LOSS_TERMS}
          for name, weights in zip(PHASE_NAMES, (_PHASE1, _PHASE2, _PHASE3))}


def term_index(name: str) -> int:
  """Position of loss term `name` in the weight vector."""
  if name not in LOSS_TERMS:
    raise CurriculumError(
        f'unknown loss term {name!r}; valid terms: {", ".join(LOSS_TERMS)}')
  return LOSS_TERMS.index(name)


def weights_vector(weights: Mapping[str, float]) -> np.ndarray:
  """Turns {term: weight} into float32 [len(LOSS_TERMS)]; absent terms are 0."""
  vec = np.zeros([len(LOSS_TERMS)], np.float32)
  for name, value in weights.items():
    vec[term_index(name)] = float(value)
  return vec


def phase_weights(curriculum_cfg: Any, phase: int) -> np.ndarray:
  """Weight vector float32 [len(LOSS_TERMS)] of phase `phase` (1-based)."""
  if not 1 <= phase <= len(PHASE_NAMES):
    raise CurriculumError(f'phase {phase} is out of range 1..{len(PHASE_NAMES)}')
  return weights_vector(dict(curriculum_cfg.weights[PHASE_NAMES[phase - 1]]))


def active_terms(weights: np.ndarray) -> tuple[str, ...]:
  """Names of the terms with a non-zero weight."""
  return tuple(n for n, w in zip(LOSS_TERMS, np.asarray(weights)) if w != 0)


@dataclasses.dataclass
class PhaseController:
  """Advances the curriculum at a step or when the phase's losses stabilise.

  Attributes:
    last_phase: the last phase of this run (3 for the full curriculum; a
      phase-2-only config starts and ends at 2).
    phase: the current phase, 1-based.
    mode: 'steps' (advance at `phase_start_steps`), 'stable' (advance when the
      losses stabilise) or 'either' (whichever comes first).
    phase_start_steps: (global step at which phase 2 starts, step at which
      phase 3 starts); entries past `last_phase` are ignored.
    window_steps: length of each moving-average window.
    rel_tol: the phase has stabilised when, for every active term, the mean of
      the last window differs from the mean of the window before it by less
      than rel_tol * |mean of the window before|.
    min_phase_steps: never advance on stability before this many steps in the
      phase.
  """
  last_phase: int = 3
  phase: int = 1
  mode: str = 'steps'
  phase_start_steps: Sequence[int] = ()
  window_steps: int = 100
  rel_tol: float = 0.01
  min_phase_steps: int = 0
  phase_began_at: int = 0
  reason: str = 'start'
  history: dict[str, collections.deque] = dataclasses.field(
      default_factory=dict)

  def __post_init__(self):
    if self.mode not in ADVANCE_MODES:
      raise CurriculumError(
          f'curriculum.advance={self.mode!r} is invalid; valid choices: '
          f'{", ".join(ADVANCE_MODES)}')
    if not 1 <= self.phase <= self.last_phase:
      raise CurriculumError(
          f'phase {self.phase} is out of range 1..{self.last_phase}; set '
          f'curriculum.start_phase <= curriculum.last_phase <= 3')
    if self.mode in ('steps', 'either') and (
        len(self.phase_start_steps) < self.last_phase - 1):
      raise CurriculumError(
          f'curriculum.phase_start_steps needs {self.last_phase - 1} steps '
          f'(when phase 2, 3, ... start), got {list(self.phase_start_steps)}')
    if self.window_steps < 1:
      raise CurriculumError('curriculum.window_steps must be >= 1')
    self.history = {k: collections.deque(v, maxlen=2 * self.window_steps)
                    for k, v in self.history.items()}

  @classmethod
  def from_config(cls, curriculum_cfg: Any) -> 'PhaseController':
    """Builds a controller from `config.curriculum`."""
    return cls(
        last_phase=int(curriculum_cfg.last_phase),
        phase=int(curriculum_cfg.start_phase),
        mode=str(curriculum_cfg.advance),
        phase_start_steps=tuple(int(s) for s in curriculum_cfg.phase_start_steps),
        window_steps=int(curriculum_cfg.window_steps),
        rel_tol=float(curriculum_cfg.rel_tol),
        min_phase_steps=int(curriculum_cfg.min_phase_steps),
    )

  def update(self, step: int, weights: np.ndarray,
             losses: Mapping[str, float]) -> tuple[int, str] | None:
    """Records the losses of finished step `step`; maybe advances the phase.

    Args:
      step: number of optimiser steps done so far (after this step).
      weights: float32 [len(LOSS_TERMS)], the weights the step trained with.
      losses: unweighted value of every term in LOSS_TERMS for this step.

    Returns:
      (new_phase, reason) when the phase advanced, else None.
    """
    for name in active_terms(weights):
      self.history.setdefault(
          name, collections.deque(maxlen=2 * self.window_steps)).append(
              float(losses[name]))
    if self.phase >= self.last_phase:
      return None
    reason = None
    if self.mode in ('steps', 'either'):
      start = self.phase_start_steps[self.phase - 1]
      if step >= start:
        reason = f'reached step {start}'
    if reason is None and self.mode in ('stable', 'either'):
      reason = self._stability_reason(step, weights)
    if reason is None:
      return None
    self.phase += 1
    self.phase_began_at = step
    self.reason = reason
    self.history = {}
    logging.info('Curriculum: phase %d begins at step %d (%s).', self.phase,
                 step, reason)
    return self.phase, reason

  def _stability_reason(self, step: int, weights: np.ndarray) -> str | None:
    if step - self.phase_began_at < max(self.min_phase_steps,
                                        2 * self.window_steps):
      return None
    changes = {}
    for name in active_terms(weights):
      values = np.asarray(self.history.get(name, ()), np.float64)
      if values.size < 2 * self.window_steps:
        return None
      before = values[:self.window_steps].mean()
      last = values[self.window_steps:].mean()
      change = abs(last - before) / max(abs(before), 1e-8)
      if change >= self.rel_tol:
        return None
      changes[name] = change
    if not changes:
      return None
    worst = max(changes, key=changes.get)
    return (f'losses stabilised: largest relative change of the '
            f'{self.window_steps}-step moving average is {changes[worst]:.4f} '
            f'({worst}) < rel_tol {self.rel_tol}')

  def state_dict(self) -> dict[str, Any]:
    """JSON-serialisable state, stored in checkpoint metadata."""
    return {
        'phase': self.phase,
        'reason': self.reason,
        'phase_began_at': self.phase_began_at,
        'history': {k: list(v) for k, v in self.history.items()},
    }

  def load_state_dict(self, state: Mapping[str, Any]) -> None:
    """Restores what `state_dict` returned."""
    self.phase = int(state['phase'])
    self.reason = str(state['reason'])
    self.phase_began_at = int(state['phase_began_at'])
    self.history = {
        k: collections.deque(v, maxlen=2 * self.window_steps)
        for k, v in state['history'].items()
    }
