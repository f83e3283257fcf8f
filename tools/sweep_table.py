#!/usr/bin/env python3
"""Prints the λ1 x lr grid of a ProxSparse sweep (tools/sweep.sh) from its report.json files.

  sweep_table.py OUT_DIR

Each cell is the perplexity of the published model on the job's first evaluation text (after
reconstruction or the masked update when the job ran them), and, where that differs from the mask
on the original weights, the frozen-weight perplexity in parentheses. The best cell is in bold
and named at the end, with the baselines the jobs computed (evaluation.baselines) for comparison.
"""
import json
import math
import pathlib
import sys


def first_ppl(evals):
    d = next(iter((evals or {}).values()), {})
    return d.get("perplexity", math.nan)


def method_value(job_yaml, key):
    inside = False
    for line in job_yaml.splitlines():
        if not line.startswith(" "):
            inside = line.rstrip() == "method:"
            continue
        if inside and line.strip().startswith(key + ":"):
            return float(line.split(":", 1)[1])
    return math.nan


def main(root):
    cells, baselines, dense, text = {}, {}, None, None
    for rep in sorted(pathlib.Path(root).glob("*/report.json")):
        r = json.loads(rep.read_text())
        if r.get("method") != "proxsparse":
            continue
        l = method_value(r.get("job_yaml", ""), "lambda1")
        lr = method_value(r.get("job_yaml", ""), "lr")
        final = r.get("final", {}).get("eval") or r.get("pruned")
        cells[(l, lr)] = (first_ppl(final), first_ppl(r.get("pruned")),
                          r.get("validity", {}).get("valid"))
        dense = first_ppl(r.get("dense"))
        text = next(iter(r.get("dense", {})), text)
        for name, ev in (r.get("baselines") or {}).items():
            baselines[name] = first_ppl(ev)
    if not cells:
        sys.exit(f"no finished ProxSparse runs under {root}")
    lambdas = sorted({k[0] for k in cells})
    lrs = sorted({k[1] for k in cells})
    best = min(cells, key=lambda k: (math.isnan(cells[k][0]), cells[k][0]))
    print("| λ1 \\ lr | " + " | ".join(f"{lr:g}" for lr in lrs) + " |")
    print("| --- |" + " --- |" * len(lrs))
    for l in lambdas:
        row = []
        for lr in lrs:
            if (l, lr) not in cells:
                row.append("-")
                continue
            final, frozen, valid = cells[(l, lr)]
            s = f"{final:.3f}" + (f" ({frozen:.3f})" if frozen != final else "")
            if not valid:
                s += " INVALID"
            row.append(f"**{s}**" if (l, lr) == best else s)
        print(f"| {l:g} | " + " | ".join(row) + " |")
    print(f"\nperplexity on {text} (dense {dense:.3f}); in parentheses: the mask on the original "
          "weights, where the job then reconstructed or trained the kept weights")
    for name, ppl in sorted(baselines.items()):
        print(f"baseline {name}: {ppl:.3f}")
    print(f"best: lambda1={best[0]:g} lr={best[1]:g} -> {cells[best][0]:.3f}")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
