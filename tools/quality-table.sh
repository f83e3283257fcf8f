#!/usr/bin/env bash
# Runs every method on the default model with the same calibration budget and the whole
# evaluation text, then prints the quality table (docs/quality.md). One run gives all of it:
#   dense, magnitude, Wanda, SparseGPT, the ProxSparse sweep, MaskLLM (SparseGPT prior, and the
#   same with a Wanda prior); then, on the masks of magnitude, Wanda, MaskLLM, the best
#   ProxSparse setting and SparseGPT, the reconstruction of the kept weights (reconstruct: lsq, the
#   exact least-squares solve on the mask; RECONSTRUCT_MODE=obs for SparseGPT's sequential OBS
#   update) and the masked gradient update after it, and the masked update on top of SparseGPT.
#   The table's "kept weights" column says which rows keep the original weights and which change
#   them.
# On the GPU machine:
#   DATA=/path/to/data MAX_WINDOWS=0 SAMPLES=128 \
#     bash tools/quality-table.sh build-gpu/worker/tools/psworker /tmp/q cuda
# On a CPU: tools/quality-table.sh build/worker/tools/psworker OUT_DIR cpu   (hours: full evals)
# Runs whose OUT_DIR/NAME/report.json exists are skipped, so the same command run again after a
# time limit cut it off carries on where it stopped (delete OUT_DIR to start over).
#
# Environment (space-separated lists sweep every combination):
#   DATA         directory with codelm-19m, code-calib.jsonl.gz, code-eval.txt (default: the
#                configs' ../shared/data)
#   SAMPLES      calibration windows of 512 tokens, the same for every method (default 128)
#   MAX_WINDOWS  evaluation windows, 0 = the whole text (default 0)
#   LAMBDAS      ProxSparse λ1 values            (default "0.1 0.3 1 3")
#   LRS          ProxSparse learning rates       (default "1e-4 1e-3")
#   EPOCHS       ProxSparse epochs               (default "1")
#   TRAINABLE    ProxSparse trainable sets       (default "targets"; "targets all" sweeps both)
#   LAMBDA2S     ProxSparse λ2 values            (default "0")
#   MU_STEPS     masked-update optimizer steps   (default: one epoch, SAMPLES steps of batch 1)
#   MU_LR        masked-update learning rate     (default 1e-4)
#   MASKLLM_ARGS extra --set arguments for the MaskLLM run (default: configs/maskllm.yaml as is)
#   RECONSTRUCT  1 (default): reconstruction + masked update rows; 0: the masked update on
#                SparseGPT and on the best ProxSparse mask only
#   RECONSTRUCT_MODE  lsq (default) or obs: the job's `reconstruct` value for those rows; with lsq
#                also SparseGPT's own mask re-solved the same way (run sparsegpt-mask-rec), so
#                every mask gets the same update
#   SWEEP_AFTER_MASK 1: every ProxSparse run of the sweep gets the reconstruction / masked update
#                rows itself (no rerun of the best; for a sweep of one setting); default 0
#   EXTRAS       1 (default): also SparseGPT's mask on the frozen weights and MaskLLM with a Wanda
#                prior; 0 leaves them out
# Ends with the on-disk check of every published model (quality_table.py --check): exit status 1
# if any failed.
set -uo pipefail
usage="usage: quality-table.sh PSWORKER OUT_DIR [cpu|cuda]"
psworker=${1:?$usage}
out=${2:?$usage}
device=${3:-cuda}
here=$(cd "$(dirname "$0")/.." && pwd)
samples=${SAMPLES:-128}
mu_steps=${MU_STEPS:-$samples}
mu_lr=${MU_LR:-1e-4}
mkdir -p "$out"
common=(--set device=$device --set resources.gpus_per_rank=$([ "$device" = cuda ] && echo 1 || echo 0)
        --set evaluation.max_windows=${MAX_WINDOWS:-0}
        --set calibration.samples=$samples --set calibration.seqlen=512
        --set calibration.sampling=window --set checkpoint.every_steps=0)
if [ -n "${DATA:-}" ]; then  # data somewhere else than ../shared/data beside the checkout
  common+=(--set "model=$DATA/codelm-19m" --set "calibration.path=$DATA/code-calib.jsonl.gz"
           --set "evaluation.ppl=[$DATA/code-eval.txt]")
