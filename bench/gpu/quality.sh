#!/usr/bin/env bash
# The quality table (docs/quality.md) on one GPU: every row at 128 and at 400 calibration windows
# on the whole code-eval.txt, with the method times of this device.
#
#   bench/gpu/quality.sh DEPS_DIR DATA_DIR OUT_DIR
#   e.g. bash bench/gpu/quality.sh deps/ data/ out/   (deps/ from tools/make-device-deps.sh)
#
# DEPS_DIR: bundles of tools/make-device-deps.sh; DATA_DIR: codelm-19m, code-calib.jsonl.gz,
# code-eval.txt. Builds psworker only (build-gpu/), then runs tools/quality-table.sh twice
# (SAMPLES=128, then 400), each under `timeout`: magnitude, Wanda, SparseGPT (+ masked update),
# ProxSparse λ1 0.3 / lr 3e-3 (the best setting of the λ1/lr sweep in docs/quality.md), MaskLLM
# (SparseGPT prior); then the least-squares reconstruction (reconstruct: lsq, as
# configs/default.yaml) and reconstruction + masked update on the masks of magnitude, Wanda,
# MaskLLM and ProxSparse, and SparseGPT's own mask with the same reconstruction
# (sparsegpt-mask-rec). RECONSTRUCT_MODE=obs gives SparseGPT's sequential update instead. OUT_DIR
# gets build.log, q128/ and q400/ (one directory
# and log per run), table-128.md, table-400.md and summary.txt. Runs already finished in OUT_DIR
# are skipped, so the same command after a time limit carries on.
# Exit status: non-zero if the build fails, a run fails or times out, or a published model fails
# the on-disk check. At most about 10 minutes: the build (BUILD_TIMEOUT_S, default 300 s) and
# each table (BUDGET_S, default 140 s) run under `timeout`; what a time limit cut off finishes
# when the same command runs again (the build and the finished runs are kept). LAMBDAS / LRS /
# SAMPLES_LIST override the sweep and the budgets.
set -uo pipefail
usage="usage: bench/gpu/quality.sh DEPS_DIR DATA_DIR OUT_DIR"
deps=${1:?$usage}
data=$(cd "${2:?$usage}" && pwd)
out=${3:?$usage}
here=$(cd "$(dirname "$0")/../.." && pwd)
mkdir -p "$out"
out=$(cd "$out" && pwd)
log() { echo "[$(date +%T)] $*" | tee -a "$out/summary.txt"; }
for f in codelm-19m/config.json code-calib.jsonl.gz code-eval.txt; do
  [ -e "$data/$f" ] || { echo "quality.sh: $data/$f missing" >&2; exit 2; }
done
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee -a "$out/summary.txt"
log "build psworker"
export BUILD_DIR=$here/build-gpu
if ! PS_TARGETS=psworker timeout "${BUILD_TIMEOUT_S:-300}" bash "$here/tools/device-setup.sh" "$deps" \
    -DPS_BUILD_SERVICE=OFF -DPS_BUILD_TESTS=OFF -DPS_BUILD_BENCH=OFF >"$out/build.log" 2>&1; then
  grep -B2 -A12 "error" "$out/build.log" | head -60
  log "FAILED: build (see build.log)"
  exit 1
fi
psworker=$BUILD_DIR/worker/tools/psworker
status=0
for samples in ${SAMPLES_LIST:-128 400}; do
  log "table at $samples calibration windows"
  DATA=$data MAX_WINDOWS=0 SAMPLES=$samples LAMBDAS=${LAMBDAS:-0.3} LRS=${LRS:-3e-3} \
    EXTRAS=0 SWEEP_AFTER_MASK=1 timeout "${BUDGET_S:-140}" \
    bash "$here/tools/quality-table.sh" "$psworker" "$out/q$samples" cuda \
    >"$out/table-$samples.md" 2>"$out/q$samples.log"
  rc=$?
  [ $rc = 124 ] && log "TIMEOUT at $samples windows: run the same command again to carry on"
  [ $rc != 0 ] && status=1
  grep FAILED "$out/q$samples.log" | tee -a "$out/summary.txt"
  python3 "$here/tools/quality_table.py" "$out/q$samples" > "$out/table-$samples.md" || status=1
  python3 "$here/tools/quality_table.py" --check "$out/q$samples" | tee -a "$out/summary.txt" ||
    status=1
  tee -a "$out/summary.txt" < "$out/table-$samples.md"
done
log "done (status $status)"
exit $status
