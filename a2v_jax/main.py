r"""Trains OneShotA2V (or one of its helper networks) from a config file.

  python -m a2v_jax.main --config=configs/grid_phase1.py --workdir=runs/grid1
  python -m a2v_jax.main --config=configs/synthetic.py:runlocal --workdir=/tmp/a
  python -m a2v_jax.main --config=configs/synthetic.py --workdir=runs/demo \
      --config.num_train_steps=200

Running again with the same --workdir resumes from its latest checkpoint.
Bad input (a config value, a dataset or checkpoint folder) and a loss that
turns NaN stop the run with one line, `error: ...`, and exit status 1.
"""

from absl import app
from absl import flags
from absl import logging
import jax
from ml_collections import config_flags

from a2v_jax import checkpointing
from a2v_jax import config_validation
from a2v_jax import curriculum
from a2v_jax import data_sources
from a2v_jax import distributed
from a2v_jax import losses
from a2v_jax import train
from a2v_jax.models import patchgan
from a2v_jax.models import spade
from a2v_jax.models import temporal

FLAGS = flags.FLAGS

flags.DEFINE_string('workdir', None, 'Directory for checkpoints and logs.')
flags.DEFINE_bool('jax_distributed', False,
                  'Call jax.distributed.initialize() first, configured from '
                  'the A2V_* environment (multi-host; the launch/ scripts '
                  'set it).')
config_flags.DEFINE_config_file(
    'config', None, 'Training config file (configs/*.py[:variant]).',
    lock_config=True)
flags.mark_flags_as_required(['config', 'workdir'])

# Errors whose message names the problem and the fix: printed as one line.
INPUT_ERRORS = (config_validation.ConfigError, checkpointing.CheckpointError,
                curriculum.CurriculumError, data_sources.DataSourceError,
                distributed.DistributedConfigError, losses.LossConfigError,
                spade.SPADEConfigError, patchgan.PatchGANConfigError,
                temporal.TemporalConfigError, losses.NonFiniteLossError)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  if FLAGS.jax_distributed:
    distributed.initialize()
  logging.info('JAX process %d / %d; local devices %d; global devices %d '
               '(%s).', jax.process_index(), jax.process_count(),
               jax.local_device_count(), jax.device_count(),
               jax.devices()[0].platform)
  try:
    train.train_and_evaluate(FLAGS.config, FLAGS.workdir)
  except INPUT_ERRORS as e:
    raise SystemExit(f'error: {e}') from None


if __name__ == '__main__':
  app.run(main)
