#!/usr/bin/env bash
# psserve on one GPU: the same server on a Llama-2-7B-shaped model with random 2:4 weights, once
# with the 2:4 kernels (--sparse on) and once dense (--sparse off, the same masked weights), in
# bf16 and fp16; bench/serve_client.py at 1, 8 and 32 concurrent streams, prompt 512 tokens,
# output 256 tokens (greedy, EOS ignored, streamed), and the server's own mean decode step per
# level (from its metrics); then the linear-layer kernel table (sparse_bench) in the same run.
# First, tests/gpu/sparse_check --quick per dtype checks every 2:4 path (the tensor-core kernels
# up to 32 rows and every variant of the sparse one included) against fp32, and
# tests/gpu/attention_check checks the decode attention kernel against fp64 and times it against
# the masked call it replaces, and tests/gpu/fused_check checks the fused decode kernels against
# the LibTorch ops. Builds only psserve, sparse_bench, sparse_check, attention_check and
# fused_check into build-gpu/.
#
# Usage: [PSSERVE_ARGS="..."] [SERVE_ONLY=1] bench/gpu/serve.sh DEPS_DIR DATA_DIR OUT_DIR [DTYPES]
#   DEPS_DIR  the bundles of tools/make-device-deps.sh
#   DATA_DIR  holds codelm-19m (its tokenizer is the served model's tokenizer)
#   OUT_DIR   logs, client JSON lines and summary.txt
#   DTYPES    "bf16 fp16" (default) or one of them
#   PSSERVE_ARGS  extra psserve flags for both servers (e.g. "--fused-ops off")
#   SERVE_ONLY    1: only the servers and clients (no checks, no kernel table)
# Needs CUDA, LibTorch 2.x with CUDA (python3's torch), cuSPARSELt for the 2:4 prefill path.
# About 8 minutes on one H100 for both dtypes including the build (a second run reuses
# build-gpu). Exits non-zero when a build, a server or a request fails (a missed speed target is reported in summary.txt, not an error).
set -uo pipefail
deps=${1:?usage: serve.sh DEPS_DIR DATA_DIR OUT_DIR [DTYPES]}
data=${2:?usage: serve.sh DEPS_DIR DATA_DIR OUT_DIR [DTYPES]}
out=${3:?usage: serve.sh DEPS_DIR DATA_DIR OUT_DIR [DTYPES]}
dtypes=${4:-bf16 fp16}
root=$(cd "$(dirname "$0")/../.." && pwd)
extra=${PSSERVE_ARGS:-}
serve_only=${SERVE_ONLY:-0}
mkdir -p "$out"
b=$root/build-gpu
# shellcheck source=bench/gpu/steps.sh
source "$(dirname "$0")/steps.sh"

log "setup + build (psserve sparse_bench sparse_check attention_check fused_check)"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$out/gpu.txt"
git -C "$root" rev-parse HEAD >>"$out/gpu.txt" 2>/dev/null
BUILD_DIR=$b PS_TARGETS="psserve sparse_bench sparse_check attention_check fused_check" timeout 420 bash "$root/tools/device-setup.sh" \
  "$deps" -DPS_BUILD_SERVICE=OFF -DPS_BUILD_TESTS=OFF >"$out/build.log" 2>&1 ||
  { log "build FAILED"; grep -B2 -A12 -E "error" "$out/build.log" | head -60; exit 1; }
log "built"

for dt in $dtypes; do
  [[ $serve_only == 1 ]] && break
  log "sparse_check $dt"
  timeout 180 "$b/tests/gpu/sparse_check" --dtype "$dt" --quick >"$out/sparse_check_$dt.log" 2>&1 ||
    { log "sparse_check $dt: exit $?"; status=1; }
  grep '"ok":false' "$out/sparse_check_$dt.log" | head -5
  tail -1 "$out/sparse_check_$dt.log"
