#!/usr/bin/env bash
# N training processes on one machine, joined by JAX's own distributed runtime
# (jax.distributed: coordinator on localhost, gloo collectives on CPU, NCCL on
# GPUs).
#
# Usage:
#   launch/local_multiprocess.sh NUM_PROCESSES --config=configs/X.py --workdir=DIR [more flags]
#
# Examples:
#   # 2 CPU processes (what tests/test_distributed.py runs):
#   JAX_PLATFORMS=cpu launch/local_multiprocess.sh 2 \
#     --config=configs/synthetic.py:runlocal --workdir=runs/mp
#   # 4 GPUs on one node, one process per GPU:
#   ONE_DEVICE_PER_PROCESS=1 launch/local_multiprocess.sh 4 \
#     --config=configs/grid_phase1.py --workdir=runs/grid1
#   (or one process driving all 4 GPUs, no launcher needed:
#    python -m a2v_jax.main --config=configs/grid_phase1.py --workdir=runs/grid1)
#
# Environment:
#   PYTHON                  interpreter (default: python)
#   A2V_PORT                coordinator port (default: random 20000-39999)
#   ONE_DEVICE_PER_PROCESS  1: process i uses local device i only (GPUs)
#   DEVICES_PER_PROCESS     k: simulate k CPU devices in each process
#   A2V_HEARTBEAT_TIMEOUT_S, A2V_SHUTDOWN_TIMEOUT_S: see a2v_jax/distributed.py
#
# Each process gets A2V_PROCESS_ID 0..N-1 and the same coordinator; only
# process 0 writes TensorBoard, samples and progress lines. If any process
# fails, the others are stopped and the script exits non-zero (each process
# would also stop by itself once the coordinator misses the dead one's
# heartbeat). Checkpoints in --workdir (a local path or gs://...) are written
# collectively, so rerunning the same command resumes from the last one.
set -euo pipefail
NUM="${1:?usage: $0 NUM_PROCESSES --config=... --workdir=... [flags]}"
shift
PYTHON="${PYTHON:-python}"
PORT="${A2V_PORT:-$(( 20000 + RANDOM % 20000 ))}"
export A2V_COORDINATOR_ADDRESS="localhost:${PORT}"
export A2V_NUM_PROCESSES="$NUM"
if [ -n "${DEVICES_PER_PROCESS:-}" ]; then
  export XLA_FLAGS="${XLA_FLAGS:-} --xla_force_host_platform_device_count=${DEVICES_PER_PROCESS}"
fi
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for _ in $(seq 20); do  # up to 10 s to exit, then SIGKILL
    alive=0
    for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
    [ "$alive" = 0 ] && return 0
    sleep 0.5
  done
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
}
trap cleanup EXIT INT TERM
for ((i = 0; i < NUM; i++)); do
  if [ "${ONE_DEVICE_PER_PROCESS:-0}" = 1 ]; then
    export A2V_LOCAL_DEVICE_IDS="$i"
  fi
  A2V_PROCESS_ID="$i" "$PYTHON" -m a2v_jax.main --jax_distributed "$@" &
  pids+=("$!")
done
status=0
running=("${pids[@]}")
# Wait for the processes as they end; at the first failure stop the rest.
while [ "${#running[@]}" -gt 0 ]; do
  rc=0
  ended=""
  wait -n -p ended "${running[@]}" 2>/dev/null || rc=$?
  [ -n "$ended" ] || break  # no child left to wait for
  left=()
  for p in "${running[@]}"; do [ "$p" = "$ended" ] || left+=("$p"); done
  running=("${left[@]+"${left[@]}"}")
  if [ "$rc" != 0 ]; then
    echo "a2v launch: process $ended exited with status $rc; stopping the others" >&2
    status=1
    break
  fi
done
exit "$status"
