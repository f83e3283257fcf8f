#!/usr/bin/env bash
# On a GPU machine: the acceptance job on one GPU (NCCL-free, one rank) against the same job on the
# CPU; compare_runs reports how many mask groups differ (fp32 on both: only summation order
# differs). With 2+ GPUs also 2 ranks over NCCL against 1 GPU.
# Usage: gpu_equivalence.sh BUILD_DIR DATA_DIR WORKDIR
set -uo pipefail
b=$1 data=$2 work=$3
source "$(dirname "$0")/acceptance_job.sh"
mkdir -p "$work"
acceptance_job "$work/cpu.yaml" "$data" 8 1.0e-3 cpu
acceptance_job "$work/gpu.yaml" "$data" 8 1.0e-3 cuda
t0=$(date +%s); "$b/worker/tools/psworker" --local "$work/cpu.yaml" --output "$work/cpu" --keep-checkpoints >"$work/cpu.log" 2>&1 || tail -20 "$work/cpu.log"
t1=$(date +%s); "$b/worker/tools/psworker" --local "$work/gpu.yaml" --output "$work/gpu1" --keep-checkpoints >"$work/gpu1.log" 2>&1 || tail -20 "$work/gpu1.log"
t2=$(date +%s)
echo "cpu run $((t1 - t0)) s, 1-GPU run $((t2 - t1)) s"
echo "== 1 GPU vs CPU"; "$b/tests/distributed/compare_runs" "$work/cpu" "$work/gpu1" --weights-tol 1e-3
if [[ $(nvidia-smi -L | wc -l) -ge 2 ]]; then
  mpirun --allow-run-as-root -np 2 -x NCCL_NVLS_ENABLE "$b/worker/tools/psworker" --local "$work/gpu.yaml" --output "$work/gpu2" --keep-checkpoints >"$work/gpu2.log" 2>&1 || tail -20 "$work/gpu2.log"
  echo "== 2 GPUs vs 1 GPU"; "$b/tests/distributed/compare_runs" "$work/gpu1" "$work/gpu2" --weights-tol 1e-4
fi
