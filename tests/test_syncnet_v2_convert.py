"""Official SyncNet v2 weights -> Flax: random weights in the official layout.

The reference is a PyTorch module written here from syncnet_python's layer
list (run only when torch is installed; the [torch] extra), so the Flax
module, the converter and the layout transposes are all checked against an
independent implementation.
"""
import jax
import numpy as np
import pytest

from a2v_jax.evaluation import lip_sync
from a2v_jax.evaluation import syncnet_v2_convert
from a2v_jax.models import syncnet_v2

# (stream, index, kind, in, out, kernel) of the official model.
_CONVS = {
    "netcnnaud": [(0, 1, 64, (3, 3)), (4, 64, 192, (3, 3)),
                  (8, 192, 384, (3, 3)), (11, 384, 256, (3, 3)),
                  (14, 256, 256, (3, 3)), (18, 256, 512, (5, 4))],
    "netcnnlip": [(0, 3, 96, (5, 7, 7)), (4, 96, 256, (1, 5, 5)),
                  (8, 256, 256, (1, 3, 3)), (11, 256, 256, (1, 3, 3)),
                  (14, 256, 256, (1, 3, 3)), (18, 256, 512, (1, 6, 6))],
}


def _random_state_dict(seed=0, embed_dim=1024):
  rng = np.random.default_rng(seed)
  state = {}

  def bn(prefix, n):
    state[f"{prefix}.weight"] = rng.uniform(0.5, 1.5, n).astype(np.float32)
    state[f"{prefix}.bias"] = rng.normal(0, 0.1, n).astype(np.float32)
    state[f"{prefix}.running_mean"] = rng.normal(0, 0.1, n).astype(np.float32)
    state[f"{prefix}.running_var"] = rng.uniform(0.5, 2.0, n).astype(np.float32)
    state[f"{prefix}.num_batches_tracked"] = np.array(7, np.int64)

  for stream, convs in _CONVS.items():
    for index, cin, cout, kernel in convs:
      fan_in = cin * int(np.prod(kernel))
      state[f"{stream}.{index}.weight"] = rng.normal(
          0, 1.0 / np.sqrt(fan_in), (cout, cin) + kernel).astype(np.float32)
      state[f"{stream}.{index}.bias"] = rng.normal(0, 0.1, cout).astype(np.float32)
      bn(f"{stream}.{index + 1}", cout)
  for stream in ("netfcaud", "netfclip"):
    state[f"{stream}.0.weight"] = rng.normal(0, 1 / np.sqrt(512), (512, 512)
                                             ).astype(np.float32)
    state[f"{stream}.0.bias"] = rng.normal(0, 0.1, 512).astype(np.float32)
    bn(f"{stream}.1", 512)
    state[f"{stream}.3.weight"] = rng.normal(
        0, 1 / np.sqrt(512), (embed_dim, 512)).astype(np.float32)
    state[f"{stream}.3.bias"] = rng.normal(0, 0.1, embed_dim).astype(np.float32)
  return state


def _torch_reference(state):
  torch = pytest.importorskip("torch")
  nn = torch.nn

  def block(conv):
    bn = nn.BatchNorm2d if isinstance(conv, nn.Conv2d) else nn.BatchNorm3d
    return [conv, bn(conv.out_channels), nn.ReLU()]

  pool3 = lambda **kw: nn.MaxPool3d((1, 3, 3), (1, 2, 2), **kw)
  meta = torch.device("meta")  # skip PyTorch's (slow) random init
  meta.__enter__()
  model = nn.Module()
  model.netcnnaud = nn.Sequential(
      *block(nn.Conv2d(1, 64, 3, padding=1)), nn.MaxPool2d(1, 1),
      *block(nn.Conv2d(64, 192, 3, padding=1)), nn.MaxPool2d(3, (1, 2)),
      *block(nn.Conv2d(192, 384, 3, padding=1)),
      *block(nn.Conv2d(384, 256, 3, padding=1)),
      *block(nn.Conv2d(256, 256, 3, padding=1)), nn.MaxPool2d(3, 2),
      *block(nn.Conv2d(256, 512, (5, 4))))
  model.netcnnlip = nn.Sequential(
      *block(nn.Conv3d(3, 96, (5, 7, 7), stride=(1, 2, 2))), pool3(),
      *block(nn.Conv3d(96, 256, (1, 5, 5), stride=(1, 2, 2),
                       padding=(0, 1, 1))), pool3(padding=(0, 1, 1)),
      *block(nn.Conv3d(256, 256, (1, 3, 3), padding=(0, 1, 1))),
      *block(nn.Conv3d(256, 256, (1, 3, 3), padding=(0, 1, 1))),
      *block(nn.Conv3d(256, 256, (1, 3, 3), padding=(0, 1, 1))), pool3(),
      *block(nn.Conv3d(256, 512, (1, 6, 6))))
  fc = lambda: nn.Sequential(nn.Linear(512, 512), nn.BatchNorm1d(512),
                             nn.ReLU(), nn.Linear(512, 1024))
  model.netfcaud, model.netfclip = fc(), fc()
  meta.__exit__(None, None, None)
  model.load_state_dict({k: torch.from_numpy(np.asarray(v))
                         for k, v in state.items()}, assign=True)
  return model.eval(), torch


def _inputs(seed=1, batch=2):
  rng = np.random.default_rng(seed)
  faces = rng.uniform(0, 255, (batch, 5, 224, 224, 3)).astype(np.float32)
  mfcc = rng.normal(0, 5, (batch, 20, 13)).astype(np.float32)
  return faces, mfcc


