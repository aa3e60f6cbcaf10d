"""GRID grammar: id naming rule, parsing, and sampling without replacement."""
import numpy as np
import pytest

from a2v_jax.data import grid_grammar


def test_id_naming_rule_matches_grid():
  assert grid_grammar.sentence_to_id("bin blue at f two now") == "bbaf2n"
  assert grid_grammar.sentence_to_id(
      ["place", "white", "with", "z", "nine", "again"]) == "pwwz9a"
  assert grid_grammar.sentence_to_id("set red in a zero soon") == "sria0s"


def test_id_round_trip_and_slot_vocabulary():
  assert grid_grammar.id_to_sentence("bbaf2n") == ("bin", "blue", "at", "f", "two", "now")
  assert grid_grammar.id_to_sentence("LGBV7P") == ("lay", "green", "by", "v", "seven",
                                                   "please")
  assert grid_grammar.NUM_SENTENCES == 64000
  assert "w" not in grid_grammar.LETTERS and len(grid_grammar.LETTERS) == 25
  assert len(grid_grammar.VOCABULARY) == 51


@pytest.mark.parametrize("bad", ["bbaw2n", "xbaf2n", "bbaf2", "bbafxn", "bbaf2nn"])
def test_bad_ids_raise_one_line_error(bad):
  with pytest.raises(grid_grammar.GridGrammarError) as err:
    grid_grammar.id_to_sentence(bad)
  assert "\n" not in str(err.value)


def test_bad_sentence_raises():
  with pytest.raises(grid_grammar.GridGrammarError, match="colour"):
    grid_grammar.sentence_to_id("bin black at f two now")
  with pytest.raises(grid_grammar.GridGrammarError, match="6 words"):
    grid_grammar.sentence_to_id("bin blue at f two")


def test_index_bijection():
  rng = np.random.default_rng(0)
  for index in rng.integers(0, grid_grammar.NUM_SENTENCES, 200):
    words = grid_grammar.index_to_sentence(int(index))
    assert grid_grammar.sentence_to_index(words) == index
    assert grid_grammar.id_to_sentence(grid_grammar.sentence_to_id(words)) == words


def test_sampling_without_replacement_is_seeded():
  a = grid_grammar.sample_sentences(np.random.default_rng(5), 3000)
  b = grid_grammar.sample_sentences(np.random.default_rng(5), 3000)
  c = grid_grammar.sample_sentences(np.random.default_rng(6), 3000)
  assert a == b and a != c
  assert len(set(a)) == 3000
  ids = {grid_grammar.sentence_to_id(s) for s in a}
  assert len(ids) == 3000  # ids are unique too
  with pytest.raises(grid_grammar.GridGrammarError):
    grid_grammar.sample_sentences(np.random.default_rng(0), 64001)
