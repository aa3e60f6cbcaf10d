"""Pretraining on the synthetic corpus: the LipNet lip reader of the WER evaluator.

The synthetic twin of configs/lipnet_grid.py: the demo's corpus (64x64
crops, shared beside the workdir like the demo's helpers), narrower LipNet
on 24x48 mouth crops, sized for a CPU.

  python -m a2v_jax.pretrain --config=configs/lipnet_synthetic.py --workdir=runs/lipnet_syn
  python -m a2v_jax.evaluate --model=EXPORT --dataset=synthetic \
      --data_dir=runs/synthetic_corpus --lipnet=runs/lipnet_syn/checkpoints ...
"""

from configs import pretraining


def get_config(arg=None):
  """arg: None or 'runlocal'."""
  return pretraining.get_config('lipnet', 'synthetic', arg)
