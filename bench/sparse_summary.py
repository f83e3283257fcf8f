#!/usr/bin/env python3
"""Summarises the JSON-line logs of bench/gpu/sparse.sh (sparse_bench, pstool bench-sparse,
sparse_check, sparse_model_check) as short tables. Usage: sparse_summary.py LOG_DIR"""
import json
import os
import sys


def lines(path):
    out = []
    if not os.path.exists(path):
        return out
    with open(path, errors="replace") as f:
        for line in f:
            line = line.strip()
            if line.startswith("{"):
                try:
                    out.append(json.loads(line))
                except json.JSONDecodeError:
                    pass
    return out


def fmt(x, spec):
    return format(x, spec) if isinstance(x, (int, float)) else "-"


def searches(rows):
    """The cuSPARSELt algorithm choices (one stderr JSON line per searched shape)."""
    for r in rows:
        if r.get("cusparselt_search") == "known":  # no search: the measured id (or the default)
            print("  search known   %s N%-5d K%-5d M%-5d chosen %s" % (
                r["dtype"], r["n"], r["k"], r["m"], r["chosen"]))
        elif "cusparselt_search" in r:
            print("  search %-7s %s N%-5d K%-5d M%-5d chosen %-7s %8s us by %-7s "
                  "(library %s, manual best %s; library status %s, %s ids)" % (
                      r["cusparselt_search"], r["dtype"], r["n"], r["k"], r["m"], r["chosen"],
                      fmt(r.get("chosen_us"), ".1f"), r["found_by"],
                      fmt(r.get("library_us"), ".1f"), fmt(r.get("manual_best_us"), ".1f"),
                      r.get("library_status"), r.get("max_id")))


def steps(d):
    """Exit status and time of every step (steps.log of bench/gpu/sparse.sh)."""
    p = os.path.join(d, "steps.log")
    if os.path.exists(p):
        with open(p, errors="replace") as f:
            for line in f:
                if ": exit " in line or " buil" in line:
                    print(line.rstrip())


def main(d):
    steps(d)
    for name in sorted(os.listdir(d)):
        rows = lines(os.path.join(d, name))
        if not rows:
            continue
        if name.startswith("e2e_"):
            print(f"== {name}")
            for r in rows:
                if r.get("event") == "sparsified":
                    print("  weights: dense %.2f GB -> 2:4 %.2f GB (x%.3f; targets x%.3f), "
                          "shared values %s/%s, probe rel diff %.4f, argmax agree %.3f" % (
                              r["model_weight_bytes_dense"] / 1e9,
                              r["model_weight_bytes_sparse"] / 1e9, r["model_weight_ratio"],
                              r["target_weight_ratio"], r["shared_values"], r["linears"],
                              r["probe_logits_max_abs_diff_rel"], r["probe_argmax_agreement"]))
                elif "phase" in r:
                    print("  %-5s %-12s b=%-3s %12s tok/s  speedup %6s  peak %6s GB%s%s" % (
                        r.get("model"), r["phase"], r.get("batch", "-"),
                        fmt(r.get("tokens_per_s"), ".1f"), fmt(r.get("speedup"), ".3f"),
                        fmt(r.get("peak_allocated_bytes", 0) / 1e9, ".2f"),
                        "  greedy=dense %.2f" % r["greedy_tokens_equal_to_dense"]
                        if "greedy_tokens_equal_to_dense" in r else "",
                        "  ERROR " + r["error"] if "error" in r else ""))
        elif name.startswith("ppl_"):  # pstool eval: the served and the loaded pruned model
            for r in rows:
                for f, v in r.get("perplexity", {}).items():
                    print("== %s: perplexity %.4f (mean NLL %.6f, %d windows of %d, %s)" % (
                        name, v["perplexity"], v["mean_nll"], v["windows"], v["ctx"],
                        os.path.basename(f)))
        elif name.startswith("linear_stack"):
            print(f"== {name}")
            for r in rows:
                if "phase" in r:
                    print("  %-8s rows=%-5d dense %8s ms  decode x%s  mma x%s  cusparselt x%s  "
                          "unpack x%s" % (r["phase"], r["rows"], fmt(r.get("dense_ms"), ".3f"),
                                          fmt(r.get("decode_kernel_speedup"), ".2f"),
                                          fmt(r.get("mma_kernel_speedup"), ".2f"),
                                          fmt(r.get("cusparselt_speedup"), ".2f"),
                                          fmt(r.get("unpack_dense_speedup"), ".2f")))
        elif "check" in name:  # sparse_check, sparse_model_check, cslt_fp16_check, robust_check
            bad = [r for r in rows if r.get("ok") is False]
            worst = max((r.get("err", 0) for r in rows if "err" in r), default=0)
            print(f"== {name}: {len(bad)} failing of {sum(1 for r in rows if 'ok' in r)}, "
                  f"largest err {worst:.5f}")
            for r in bad[:10]:
                print("  FAIL", json.dumps(r))
        elif "bench" in name or name.startswith("cslt_fp16"):  # sparse_bench output
            print(f"== {name}  (speedup over dense)")
            table = [r for r in rows if "m" in r and "cusparselt_search" not in r]
            for r in table:
                print("  %-4s %-7s M=%-5d decode %6s  mma %6s  cusparselt %6s  unpack %6s" % (
                    r.get("dtype"), r.get("layer"), r["m"], fmt(r.get("decode_speedup"), ".2f"),
                    fmt(r.get("mma_speedup"), ".2f"), fmt(r.get("cusparselt_speedup"), ".2f"),
                    fmt(r.get("unpack_speedup"), ".2f")))
            big = [r for r in table if r["m"] >= 4096 and "cusparselt_speedup" in r]
            if big:
                low = min(big, key=lambda r: r["cusparselt_speedup"])
                print("  cuSPARSELt at M >= 4096: lowest %.2fx (%s M=%d): target 1.3x %s" % (
                    low["cusparselt_speedup"], low["layer"], low["m"],
                    "met" if low["cusparselt_speedup"] >= 1.3 else "NOT met"))
            searches(rows)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else ".")
