# Sourced by the distributed test scripts: writes the small acceptance job on the default model.
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
