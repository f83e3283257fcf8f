#!/usr/bin/env bash
# The main job on the embedded default: builds what is needed, then applies the EnumALM 2:4 prox
# (lambda 5, the q/k/v/o/gate/up/down projections) to the default model (../shared/data/codelm-19m)
# and prints one JSON line: fractions of groups 2:4-sparse / partly sparse / dense and the summed
# objective. The result goes to ${PS_RUN_DIR:-runs/default}/prox-codelm-19m (a checkpoint
# directory). This becomes the full service job once the coordinator exists.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
bash "$here/scripts/install-deps.sh"
bash "$here/scripts/build.sh"
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
