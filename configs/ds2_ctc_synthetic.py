"""Pretraining on the synthetic corpus: DeepSpeech2 audio encoder with CTC on the GRID transcripts (§3.1.1).

The same settings that configs/synthetic.py uses when it pretrains this
helper itself (pretrained.missing='pretrain'), as a stand-alone run:

  python -m a2v_jax.main --config=configs/ds2_ctc_synthetic.py --workdir=runs/ds2_ctc_syn
"""

from configs import pretraining


def get_config(arg=None):
  """arg: None or 'runlocal'."""
  return pretraining.get_config('ds2_ctc', 'synthetic', arg)
