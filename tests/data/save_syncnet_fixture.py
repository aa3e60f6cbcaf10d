"""Writes tests/data/syncnet_synthetic.npz from a SyncNet pretraining run.

  python -m a2v_jax.main --config=configs/syncnet_synthetic.py --workdir=W
  python tests/data/save_syncnet_fixture.py W

The file holds the run's variables (flattened, '/'-joined keys), its
model.syncnet settings and its step, so the LSE offset test in
tests/test_evaluate.py runs without minutes of pretraining.
"""
import json
import os
import sys

from flax import traverse_util
import numpy as np

from a2v_jax.evaluation import networks

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                   'syncnet_synthetic.npz')


def main(workdir: str) -> None:
  variables, config, step = networks.load_pretrained(workdir, 'syncnet')
  arrays = {k: np.asarray(v, np.float32) for k, v in
            traverse_util.flatten_dict(variables, sep='/').items()}
  meta = {'syncnet': config['model']['syncnet'], 'step': step,
          'dataset': config['dataset']['name']}
  tmp = OUT + '.tmp.npz'
  np.savez_compressed(tmp, __meta__=np.asarray(json.dumps(meta)), **arrays)
  os.replace(tmp, OUT)
  print(f'wrote {OUT}: {len(arrays)} arrays, step {step}')


if __name__ == '__main__':
  main(sys.argv[1])
