"""The errors a training or pretraining run raises for bad input.

Each names the problem and the fix in its message, so the entry points
(a2v_jax.main, a2v_jax.pretrain) print it as one line instead of a
traceback. Its own module so that both can import it without importing
each other.
"""

from a2v_jax import checkpointing
from a2v_jax import config_validation
from a2v_jax import curriculum
from a2v_jax import data_sources
from a2v_jax import distributed
from a2v_jax import losses
from a2v_jax.models import patchgan
from a2v_jax.models import spade
from a2v_jax.models import temporal

INPUT_ERRORS = (config_validation.ConfigError, checkpointing.CheckpointError,
                curriculum.CurriculumError, data_sources.DataSourceError,
                distributed.DistributedConfigError, losses.LossConfigError,
                spade.SPADEConfigError, patchgan.PatchGANConfigError,
                temporal.TemporalConfigError, losses.NonFiniteLossError)
