"""What a training run will do, and what to do when it is done.

`plan(config, workdir)` lists the stages of `python -m a2v_jax.main` (the
synthetic corpus, its build, the helper networks, the GAN), says which ones
an earlier run left to reuse, and gives a rough estimate of the whole;
`closing_note(config, workdir)` says where the model is and the next
commands (export, generate, TensorBoard). Both only look at the config and
the files on disk: no jax, nothing loaded.
"""

from __future__ import annotations

import os
from typing import Any, Mapping

HELPERS = ('ds2', 'syncnet', 'eye')
HELPER_TASKS = {'ds2': 'ds2_ctc', 'syncnet': 'syncnet', 'eye': 'eye'}

# Seconds per step (per utterance for the corpus and its build) of
# configs/synthetic.py on an idle 2-core x86 CPU (docs/training.md): the
# estimate is for that config on such a machine, and a scale for others.
CPU_DEMO_SECONDS = {'corpus': 0.8, 'build': 0.45, 'ds2': 1 / 3.6,
                    'syncnet': 1 / 5.4, 'eye': 1 / 5.0, 'a2v': 1 / 2.3,
                    'lipnet': 1 / 2.0}


def latest_step(checkpoint_dir: str) -> int | None:
  """The newest step folder of an orbax checkpoint folder, or None."""
  if '://' in checkpoint_dir or not os.path.isdir(checkpoint_dir):
    return None
  steps = [int(n) for n in os.listdir(checkpoint_dir) if n.isdigit()]
  return max(steps) if steps else None


def _corpus_dir(config: Any, workdir: str) -> str:
  d = config.dataset
  if d.corpus_dir:
    return d.corpus_dir
  path = os.path.join(os.path.dirname(os.path.abspath(workdir)),
                      'synthetic_corpus')
  # As the user would type it: relative to here when under here.
  rel = os.path.relpath(path)
  return path if rel.startswith('..') or os.path.isabs(workdir) else rel


def _num_steps(config: Any) -> int:
  if config.task != 'a2v':
    return config.num_train_steps if config.num_train_steps > 0 else 1000
  if config.num_train_steps > 0:
    return int(config.num_train_steps)
  opt = config.optimizer
  if opt.steps_per_epoch <= 0:
    return 0  # known once the dataset is open
  return int((opt.constant_epochs + opt.decay_epochs) * opt.steps_per_epoch)


def _minutes(seconds: float) -> str:
  return (f'{seconds:.0f} s' if seconds < 90
          else f'{seconds / 60:.0f} min' if seconds < 5400
          else f'{seconds / 3600:.1f} h')


def _data_stages(config: Any, workdir: str) -> list[tuple[str, str, float]]:
  """(name, what, estimated seconds) of the corpus and build stages."""
  d = config.dataset
  if d.name != 'synthetic':
    where = d.data_dir or 'the TFDS default data_dir'
    return [('data', f'read {d.name}/crop{d.crop} from {where}', 0.0)]
  corpus = _corpus_dir(config, workdir)
  n = d.synthetic_speakers * d.synthetic_utterances
  out = []
  if os.path.isdir(os.path.join(corpus, 'raw', 's1')):
    out.append(('corpus', f'reuse the synthetic corpus in {corpus}/raw', 0.0))
  else:
    out.append(('corpus', f'make {d.synthetic_speakers} speakers x '
                f'{d.synthetic_utterances} utterances in {corpus}/raw',
                n * CPU_DEMO_SECONDS['corpus']))
  if os.path.exists(os.path.join(corpus, 'tfds', f'.built_crop{d.crop}')):
    out.append(('build', f'reuse the built dataset (crop {d.crop})', 0.0))
  else:
    out.append(('build', f'align the faces into the TFDS dataset (crop '
                f'{d.crop}) in {corpus}/tfds',
                n * CPU_DEMO_SECONDS['build']))
  return out


