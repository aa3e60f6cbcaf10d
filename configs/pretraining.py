"""Pretraining configs of the helper networks: one function of (task, dataset).

task: 'ds2_ctc' (the DeepSpeech2 audio encoder), 'syncnet', 'eye' (the
frozen helpers of the main run) or 'lipnet' (the WER evaluator's lip
reader). dataset: 'grid', the full-size runs on GRID, or 'synthetic', the
runs configs/synthetic.py makes itself (pretrained.missing='pretrain') as
stand-alone runs. configs/<task>_<dataset>.py name each pair.
"""

from a2v_jax import pretrain
from configs import common
from configs import synthetic

TASKS = ('ds2_ctc', 'syncnet', 'eye', 'lipnet')
DATASETS = ('grid', 'synthetic')


def _on_grid(task: str):
  c = common.get_config()
  c.task = task
  c.dataset.update(dict(name='grid', crop=128))
  c.batch_size = 32
  c.num_train_steps = 20000
  c.pretrain.lr = 1e-3
  c.log_every_steps = 100
  c.ckpt_every_steps = 2000
  if task == 'eye':
    c.dataset.num_frames = 2  # frames per clip in a batch (B*2 faces)
  elif task == 'lipnet':
    c.batch_size = 48
    c.num_train_steps = 30000
    c.pretrain.lr = 1e-4  # LipNet's Adam learning rate
    c.pretrain.num_frames = 75
  return c


def of_run(helper: str, c):
  """Helper `helper` ('ds2', 'syncnet' or 'eye') pretrained as main-run
  config `c` pretrains it itself (pretrained.missing='pretrain'), as a
  stand-alone run."""
  c = pretrain.helper_config(helper, c)
  c.log_every_steps = 50
  c.ckpt_every_steps = 500
  return c


def _on_synthetic(task: str):
  if task != 'lipnet':
    helper = {t: n for n, t in pretrain.HELPER_TASKS.items()}[task]
    return of_run(helper, synthetic.get_config())
  # The demo's corpus, a LipNet narrowed for a CPU on 24x48 mouth crops.
  c = synthetic.get_config()
  c.task = 'lipnet'
  c.init_from = ''
  c.batch_size = 8
  c.num_train_steps = 1500
  c.pretrain.lr = 1e-3
  c.pretrain.num_frames = 75
  c.pretrain.lipnet = dict(conv_features=(16, 32, 48), gru_hidden=96,
                           gru_layers=2, dropout_rate=0.2,
                           gru_dropout_rate=0.2, mouth_hw=(24, 48))
  c.log_every_steps = 25
  c.ckpt_every_steps = 250
  return c


def get_config(task: str, dataset: str, arg=None):
  """The pretraining config of `task` on `dataset`; arg: None or
  'runlocal'."""
  if task not in TASKS or dataset not in DATASETS:
    raise ValueError(f'no helper config for task {task!r} on {dataset!r}; '
                     f'tasks: {", ".join(TASKS)}; datasets: '
                     f'{", ".join(DATASETS)}')
  on_dataset = _on_grid if dataset == 'grid' else _on_synthetic
  return common.variant(on_dataset(task), arg)
