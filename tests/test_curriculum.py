"""Tests of the curriculum: phase weight vectors and the phase controller."""

import json

import ml_collections
import numpy as np
import pytest

from a2v_jax import curriculum
from configs import common


def _cfg(**overrides):
  c = common.get_config().curriculum
  c.update(overrides)
  return c


def test_phase_weights_follow_the_paper():
  c = _cfg()
  terms = [curriculum.active_terms(curriculum.phase_weights(c, p))
           for p in (1, 2, 3)]
  assert set(terms[0]) == {'adversarial', 'feature_matching', 'perceptual'}
  assert set(terms[1]) - set(terms[0]) == {
      'temporal_adversarial', 'contrastive', 'reconstruction'}
  assert set(terms[2]) - set(terms[1]) == {'blink'}
  vec = curriculum.phase_weights(c, 1)
  assert vec.dtype == np.float32 and vec.shape == (len(curriculum.LOSS_TERMS),)


def test_unknown_term_lists_valid_terms():
  with pytest.raises(curriculum.CurriculumError, match='valid terms: adversarial'):
    curriculum.weights_vector({'adversarail': 1.0})


def _losses(value):
  return {t: value for t in curriculum.LOSS_TERMS}


def test_advances_at_configured_steps():
  ctl = curriculum.PhaseController.from_config(
      _cfg(last_phase=3, advance='steps', phase_start_steps=(3, 5)))
  w = curriculum.phase_weights(_cfg(), 1)
  events = {}
  for step in range(1, 8):
    out = ctl.update(step, w, _losses(1.0))
    if out:
      events[step] = out
  assert events == {3: (2, 'reached step 3'), 5: (3, 'reached step 5')}
  assert ctl.update(8, w, _losses(1.0)) is None  # last phase: stays


def test_advances_when_losses_stabilise():
  ctl = curriculum.PhaseController.from_config(_cfg(
      last_phase=2, advance='stable', window_steps=4, rel_tol=0.05,
      min_phase_steps=0))
  w = curriculum.phase_weights(_cfg(), 1)
  # Falling loss: the windows differ by far more than 5 %: no advance.
  for step in range(1, 9):
    assert ctl.update(step, w, _losses(10.0 / step)) is None
  # Flat loss: after two flat windows the phase advances, with a reason.
  result = None
  step = 8
  while result is None and step < 30:
    step += 1
    result = ctl.update(step, w, _losses(1.0))
  assert result is not None and result[0] == 2
  assert 'stabilised' in result[1] and step == 16


def test_state_round_trips_through_json():
  kw = dict(last_phase=3, advance='stable', window_steps=3, rel_tol=0.01,
            min_phase_steps=0)
  a = curriculum.PhaseController.from_config(_cfg(**kw))
  b = curriculum.PhaseController.from_config(_cfg(**kw))
  w = curriculum.phase_weights(_cfg(), 1)
  rng = np.random.default_rng(0)
  values = [float(v) for v in 1.0 + 0.001 * rng.standard_normal(40)]
  out_a = [a.update(s, w, _losses(v)) for s, v in enumerate(values[:10], 1)]
  b.load_state_dict(json.loads(json.dumps(a.state_dict())))
  out_a += [a.update(s, w, _losses(v)) for s, v in enumerate(values[10:], 11)]
  out_b = [b.update(s, w, _losses(v)) for s, v in enumerate(values[10:], 11)]
  assert out_a[10:] == out_b and any(out_b)
  assert a.state_dict() == b.state_dict()


def test_bad_mode_names_valid_choices():
  with pytest.raises(curriculum.CurriculumError, match="valid choices: steps"):
    curriculum.PhaseController.from_config(_cfg(advance='stabel'))


def test_helpers_a_run_never_uses_are_not_pretrained():
  from a2v_jax import pretrain  # pylint: disable=g-import-not-at-top
  from configs import grid_s1  # pylint: disable=g-import-not-at-top
  c = grid_s1.get_config()
  # CPU run: no sync term in any phase and no lip_sync evaluator.
  assert set(pretrain.unused_helpers(c)) == {'syncnet'}
  c.evals = ('lower_face', 'lip_sync')
  assert not pretrain.unused_helpers(c)
  c = grid_s1.get_config('gpu')
  assert not pretrain.unused_helpers(c)
  c = common.get_config()  # phase 1 only: neither sync nor blink trains
  assert set(pretrain.unused_helpers(c)) == {'syncnet', 'eye'}
