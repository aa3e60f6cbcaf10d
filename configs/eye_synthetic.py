"""Pretraining on the synthetic corpus: EyeLandmarkNet regressing the stored dlib eye landmarks (blink loss, §4.1.6).

The same settings that configs/synthetic.py uses when it pretrains this
helper itself (pretrained.missing='pretrain'), as a stand-alone run:

  python -m a2v_jax.main --config=configs/eye_synthetic.py --workdir=runs/eye_syn
"""

from configs import pretraining


def get_config(arg=None):
  """arg: None or 'runlocal'."""
  return pretraining.get_config('eye', 'synthetic', arg)
