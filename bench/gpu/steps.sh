# shellcheck shell=bash disable=SC2034,SC2154  # out comes from, status goes to, the sourcing script
# Sourced by the GPU scripts after they set `out` (OUT_DIR): timestamped log lines in
# OUT_DIR/steps.log, and run(), which runs one step under `timeout` into OUT_DIR/NAME.log and
# records a failure in `status` without stopping the script.
status=0
log() { echo "[$(date +%T)] $*" | tee -a "$out/steps.log"; }
run() {  # run NAME SECONDS CMD...
  local name=$1 t=$2
  shift 2
  log "$name: $*"
  timeout "$t" "$@" >"$out/$name.log" 2>&1
  local rc=$?
  log "$name: exit $rc"
  tail -3 "$out/$name.log"
  ((rc == 0)) || status=1
  return 0
}
