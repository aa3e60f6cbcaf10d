"""Random-access example sources for training, chosen by `config.dataset.name`.

- 'grid', 'lombard_grid': `tfds.data_source` over the built array_record files
  (builder config crop{N}); nothing TensorFlow is imported.
- 'synthetic': the synthetic GRID-layout corpus, generated and built into
  the TFDS format on first use (then reused), read like 'grid'.
- 'random': an in-memory list of noise clips in the same example format; a
  smoke-test source for `:runlocal` configs and tests, needs nothing on disk.

Every source is a sequence of example dicts in the dataset contract's format
(`frames`: list of JPEG bytes, `audio`: float32 [N] at 16 kHz, `landmarks`
[T, 68, 2], ...), which is what `a2v_jax.data.pipeline.create_loader` reads.
"""

from __future__ import annotations

import os
from typing import Any, Sequence

from absl import logging
import cv2
import numpy as np

SAMPLE_RATE = 16000
FPS = 25.0


class DataSourceError(ValueError):
  """The configured dataset cannot be opened."""


def encode_jpeg(image: np.ndarray, quality: int = 95) -> bytes:
  """uint8 [H, W, 3] RGB -> JPEG bytes."""
  ok, buf = cv2.imencode('.jpg', np.ascontiguousarray(image[..., ::-1]),
                         [cv2.IMWRITE_JPEG_QUALITY, quality])
  if not ok:
    raise DataSourceError('JPEG encoding failed')
  return buf.tobytes()


def decode_jpeg(data: bytes) -> np.ndarray:
  """JPEG bytes -> uint8 [H, W, 3] RGB."""
  image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
  if image is None:
    raise DataSourceError('a frame is not a decodable JPEG')
  return image[..., ::-1]


