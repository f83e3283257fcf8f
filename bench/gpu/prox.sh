#!/usr/bin/env bash
# The prox on a GPU machine (docs/prox.md): builds prox_cuda_check, prox_bench and
# train_step_bench into build-gpu/, then runs, each under `timeout` and logged to OUT_DIR/<step>.log:
#   check   tests/gpu/prox_cuda_check: every solver, lambda in {0.01, 0.25, 2, 25, 100} x bf16,
#           fp16, fp32: 0 capped groups, objective within 1e-6 of the float64 reference
#   bench   bench/prox_bench on the Llama-2-7B shapes at lambda 0.25 and 25, bf16 and fp32: the
#           first release's kernel next to the current one (one pass and the deferred second
#           pass), ms per layer, % of copy bandwidth, 7B totals, capped groups
#   step    bench/train_step_bench, the 7B shape with the overlapped update, lambda 0.25 then 25
# and writes OUT_DIR/summary.txt. Exit status non-zero when the check fails or a step fails.
# Usage: bench/gpu/prox.sh DEPS_DIR DATA_DIR OUT_DIR      (DATA_DIR is not used by these steps)
#   STEPS="check bench step" (default: all) picks steps. About 7 minutes on one H100 with the build.
set -uo pipefail
deps=${1:?usage: bench/gpu/prox.sh DEPS_DIR DATA_DIR OUT_DIR}
out=${3:?usage: bench/gpu/prox.sh DEPS_DIR DATA_DIR OUT_DIR}
root=$(cd "$(dirname "$0")/../.." && pwd)
mkdir -p "$out"
# shellcheck source=bench/gpu/steps.sh
source "$(dirname "$0")/steps.sh"
b=$root/build-gpu
steps=${STEPS:-check bench step}

nvidia-smi --query-gpu=name,memory.total,clocks.max.sm,driver_version --format=csv,noheader \
  | tee "$out/gpu.txt"
(cd "$root" && git rev-parse HEAD 2>/dev/null) | tee -a "$out/gpu.txt"
log "build"
if ! PS_TARGETS="prox_cuda_check prox_bench train_step_bench" \
  bash "$root/tools/device-setup.sh" "$deps" -DPS_BUILD_SERVICE=OFF -DPS_BUILD_TESTS=OFF \
  >"$out/build.log" 2>&1; then
  log "build FAILED"
  grep -B2 -A12 -E "error" "$out/build.log" | head -60
  exit 1
fi

for step in $steps; do
  case $step in
  check) run check 300 "$b/tests/gpu/prox_cuda_check" ;;
  bench)
    run bench 150 "$b/bench/prox_bench" --devices cuda --cuda-reps 10 --official-reps 0 \
      --algos alm,newton --cuda-budgets 0,16 --first-release --lambdas 0.25,25 --dtypes bf16,fp32
    ;;
  step)
    for l in 0.25 25; do
      run "step_lambda$l" 150 "$b/bench/train_step_bench" --device cuda --overlap-update \
        --lambda1 "$l" --steps 4 --warmup 1
    done
    ;;
  *) log "unknown step $step" && status=1 ;;
  esac
done

{
  echo "== GPU"; cat "$out/gpu.txt"
  echo "== check"; grep -E "^(FAIL|ALL PASS|FAILED)" "$out/check.log" 2>/dev/null | head -40
  echo "== bench (7B totals)"; grep -E "7B \(32 blocks\)|copy bandwidth" "$out/bench.log" 2>/dev/null
  echo "== bench (per layer)"; grep -E "ms/layer" "$out/bench.log" 2>/dev/null
  for l in 0.25 25; do
    echo "== train step, overlapped update, lambda $l"
    tail -n 15 "$out/step_lambda$l.log" 2>/dev/null
  done
} >"$out/summary.txt"
cat "$out/summary.txt"
exit $status
