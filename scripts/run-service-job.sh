#!/usr/bin/env bash
# Runs one job through the service, as a user would: starts psd (embedded SQLite store, local
# launcher, loopback only), submits the job file with psctl, watches it to the end, prints where
# the artifacts and the report are, and stops psd.
#   scripts/run-service-job.sh [JOB.yaml]      (default: configs/default.yaml)
# Environment: BUILD_DIR (default build/), PS_RUN_DIR (default runs/service: psd's data dir).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD_DIR:-$here/build}
job=${1:-$here/configs/default.yaml}
data=${PS_RUN_DIR:-$here/runs/service}
mkdir -p "$data"
ready="$data/ready.json"
rm -f "$ready"
# One user on one machine: job inputs may come from anywhere (a shared psd names its data
# directories with --allowed-roots instead).
"$build/server/psd" --data-dir "$data" --listen 127.0.0.1:0 --metrics-listen 127.0.0.1:0 \
  --allowed-roots "${PS_ALLOWED_ROOTS:-/}" \
  --worker-bin "$build/worker/tools/psworker" --ready-file "$ready" 2>> "$data/psd.log" &
psd=$!
trap 'kill $psd 2>/dev/null; wait $psd 2>/dev/null || true' EXIT
for _ in $(seq 100); do [ -s "$ready" ] && break; kill -0 $psd 2>/dev/null || break; sleep 0.1; done
[ -s "$ready" ] || { echo "psd did not start; see $data/psd.log" >&2; exit 1; }
addr=$(sed -n 's/.*"grpc":"\([^"]*\)".*/\1/p' "$ready")
metrics=$(sed -n 's/.*"metrics":"\([^"]*\)".*/\1/p' "$ready")
echo "psd on $addr (metrics: http://$metrics/metrics, log: $data/psd.log)"
ctl=("$build/client/psctl" --server "$addr")
id=$("${ctl[@]}" submit "$job")
rc=0
"${ctl[@]}" watch "$id" || rc=$?
out=$("${ctl[@]}" -o json get "$id" | sed -n 's/.*"output_dir": "\([^"]*\)".*/\1/p')
echo "artifacts: $out"
[ -f "$out/report.json" ] && echo "report:    $out/report.json"
"${ctl[@]}" artifacts "$id" || true
exit $rc