def make_random_examples(num_examples: int, num_frames: int, crop: int,
                         seed: int, num_speakers: int = 2
                         ) -> list[dict[str, Any]]:
  """Noise clips in the dataset example format (smooth colour fields).

  Args:
    num_examples: examples to make.
    num_frames: T frames per example (25 fps; audio is T * 640 samples).
    crop: frame side in pixels.
    seed: numpy seed; the same seed gives the same examples.
    num_speakers: speakers cycle s1..sN over the examples.

  Returns:
    list of example dicts (see module docstring).
  """
  rng = np.random.default_rng(seed)
  examples = []
  template = np.array([[0.3 + 0.4 * (i % 17) / 16, 0.2 + 0.6 * (i // 17) / 3]
                       for i in range(68)], np.float32)
  for i in range(num_examples):
    base = rng.uniform(0, 255, (4, 4, 3))
    frames = []
    for _ in range(num_frames):
      small = np.clip(base + rng.normal(0, 20, base.shape), 0, 255)
      frame = cv2.resize(small.astype(np.float32), (crop, crop),
                         interpolation=cv2.INTER_LINEAR)
      frames.append(encode_jpeg(frame.astype(np.uint8)))
    n_audio = num_frames * int(SAMPLE_RATE / FPS)
    audio = (0.1 * rng.standard_normal(n_audio)).astype(np.float32)
    landmarks = np.broadcast_to(template * crop, (num_frames, 68, 2))
    speaker = i % num_speakers + 1
    examples.append({
        'frames': frames,
        'audio': audio,
        'landmarks': np.array(landmarks, np.float32),
        'landmarks_detected': np.ones([num_frames], bool),
        'words': [b'bin', b'blue'],
        'word_start': np.linspace(0, 0.5, 2).astype(np.float32)
                      * num_frames / FPS,
        'word_end': np.linspace(0.4, 0.9, 2).astype(np.float32)
                    * num_frames / FPS,
        'mouth_open_gt': np.zeros([num_frames], np.float32),
        'blink_gt': np.zeros([num_frames], np.int32),
        'has_ground_truth': False,
        'speaker': f's{speaker}'.encode(),
        'speaker_id': np.int32(speaker),
        'utterance': f'rand{i:04d}'.encode(),
        'fps': np.float32(FPS),
    })
  return examples


def default_corpus_dir(config: Any, workdir: str) -> str:
  """Where the synthetic corpus lives: config.dataset.corpus_dir or beside
  the workdir, so several runs share one corpus."""
  if config.dataset.corpus_dir:
    return config.dataset.corpus_dir
  return os.path.join(os.path.dirname(os.path.abspath(workdir)),
                      'synthetic_corpus')


def ensure_synthetic_corpus(config: Any, workdir: str) -> str:
  """Generates and builds the synthetic corpus unless it exists; returns the
  TFDS data_dir holding it."""
  corpus_dir = default_corpus_dir(config, workdir)
  raw_dir = os.path.join(corpus_dir, 'raw')
  data_dir = os.path.join(corpus_dir, 'tfds')
  d = config.dataset
  done = os.path.join(data_dir, f'.built_crop{d.crop}')
  if os.path.exists(done):
    return data_dir
  from a2v_jax.data import build  # pylint: disable=g-import-not-at-top
  from a2v_jax.data import synthetic  # pylint: disable=g-import-not-at-top
  if not os.path.isdir(os.path.join(raw_dir, 's1')):
    logging.info('Generating the synthetic corpus in %s (%d speakers x %d '
                 'utterances).', raw_dir, d.synthetic_speakers,
                 d.synthetic_utterances)
    from a2v_jax import progress  # pylint: disable=g-import-not-at-top
    synthetic.make_corpus(raw_dir, d.synthetic_speakers,
                          d.synthetic_utterances, d.synthetic_seed,
                          show_progress=progress.interactive())
  logging.info('Building the synthetic corpus (crop %d) into %s.', d.crop,
               data_dir)
  # Every speaker trains; every 5th utterance of each is held out in 'val'.
  build.build('grid', manual_dir=raw_dir, data_dir=data_dir, crop=d.crop,
              test_speakers=(), val_every=5)
  os.makedirs(data_dir, exist_ok=True)
  with open(done, 'w') as f:
    f.write('ok\n')
  return data_dir


def create_source(config: Any, workdir: str, split: str) -> Sequence[dict]:
  """The random-access source of `split` for `config.dataset`."""
  d = config.dataset
  if d.name == 'random':
    seed = d.synthetic_seed + (0 if split == d.split else 1)
    return make_random_examples(d.random_examples, d.random_utterance_frames,
                                d.crop, seed)
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  if d.name == 'synthetic':
    data_dir, name = ensure_synthetic_corpus(config, workdir), 'grid'
  else:
    data_dir, name = d.data_dir or None, d.name
  # Importing the builder package registers it with TFDS.
  if name == 'grid':
    import tfds_builders.grid  # pylint: disable=g-import-not-at-top,unused-import
  else:
    import tfds_builders.lombard_grid  # pylint: disable=g-import-not-at-top,unused-import
  try:
    builder = tfds.builder(f'{name}/crop{d.crop}', data_dir=data_dir)
    if not builder.is_prepared():
      raise FileNotFoundError(f'nothing built at {builder.data_dir}')
    # download=False: never a build attempt (it would leave empty folders).
    return tfds.data_source(f'{name}/crop{d.crop}', split=split,
                            data_dir=data_dir, download=False)
  except Exception as e:  # TFDS raises several types for a missing dataset.
    reason = (str(e).strip().splitlines() or [type(e).__name__])[0]
    raise DataSourceError(
        f'cannot open dataset {name}/crop{d.crop} split {split!r} in '
        f'{data_dir or "the TFDS default data_dir"} ({reason}). Build it with '
        f'`python -m a2v_jax.data.build --dataset={name} --crop={d.crop} '
        f'--manual_dir=DIR --data_dir=DIR` and set config.dataset.data_dir.'
    ) from e


def load_clip(source: Sequence[dict], index: int, num_frames: int,
              audio_features: str = 'mfcc') -> dict[str, np.ndarray]:
  """The first `num_frames` frames of example `index`, with audio features.

  Returns:
    {'frames': float32 [T, H, W, 3] in [-1, 1], 'features': float32
     [T, 20, C] windows, 'audio': float32 [T * 640] samples, 'fps': float,
     'mouth_open_gt': float32 [T], 'has_ground_truth': bool,
     'utterance': str}.
  """
  from a2v_jax.audio import features  # pylint: disable=g-import-not-at-top
  example = source[index]
  t = min(num_frames, len(example['frames']))
  frames = np.stack([decode_jpeg(f) for f in example['frames'][:t]])
  fps = float(example.get('fps', FPS))
  audio = np.asarray(example['audio'], np.float32)
  fn = (features.mfcc_windows if audio_features == 'mfcc'
        else features.log_mel_windows)
  windows = fn(audio, SAMPLE_RATE, fps, num_frames=t)
  audio = audio[:int(round(t * SAMPLE_RATE / fps))]
  mouth = np.asarray(example.get('mouth_open_gt', np.zeros([t])), np.float32)
  utterance = example.get('utterance', b'')
  return {'frames': frames.astype(np.float32) / 127.5 - 1.0,
          'features': np.asarray(windows, np.float32), 'audio': audio,
          'fps': fps, 'mouth_open_gt': mouth[:t],
          'has_ground_truth': bool(example.get('has_ground_truth', False)),
          'utterance': (utterance.decode() if isinstance(utterance, bytes)
                        else str(utterance))}
