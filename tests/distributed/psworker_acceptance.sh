#!/usr/bin/env bash
# The distributed acceptance on CPU (issue 4), on the default model with a small, fast job:
#   equivalence  1, 2 and 4 ranks, same global batch -> identical masks (compare_runs reports how
#                many groups differ) and trained weights within float tolerance at a checkpoint;
#   kill -9      a rank killed mid-run ends the whole job non-zero within a bounded time;
#   resume       from that run's checkpoint on the same rank count, and on other rank counts,
#                the final masks equal the uninterrupted run's;
#   overlap      method.overlap_update: true on 2 ranks gives the 2-rank run's masks and weights
#                exactly;
#   nan          an absurd learning rate makes the loss non-finite: the run stops non-zero with a
#                clear message and the last good checkpoint is kept.
# Usage: psworker_acceptance.sh MPIEXEC PSWORKER COMPARE_RUNS SHARED_DATA [WORKDIR]
set -uo pipefail
source "$(dirname "$0")/acceptance_job.sh"
acceptance_setup accept "$@"
job() { acceptance_job "$1" "$data" "$2" "$3"; }  # job FILE STEPS LR
run() {  # run NP OUT [args...]: 1 rank runs without mpirun
  local np=$1 out=$2; shift 2
  if [[ $np == 1 ]]; then "$psworker" --local "$work/job.yaml" --output "$out" "$@"
  else "${mpirun[@]}" -np "$np" "$psworker" --local "$work/job.yaml" --output "$out" "$@"; fi
}

job "$work/job.yaml" 8 1.0e-3
echo "== equivalence: 1, 2 and 4 ranks"
for np in 1 2 4; do
  run $np "$work/r$np" --keep-checkpoints >"$work/r$np.log" 2>&1 || { echo "FAIL: $np ranks"; tail -20 "$work/r$np.log"; fail=1; }
done
# Other rank counts sum gradients in another order: weights within 1e-4, and at most a few
# near-tie groups (compare_runs.cc) may keep the other weight.
near_ties=4
for np in 2 4; do check "$compare" "$work/r1" "$work/r$np" --weights-tol 1e-4 --max-differ $near_ties; done

echo "== overlapped update (method.overlap_update: true): 2 ranks, bit-identical to the serial run"
sed -i 's/^  master_dtype: fp32$/&\n  overlap_update: true/' "$work/job.yaml"
check grep -q "overlap_update: true" "$work/job.yaml"
run 2 "$work/r2-overlap" --keep-checkpoints >"$work/r2-overlap.log" 2>&1 || { echo "FAIL: overlap_update"; tail -20 "$work/r2-overlap.log"; fail=1; }
check grep -q "overlap_update: AdamW and the owner-side hooks run during the last backward" "$work/r2-overlap.log"
check "$compare" "$work/r2" "$work/r2-overlap" --weights-tol 0
job "$work/job.yaml" 8 1.0e-3

echo "== kill -9 a rank mid-run"
out=$work/killed
run 2 "$out" >"$work/killed.log" 2>&1 &
launcher=$!
start=$(date +%s)
victim=$(rank1_after_first_checkpoint "$out")
if [[ -z $victim ]]; then
  echo "FAIL: no checkpoint or no rank 1 to kill"; fail=1; wait $launcher
else
  kill -9 "$victim"
  killed_at=$(date +%s)
  wait $launcher; rc=$?
  took=$(( $(date +%s) - killed_at ))
  echo "killed rank 1 (pid $victim) $((killed_at - start)) s into the run; mpirun exited $rc after ${took}s"
  check test "$rc" -ne 0
  check test "$took" -le 60
  if [[ -f $out/masks.safetensors ]]; then echo "FAIL: the run finished before the kill"; fail=1; fi
  ls "$out/checkpoints"
  cp -r "$out" "$work/killed-4"; cp -r "$out" "$work/killed-1"
  echo "== resume on 2 ranks (as before), 4 ranks and 1 rank"
  for np in 2 4 1; do
    dir=$out; [[ $np != 2 ]] && dir=$work/killed-$np
    run $np "$dir" --resume >"$dir.resume.log" 2>&1 || { echo "FAIL: resume on $np"; tail -20 "$dir.resume.log"; fail=1; }
    check grep -q "resumed from" "$dir.resume.log"
    check "$compare" "$work/r1" "$dir" --max-differ $near_ties
  done
fi

echo "== non-finite loss"
job "$work/job.yaml" 6 1.0e+30
sed -i 's/every_steps: 2/every_steps: 1/' "$work/job.yaml"
run 2 "$work/nan" >"$work/nan.log" 2>&1; rc=$?
echo "absurd lr: exit $rc"; grep -m1 "non-finite" "$work/nan.log"
check test "$rc" -ne 0
check grep -q "non-finite loss" "$work/nan.log"
check compgen -G "$work/nan/checkpoints/step-*/manifest.json"

[[ $fail == 0 ]] && rm -rf "$work"
exit $fail