def test_torch_checkpoint_matches_torch_forward(tmp_path):
  state = _random_state_dict()
  model, torch = _torch_reference(state)
  path = tmp_path / "syncnet_v2.model"
  torch.save({k: torch.from_numpy(np.asarray(v)) for k, v in state.items()},
             str(path))
  module, variables = syncnet_v2_convert.load_syncnet_v2(str(path))
  faces, mfcc = _inputs(batch=1)
  with torch.no_grad():
    # PyTorch layouts: lips [B, 3, 5, 224, 224], audio [B, 1, 13, 20].
    lip_in = torch.from_numpy(faces.transpose(0, 4, 1, 2, 3).copy())
    aud_in = torch.from_numpy(mfcc.transpose(0, 2, 1)[:, None].copy())
    want_v = model.netfclip(model.netcnnlip(lip_in).flatten(1)).numpy()
    want_a = model.netfcaud(model.netcnnaud(aud_in).flatten(1)).numpy()
  got_v, got_a = jax.jit(module.apply)(variables, faces, mfcc)
  np.testing.assert_allclose(got_v, want_v, rtol=1e-3,
                             atol=1e-3 * np.abs(want_v).max())
  np.testing.assert_allclose(got_a, want_a, rtol=1e-3,
                             atol=1e-3 * np.abs(want_a).max())


def test_safetensors_and_npz_round_trip(tmp_path):
  from safetensors.numpy import save_file  # pylint: disable=g-import-not-at-top
  state = _random_state_dict(seed=3, embed_dim=32)
  path = tmp_path / "syncnet_v2.safetensors"
  save_file(state, str(path))
  module, variables = syncnet_v2_convert.load_syncnet_v2(str(path))
  assert module.embed_dim == 32
  kernel = variables["params"]["netcnnlip"]["0"]["kernel"]
  assert kernel.shape == (5, 7, 7, 3, 96)
  np.testing.assert_array_equal(
      kernel[2, 3, 4, 1, 5], state["netcnnlip.0.weight"][5, 1, 2, 3, 4])
  np.testing.assert_array_equal(
      variables["params"]["netfcaud"]["3"]["kernel"], state["netfcaud.3.weight"].T)
  np.testing.assert_array_equal(
      variables["batch_stats"]["netcnnaud"]["5"]["var"],
      state["netcnnaud.5.running_var"])
  out = tmp_path / "converted.npz"
  syncnet_v2_convert.save_converted(variables, str(out))
  _, again = syncnet_v2_convert.load_syncnet_v2(str(out))
  np.testing.assert_array_equal(again["params"]["netcnnaud"]["18"]["kernel"],
                                variables["params"]["netcnnaud"]["18"]["kernel"])
  # The audio stream runs and its embeddings drive the LSE code.
  mfcc = np.random.default_rng(0).normal(size=(6, 20, 13)).astype(np.float32)
  embed_audio = jax.jit(lambda v, x: module.apply(
      v, x, method=syncnet_v2.SyncNetV2.embed_audio))
  emb = embed_audio(variables, mfcc)
  result = lip_sync.compute_lse(emb, emb, vshift=2)
  assert emb.shape == (6, 32) and result.offset == 0


def test_bad_files_raise_clear_errors(tmp_path):
  from safetensors.numpy import save_file  # pylint: disable=g-import-not-at-top
  state = _random_state_dict(embed_dim=8)
  with pytest.raises(syncnet_v2_convert.ConversionError, match="not syncnet"):
    syncnet_v2_convert.convert_state_dict({**state, "fc.weight": np.zeros(2)})
  del state["netcnnlip.18.weight"]
  with pytest.raises(syncnet_v2_convert.ConversionError, match="missing"):
    syncnet_v2_convert.convert_state_dict(state)
  with pytest.raises(syncnet_v2_convert.ConversionError, match="does not exist"):
    syncnet_v2_convert.load_state_dict(str(tmp_path / "none.model"))
  bad = tmp_path / "bad.model"
  bad.write_bytes(b"not a checkpoint")
  pytest.importorskip("torch")
  with pytest.raises(syncnet_v2_convert.ConversionError, match="readable"):
    syncnet_v2_convert.load_state_dict(str(bad))


def test_speech_mfcc_matches_python_speech_features_golden():
  # Golden rows from python_speech_features 0.6, mfcc(int16 signal, 16000),
  # on the signal below (computed outside the project).
  t = np.arange(8000) / 16000.0
  audio = 0.3 * np.sin(2 * np.pi * 440 * t) + 0.1 * np.sin(2 * np.pi * 1250 * t)
  ints = (audio * 32768).astype(np.int16)
  mfcc = syncnet_v2.compute_speech_mfcc(ints / 32768.0)
  assert mfcc.shape == (49, 13)
  np.testing.assert_allclose(mfcc[10], GOLDEN_ROW_10, rtol=1e-4, atol=1e-3)
  windows = syncnet_v2.speech_mfcc_windows(ints / 32768.0, num_frames=12)
  assert windows.shape == (12, 20, 13)
  np.testing.assert_array_equal(windows[2], mfcc[0:20])  # window t+2 = 4t..
  np.testing.assert_array_equal(windows[0, :8], 0.0)


GOLDEN_ROW_10 = [20.11405, 15.57134, -12.89216, -21.72316, -11.20803,
                 -10.44379, -30.02729, -42.54322, -18.31757, 23.53195,
                 40.81627, 20.62156, -5.15875]
