# shellcheck shell=bash
# Sourced by the distributed test scripts: their common arguments, the small acceptance job on
# the default model, and finding the rank to kill in the kill -9 tests.

# acceptance_setup TAG MPIEXEC PSWORKER COMPARE_RUNS SHARED_DATA [WORKDIR]: sets mpiexec, psworker,
# compare, data, work (WORKDIR or a new /tmp/ps_TAG.XXXXXX), mpirun and fail=0; exits 0 with SKIP
# when the default model is missing.
acceptance_setup() {
  # shellcheck disable=SC2034  # used by the sourcing scripts
  mpiexec=$2 psworker=$3 compare=$4 data=$5
  work=${6:-$(mktemp -d "/tmp/ps_$1.XXXXXX")}
  if [[ ! -d $data/codelm-19m ]]; then
    echo "SKIP: no $data/codelm-19m"
    exit 0
  fi
  mkdir -p "$work"
  # shellcheck disable=SC2034  # used by the sourcing scripts
  mpirun=("$mpiexec" --allow-run-as-root --oversubscribe)
  fail=0
}
# check CMD...: runs it; a failure is printed and remembered in $fail.
check() { if ! "$@"; then echo "FAIL: $*"; fail=1; fi; }
# run_job NP JOB OUT [args...]: psworker on JOB into OUT on NP ranks (1 rank runs without mpirun).
run_job() {
  local np=$1 job=$2 out=$3
  shift 3
  if [[ $np == 1 ]]; then
    "$psworker" --local "$job" --output "$out" "$@"
  else
    "${mpirun[@]}" -np "$np" "$psworker" --local "$job" --output "$out" "$@"
  fi
}

# acceptance_job FILE DATA STEPS LR [DEVICE]
acceptance_job() {
  cat >"$1" <<YAML
name: dist-acceptance
model: $2/codelm-19m
pattern: "2:4"
seed: 0
device: ${5:-cpu}
dtype: fp32
method:
  name: proxsparse
  lambda1: 4.0
  lr: $4
  warmup_ratio: 0.1
  max_steps: $3
  batch_size: 4
  trainable: targets
  master_dtype: fp32
calibration:
  path: $2/code-calib.jsonl.gz
  samples: 16
  seqlen: 48
  sampling: document
evaluation:
  ppl: [$2/code-eval.txt]
  ctx: 48
  max_windows: 1
checkpoint:
  every_steps: 2
log_every: 1
resources:
  gpus_per_rank: $([ "${5:-cpu}" = cuda ] && echo 1 || echo 0)
YAML
}

# rank1_after_first_checkpoint OUT: waits (at most 120 s) for the first complete checkpoint of
# the run writing to OUT, then prints the pid of its MPI rank 1 (nothing if there is none).
rank1_after_first_checkpoint() {
  local out=$1 victim="" p
  for _ in $(seq 1 1200); do
    if compgen -G "$out/checkpoints/step-*/manifest.json" >/dev/null; then
      for p in $(pgrep -f -- "--output $out"); do
        if tr '\0' '\n' </proc/$p/environ 2>/dev/null | grep -qx OMPI_COMM_WORLD_RANK=1; then victim=$p; fi
      done
      [[ -n $victim ]] && break
    fi
    sleep 0.1
  done
  echo "$victim"
}
