#!/usr/bin/env bash
# psd under load: starts psd (local launcher, the tests' fake worker) in a temporary directory,
# runs psd_load_bench (1,000 finished jobs, then 200 concurrent list/get/watch callers and 50
# submit+cancel), prints psd's memory and the load figures, and stops psd.
#   bash bench/psd_load.sh [BUILD_DIR=build] [OUT_DIR=/tmp/psd_load] [FILL=1000] [STEPS=2] [PAD_KB=0]
# STEPS: progress reports per job; PAD_KB: a comment of that size in each job file (what a large
# job file costs psd per finished job). Needs a build with -DPS_BUILD_TESTS=ON -DPS_BUILD_BENCH=ON
# (psd, fake_worker, psd_load_bench).
set -euo pipefail
BUILD=${1:-build}
OUT=${2:-/tmp/psd_load}
FILL=${3:-1000}
STEPS=${4:-2}
PAD_KB=${5:-0}
rm -rf "$OUT" && mkdir -p "$OUT/job/model"
printf '{"hidden_size": 64, "intermediate_size": 128, "num_attention_heads": 4, "head_dim": 16}' \
  >"$OUT/job/model/config.json"
echo x >"$OUT/job/model/model.safetensors"
echo text >"$OUT/job/calib.txt"
cat >"$OUT/job/quick.yaml" <<'YAML'
name: step_s=0.001
model: model
calibration: {path: calib.txt}
method: {name: proxsparse, max_steps: STEPS}
YAML
sed -i "s/STEPS/$STEPS/" "$OUT/job/quick.yaml"
if ((PAD_KB > 0)); then
  printf '# %s\n' "$(head -c $((PAD_KB * 1024)) /dev/zero | tr '\0' 'c')" >>"$OUT/job/quick.yaml"
fi
"$BUILD/server/psd" --listen 127.0.0.1:0 --metrics-listen 127.0.0.1:0 --data-dir "$OUT/psd" \
  --ready-file "$OUT/ready.json" --worker-bin "$BUILD/tests/server/fake_worker" \
  --max-jobs 4 --heartbeat-interval-ms 1000 >"$OUT/psd.log" 2>&1 &
PSD=$!
trap 'kill $PSD 2>/dev/null; wait $PSD 2>/dev/null || true' EXIT
for _ in $(seq 100); do [[ -s "$OUT/ready.json" ]] && break; sleep 0.1; done
ADDR=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["grpc"])' "$OUT/ready.json")
timeout 1200 "$BUILD/bench/psd_load_bench" --server "$ADDR" --pid "$PSD" --job "$OUT/job/quick.yaml" \
  --fill "$FILL" | tee "$OUT/summary.txt"
