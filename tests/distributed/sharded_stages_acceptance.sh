#!/usr/bin/env bash
# Every stage of a job with sharded parameters (parallel.shard: params) on CPU, on the default
# model: the baselines (magnitude, Wanda, SparseGPT), ProxSparse, `reconstruct: lsq` and the masked
# update, on 1, 2 and 4 ranks, against the unsharded 1-rank run of the same job:
#   masks       compare_runs: the same groups (0 differ expected; ProxSparse's own near-ties,
#               sharded_params_acceptance.sh, allowed);
#   weights     the published targets (reconstructed, then updated) within --published-tol;
#   perplexity  dense equal; the baselines', pruned, reconstructed and masked-update ones within
#               1e-5 relative (statistics and gradients summed in another order).
# Usage: sharded_stages_acceptance.sh MPIEXEC PSWORKER COMPARE_RUNS SHARED_DATA [WORKDIR]
set -uo pipefail
source "$(dirname "$0")/acceptance_job.sh"
acceptance_setup sharded_stages "$@"
near_ties=4
# Published weights: the least-squares solves and the update's gradients summed in another order.
weights_tol=1e-4
same_ppl() {  # same_ppl RUN_A RUN_B
  python3 - "$1/report.json" "$2/report.json" <<'PY'
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:3])
def stages(r):
    out = {"dense": r["dense"], "pruned": r["pruned"],
           "reconstruction": r["reconstruction"]["eval"],
           "masked_update": r["masked_update"]["eval"]}
    for m, ev in r["baselines"].items():
        out["baseline " + m] = ev
    return out
sa, sb = stages(a), stages(b)
bad = 0
for stage, texts in sa.items():
    for f, v in texts.items():
        x, y = v["perplexity"], sb.get(stage, {}).get(f, {}).get("perplexity")
        ok = x == y if stage == "dense" else y is not None and abs(x - y) <= 1e-5 * abs(x)
        print(f"  {stage} {f}: {x} vs {y}{'' if ok else '  <-- differs'}")
        bad += not ok
sys.exit(1 if bad else 0)
PY
}

acceptance_job "$work/plain.yaml" "$data" 4 1.0e-3
cat >>"$work/plain.yaml" <<YAML
reconstruct: lsq
masked_update:
  steps: 2
  lr: 1.0e-4
YAML
sed -i 's/^  max_windows: 1$/  max_windows: 1\n  baselines: [magnitude, wanda, sparsegpt]/' "$work/plain.yaml"
cp "$work/plain.yaml" "$work/sharded.yaml"
printf 'parallel:\n  shard: params\n' >>"$work/sharded.yaml"

echo "== unsharded, 1 rank"
run_job 1 "$work/plain.yaml" "$work/r1" >"$work/r1.log" 2>&1 || { echo "FAIL: 1 rank"; tail -20 "$work/r1.log"; fail=1; }
for np in 1 2 4; do
  echo "== sharded parameters, $np rank(s)"
  run_job $np "$work/sharded.yaml" "$work/s$np" >"$work/s$np.log" 2>&1 || { echo "FAIL: sharded, $np ranks"; tail -20 "$work/s$np.log"; fail=1; }
  check grep -q "parallel.shard: params" "$work/s$np.log"
  check "$compare" "$work/r1" "$work/s$np" --max-differ $near_ties --published-tol $weights_tol
  check same_ppl "$work/r1" "$work/s$np"
done

[[ $fail == 0 ]] && rm -rf "$work"
exit $fail
