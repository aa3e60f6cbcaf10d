"""a2v-jax: one-shot audio-to-video generation (OneShotA2V) in JAX/Flax."""

__version__ = "0.1.0"
