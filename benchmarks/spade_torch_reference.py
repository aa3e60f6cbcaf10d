r"""Times NVlabs' PyTorch SPADEGenerator, the reference for our generator.

NVIDIA's code is not part of this project (its licence forbids copying it
here): point --spade_repo at your own checkout of NVlabs/SPADE. The generator
is built image-conditioned (label_nc=3, no instance map, no VAE),
norm_G='spectralspadeinstance3x3', num_upsampling_layers='normal', the
same architecture as ``a2v_jax.models.spade.nvlabs_reference_config()``.

Needs the ``[torch]`` extra (torch==2.13.0). torchvision and the
Synchronized-BatchNorm submodule are not needed: the generator does not use
them, so empty stand-ins are registered when they are missing.

  python benchmarks/spade_torch_reference.py --spade_repo=PATH/TO/SPADE \
      --configs=128:64,64:16 --batch_sizes=1,4 --threads=2 --steps=5 --repeats=3

Prints one row per (config, batch): params, images/s forward (eval, no_grad)
and forward+backward (train mode, grads of mean(output) w.r.t. all params),
best of --repeats runs of --steps steps each.
"""

import argparse
import importlib
import os
import sys
import time
import types

from absl import app
from absl import flags
from absl import logging

import md_table

_SPADE_REPO = flags.DEFINE_string(
    "spade_repo", None, "Path to a checkout of NVlabs/SPADE.", required=True)
_CONFIGS = flags.DEFINE_list(
    "configs", ["128:64", "64:16"], "Comma list of crop_size:ngf.")
_BATCH_SIZES = flags.DEFINE_list("batch_sizes", ["1", "4"], "Batch sizes.")
_THREADS = flags.DEFINE_integer("threads", 2, "torch.set_num_threads.")
_STEPS = flags.DEFINE_integer("steps", 5, "Timed steps per repeat.")
_REPEATS = flags.DEFINE_integer("repeats", 3, "Repeats; the best is kept.")
_MODES = flags.DEFINE_list("modes", ["fwd", "fwdbwd"], "fwd and/or fwdbwd.")
_MARKDOWN = flags.DEFINE_bool("markdown", False, "Print the table as Markdown.")


class SpadeRepoError(ValueError):
  """The --spade_repo path is not a usable NVlabs/SPADE checkout."""


def _register_package(name: str, path: str) -> None:
  """Registers an empty package so its heavy __init__ is not executed."""
  module = types.ModuleType(name)
  module.__path__ = [path]
  sys.modules[name] = module


def import_spade_generator(repo: str):
  """Returns NVlabs' SPADEGenerator class from a checkout at `repo`."""
  import torch  # pylint: disable=import-outside-toplevel

  generator_py = os.path.join(repo, "models", "networks", "generator.py")
  if not os.path.isfile(generator_py):
    raise SpadeRepoError(
        f"--spade_repo={repo} has no models/networks/generator.py; pass the "
        "root of a NVlabs/SPADE checkout.")
  # models/__init__.py and models/networks/__init__.py pull in the losses,
  # VGG19 (torchvision) and util (PIL, dill); the generator needs none of it.
  _register_package("models", os.path.join(repo, "models"))
  _register_package("models.networks", os.path.join(repo, "models", "networks"))
  try:
    importlib.import_module("models.networks.sync_batchnorm")
  except ImportError:
    stub = types.ModuleType("models.networks.sync_batchnorm")
    stub.SynchronizedBatchNorm2d = torch.nn.BatchNorm2d
    sys.modules["models.networks.sync_batchnorm"] = stub
  try:
    importlib.import_module("torchvision")
  except ImportError:
    sys.modules["torchvision"] = types.ModuleType("torchvision")
  return importlib.import_module("models.networks.generator").SPADEGenerator


def make_options(crop_size: int, ngf: int) -> argparse.Namespace:
  """The option namespace NVlabs' generator reads, image-conditioned."""
  return argparse.Namespace(
      ngf=ngf, norm_G="spectralspadeinstance3x3", semantic_nc=3, label_nc=3,
      num_upsampling_layers="normal", crop_size=crop_size, aspect_ratio=1.0,
      use_vae=False, z_dim=256)


def time_best(step, steps: int, repeats: int) -> float:
  """Best seconds per step over `repeats` runs of `steps` steps."""
  step()  # warm-up (allocator, oneDNN primitive caches)
  best = float("inf")
  for _ in range(repeats):
    start = time.perf_counter()
    for _ in range(steps):
      step()
    best = min(best, (time.perf_counter() - start) / steps)
  return best


def main(argv):
  del argv
  import torch  # pylint: disable=import-outside-toplevel

  torch.set_num_threads(_THREADS.value)
  generator_cls = import_spade_generator(os.path.abspath(_SPADE_REPO.value))
  rows = []
  for config in _CONFIGS.value:
    crop_size, ngf = (int(v) for v in config.split(":"))
    torch.manual_seed(0)
    net = generator_cls(make_options(crop_size, ngf))
    params = sum(p.numel() for p in net.parameters())
    for batch in (int(b) for b in _BATCH_SIZES.value):
      x = torch.rand(batch, 3, crop_size, crop_size) * 2 - 1
      row = {"config": f"{crop_size}px ngf{ngf}", "batch": batch,
             "params_M": params / 1e6}
      if "fwd" in _MODES.value:
        net.eval()

        def forward():
          with torch.no_grad():
            net(x)

        row["fwd_img_s"] = batch / time_best(forward, _STEPS.value,
                                             _REPEATS.value)
      if "fwdbwd" in _MODES.value:
        net.train()

        def forward_backward():
          net.zero_grad(set_to_none=True)
          net(x).mean().backward()

        row["fwdbwd_img_s"] = batch / time_best(
            forward_backward, _STEPS.value, _REPEATS.value)
      logging.info("%s", row)
      rows.append(row)

  print(f"PyTorch {torch.__version__}, {_THREADS.value} threads, best of "
        f"{_REPEATS.value}x{_STEPS.value} steps")
  if _MARKDOWN.value:
    nan = float("nan")
    md_table.print_markdown(
        ["config", "batch", "params (M)", "fwd img/s", "fwd+bwd img/s"],
        [(r["config"], r["batch"], f"{r['params_M']:.2f}",
          f"{r.get('fwd_img_s', nan):.2f}", f"{r.get('fwdbwd_img_s', nan):.2f}")
         for r in rows])
    return
  print(f"{'config':<14}{'batch':>6}{'params(M)':>11}{'fwd img/s':>11}"
        f"{'fwd+bwd img/s':>15}")
  for r in rows:
    print(f"{r['config']:<14}{r['batch']:>6}{r['params_M']:>11.2f}"
          f"{r.get('fwd_img_s', float('nan')):>11.2f}"
          f"{r.get('fwdbwd_img_s', float('nan')):>15.2f}")


if __name__ == "__main__":
  app.run(main)
