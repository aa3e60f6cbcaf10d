r"""Times each form of a2v_jax's 'tuned' conv lowering against plain XLA.

  python benchmarks/conv_forms.py [--threads=2] [--batch=4] [--markdown]

The generator's 'tuned' lowering (a2v_jax/models/conv_lowering.py, the default on
the CPU backend) picks per-shape forms of its stride-1 convs, bias adds and
instance norms. This prints, for the conv shapes of NVlabs' SPADE generator
at 128 px ngf 64 and 64 px ngf 16, milliseconds of forward and of
forward+backward (gradients for input and kernel of sum(conv * r)) with
XLA's autodiff and with `conv_lowering.conv2d_tuned`, then the same for instance
norm and for the bias gradient (a sum over all pixels). Best of 3 runs.
"""

import os

from absl import app
from absl import flags

import md_table
import timing

_THREADS = flags.DEFINE_integer("threads", 2, "CPU threads for XLA.")
_BATCH = flags.DEFINE_integer("batch", 4, "Batch size.")
_MARKDOWN = flags.DEFINE_bool("markdown", False, "Print one Markdown table "
                             "at the end instead of rows as they come.")

# (pixels per side, in channels, out channels): the generators' 3x3 convs.
_CONV_SHAPES = [
    (2, 256, 256), (4, 256, 512), (8, 128, 512), (4, 1024, 1024),
    (8, 1024, 1024), (16, 1024, 512), (16, 128, 2048), (32, 512, 256),
    (64, 128, 512), (64, 32, 16), (128, 128, 256), (128, 3, 128),
]
_NORM_SHAPES = [(16, 1024), (64, 256), (128, 128)]


def _ms(fn, *args) -> float:
  return timing.best_seconds(fn, args, steps=5, repeats=3) * 1e3


def main(argv):
  del argv
  timing.pin_threads(_THREADS.value)
  import a2v_jax  # pylint: disable=import-outside-toplevel,unused-import
  import jax  # pylint: disable=import-outside-toplevel
  import jax.numpy as jnp  # pylint: disable=import-outside-toplevel
  import numpy as np  # pylint: disable=import-outside-toplevel
  from a2v_jax.models import conv_lowering  # pylint: disable=import-outside-toplevel
  from a2v_jax.models import layers  # pylint: disable=import-outside-toplevel

  rng = np.random.default_rng(0)
  b = _BATCH.value
  pad = ((1, 1), (1, 1))
  print(f"jax {jax.__version__}, {_THREADS.value} threads, batch {b}, "
        f"XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}; ms, best of 3")
  md_rows = []  # (form, xla fwd, tuned fwd, xla f+b, tuned f+b) for --markdown
  text = not _MARKDOWN.value
  if text:
    print(f"{'3x3 conv':<22}{'xla fwd':>9}{'tuned fwd':>10}"
          f"{'xla f+b':>9}{'tuned f+b':>10}")
  plain = lambda x, k: conv_lowering.plain_conv(x, k, (1, 1), pad)
  tuned = lambda x, k: conv_lowering.conv2d_tuned(x, k, pad)
  for hw, cin, cout in _CONV_SHAPES:
    x = jnp.asarray(rng.standard_normal((b, hw, hw, cin)), jnp.float32)
    k = jnp.asarray(rng.standard_normal((3, 3, cin, cout)) * 0.05,
                    jnp.float32)
    r = jnp.asarray(rng.standard_normal((b, hw, hw, cout)), jnp.float32)
    row = []
    for form in (plain, tuned):
      row.append(_ms(jax.jit(form), x, k))
    for form in (plain, tuned):
      grad = jax.jit(jax.grad(lambda x, k, f=form: jnp.sum(f(x, k) * r),
                              argnums=(0, 1)))
      row.append(_ms(grad, x, k))
    md_rows.append([f"3x3 conv {hw}x{hw} {cin}->{cout}"] +
                   [f"{v:.1f}" for v in row])
    if text:
      print(f"{f'{hw}x{hw} {cin}->{cout}':<22}{row[0]:>9.1f}{row[1]:>10.1f}"
            f"{row[2]:>9.1f}{row[3]:>10.1f}", flush=True)
  if text:
    print(f"{'instance norm / bias':<22}{'xla fwd':>9}{'tuned fwd':>10}"
          f"{'xla f+b':>9}{'tuned f+b':>10}")
  for hw, c in _NORM_SHAPES:
    x = jnp.asarray(rng.standard_normal((b, hw, hw, c)) * 2 + 1, jnp.float32)
    r = jnp.asarray(rng.standard_normal(x.shape), jnp.float32)
    row = []
    for norm in (layers.instance_norm, conv_lowering.instance_norm_tuned):
      row.append(_ms(jax.jit(norm), x))
    for norm in (layers.instance_norm, conv_lowering.instance_norm_tuned):
      row.append(_ms(jax.jit(jax.grad(lambda x, f=norm: jnp.sum(f(x) * r))),
                     x))
    md_rows.append([f"instance norm {hw}x{hw}x{c}"] +
                   [f"{v:.1f}" for v in row])
    if text:
      print(f"{f'norm {hw}x{hw}x{c}':<22}{row[0]:>9.1f}{row[1]:>10.1f}"
            f"{row[2]:>9.1f}{row[3]:>10.1f}", flush=True)
    bias = jnp.zeros((c,), jnp.float32)
    row = []
    for add in (lambda y, bb: y + bb, conv_lowering.add_bias):
      row.append(_ms(jax.jit(jax.grad(
          lambda bb, f=add: jnp.sum(f(x, bb) * r))), bias))
    md_rows.append([f"bias grad {hw}x{hw}x{c}", "", ""] +
                   [f"{v:.1f}" for v in row])
    if text:
      print(f"{f'bias grad {hw}x{hw}x{c}':<22}{'':>9}{'':>10}"
            f"{row[0]:>9.1f}{row[1]:>10.1f}", flush=True)
  if not text:
    md_table.print_markdown(
        ["form", "xla fwd ms", "tuned fwd ms", "xla f+b ms", "tuned f+b ms"],
        md_rows)


if __name__ == "__main__":
  app.run(main)
