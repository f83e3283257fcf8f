#!/usr/bin/env bash
# On the GPU machine (the device tool runs it from the checkout root; this worktree travels as
# .carry/dist, the dependency bundles as .carry/deps, the default model and data as .carry/data):
# builds psworker, compare_runs and train_step_bench against the machine's CUDA LibTorch, then
#   1. train_step_bench on the Llama-2-7B shape (bf16, master bf16, ctx 2048), one rank per GPU;
#   2. the acceptance job on CUDA vs CPU on one GPU (compare_runs reports differing groups).
# Output goes to $OUT (bench logs). Usage: bash .carry/dist/bench/device_dist.sh
#
# BENCH_SET=overlap instead builds only train_step_bench and runs the 7B shape on one GPU six
# ways (baseline; --overlap-update; --grad-accum 2/4 with as many sequences per step, each without
# and with --overlap-update), each with its own log $OUT/step_NAME.log and a timeout, then prints
# a summary ($OUT/step_summary.txt). BENCH_STEPS (4), BENCH_WARMUP (1) and RUN_TIMEOUT (100 s)
# tune it; about 5-6 minutes on an H100 after the build.
set -uo pipefail
root=$(pwd)
src=$root/.carry/dist
out=${OUT:-/tmp/out}
mkdir -p "$out"
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
log() { echo "[$(date +%T)] $*"; }
log "setup"
tar xzf .carry/deps/grpc.tgz -C / && tar xzf .carry/deps/deps.tgz -C / --skip-old-files && ldconfig
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
torch_prefix=$(python3 -c 'import torch; print(torch.utils.cmake_prefix_path)')
cmake -S "$src" -B "$src/build-gpu" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_PREFIX_PATH="$torch_prefix" -DCMAKE_CUDA_ARCHITECTURES=90 \
  -DPS_BUILD_SERVICE=OFF -DPS_BUILD_TESTS=ON >"$out/cmake.log" 2>&1 || { tail -40 "$out/cmake.log"; exit 1; }
b=$src/build-gpu
if [[ ${BENCH_SET:-} == overlap ]]; then
  log "build train_step_bench"
  cmake --build "$b" -j 16 --target train_step_bench >"$out/build.log" 2>&1 ||
    { grep -B2 -A12 "error" "$out/build.log" | head -80; exit 1; }
  steps=${BENCH_STEPS:-4} warmup=${BENCH_WARMUP:-1} limit=${RUN_TIMEOUT:-100}
  runs=("baseline|"
        "overlap|--overlap-update"
        "accum2|--grad-accum 2 --seqs-per-rank 2"
        "accum2_overlap|--grad-accum 2 --seqs-per-rank 2 --overlap-update"
        "accum4|--grad-accum 4 --seqs-per-rank 4"
        "accum4_overlap|--grad-accum 4 --seqs-per-rank 4 --overlap-update")
  for r in "${runs[@]}"; do
    name=${r%%|*} flags=${r#*|}
    log "bench: 7B shape on 1 GPU, $name ($flags)"
    # shellcheck disable=SC2086  # flags are words
    timeout "$limit" "$b/bench/train_step_bench" --device cuda --steps "$steps" --warmup "$warmup" \
      $flags >"$out/step_$name.log" 2>&1
    echo "exit $?" >>"$out/step_$name.log"
    grep -E "^step |MFU|^  [a-z_]+ +[0-9.]+ s/step|peak GPU|^final|error|exit [^0]" "$out/step_$name.log"
  done
  for r in "${runs[@]}"; do
    name=${r%%|*}
    printf '%-16s %s\n' "$name" "$(grep -E "^step |MFU|^final" "$out/step_$name.log" | tr '\n' ' ')"
  done | tee "$out/step_summary.txt"
  log "done"
  exit 0
fi
log "build"
cmake --build "$b" -j 16 --target train_step_bench psworker compare_runs \
  >"$out/build.log" 2>&1 || { grep -B2 -A12 "error" "$out/build.log" | head -80; exit 1; }
ngpu=$(nvidia-smi -L | wc -l)
log "bench: 7B shape on 1 GPU"
timeout 240 "$b/bench/train_step_bench" --device cuda --steps ${BENCH_STEPS:-5} --warmup 2 2>&1 | tee "$out/bench_7b_1gpu.log"
if ! grep -q "^step " "$out/bench_7b_1gpu.log"; then
  log "bench: the full shape failed; 16 layers instead"
  timeout 180 "$b/bench/train_step_bench" --device cuda --layers 16 --steps 5 --warmup 2 2>&1 | tee "$out/bench_16l_1gpu.log"
fi
for n in 2 4; do
  if [[ $ngpu -ge $n ]]; then
    log "bench: 7B shape on $n GPUs"
    timeout 240 mpirun --allow-run-as-root -np $n -x NCCL_NVLS_ENABLE "$b/bench/train_step_bench" --device cuda --steps 5 --warmup 2 2>&1 | tee "$out/bench_7b_${n}gpu.log"
  fi
done
if [[ -d .carry/data/codelm-19m ]]; then
  log "equivalence: CUDA vs CPU on the acceptance job"
  w=/tmp/eq; mkdir -p $w
  bash "$src/tests/distributed/gpu_equivalence.sh" "$b" "$root/.carry/data" "$w" 2>&1 | tee "$out/equivalence.log"
fi
log "done"
