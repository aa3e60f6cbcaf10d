#!/usr/bin/env bash
# Runs training on every worker of a Cloud TPU VM slice (e.g. v4-32 = 4 hosts).
#
# Usage (run from the repository root on your workstation, gcloud set up):
#   launch/tpu_vm.sh create NAME ZONE ACCELERATOR [VERSION]  # e.g. create a2v us-central2-b v4-32 tpu-ubuntu2204-base
#   launch/tpu_vm.sh setup  NAME ZONE                         # copy this repo to every worker, ./setup.sh, jax[tpu]
#   launch/tpu_vm.sh train  NAME ZONE --config=configs/grid_phase1.py --workdir=gs://BUCKET/a2v/run1 [flags]
#   launch/tpu_vm.sh delete NAME ZONE
#
# A v4-32 slice has 4 workers (hosts) x 4 chips = 16 devices; `train` runs
# the same command on every worker (gcloud ... ssh --worker=all) and
# jax.distributed.initialize() detects the slice (coordinator, process count
# and index) from the TPU metadata by itself. --workdir must be a GCS path
# that every worker can write (orbax saves and restores checkpoints there
# collectively); rerunning `train` resumes from the latest checkpoint. Each
# worker logs to ~/a2v/train.<hostname>.log; only worker 0 writes
# TensorBoard and samples.
set -euo pipefail
cmd="${1:?usage: $0 create|setup|train|delete NAME ZONE ...}"
name="${2:?NAME}"
zone="${3:?ZONE}"
shift 3
ssh_all() {
  gcloud compute tpus tpu-vm ssh "$name" --zone="$zone" --worker=all --command="$1"
}
case "$cmd" in
  create)
    accel="${1:?ACCELERATOR, e.g. v4-32}"
    version="${2:-tpu-ubuntu2204-base}"
    gcloud compute tpus tpu-vm create "$name" --zone="$zone" \
      --accelerator-type="$accel" --version="$version"
    ;;
  setup)
    tarball="$(mktemp -d)/a2v-src.tgz"
    tar czf "$tarball" --exclude=.venv --exclude=.git --exclude=runs .
    gcloud compute tpus tpu-vm scp "$tarball" "$name":~/a2v-src.tgz --zone="$zone" --worker=all
    ssh_all "mkdir -p a2v && tar xzf a2v-src.tgz -C a2v && cd a2v && ./setup.sh && .venv/bin/pip install -q 'jax[tpu]' -c constraints.txt || .venv/bin/pip install -q 'jax[tpu]'"
    ;;
  train)
    args=$(printf ' %q' "$@")
    ssh_all "cd a2v && unset A2V_COORDINATOR_ADDRESS; .venv/bin/python -m a2v_jax.main --jax_distributed${args} 2>&1 | tee -a train.\$(hostname).log"
    ;;
  delete)
    gcloud compute tpus tpu-vm delete "$name" --zone="$zone" --quiet
    ;;
  *)
    echo "unknown command $cmd: use create, setup, train or delete" >&2; exit 2 ;;
esac
