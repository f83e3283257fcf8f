#!/usr/bin/env bash
# 2:4 inference on a GPU machine (docs/sparse-inference.md): builds only what the chosen steps
# need into build-gpu/ (kept between runs), then runs them, each step logged to OUT_DIR/<step>.log:
#   check      tests/gpu/sparse_check (bf16 all paths; fp16 without cuSPARSELt) and
#              sparse_model_check (a random GQA model: logits dense vs 2:4, weights released)
#   linear     bench/sparse_bench: dense cuBLAS vs the decode kernels / cuSPARSELt / unpack, bf16
#   prune      magnitude 2:4 of codelm-19m with psworker (one-shot, seconds), then
#              sparse_model_check --model and pstool bench-sparse --model on the pruned model,
#              and its perplexity as psserve serves it on the 2:4 kernels and dense (pstool eval
#              --server) and loaded (pstool eval --model), bf16
#   e2e7b      pstool bench-sparse --shapes llama2-7b (all 32 layers, random 2:4 bf16 weights):
#              both forms (cuSPARSELt prefill + decode kernels), then the native form only
#   fp16       cuSPARSELt fp16: the library's search forced (PS_CUSPARSELT_SEARCH=library) in a
#              process of its own (it has crashed the CUDA context in cuSPARSELt 0.8.1), then
#              the default for fp16 (the measured algorithm id), bench and check
#   robust     the cuSPARSELt algorithm choice (~6 min on an H100 with the build of sparse_check
#              and sparse_bench only): sparse_check bf16 and fp16 (all paths), then sparse_bench
#              bf16 and fp16 at M = 1,16,128,1024,4096,16384 on the three Llama-2-7B shapes; every
#              search's choice is a "cusparselt_search" JSON line in the logs (robust_*.log)
#   build      only builds (all six programs)
# At the end bench/sparse_summary.py writes OUT_DIR/summary.txt (short tables of every log).
#
# Usage: bench/gpu/sparse.sh DEPS_DIR DATA_DIR OUT_DIR [STEPS]
#   DEPS_DIR  the bundles of tools/make-device-deps.sh (deps.tgz, grpc.tgz)
#   DATA_DIR  holds codelm-19m, code-calib.jsonl.gz and code-eval.txt (the prune step)
#   OUT_DIR   logs and summary.txt
#   STEPS     "check linear prune e2e7b fp16" (default) or any of the steps above, e.g. robust
set -uo pipefail
deps=${1:?usage: sparse.sh DEPS_DIR DATA_DIR OUT_DIR [STEPS]}
data=${2:?usage: sparse.sh DEPS_DIR DATA_DIR OUT_DIR [STEPS]}
out=${3:?usage: sparse.sh DEPS_DIR DATA_DIR OUT_DIR [STEPS]}
steps=${4:-check linear prune e2e7b fp16}
root=$(cd "$(dirname "$0")/../.." && pwd)
mkdir -p "$out"
# shellcheck source=bench/gpu/steps.sh
source "$(dirname "$0")/steps.sh"
b=$root/build-gpu

log "setup"
nvidia-smi --query-gpu=name,memory.total,clocks.max.sm,driver_version --format=csv,noheader | tee "$out/gpu.txt"
tar xzf "$deps/grpc.tgz" -C / && tar xzf "$deps/deps.tgz" -C / --skip-old-files && ldconfig
python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda)' | tee -a "$out/gpu.txt"
if [[ ! -f $b/build.ninja ]]; then
  tp=$(python3 -c 'import torch; print(torch.utils.cmake_prefix_path)')
  cmake -S "$root" -B "$b" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$tp" \
    -DCMAKE_CUDA_ARCHITECTURES=90 -DPS_BUILD_SERVICE=OFF -DPS_BUILD_TESTS=OFF \
    >"$out/cmake.log" 2>&1 || { tail -40 "$out/cmake.log"; exit 1; }
fi
grep -i "cusparselt" "$out/cmake.log" 2>/dev/null | tail -2
targets=()
for step in $steps; do
  case $step in
  robust | fp16) targets+=(sparse_check sparse_bench) ;;
  check) targets+=(sparse_check sparse_model_check) ;;
  linear) targets+=(sparse_bench pstool) ;;
  prune) targets+=(psworker sparse_model_check pstool psserve) ;;
  e2e7b) targets+=(pstool) ;;
  build) targets+=(sparse_check sparse_model_check sparse_bench pstool psworker psserve) ;;
  esac
