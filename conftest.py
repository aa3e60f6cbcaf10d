"""Test-wide JAX settings: 8 simulated CPU devices and fast compiles.

Set before JAX initialises its backends, so every test process sees the same
device count whether it runs alone or under pytest-xdist.
"""
import os

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
# No persistent compilation cache in tests (never the user's ~/.cache): the
# commands they start inherit this; tests of the cache set their own folder.
os.environ["A2V_COMPILATION_CACHE"] = ""

import jax  # noqa: E402

jax.config.update("jax_disable_most_optimizations", True)


# Longest first: under `pytest -n 2 --dist loadgroup --no-loadscope-reorder`
# (pyproject.toml) xdist hands out tests one scope at a time in this order,
# so the minutes-long tests start at once on both workers instead of
# queueing at the end (train_test.py sorts last) while the other worker
# idles. (xdist_group marks are not honoured by the xdist and pytest
# installed here: a test of tests marked with one group ran them on both
# workers, so the tests sharing train_test's `straight_run` fixture each
# train it on their own worker.) Durations: the `slowest 25` table at the
# end of every run.
_LONGEST_FIRST = (
    "tests/train_test.py::test_phase_change_does_not_retrace",
    "tests/train_test.py::test_kill_and_resume_gives_identical_params",
    "tests/train_test.py::test_eight_devices_match_one_device",
    "tests/test_features.py::test_mfcc_matches_librosa_on_each_window",
    "tests/train_test.py::test_nan_stops_with_step_and_term",
    "tests/test_notebooks.py",
    "tests/test_web.py",
    "tests/train_test.py::test_pretrain_runlocal_writes_loadable_checkpoint",
    "tests/test_evaluate_helpers.py",
    "tests/test_evaluate.py",
)


def pytest_collection_modifyitems(config, items):
  del config

  def rank(item):
    for i, prefix in enumerate(_LONGEST_FIRST):
      if item.nodeid == prefix or item.nodeid.startswith((prefix + "[",
                                                           prefix + "::")):
        return i
    return len(_LONGEST_FIRST)

  items.sort(key=rank)   # stable: the rest keep their collection order
