#!/usr/bin/env bash
# Sharded parameters (parallel.shard: params) on CPU, on the default model with the small
# acceptance job:
#   equivalence  1, 2 and 4 ranks with sharded parameters give the masks of today's 1-rank run
#                (optimizer sharding); compare_runs prints how many groups differ (0 expected);
#                and the same dense and pruned perplexities (with sharded parameters every rank
#                evaluates together on its rows, the weights all-gathered per layer);
#   kill -9      rank 1 of a 2-rank sharded run killed after its first checkpoint ends the job;
#   resume       from that checkpoint on 4 ranks and on 1 rank (other rank counts: the row shards
#                are cut anew) gives the uninterrupted run's masks.
# Usage: sharded_params_acceptance.sh MPIEXEC PSWORKER COMPARE_RUNS SHARED_DATA [WORKDIR]
set -uo pipefail
source "$(dirname "$0")/acceptance_job.sh"
acceptance_setup sharded "$@"
# Other rank counts sum gradients in another order: at most a few near-tie groups
# (compare_runs.cc) may keep the other weight, which moves the pruned perplexity by ~1e-6.
near_ties=4
same_ppl() {  # same_ppl RUN_A RUN_B: dense perplexities equal, pruned ones within 1e-5 relative
  python3 - "$1/report.json" "$2/report.json" <<'PY'
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:3])
def close(stage, x, y):
    return x == y if stage == "dense" else y is not None and abs(x - y) <= 1e-5 * abs(x)
bad = [(stage, f) for stage in ("dense", "pruned") for f in a[stage]
       if not close(stage, a[stage][f]["perplexity"], b[stage].get(f, {}).get("perplexity"))]
for stage, f in bad:
    print(f"{stage} {f}: {a[stage][f]['perplexity']} vs {b[stage].get(f, {}).get('perplexity')}")
sys.exit(1 if bad else 0)
PY
}

acceptance_job "$work/plain.yaml" "$data" 8 1.0e-3
cp "$work/plain.yaml" "$work/sharded.yaml"
printf 'parallel:\n  shard: params\n' >>"$work/sharded.yaml"

echo "== today's path, 1 rank"
run_job 1 "$work/plain.yaml" "$work/r1" >"$work/r1.log" 2>&1 || { echo "FAIL: 1 rank"; tail -20 "$work/r1.log"; fail=1; }
echo "== sharded parameters: 1, 2 and 4 ranks"
for np in 1 2 4; do
  run_job $np "$work/sharded.yaml" "$work/s$np" >"$work/s$np.log" 2>&1 || { echo "FAIL: sharded, $np ranks"; tail -20 "$work/s$np.log"; fail=1; }
  check grep -q "parallel.shard: params" "$work/s$np.log"
  check "$compare" "$work/r1" "$work/s$np" --max-differ $near_ties
  check same_ppl "$work/r1" "$work/s$np"
done

echo "== kill -9 a rank of a 2-rank sharded run, resume on 4 and on 1 rank"
out=$work/killed
run_job 2 "$work/sharded.yaml" "$out" >"$work/killed.log" 2>&1 &
launcher=$!
victim=$(rank1_after_first_checkpoint "$out")
if [[ -z $victim ]]; then
  echo "FAIL: no checkpoint or no rank 1 to kill"; fail=1; wait $launcher
else
  kill -9 "$victim"
  wait $launcher; rc=$?
  echo "killed rank 1 (pid $victim); mpirun exited $rc"
  check test "$rc" -ne 0
  if [[ -f $out/masks.safetensors ]]; then echo "FAIL: the run finished before the kill"; fail=1; fi
  ls "$out/checkpoints"
  cp -r "$out" "$work/killed-1"
  for np in 4 1; do
    dir=$out; [[ $np == 1 ]] && dir=$work/killed-1
    run_job $np "$work/sharded.yaml" "$dir" --resume >"$dir.resume$np.log" 2>&1 || { echo "FAIL: resume on $np"; tail -20 "$dir.resume$np.log"; fail=1; }
    check grep -q "resumed from" "$dir.resume$np.log"
    check "$compare" "$work/r1" "$dir" --max-differ $near_ties
  done
fi

[[ $fail == 0 ]] && rm -rf "$work"
exit $fail