done
if [[ $serve_only != 1 ]]; then
  log "attention_check (and its bench)"
  timeout 120 "$b/tests/gpu/attention_check" --bench >"$out/attention_check.log" 2>&1 ||
    { log "attention_check: exit $?"; status=1; }
  grep -E '"ok":false|"cases"|"bench"' "$out/attention_check.log"
  log "fused_check"
  timeout 120 "$b/tests/gpu/fused_check" >"$out/fused_check.log" 2>&1 ||
    { log "fused_check: exit $?"; status=1; }
  grep -E '"ok":false|"error"|"engine_decode"|"cases"' "$out/fused_check.log"
fi

port=18000
serve_run() {  # serve_run NAME DTYPE SPARSE
  local name=$1 dt=$2 sp=$3
  port=$((port + 1))
  # shellcheck disable=SC2086  # $extra is a list of flags, split on purpose
  start_psserve "$name" $port --random-shape llama2-7b --tokenizer "$data/codelm-19m" \
    --device cuda --dtype "$dt" --sparse "$sp" --max-batch 32 --max-model-len 800 \
    --max-waiting 64 $extra || return
  # One client run per level, the server's metrics after each: the summary takes the server's own
  # decode step time per level from the differences.
  : >"$out/client_$name.jsonl"
  for c in 1 8 32; do
    timeout 120 python3 "$root/bench/serve_client.py" --url "http://127.0.0.1:$port" \
      --concurrency $c --prompt-len 512 --output-len 256 --vocab 8192 --label "$name" \
      >>"$out/client_$name.jsonl" 2>>"$out/client_$name.err" || { log "$name: client FAILED"; status=1; }
    python3 -c "import urllib.request as u; print(u.urlopen('http://127.0.0.1:$port/metrics').read().decode())" \
      >"$out/metrics_${name}_c$c.txt" 2>/dev/null
  done
  cat "$out/client_$name.jsonl"
  stop_psserve
}

for dt in $dtypes; do
  serve_run "dense_$dt" "$dt" off
  serve_run "sparse_$dt" "$dt" on
done

for dt in $dtypes; do
  [[ $serve_only == 1 ]] && break
  log "kernel table $dt"
  timeout 120 "$b/bench/sparse_bench" --dtype "$dt" --ms 1,2,4,8,16,24,32,512,2048 \
    >"$out/sparse_bench_$dt.log" 2>&1 || { log "sparse_bench $dt: exit $?"; status=1; }
done

python3 - "$out" "$extra" <<'PY' | tee "$out/summary.txt"
import glob, json, os, sys
out = sys.argv[1]
rows = {}
for f in glob.glob(os.path.join(out, "client_*.jsonl")):
    for line in open(f):
        if line.strip():
            r = json.loads(line)
            rows[(r["label"], r["concurrency"])] = r
targets = {1: 1.3, 32: 1.2}
print("psserve, llama2-7b shape (random 2:4 weights), prompt 512, output 256, greedy"
      + (f"; psserve {sys.argv[2]}" if sys.argv[2] else ""))
print(f"{'dtype':5} {'streams':>7} {'dense decode tok/s':>18} {'2:4 decode tok/s':>16} {'speedup':>7}"
      f" {'dense out tok/s':>15} {'2:4 out tok/s':>13} {'dense TTFT ms':>13} {'2:4 TTFT ms':>11} target")
for dt in ("bf16", "fp16"):
    for c in (1, 8, 32):
        d, s = rows.get((f"dense_{dt}", c)), rows.get((f"sparse_{dt}", c))
        if not d or not s:
            continue
        sp = s["decode_tok_s"] / d["decode_tok_s"] if d["decode_tok_s"] and s["decode_tok_s"] else float("nan")
        t = targets.get(c)
        verdict = "" if t is None else (f">= {t}x met" if sp >= t else f">= {t}x MISSED")
        print(f"{dt:5} {c:7d} {d['decode_tok_s']:18.1f} {s['decode_tok_s']:16.1f} {sp:7.2f}"
              f" {d['output_tok_s']:15.1f} {s['output_tok_s']:13.1f} {d['ttft_ms_mean']:13.1f}"
              f" {s['ttft_ms_mean']:11.1f} {verdict}")