fi
masked_update=(--set masked_update.steps=$mu_steps --set masked_update.lr=$mu_lr)
# The rows after a mask: reconstruction, then the masked update (one job gives all three rows).
after_mask=()
rec_mode=${RECONSTRUCT_MODE:-lsq}
case $rec_mode in lsq | obs) ;; *) echo "RECONSTRUCT_MODE must be lsq or obs, not '$rec_mode'" >&2; exit 2 ;; esac
if [ "${RECONSTRUCT:-1}" = 1 ]; then after_mask=(--set "reconstruct=$rec_mode" "${masked_update[@]}"); fi
# The sweep's runs: the frozen-weight mask only (the best is rerun with after_mask below), or,
# with SWEEP_AFTER_MASK=1 (for a sweep of one setting), every run with after_mask and no rerun.
sweep_after=(--set reconstruct=none --set masked_update.steps=0 --set 'evaluation.baselines=[]')
if [ "${SWEEP_AFTER_MASK:-0}" = 1 ]; then sweep_after=(--set 'evaluation.baselines=[]' "${after_mask[@]}"); fi

run() {  # name config extra-args...  (the extra args are kept in NAME.args for reruns)
  local name=$1 cfg=$2
  shift 2
  if [ -f "$out/$name/report.json" ]; then  # finished in an earlier call: the script resumes
    echo "=== $name (done before)" >&2
    return
  fi
  echo "=== $name" >&2
  if [ $# -gt 0 ]; then printf '%s\n' "$@"; fi > "$out/$name.args"
  "$psworker" --local "$here/configs/$cfg" --output "$out/$name" "${common[@]}" "$@" \
    > "$out/$name.log" 2>&1 || echo "FAILED: $name (see $out/$name.log)" >&2
}

run magnitude magnitude.yaml "${after_mask[@]}"
run wanda wanda.yaml "${after_mask[@]}"
run sparsegpt sparsegpt.yaml "${masked_update[@]}"  # rows: SparseGPT, and + masked update
if [ "${RECONSTRUCT:-1}" = 1 ] && [ "$rec_mode" = lsq ]; then
  # SparseGPT's mask with its kept weights re-solved from W0 by the same least-squares update as
  # the other masks (its own sequential update replaced): the masks compare on equal terms.
  run sparsegpt-mask-rec sparsegpt.yaml --set reconstruct=lsq
fi
for epochs in ${EPOCHS:-1}; do
  for trainable in ${TRAINABLE:-targets}; do
    for l2 in ${LAMBDA2S:-0}; do
      for lr in ${LRS:-1e-4 1e-3}; do
        for l in ${LAMBDAS:-0.1 0.3 1 3}; do
          run "proxsparse-l$l-lr$lr-e$epochs-$trainable-l2$l2" default.yaml \
            --set method.lambda1=$l --set method.lr=$lr --set method.epochs=$epochs \
            --set method.trainable=$trainable --set method.lambda2=$l2 \
            "${sweep_after[@]}"
        done
      done
    done
  done
done
# shellcheck disable=SC2086  # MASKLLM_ARGS is a list of words on purpose
run maskllm maskllm.yaml ${MASKLLM_ARGS:-} "${after_mask[@]}"
if [ "${EXTRAS:-1}" = 1 ]; then
  # The prior alone (a negligible lr returns it exactly): SparseGPT's mask on the frozen weights,
  # what MaskLLM has to beat.
  run sparsegpt-mask-frozen maskllm.yaml --set method.lr=1e-12
  # The same with a Wanda prior: SparseGPT's mask assumes its own weight update, and on frozen
  # weights Wanda's mask is the better start (CPU screening, docs/quality.md).
  # shellcheck disable=SC2086
  run maskllm-wanda-prior maskllm.yaml --set method.prior=wanda ${MASKLLM_ARGS:-} "${after_mask[@]}"
fi

# Reconstruction and the masked update on the best ProxSparse mask: rerun that setting with them.
best=$(python3 "$here/tools/quality_table.py" --best proxsparse- "$out")
if [ "${SWEEP_AFTER_MASK:-0}" = 1 ]; then
  :  # the sweep's runs have their reconstruction rows already
elif [ -n "$best" ]; then
  mapfile -t best_args < "$out/$best.args"
  if [ "${RECONSTRUCT:-1}" = 1 ]; then
    run "$best-rec" default.yaml "${best_args[@]}" "${after_mask[@]}"
  else
    run "$best-mu" default.yaml "${best_args[@]}" "${masked_update[@]}"
  fi
else
  echo "FAILED: no ProxSparse run finished; nothing to reconstruct" >&2
fi
python3 "$here/tools/quality_table.py" "$out"
python3 "$here/tools/quality_table.py" --check "$out"
