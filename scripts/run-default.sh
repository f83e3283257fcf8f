#!/usr/bin/env bash
# The main job on the embedded default: builds what is needed, then runs the default job on the
# default model (../shared/data/codelm-19m). Output goes to ${PS_RUN_DIR:-runs/default}.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
bash "$here/scripts/install-deps.sh"
bash "$here/scripts/build.sh"
build=${BUILD_DIR:-$here/build}
data=${PS_SHARED_DATA:-$here/../shared/data}
"$build/worker/tools/pstool" inspect --model "$data/codelm-19m"
# Once psworker speaks to the coordinator, the main job goes through the service (psd + psctl).
if "$build/worker/tools/psworker" --help 2>/dev/null | grep -q -- --coordinator; then
  bash "$here/scripts/run-service-job.sh" "$here/configs/default.yaml"
fi
