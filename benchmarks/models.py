r"""Benchmarks every network in a2v_jax/models: params, FLOPs, speed, memory.

  python benchmarks/models.py --nets=spade_nvlabs,spade_nvlabs64 \
      --batch_sizes=1,4 --threads=2 --steps=5 --repeats=3 [--conv_lowering=xla]
  python benchmarks/models.py --nets=spade,patchgan,temporal \
      --dtype=bfloat16 --batch_sizes=16      # on a GPU: % of its bf16 peak

For each (net, size, batch) it prints: parameters; FLOPs per example of the
forward and of forward+backward (XLA cost analysis of the compiled
executables); forward and forward+backward examples/s (best of --repeats runs
of --steps steps); achieved GFLOP/s of forward+backward and, where the
device's bf16 peak is known (timing.BF16_PEAK_FLOPS) or given by
--peak_tflops, its percentage of that peak; and peak memory of
the forward+backward executable (XLA memory analysis: arguments + outputs +
temporaries, minus aliased buffers). forward+backward is the gradient of the
mean of every output w.r.t. all parameters, spectral-norm state updated.

Nets: spade (OneShotA2V generator, ngf 64), spade_nvlabs (NVlabs
SPADEGenerator, 128 px ngf 64 only), spade_nvlabs64 (NVlabs, 64 px ngf 16),
patchgan, temporal (L=4 windows), and when their modules exist deepspeech2
(75 frames, no image size), syncnet (lower half: size/2 x size), eye, vgg,
and lipnet (75 frames of the paper's 50x100 mouth crops, no image size;
--conv_lowering applies to it too).
Compare spade_nvlabs* with benchmarks/spade_torch_reference.py.

--threads pins the process to that many cores (sched_setaffinity, before
JAX starts; see benchmarks/timing.py). The machine's other users make
timings noisy.
"""

import importlib
import os

from absl import app
from absl import flags
from absl import logging

import md_table
import timing

_NETS = flags.DEFINE_list(
    "nets", ["spade", "spade_nvlabs", "spade_nvlabs64", "patchgan", "temporal",
             "deepspeech2", "syncnet", "eye", "vgg"], "Networks to run.")
_SIZES = flags.DEFINE_list("sizes", ["128", "256"], "Image sizes.")
_BATCH_SIZES = flags.DEFINE_list("batch_sizes", ["1", "4"], "Batch sizes.")
_THREADS = flags.DEFINE_integer("threads", 2, "CPU threads for XLA.")
_STEPS = flags.DEFINE_integer("steps", 3, "Timed steps per repeat.")
_REPEATS = flags.DEFINE_integer("repeats", 3, "Repeats; the best is kept.")
_MODES = flags.DEFINE_list("modes", ["fwd", "fwdbwd"], "fwd and/or fwdbwd.")
_CONV_LOWERING = flags.DEFINE_string(
    "conv_lowering", "auto",
    "conv_lowering of spade*, patchgan, temporal and lipnet ('auto' = 'tuned' on "
    "the CPU, 'xla' elsewhere; compare 'xla', 'stride1_2d' and 'tuned', "
    "see a2v_jax/models/conv_lowering.py and benchmarks/conv_forms.py).")
_DTYPE = flags.DEFINE_enum(
    "dtype", "float32", ["float32", "bfloat16"],
    "Compute dtype of spade*, patchgan and temporal (their `dtype`; "
    "parameters stay float32). The other nets run in float32.")
_PEAK_TFLOPS = flags.DEFINE_float(
    "peak_tflops", 0.0,
    "Peak TFLOP/s to report the f+b rate against; 0 = the data sheet's "
    "bf16 peak for a known GPU/TPU, none on CPUs.")
_MARKDOWN = flags.DEFINE_bool("markdown", False, "Print the table as Markdown.")
_AUDIO_DIM = 256  # DeepSpeech2 feature width fed to the generator.


