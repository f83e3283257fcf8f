#!/usr/bin/env bash
# Checks deploy/slurm/psworker.sbatch: it runs as Slurm would run the batch step, with a stand-in
# `srun` on PATH that records its arguments (the srun command line, psworker's arguments, exit
# status, SIGTERM from --signal reaching srun), and its #SBATCH lines and srun options are the
# ones deploy/systemd/psd.yaml gives psd's Slurm launcher.
# Usage: sbatch-script.sh PSWORKER_SBATCH PSD_YAML
set -euo pipefail
script=$1 psd_yaml=$2
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
slurm_env=(PATH="$work/bin:/usr/bin:/bin" FAKE_SRUN_ARGS="$work/args" SLURM_JOB_ID=42
           SLURM_NTASKS=4 SLURM_JOB_NUM_NODES=2 SLURM_JOB_NODELIST="gpu[1-2]" SLURM_CPUS_PER_TASK=8)

# 1. Same #SBATCH lines and srun options as psd.yaml.
/usr/bin/python3 - "$script" "$psd_yaml" <<'PY'
import re, sys, yaml
script, conf = open(sys.argv[1]).read(), yaml.safe_load(open(sys.argv[2]))
sbatch = re.findall(r"^#SBATCH (\S+)", script, re.M)
srun = re.search(r"^exec srun (.*?) \"\$\{PS_PSWORKER", script, re.M).group(1).split()
if sbatch != conf["slurm-sbatch-line"]:
    sys.exit(f"#SBATCH lines {sbatch} != psd.yaml slurm-sbatch-line {conf['slurm-sbatch-line']}")
if srun != conf["slurm-srun-arg"]:
    sys.exit(f"srun options {srun} != psd.yaml slurm-srun-arg {conf['slurm-srun-arg']}")
if "--mpi=pmix" not in srun:
    sys.exit("srun without --mpi=pmix")
PY
echo "ok   #SBATCH lines and srun options match psd.yaml (srun --mpi=pmix)"

# 2. The srun command line, with psworker's arguments passed through.
env -i "${slurm_env[@]}" PS_PSWORKER=/opt/ps/bin/psworker bash "$script" \
  --local "/jobs/a b.yaml" --output /runs/a > "$work/out"
expected='--mpi=pmix
--kill-on-bad-exit=1
--cpu-bind=cores
/opt/ps/bin/psworker
--local
/jobs/a b.yaml
--output
/runs/a'
[ "$(cat "$work/args")" = "$expected" ] || { diff <(echo "$expected") "$work/args"; fail "srun arguments"; }
grep -q "Slurm job 42, 4 rank(s) on 2 node(s): gpu\[1-2\]" "$work/out" || fail "banner"
echo "ok   srun --mpi=pmix --kill-on-bad-exit=1 --cpu-bind=cores psworker ARGS"

# 3. No psworker arguments: a clear error, exit 2.
status=0
env -i "${slurm_env[@]}" bash "$script" > "$work/out" 2>&1 || status=$?
[ "$status" -eq 2 ] || fail "exit status $status without arguments, expected 2"
grep -q "give psworker's arguments" "$work/out" || fail "no-argument message"
echo "ok   missing arguments are refused"

# 4. srun's exit status is the job's.
status=0
env -i "${slurm_env[@]}" FAKE_SRUN_EXIT=3 bash "$script" --local j.yaml > /dev/null || status=$?
[ "$status" -eq 3 ] || fail "exit status $status, expected 3"
echo "ok   srun exit status 3 propagated"

# 5. SIGTERM to the batch step (--signal=B:TERM) reaches srun.
rm -f "$work/args" "$work/args.signal"
env -i "${slurm_env[@]}" FAKE_SRUN_SLEEP=30 bash "$script" --local j.yaml > /dev/null &
pid=$!
for _ in $(seq 50); do [ -s "$work/args" ] && break; sleep 0.1; done
sleep 0.3
kill -TERM "$pid"
status=0
wait "$pid" || status=$?
[ -f "$work/args.signal" ] || fail "srun did not get SIGTERM"
[ "$status" -eq 143 ] || fail "exit status $status after SIGTERM, expected 143"
echo "ok   SIGTERM reaches srun (exit 143)"