def _helper_stages(config: Any, workdir: str, unused: Mapping[str, str]
                   ) -> list[tuple[str, str, float]]:
  out = []
  for name in HELPERS:
    path = config.pretrained.get(f'{name}_ckpt', '')
    mode = config.pretrained.missing
    stage = f'helper {name}'
    if path:
      out.append((stage, f'load {path}', 0.0))
    elif name in unused:
      out.append((stage, f'not needed ({unused[name]})', 0.0))
    elif mode == 'pretrain':
      steps = int(config.pretrain[f'{name}_steps'])
      where = os.path.join(workdir, 'pretrained', name)
      done = latest_step(os.path.join(where, 'checkpoints'))
      if done is not None and done >= steps:
        out.append((stage, f'reuse {where} (step {done})', 0.0))
      else:
        out.append((stage, f'pretrain {steps} steps into {where}',
                    steps * CPU_DEMO_SECONDS[name]))
    else:
      out.append((stage, f'none given: {mode} init', 0.0))
  return out


def plan(config: Any, workdir: str,
         unused: Mapping[str, str] | None = None) -> str:
  """The stages of the run, which are reused, and a rough estimate.

  Args:
    config: the run's config (a2v_jax/base_config.py keys).
    workdir: the run's --workdir.
    unused: {helper: why} for helpers the run does not need.

  Returns:
    A few lines of text.
  """
  stages = []
  if config.dataset.name != 'random':
    stages += _data_stages(config, workdir)
  num_steps = _num_steps(config)
  start = latest_step(os.path.join(workdir, 'checkpoints')) or 0
  if config.task == 'a2v':
    stages += _helper_stages(config, workdir, unused or {})
    name, rate = 'GAN', CPU_DEMO_SECONDS['a2v']
    cur = config.curriculum
    what = (f'phases {cur.start_phase}-{cur.last_phase}'
            if cur.last_phase > cur.start_phase else f'phase {cur.start_phase}')
  else:
    name, rate, what = config.task, CPU_DEMO_SECONDS.get(config.task, 0.5), ''
  total = f'{num_steps}' if num_steps else 'the schedule\'s'
  if start and num_steps and start >= num_steps:
    stages.append((name, f'done (step {start}); nothing to train', 0.0))
  else:
    resume = f', resuming at step {start}' if start else ''
    stages.append((name, f'train {total} steps{resume}'
                   + (f', {what}' if what else ''),
                   max(num_steps - start, 0) * rate))
  lines = [f'Plan for {workdir} ({len(stages)} stages):']
  lines += [f'  {i}. {stage}: {what}' for i, (stage, what, _) in
            enumerate(stages, 1)]
  seconds = sum(s for *_, s in stages)
  if config.dataset.name == 'synthetic' and seconds:
    lines.append(f'Rough estimate: {_minutes(seconds)} on an idle 2-core CPU '
                 '(the demo\'s rates); each stage\'s bar shows its own ETA.')
  else:
    lines.append('Each stage\'s bar shows its own ETA.')
  return '\n'.join(lines)


def closing_note(config: Any, workdir: str) -> str:
  """Where the trained network is and what to run next."""
  ckpt = os.path.join(workdir, 'checkpoints')
  step = latest_step(ckpt)
  at = f' (step {step})' if step is not None else ''
  if config.task != 'a2v':
    helper = {t: n for n, t in HELPER_TASKS.items()}.get(config.task)
    use = (f'  use it in a GAN run: --config.pretrained.{helper}_ckpt={ckpt}'
           if helper else
           f'  evaluate with it: python -m a2v_jax.evaluate ... '
           f'--{config.task}={ckpt}')
    return '\n'.join([f'The {config.task} network is in {ckpt}{at}.', 'Next:',
                      use, f'  tensorboard --logdir={workdir}'])
  name = os.path.basename(os.path.normpath(workdir)) or 'model'
  export = os.path.join('exports', name)
  return '\n'.join([
      f'The model is in {ckpt}{at}.',
      'Next:',
      f'  python -m a2v_jax.export --workdir={workdir} --out={export}',
      f'  python -m a2v_jax.generate --model={export} --image=photo.jpg '
      '--audio=speech.wav --out=out.mp4 --paste_back',
      f'  tensorboard --logdir={workdir}',
  ])