def _own_nets(name: str, size: int, batch: int):
  """(model, positional inputs, keyword args) for this file's networks."""
  import jax.numpy as jnp  # pylint: disable=import-outside-toplevel
  import numpy as np  # pylint: disable=import-outside-toplevel
  from a2v_jax.models import conv_lowering, patchgan, spade, temporal  # pylint: disable=import-outside-toplevel

  rng = np.random.default_rng(0)

  def uniform(*shape):
    return jnp.asarray(rng.uniform(-1, 1, shape), jnp.float32)

  lowering = conv_lowering.resolve(_CONV_LOWERING.value)
  dtype = _DTYPE.value
  if name == "spade":
    return (spade.SPADEGenerator(**spade.default_config(64), dtype=dtype,
                                 conv_lowering=lowering),
            (uniform(batch, size, size, 3), uniform(batch, _AUDIO_DIM)))
  if name in ("spade_nvlabs", "spade_nvlabs64"):
    ngf = 64 if name == "spade_nvlabs" else 16
    return (spade.SPADEGenerator(**spade.nvlabs_reference_config(ngf),
                                 dtype=dtype, conv_lowering=lowering),
            (uniform(batch, size, size, 3), None))
  if name == "patchgan":
    # Conditional D input: frame and reference stacked on channels.
    return (patchgan.MultiScalePatchGAN(dtype=dtype, conv_lowering=lowering),
            (uniform(batch, size, size, 6),))
  if name == "temporal":
    return (temporal.MultiScaleTemporalDiscriminator(
        dtype=dtype, conv_lowering=lowering),
            (uniform(batch, 4, size, size, 3), uniform(batch, 4, _AUDIO_DIM)))
  raise KeyError(name)


