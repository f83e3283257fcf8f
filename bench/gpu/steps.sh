# shellcheck shell=bash disable=SC2034,SC2154  # out comes from, status goes to, the sourcing script
# Sourced by the GPU scripts after they set `out` (OUT_DIR) and `b` (the build directory):
# timestamped log lines in OUT_DIR/steps.log; run(), which runs one step under `timeout` into
# OUT_DIR/NAME.log and records a failure in `status` without stopping the script; and
# start_psserve / stop_psserve for the scripts that run a server.
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

start_psserve() {  # start_psserve NAME PORT PSSERVE_ARGS...: in the background, until /health answers
  local name=$1 port=$2
  shift 2
  log "$name: psserve --port $port $*"
  "$b/worker/serve/psserve" --port "$port" "$@" >"$out/server_$name.log" 2>&1 &
  server_pid=$!
  for _ in $(seq 1 240); do
    if python3 -c "import urllib.request as u; u.urlopen('http://127.0.0.1:$port/health', timeout=2)" 2>/dev/null; then
      head -c 600 "$out/server_$name.log"
      echo
      return 0
    fi
    kill -0 "$server_pid" 2>/dev/null || break
    sleep 0.5
  done
  log "$name: server did not come up"
  tail -5 "$out/server_$name.log"
  status=1
  stop_psserve
  return 1
}
stop_psserve() {
  kill "$server_pid" 2>/dev/null
  wait "$server_pid" 2>/dev/null
  return 0
}
