r"""Trains OneShotA2V (or one of its helper networks) from a config file.

  python -m a2v_jax.main --config=configs/grid_phase1.py --workdir=runs/grid1
  python -m a2v_jax.main --config=configs/synthetic.py:runlocal --workdir=/tmp/a
  python -m a2v_jax.main --config=configs/synthetic.py --workdir=runs/demo \
      --config.num_train_steps=200

Running again with the same --workdir resumes from its latest checkpoint.
Bad input (a flag, a config key or value, the workdir, a dataset or
checkpoint folder) and a loss that turns NaN stop the run with one line,
`error: ...`, and exit status 1. Input is checked before jax is imported.
"""

from absl import flags
from absl import logging
from ml_collections import config_flags

from a2v_jax import cli

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


def main(argv):
  if len(argv) > 1:
    raise cli.InputError(f'unexpected arguments {" ".join(argv[1:])}; flags '
                         'take the form --name=value')
  cli.check_dataset_dir(FLAGS.config)
  cli.check_checkpoint_dirs(FLAGS.config)
  cli.check_writable_dir(FLAGS.workdir, '--workdir')
  # pylint: disable=g-import-not-at-top
  import jax
  from a2v_jax import distributed
  from a2v_jax import run_plan
  from a2v_jax import train
  # pylint: enable=g-import-not-at-top
  if FLAGS.jax_distributed:
    distributed.initialize()
  logging.info('JAX process %d / %d; local devices %d; global devices %d '
               '(%s).', jax.process_index(), jax.process_count(),
               jax.local_device_count(), jax.device_count(),
               jax.devices()[0].platform)
  try:
    train.train_and_evaluate(FLAGS.config, FLAGS.workdir)
  except train.INPUT_ERRORS as e:
    cli.fail(e)
  if jax.process_index() == 0:
    print(run_plan.closing_note(FLAGS.config, FLAGS.workdir))


if __name__ == '__main__':
  cli.run(main)