def step_metrics(name):
    """Server-side mean decode step (ms) and mean batch per level, from the metrics differences."""
    prev, res = {"s": 0.0, "n": 0.0, "b": 0.0, "bn": 0.0}, {}
    for c in (1, 8, 32):
        f = os.path.join(out, f"metrics_{name}_c{c}.txt")
        if not os.path.exists(f):
            continue
        cur = dict(prev)
        for line in open(f):
            for key, metric in (("s", "psserve_decode_step_seconds_sum"), ("n", "psserve_decode_step_seconds_count"),
                                ("b", "psserve_batch_size_sum"), ("bn", "psserve_batch_size_count")):
                if line.startswith(metric + " ") or line.startswith(metric + "{}"):
                    cur[key] = float(line.split()[-1])
        dn, dbn = cur["n"] - prev["n"], cur["bn"] - prev["bn"]
        if dn > 0 and dbn > 0:
            res[c] = (1e3 * (cur["s"] - prev["s"]) / dn, (cur["b"] - prev["b"]) / dbn)
        prev = cur
    return res
print("\ninter-token latency p50 / p99 (ms), dense vs 2:4:")
for dt in ("bf16", "fp16"):
    for c in (1, 8, 32):
        d, s = rows.get((f"dense_{dt}", c)), rows.get((f"sparse_{dt}", c))
        if d and s:
            print(f"  {dt} {c:2d} streams: {d['itl_ms_p50']:.2f} / {d['itl_ms_p99']:.2f}  vs"
                  f"  {s['itl_ms_p50']:.2f} / {s['itl_ms_p99']:.2f}")
print("\nserver warm-up (decode step shapes, seconds) and the 2:4 layers' choices at 32 rows:")
for f in sorted(glob.glob(os.path.join(out, "server_*.log"))):
    name = os.path.basename(f)[len("server_"):-len(".log")]
    for line in open(f, errors="replace"):
        if line.startswith("{") and '"listening"' in line:
            w = json.loads(line).get("warmup")
            if w:
                print(f"  {name}: warm-up {w['steps']} steps, {w['seconds']:.1f} s")
        elif ('"sparse24_small_m_choice"' in line or '"sparse24_spmma_variant"' in line) and '"m":32,' in line:
            print(f"  {name}: {line.strip()[:200]}")
print("\nserver decode step (mean ms, mean batch) per level:")
for dt in ("bf16", "fp16"):
    for kind in ("dense", "sparse"):
        r = step_metrics(f"{kind}_{dt}")
        if r:
            print(f"  {kind}_{dt}: " + "  ".join(f"{c} streams {ms:.2f} ms (batch {b:.1f})" for c, (ms, b) in r.items()))
for f in sorted(glob.glob(os.path.join(out, "sparse_bench_*.log"))):
    print(f"\n{os.path.basename(f)} (speedups over dense cuBLAS):")
    for line in open(f):
        if not (line.startswith("{") and '"layer"' in line):
            continue
        j = json.loads(line)
        sp = "  ".join(f"{k[:-8]} {j[k]:.2f}x" for k in
                       ("decode_speedup", "mma_speedup", "sparse_mma_speedup", "sparse_mma_v0_speedup",
                        "sparse_mma_v1_speedup", "sparse_mma_v2_speedup", "sparse_mma_v3_speedup", "sparse_mma_v4_speedup",
                        "cusparselt_speedup",
                        "unpack_speedup")
                       if k in j)
        print(f"  {j['layer']:>10} M={j['m']:<5} dense {j['dense_us']:8.1f} us  {sp}")
PY
log "done (status $status)"
exit "$status"
