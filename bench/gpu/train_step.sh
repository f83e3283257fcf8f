#!/usr/bin/env bash
# The training step on a GPU machine (CUDA, LibTorch 2.x from python3's torch, OpenMPI, NCCL).
# Run from the checkout root:
#   bench/gpu/train_step.sh DEPS_DIR DATA_DIR OUT_DIR [step|overlap]
# DEPS_DIR: the bundles of tools/make-device-deps.sh; DATA_DIR: holds codelm-19m,
# code-calib.jsonl.gz and code-eval.txt. Builds train_step_bench, psworker and compare_runs into
# build-gpu/ (tools/device-setup.sh), then
#   step (default): train_step_bench on the Llama-2-7B shape (bf16, master bf16, ctx 2048, one
#     sequence per GPU per step) serial and with --overlap-update, on 1 GPU and on 2 and 4 when the
#     machine has them; then the acceptance job on one GPU with and without
#     method.overlap_update, compared by compare_runs (expected: SAME). About 6 minutes on an H100
#     including the build.
#   overlap: only train_step_bench, the 7B shape on one GPU six ways (serial and overlapped update,
#     at 1, 2 and 4 sequences per step through --grad-accum). About 6 minutes.
# Each run has its own log in OUT_DIR and a timeout; OUT_DIR/summary.txt collects the step lines.
# Exits non-zero when a build or run fails or the overlapped update's result differs.
set -uo pipefail
deps=${1:?usage: train_step.sh DEPS_DIR DATA_DIR OUT_DIR [step|overlap]}
data=${2:?usage: train_step.sh DEPS_DIR DATA_DIR OUT_DIR [step|overlap]}
out=${3:?usage: train_step.sh DEPS_DIR DATA_DIR OUT_DIR [step|overlap]}
set_name=${4:-step}
root=$(pwd)
b=$root/build-gpu
mkdir -p "$out"
out=$(cd "$out" && pwd)
# NVLink multicast stays off (some machines' drivers refuse it).
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
log() { echo "[$(date +%T)] $*"; }
failed=0

targets="train_step_bench"
[[ $set_name == step ]] && targets="train_step_bench psworker compare_runs"
log "build: $targets"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee "$out/gpu.txt"
git -C "$root" rev-parse HEAD >"$out/commit.txt" 2>/dev/null || true
PS_TARGETS="$targets" bash "$root/tools/device-setup.sh" "$deps" -DPS_BUILD_SERVICE=OFF \
  -DPS_BUILD_TESTS=ON -DPS_BUILD_BENCH=ON >"$out/build.log" 2>&1 ||
  { grep -B2 -A12 "error" "$out/build.log" | head -80; exit 1; }

# bench NAME RANKS FLAGS...: one train_step_bench run, its log OUT/step_NAME.log.
bench() {
  local name=$1 ranks=$2
  shift 2
  local cmd=("$b/bench/train_step_bench" --device cuda --steps "${BENCH_STEPS:-4}"
             --warmup "${BENCH_WARMUP:-1}" "$@")
  [[ $ranks -gt 1 ]] && cmd=(mpirun --allow-run-as-root -np "$ranks" -x NCCL_NVLS_ENABLE "${cmd[@]}")
  log "bench $name: ${cmd[*]}"
  timeout "${RUN_TIMEOUT:-120}" "${cmd[@]}" >"$out/step_$name.log" 2>&1
  local rc=$?
  echo "exit $rc" >>"$out/step_$name.log"
  [[ $rc -ne 0 ]] && { log "bench $name failed (exit $rc)"; tail -5 "$out/step_$name.log"; failed=1; }
  printf '%-16s %s\n' "$name" "$(grep -E "^step |MFU|peak GPU" "$out/step_$name.log" | tr '\n' ' ')" |
    tee -a "$out/summary.txt"
}

if [[ $set_name == overlap ]]; then
  bench serial 1
  bench overlap 1 --overlap-update
  bench accum2 1 --grad-accum 2 --seqs-per-rank 2
  bench accum2_overlap 1 --grad-accum 2 --seqs-per-rank 2 --overlap-update
  bench accum4 1 --grad-accum 4 --seqs-per-rank 4
  bench accum4_overlap 1 --grad-accum 4 --seqs-per-rank 4 --overlap-update
  exit $failed
fi

ngpu=$(nvidia-smi -L | wc -l)
bench serial 1
bench overlap 1 --overlap-update
for n in 2 4; do
  if [[ $ngpu -ge $n ]]; then
    bench "serial_${n}gpu" "$n"
    bench "overlap_${n}gpu" "$n" --overlap-update
  fi
done

# The overlapped update on CUDA: the acceptance job (fp32, 8 steps) with and without it.
source "$root/tests/distributed/acceptance_job.sh"
w=$out/equality
mkdir -p "$w"
acceptance_job "$w/job.yaml" "$data" 8 1.0e-3 cuda
for run in serial overlap; do
  extra=()
  [[ $run == overlap ]] && extra=(--set method.overlap_update=true)
  log "acceptance job on 1 GPU: $run"
  timeout "${RUN_TIMEOUT:-120}" "$b/worker/tools/psworker" --local "$w/job.yaml" \
    --output "$w/$run" --keep-checkpoints "${extra[@]}" >"$w/$run.log" 2>&1 ||
    { log "psworker $run failed"; tail -20 "$w/$run.log"; failed=1; }
done
log "compare: overlapped update vs serial on CUDA"
"$b/tests/distributed/compare_runs" "$w/serial" "$w/overlap" | tee "$out/equality.txt" ||
  failed=1
echo "overlap_update equality: $(tail -1 "$out/equality.txt")" | tee -a "$out/summary.txt"
log "done (exit $failed)"
exit $failed
