#!/usr/bin/env bash
# λ1 / lr search for ProxSparse on your own model: runs the job file once per (λ1, lr) pair with
# psworker --local, then prints the grid of perplexities and the best setting (tools/sweep_table.py).
# The best λ1 and lr move with the model (docs/quality.md), so search before a long run.
#
#   tools/sweep.sh PSWORKER JOB.yaml OUT_DIR [--set KEY=VALUE ...]
#   e.g. LAMBDAS="0.1 0.3 1" LRS="1e-3 3e-3" \
#        tools/sweep.sh build/worker/tools/psworker configs/default.yaml /tmp/sweep
#
# The job file gives everything else (model, calibration, evaluation, reconstruct, ...); extra
# --set arguments apply to every run (e.g. --set evaluation.max_windows=40 for a quicker screen).
# Evaluate on held-out text, not on the calibration data. A run whose OUT_DIR/NAME/report.json
# exists is skipped, so the same command after an interruption carries on.
#
# Environment: LAMBDAS (default "0.1 0.3 1 3"), LRS (default "1e-4 1e-3 3e-3"), NICE (default 0:
# nice level of the runs).
set -uo pipefail
usage="usage: sweep.sh PSWORKER JOB.yaml OUT_DIR [--set KEY=VALUE ...]"
psworker=${1:?$usage}
job=${2:?$usage}
out=${3:?$usage}
shift 3
here=$(cd "$(dirname "$0")/.." && pwd)
[ -x "$psworker" ] || { echo "sweep.sh: $psworker is not an executable psworker" >&2; exit 2; }
[ -f "$job" ] || { echo "sweep.sh: job file $job not found" >&2; exit 2; }
mkdir -p "$out"
lambdas=${LAMBDAS:-0.1 0.3 1 3}
lrs=${LRS:-1e-4 1e-3 3e-3}
n=0 total=0 failed=0
for l in $lambdas; do for lr in $lrs; do total=$((total + 1)); done; done
for l in $lambdas; do
  for lr in $lrs; do
    n=$((n + 1))
    name="l$l-lr$lr"
    if [ -f "$out/$name/report.json" ]; then
      echo "[$n/$total] $name: done before" >&2
      continue
    fi
    echo "[$n/$total] $name: λ1=$l lr=$lr (log: $out/$name.log)" >&2
    start=$(date +%s)
    if nice -n "${NICE:-0}" "$psworker" --local "$job" --output "$out/$name" \
        --set method.lambda1="$l" --set method.lr="$lr" "$@" > "$out/$name.log" 2>&1; then
      echo "[$n/$total] $name: finished in $(( $(date +%s) - start )) s" >&2
    else
      failed=$((failed + 1))
      echo "[$n/$total] $name: FAILED (last lines of $out/$name.log):" >&2
      tail -3 "$out/$name.log" >&2
    fi
  done
done
python3 "$here/tools/sweep_table.py" "$out"
[ "$failed" = 0 ]