done
if ((${#targets[@]})); then
  mapfile -t targets < <(printf '%s\n' "${targets[@]}" | sort -u)
  log "build ${targets[*]}"
  # -k 0: a target that fails to compile does not stop the others; steps whose program is missing
  # fail on their own (exit 127 in steps.log).
  cmake --build "$b" -j 16 --target "${targets[@]}" -- -k 0 >"$out/build.log" 2>&1 ||
    { log "build FAILED (some targets)"; grep -B2 -A12 -E "error" "$out/build.log" | head -80; }
  log "built"
fi

for step in $steps; do
  case $step in
  build) ;;  # setup and build only
  check)
    run sparse_check_bf16 200 "$b/tests/gpu/sparse_check" --dtype bf16
    run sparse_check_fp16 120 "$b/tests/gpu/sparse_check" --dtype fp16 --no-cusparselt
    run sparse_model_check 120 "$b/tests/gpu/sparse_model_check"
    grep '"ok":false' "$out"/sparse_check_bf16.log "$out"/sparse_check_fp16.log \
      "$out"/sparse_model_check.log | head -20
    ;;
  linear)
    run sparse_bench_bf16 240 "$b/bench/sparse_bench" --dtype bf16 \
      --ms 1,2,4,8,16,128,1024,4096,16384
    run linear_stack_7b 150 "$b/worker/tools/pstool" bench-sparse --linears --shapes llama2-7b \
      --layers 8
    ;;
  prune)
    if [[ ! -d $data/codelm-19m ]]; then
      log "prune: no $data/codelm-19m, skipped"
      continue
    fi
    rm -rf /tmp/mag
    run prune_magnitude 200 "$b/worker/tools/psworker" --local "$root/configs/magnitude.yaml" \
      --output /tmp/mag --set device=cuda --set resources.gpus_per_rank=1 \
      --set model="$data/codelm-19m" --set calibration.path="$data/code-calib.jsonl.gz" \
      --set calibration.samples=8 --set "evaluation.ppl=[$data/code-eval.txt]" \
      --set evaluation.max_windows=4
    ls -la /tmp/mag/model >>"$out/prune_magnitude.log" 2>&1
    run sparse_model_check_codelm 120 "$b/tests/gpu/sparse_model_check" --model /tmp/mag/model
    run e2e_codelm 150 "$b/worker/tools/pstool" bench-sparse --model /tmp/mag/model \
      --prefill 2048 --batch 1,16 --prompt 128 --steps 64
    # The served model's perplexity (pstool eval --server): psserve on the 2:4 kernels and dense,
    # against the loaded model's, all bf16 on the GPU, the same 40 windows as the job's.
    for sp in on off; do
      start_psserve "codelm_sparse_$sp" 18100 --model /tmp/mag/model --device cuda --dtype bf16 \
        --sparse "$sp" || continue
      run "ppl_served_sparse_$sp" 600 "$b/worker/tools/pstool" eval --quiet \
        --server http://127.0.0.1:18100 --model /tmp/mag/model --ppl "$data/code-eval.txt" \
        --max-windows 40
      stop_psserve
    done
    run ppl_loaded_bf16 300 "$b/worker/tools/pstool" eval --quiet --model /tmp/mag/model \
      --device cuda --dtype bf16 --ppl "$data/code-eval.txt" --max-windows 40
    ;;
  e2e7b)
    run e2e_7b_both 240 "$b/worker/tools/pstool" bench-sparse --shapes llama2-7b --forms both
    run e2e_7b_native 200 "$b/worker/tools/pstool" bench-sparse --shapes llama2-7b --forms native
    ;;
  fp16)
    # The library's search first, alone: if it kills the context, only this process dies.
    run cslt_fp16_search 150 env PS_CUSPARSELT_SEARCH=library "$b/bench/sparse_bench" --dtype fp16 \
      --ms 1024,4096
    run cslt_fp16_manual 240 "$b/bench/sparse_bench" --dtype fp16 --ms 1,16,1024,4096,16384
    run cslt_fp16_check 150 "$b/tests/gpu/sparse_check" --dtype fp16
    ;;
  robust)
    # One process per dtype and program: an fp16 crash cannot take the bf16 figures with it.
    for dt in bf16 fp16; do
      run robust_check_$dt 90 "$b/tests/gpu/sparse_check" --dtype $dt
    done
    for dt in bf16 fp16; do
      run robust_bench_$dt 90 "$b/bench/sparse_bench" --dtype $dt --ms 1,16,128,1024,4096,16384
    done
    grep -h '"ok":false' "$out"/robust_check_*.log | head -20
    ;;
  *) log "unknown step $step" ;;
  esac
done
log "done"
python3 "$root/bench/sparse_summary.py" "$out" | tee "$out/summary.txt"
# A failing check line in any log fails the run too.
grep -q '"ok":false' "$out"/*.log 2>/dev/null && status=1
exit $status
