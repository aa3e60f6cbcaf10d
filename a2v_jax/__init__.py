"""a2v-jax: one-shot audio-to-video generation (OneShotA2V) in JAX/Flax."""

from a2v_jax import xla_cpu as _xla_cpu

_xla_cpu.configure()

__version__ = "0.1.0"
