"""XLA:CPU options a2v-jax sets before JAX starts its CPU backend.

XLA:CPU (jaxlib 0.10) hands convolutions and matmuls to YNNPACK by default.
Two of YNNPACK's fusions are the slowest ops of a2v-jax's train steps, so
`configure()` removes them (YNNPACK's elementwise, reduce and fused-dot
fusions stay) by appending

  --xla_cpu_experimental_ynn_fusion_type=-individual_convolution,-individual_dot

to XLA_FLAGS:
  * individual_convolution: YNNPACK's convolution kernel gradients. On an
    idle 2-core AVX2 CPU the kernel gradient of a [20, 64, 64, 32] -> 32 3x3
    conv took 355 ms through YNNPACK and 27 ms through XLA's own (Eigen)
    convolution, and the synthetic demo's GAN step went from 4.31 s to 3.58 s.
  * individual_dot: YNNPACK's plain dots. On an idle 2-core Intel Xeon
    (AVX-512) they made no measurable difference to NVlabs' SPADE generator
    (128 px, batch 4, forward+backward: 0.98 images/s with them, 0.94
    without) or to the synthetic demo's train step (1.79-1.96 steps/s
    either way, benchmarks/train_step.py); kept off so that the generator's
    'tuned' matmul forms (a2v_jax/models/layers.py) run on XLA's own dots,
    the setting they were measured with. YNNPACK's conv kernel path on that
    machine: 0.44 images/s against 0.94 for the same 128 px step.
It runs when `a2v_jax` is imported, and does nothing when:
  * XLA_FLAGS already sets xla_cpu_experimental_ynn_fusion_type (yours wins);
  * A2V_KEEP_XLA_FLAGS is set to a non-empty value (opt out);
  * the installed jaxlib is not a version this flag was tested with (an
    unknown flag in XLA_FLAGS aborts the process, so it is never guessed).
The flag is read when the first XLA backend starts, so importing a2v_jax
after a JAX computation has run leaves that process as it was. GPU and TPU
backends ignore xla_cpu_* options.
"""

from collections.abc import MutableMapping
import importlib.metadata
import os

FLAG = ("--xla_cpu_experimental_ynn_fusion_type="
        "-individual_convolution,-individual_dot")
OPT_OUT = "A2V_KEEP_XLA_FLAGS"
# jaxlib releases whose XLA has this flag and its '-' syntax (checked).
TESTED_JAXLIB = ("0.10.",)


def jaxlib_version() -> str:
  try:
    return importlib.metadata.version("jaxlib")
  except importlib.metadata.PackageNotFoundError:
    return ""


def configure(environ: MutableMapping[str, str] = os.environ,
              version: str | None = None) -> bool:
  """Appends FLAG to environ['XLA_FLAGS'] when allowed; True if it did."""
  version = jaxlib_version() if version is None else version
  flags = environ.get("XLA_FLAGS", "")
  if (environ.get(OPT_OUT) or "xla_cpu_experimental_ynn_fusion_type" in flags
      or not version.startswith(TESTED_JAXLIB)):
    return False
  environ["XLA_FLAGS"] = f"{flags} {FLAG}".strip()
  return True
