#!/usr/bin/env bash
# N training processes on one machine, joined by JAX's own distributed runtime.
#
# Usage:
#   launch/local_multiprocess.sh NUM_PROCESSES --config=configs/X.py --workdir=DIR [more flags]
#
# Each process gets A2V_PROCESS_ID 0..N-1 and the same coordinator on
# localhost. On a CPU-only machine each process uses its CPU as one device and
# gradients are all-reduced through gloo; set DEVICES_PER_PROCESS=k to simulate
# k devices per process. If any process dies, the others are stopped and the
# script exits non-zero. Checkpoints in --workdir are written collectively, so
# rerunning the same command resumes from the last one.
set -euo pipefail
NUM="${1:?usage: $0 NUM_PROCESSES --config=... --workdir=... [flags]}"
shift
PYTHON="${PYTHON:-python}"
PORT="${A2V_PORT:-$(( 20000 + RANDOM % 20000 ))}"
export A2V_COORDINATOR_ADDRESS="localhost:${PORT}"
export A2V_NUM_PROCESSES="$NUM"
export JAX_PLATFORMS="${JAX_PLATFORMS:-cpu}"
if [ -n "${DEVICES_PER_PROCESS:-}" ]; then
  export XLA_FLAGS="${XLA_FLAGS:-} --xla_force_host_platform_device_count=${DEVICES_PER_PROCESS}"
fi
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT INT TERM
for ((i = 0; i < NUM; i++)); do
  A2V_PROCESS_ID="$i" "$PYTHON" -m a2v_jax.main --jax_distributed "$@" &
  pids+=("$!")
done
status=0
# Wait for the first process to finish; if it failed, stop the rest at once.
for ((n = 0; n < NUM; n++)); do
  if ! wait -n "${pids[@]}"; then
    status=1
    echo "a2v launch: a process exited with an error; stopping the others" >&2
    cleanup
  fi
done
exit "$status"
