#!/usr/bin/env bash
# Failure handling under mpirun: a rank that aborts, is killed (kill -9), hangs (watchdog) or fails
# must end the whole job non-zero within a bounded time. Usage: failure_test.sh MPIEXEC PROBE
set -uo pipefail
mpiexec=$1 probe=$2
bound=60  # seconds; every mode finishes in a few
fail=0
for mode in abort kill hang exit; do
  start=$(date +%s)
  # (timeout only guards the test itself; a job still running after bound+30 s fails it)
  PS_RANK_TIMEOUT_S=3 timeout --signal=KILL $((bound + 30)) \
    "$mpiexec" --allow-run-as-root --oversubscribe -np 3 "$probe" "$mode" >/tmp/ps_probe_$$.log 2>&1
  rc=$?
  took=$(( $(date +%s) - start ))
  echo "mode $mode: exit $rc after ${took}s"
  if [[ $rc -eq 0 || $took -gt $bound ]]; then
    echo "FAIL: mode $mode should end the job non-zero within ${bound}s"; cat /tmp/ps_probe_$$.log
    fail=1
  fi
  if [[ $mode == hang ]] && ! grep -q "watchdog: no progress for 3 s" /tmp/ps_probe_$$.log; then
    echo "FAIL: the watchdog's message is missing"; cat /tmp/ps_probe_$$.log; fail=1
  fi
done
rm -f /tmp/ps_probe_$$.log
exit $fail