def _other_nets(name: str, size: int, batch: int):
  """Networks of other files, through their create_model/make_example_inputs."""
  module = importlib.import_module(f"a2v_jax.models.{name}")
  if name == "deepspeech2":
    inputs = module.make_example_inputs(batch_size=batch)
  elif name == "syncnet":
    inputs = module.make_example_inputs(batch_size=batch,
                                        input_hw=(size // 2, size))
  elif name == "lipnet":
    config = module.default_config()
    config.conv_lowering = _CONV_LOWERING.value
    return (module.create_model(config),
            (module.make_example_inputs(batch_size=batch, num_frames=75),))
  else:
    inputs = module.make_example_inputs(batch_size=batch, image_size=size)
  return module.create_model(), tuple(inputs)


def _sizes_for(name: str, sizes: list[int]) -> list[int]:
  if name == "spade_nvlabs":
    return [128]
  if name == "spade_nvlabs64":
    return [64]
  if name in ("deepspeech2", "lipnet"):
    return [0]
  return sizes


def _peak_bytes(compiled) -> float:
  m = compiled.memory_analysis()
  if m is None:
    return float("nan")
  return float(m.argument_size_in_bytes + m.output_size_in_bytes
               + m.temp_size_in_bytes - m.alias_size_in_bytes)


def benchmark(name: str, size: int, batch: int) -> dict:
  """Measures one network; returns a row dict."""
  import jax  # pylint: disable=import-outside-toplevel
  import jax.numpy as jnp  # pylint: disable=import-outside-toplevel

  own = name in ("spade", "spade_nvlabs", "spade_nvlabs64", "patchgan",
                 "temporal")
  model, inputs = (_own_nets if own else _other_nets)(name, size, batch)
  variables = jax.jit(model.init)(jax.random.PRNGKey(0), *inputs)
  params = variables["params"]
  state = {k: v for k, v in variables.items() if k != "params"}
  num_params = sum(x.size for x in jax.tree.leaves(params))
  row = {"net": name, "size": size or "-", "batch": batch,
         "params_M": num_params / 1e6}

  def forward(params, state, *inputs):
    return model.apply({"params": params, **state}, *inputs)

  def loss(params, state, *inputs):
    kwargs = {"update_stats": True} if own else {}
    if state:
      out, new_state = model.apply({"params": params, **state}, *inputs,
                                   mutable=list(state), **kwargs)
    else:  # apply(mutable=[]) returns the output alone
      out, new_state = model.apply({"params": params}, *inputs, **kwargs), {}
    leaves = [x for x in jax.tree.leaves(out)
              if jnp.issubdtype(x.dtype, jnp.floating)]
    return sum(jnp.mean(x) for x in leaves), new_state

  grad = jax.grad(loss, has_aux=True)
  args = (params, state, *inputs)
  if "fwd" in _MODES.value:
    compiled = jax.jit(forward).lower(*args).compile()
    row["fwd_gflop"] = timing.compiled_flops(compiled) / batch / 1e9
    row["fwd_ex_s"] = batch / timing.best_seconds(
        compiled, args, _STEPS.value, _REPEATS.value)
  if "fwdbwd" in _MODES.value:
    compiled = jax.jit(grad).lower(*args).compile()
    row["fb_gflop"] = timing.compiled_flops(compiled) / batch / 1e9
    row["peak_mib"] = _peak_bytes(compiled) / 2**20
    seconds = timing.best_seconds(compiled, args, _STEPS.value, _REPEATS.value)
    row["fb_ex_s"] = batch / seconds
    row["fb_gflop_s"] = row["fb_gflop"] * batch / seconds
    peak = timing.peak_flops(jax.devices()[0], _PEAK_TFLOPS.value)
    if peak:
      row["fb_peak_pct"] = 100 * row["fb_gflop_s"] * 1e9 / peak
  logging.info("%s", row)
  return row


def main(argv):
  del argv
  timing.pin_threads(_THREADS.value)
  # Before the backend starts: a2v_jax's XLA:CPU flags (a2v_jax/xla_cpu.py)
  # apply only then, and the header below starts it.
  import a2v_jax  # pylint: disable=import-outside-toplevel,unused-import
  import jax  # pylint: disable=import-outside-toplevel

  rows = []
  sizes = [int(s) for s in _SIZES.value]
  for name in _NETS.value:
    for size in _sizes_for(name, sizes):
      for batch in (int(b) for b in _BATCH_SIZES.value):
        try:
          rows.append(benchmark(name, size, batch))
        except ModuleNotFoundError as e:
          logging.warning("skipping %s: %s", name, e)
          break
  nan = float("nan")
  print(f"jax {jax.__version__} on {jax.devices()[0].platform}, "
        f"{_THREADS.value} threads, best of {_REPEATS.value}x{_STEPS.value} "
        f"steps, conv_lowering={_CONV_LOWERING.value}, "
        f"dtype={_DTYPE.value}, device={jax.devices()[0].device_kind}, "
        f"XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}")
  if _MARKDOWN.value:
    md_table.print_markdown(
        ["net", "size", "batch", "params (M)", "fwd GFLOP/ex", "fwd ex/s",
         "f+b GFLOP/ex", "f+b ex/s", "f+b GFLOP/s", "% peak", "peak MiB"],
        [(r["net"], r["size"], r["batch"], f"{r['params_M']:.2f}",
          f"{r.get('fwd_gflop', nan):.2f}", f"{r.get('fwd_ex_s', nan):.2f}",
          f"{r.get('fb_gflop', nan):.2f}", f"{r.get('fb_ex_s', nan):.2f}",
          f"{r.get('fb_gflop_s', nan):.1f}", f"{r.get('fb_peak_pct', nan):.1f}",
          f"{r.get('peak_mib', nan):.0f}") for r in rows])
    return
  header = (f"{'net':<15}{'size':>5}{'batch':>6}{'params(M)':>10}"
            f"{'fwd GFLOP/ex':>13}{'fwd ex/s':>10}{'f+b GFLOP/ex':>13}"
            f"{'f+b ex/s':>10}{'f+b GFLOP/s':>12}{'% peak':>7}"
            f"{'peak MiB':>10}")
  print(header)
  for r in rows:
    print(f"{r['net']:<15}{r['size']:>5}{r['batch']:>6}{r['params_M']:>10.2f}"
          f"{r.get('fwd_gflop', nan):>13.2f}{r.get('fwd_ex_s', nan):>10.2f}"
          f"{r.get('fb_gflop', nan):>13.2f}{r.get('fb_ex_s', nan):>10.2f}"
          f"{r.get('fb_gflop_s', nan):>12.1f}{r.get('fb_peak_pct', nan):>7.1f}"
          f"{r.get('peak_mib', nan):>10.0f}")


if __name__ == "__main__":
  app.run(main)
