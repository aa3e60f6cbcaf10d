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
