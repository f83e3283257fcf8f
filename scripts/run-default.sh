#!/usr/bin/env bash
# The main job on the embedded default: installs and builds what is needed, then runs the service
# job (scripts/run-service-job.sh): psd with its embedded store and local launcher, psctl submit
# configs/default.yaml (ProxSparse 2:4 on ../shared/data/codelm-19m), watched to the end. A build
# without the service falls back to the EnumALM prox demo (pstool prox) on the default model.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
bash "$here/scripts/install-deps.sh" runtime
# Only the four programs the job runs; the tests are built by scripts/test.sh.
BUILD_TARGETS=${BUILD_TARGETS:-psd psctl psworker pstool} \
  bash "$here/scripts/build.sh" -DPS_BUILD_TESTS=OFF -DPS_BUILD_BENCH=OFF
build=${BUILD_DIR:-$here/build}
data=${PS_SHARED_DATA:-$here/../shared/data}
# Once psworker speaks to the coordinator, the main job is the service run: psd (embedded store,
# local launcher) + psctl submit configs/default.yaml, watched to the end.
if "$build/worker/tools/psworker" --help 2>/dev/null | grep -q -- --coordinator; then
  exec bash "$here/scripts/run-service-job.sh" "$here/configs/default.yaml"
fi
run=${PS_RUN_DIR:-$here/runs/default}
mkdir -p "$run"
"$build/worker/tools/pstool" prox --input "$data/codelm-19m" --output "$run/prox-codelm-19m" \
  --lambda 5 --pattern 2:4 --targets linear --device cpu
