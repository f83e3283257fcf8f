#!/usr/bin/env bash
# Runs every method on the default model with the same calibration budget and the whole
# evaluation text, then prints the quality table (docs/quality.md). On the GPU machine:
#   tools/quality-table.sh build-gpu/worker/tools/psworker OUT_DIR cuda
# On a CPU: tools/quality-table.sh build/worker/tools/psworker OUT_DIR cpu   (hours: full evals)
# LAMBDAS / LRS select the ProxSparse sweep (the paper's Table 4 style).
set -uo pipefail
psworker=${1:?usage: quality-table.sh PSWORKER OUT_DIR [cpu|cuda]}
out=${2:?usage: quality-table.sh PSWORKER OUT_DIR [cpu|cuda]}
device=${3:-cuda}
here=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$out"
common=(--set device=$device --set resources.gpus_per_rank=$([ "$device" = cuda ] && echo 1 || echo 0) --set evaluation.max_windows=${MAX_WINDOWS:-0}
        --set calibration.samples=${SAMPLES:-128} --set calibration.seqlen=512
        --set calibration.sampling=window --set checkpoint.every_steps=0)
if [ -n "${DATA:-}" ]; then  # data somewhere else than ../shared/data beside the checkout
  common+=(--set "model=$DATA/codelm-19m" --set "calibration.path=$DATA/code-calib.jsonl.gz"
           --set "evaluation.ppl=[$DATA/code-eval.txt]")
fi
run() {  # name config extra-args...
  local name=$1 cfg=$2
  shift 2
  echo "=== $name" >&2
  "$psworker" --local "$here/configs/$cfg" --output "$out/$name" "${common[@]}" "$@" \
    > "$out/$name.log" 2>&1 || echo "FAILED: $name (see $out/$name.log)" >&2
}
run magnitude magnitude.yaml
run wanda wanda.yaml
run sparsegpt sparsegpt.yaml
for lr in ${LRS:-1e-4 5e-4}; do
  for l in ${LAMBDAS:-0.1 0.3 1 3 10}; do
    run "proxsparse-l$l-lr$lr" default.yaml --set method.lambda1=$l --set method.lr=$lr
  done
done
run maskllm maskllm.yaml
python3 "$here/tools/quality_table.py" "$out"
