#!/usr/bin/env bash
# Memory modes on one GPU (docs/distributed.md, "Memory"): builds train_step_bench only, then
#   7b_overlap    Llama-2-7B shape, today's path with --overlap-update (the reference step time);
#   7b_sharded    the same with --shard-params (parallel.shard: params on one rank);
#   13b_ckpt_off  Llama-2-13B shape (40 layers, hidden 5120, 40 heads, intermediate 13824, vocab
#                 32000) with --checkpointing --offload --overlap-update;
#   small_plain / small_offload  a 2-layer shape with and without --offload (the streamed
#                 update; the plain run uses the serial update), whose trained-weights checksums
#                 must be equal;
# each under `timeout`, with step time, phase split, peak GPU memory and the memory planner's
# prediction next to it; a summary in OUT_DIR/summary.txt. Exits non-zero when a run fails, the
# sharded 7B step is more than 5% slower than the reference, or a measured peak is more than 10%
# away from the planner's prediction.
# Usage (from the checkout root): bash bench/gpu/scale.sh DEPS_DIR DATA_DIR OUT_DIR
#   DEPS_DIR: tools/make-device-deps.sh's bundles; DATA_DIR is not used (random weights).
# About 3-4 minutes of build and 3-4 minutes of runs on an H100.
set -uo pipefail
deps=${1:?usage: scale.sh DEPS_DIR DATA_DIR OUT_DIR} out=${3:?usage: scale.sh DEPS_DIR DATA_DIR OUT_DIR}
mkdir -p "$out"
root=$(cd "$(dirname "$0")/../.." && pwd)
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
log() { echo "[$(date +%T)] $*"; }
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee "$out/gpu.txt"
log "build train_step_bench"
PS_TARGETS="train_step_bench" BUILD_DIR="$root/build-gpu" bash "$root/tools/device-setup.sh" "$deps" \
  -DPS_BUILD_SERVICE=OFF -DPS_BUILD_TESTS=OFF >"$out/build.log" 2>&1 ||
  { grep -B2 -A12 "error" "$out/build.log" | head -80; tail -20 "$out/build.log"; exit 1; }
bench=$root/build-gpu/bench/train_step_bench
fail=0
runs=("7b_overlap|120|--steps 4 --warmup 1 --overlap-update"
      "7b_sharded|120|--steps 4 --warmup 1 --overlap-update --shard-params"
      "13b_ckpt_off|290|--shape 13b --steps 2 --warmup 1 --checkpointing --offload --overlap-update")
for r in "${runs[@]}"; do
  IFS='|' read -r name limit flags <<<"$r"
  log "$name: train_step_bench --device cuda $flags"
  # Host and GPU memory in use every 5 s (the offloaded state lives in host memory).
  (while true; do
    echo "$(date +%T) host used $(free -m | awk '/Mem:/{print $3}') MiB, GPU used $(nvidia-smi --query-gpu=memory.used --format=csv,noheader)"
    sleep 5
  done) >"$out/$name.mem.log" 2>&1 &
  sampler=$!
  # shellcheck disable=SC2086  # flags are words
  timeout "$limit" "$bench" --device cuda $flags >"$out/$name.log" 2>&1
  rc=$?
  kill "$sampler" 2>/dev/null
  echo "exit $rc" >>"$out/$name.log"
  [[ $rc != 0 ]] && { echo "FAIL: $name exited $rc"; tail -5 "$out/$name.log"; fail=1; }
  grep -E "^step |^  [a-z_]+ +[0-9.]+ s/step|^memory:|peak GPU|peak host|^final|error" "$out/$name.log"
done
# The streamed offload (--offload on a GPU turns the overlapped update on) must give the plain
# serial run's weights bit for bit: the same fused AdamW and CUDA prox, run on GPU copies of the
# host state.
small="--layers 2 --hidden 512 --heads 8 --kv-heads 8 --intermediate 1376 --ctx 256 --steps 3 --warmup 1 --lambda1 2"
for o in plain offload; do
  flag=""; [[ $o == offload ]] && flag="--offload"
  # shellcheck disable=SC2086  # flags are words
  timeout 60 "$bench" --device cuda $small $flag >"$out/small_$o.log" 2>&1 || { echo "FAIL: small_$o"; fail=1; }
done
sum_plain=$(grep -m1 "checksum" "$out/small_plain.log" | awk '{print $NF}')
sum_off=$(grep -m1 "checksum" "$out/small_offload.log" | awk '{print $NF}')
echo "streamed offload checksum $sum_off, plain $sum_plain"
[[ -n $sum_plain && $sum_plain == "$sum_off" ]] || { echo "FAIL: streamed offload differs from the plain run"; fail=1; }
{
  echo "# $(cat "$out/gpu.txt"), commit $(git -C "$root" rev-parse --short HEAD 2>/dev/null)"
  echo "streamed offload checksum $sum_off, plain $sum_plain"
  for r in "${runs[@]}"; do
    name=${r%%|*}
    echo "## $name"
    grep -E "^train_step_bench|^step |^  [a-z_]+ +[0-9.]+ s/step|^memory:|peak GPU|peak host" "$out/$name.log"
  done
} >"$out/summary.txt"
step() { grep -m1 "^step " "$out/$1.log" | awk '{print $2}'; }
ref=$(step 7b_overlap) shard=$(step 7b_sharded)
if [[ -n $ref && -n $shard ]]; then
  ratio=$(awk -v a="$shard" -v b="$ref" 'BEGIN{printf "%.3f", a/b}')
  echo "7B step: sharded path $shard s vs today's path $ref s (ratio $ratio)" | tee -a "$out/summary.txt"
  awk -v r="$ratio" 'BEGIN{exit !(r > 1.05)}' && { echo "FAIL: sharded path more than 5% slower"; fail=1; }
fi
# "  rank 0 peak GPU memory X GiB (planner Y GiB, +Z%)" and, with offload, "rank 0 peak host
# memory ...": |Z| <= 10. The host check also guards the offloaded state's page-locked size (a
# power-of-two rounding of pinned blocks takes up to twice the state).
for r in "${runs[@]}"; do
  name=${r%%|*}
  for what in GPU host; do
    dev=$(grep -m1 "rank 0 peak $what" "$out/$name.log" | sed -E 's/.*, ([+-][0-9.]+)%\).*/\1/')
    [[ -z $dev ]] && continue
    echo "$name: planner vs measured $what peak ${dev}%" | tee -a "$out/summary.txt"
    awk -v d="$dev" 'BEGIN{exit !(d > 10 || d < -10)}' && { echo "FAIL: $name $what planner off by more than 10%"; fail=1; }
  done
done
cat "$out/summary.txt"
exit $fail
