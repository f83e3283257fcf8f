#!/usr/bin/env bash
# Runs deploy/slurm/psworker.sbatch as Slurm would run the batch step, with a stand-in `srun` on
# PATH that records its arguments: checks the srun command line (PMIx, one task per rank, the
# psworker arguments), the required environment, exit-status propagation, and that the SIGTERM
# Slurm sends before the time limit (--signal=B:TERM) reaches srun.
# Usage: sbatch-script.sh PSWORKER_SBATCH
set -euo pipefail
script=$1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir "$work/bin"
cat > "$work/bin/srun" <<'SRUN'
#!/bin/bash
printf '%s\n' "$@" > "$FAKE_SRUN_ARGS"
trap 'echo TERM > "$FAKE_SRUN_ARGS.signal"; exit 143' TERM
if [ "${FAKE_SRUN_SLEEP:-0}" != 0 ]; then sleep "$FAKE_SRUN_SLEEP" & wait $!; fi
exit "${FAKE_SRUN_EXIT:-0}"
SRUN
chmod +x "$work/bin/srun"
fail() { echo "FAIL: $*"; exit 1; }
run() {
  env -i PATH="$work/bin:/usr/bin:/bin" FAKE_SRUN_ARGS="$work/args" SLURM_JOB_ID=42 \
    SLURM_NTASKS=4 SLURM_JOB_NUM_NODES=2 SLURM_JOB_NODELIST="gpu[1-2]" SLURM_CPUS_PER_TASK=8 \
    "$@" bash "$script"
}
job_env=(PS_JOB_ID=j-7 PS_COORDINATOR=login1:50051 PS_ARTIFACTS=/shared/ps
         PS_TOKEN_FILE=/etc/proxsparse/token PS_PSWORKER=/opt/ps/bin/psworker)

# 1. The srun command line.
run "${job_env[@]}" > "$work/out"
expected='--mpi=pmix
--kill-on-bad-exit=1
--cpu-bind=cores
--export=ALL
/opt/ps/bin/psworker
--coordinator
login1:50051
--job-id
j-7
--artifacts
/shared/ps
--token-file
/etc/proxsparse/token'
[ "$(cat "$work/args")" = "$expected" ] || { diff <(echo "$expected") "$work/args"; fail "srun arguments"; }
grep -q "job j-7, Slurm job 42, 4 rank(s) on 2 node(s): gpu\[1-2\]" "$work/out" || fail "banner"
echo "ok   srun --mpi=pmix ... psworker --coordinator --job-id --artifacts --token-file"

# 2. Extra srun options are passed through; no token file means no --token-file.
run PS_JOB_ID=j-8 PS_COORDINATOR=h:1 PS_ARTIFACTS=/a PS_SRUN_EXTRA="--network=sn_all --overlap" > /dev/null
grep -qx -- "--network=sn_all" "$work/args" || fail "PS_SRUN_EXTRA --network"
grep -qx -- "--overlap" "$work/args" || fail "PS_SRUN_EXTRA --overlap"
if grep -q -- "--token-file" "$work/args"; then fail "--token-file without PS_TOKEN_FILE"; fi
echo "ok   PS_SRUN_EXTRA passed through, --token-file only when set"

# 3. Missing job environment: a clear error, non-zero.
if run PS_COORDINATOR=h:1 PS_ARTIFACTS=/a > "$work/out" 2>&1; then fail "ran without PS_JOB_ID"; fi
grep -q "PS_JOB_ID is not set" "$work/out" || fail "error message for PS_JOB_ID"
echo "ok   missing PS_JOB_ID is refused"

# 4. srun's exit status is the job's.
status=0
run "${job_env[@]}" FAKE_SRUN_EXIT=3 > /dev/null || status=$?
[ "$status" -eq 3 ] || fail "exit status $status, expected 3"
echo "ok   srun exit status 3 propagated"

# 5. SIGTERM to the batch shell reaches srun.
rm -f "$work/args.signal" "$work/args"
# (a simple command in the background, so that $! is the batch shell itself)
env -i PATH="$work/bin:/usr/bin:/bin" FAKE_SRUN_ARGS="$work/args" FAKE_SRUN_SLEEP=30 \
  "${job_env[@]}" bash "$script" > /dev/null &
pid=$!
for _ in $(seq 50); do [ -s "$work/args" ] && break; sleep 0.1; done
sleep 0.3
kill -TERM "$pid"
status=0
wait "$pid" || status=$?
[ -f "$work/args.signal" ] || fail "srun did not get SIGTERM"
[ "$status" -eq 143 ] || fail "exit status $status after SIGTERM, expected 143"
echo "ok   SIGTERM forwarded to srun (exit 143)"
