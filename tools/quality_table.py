#!/usr/bin/env python3
"""Prints the quality table (markdown) from the report.json files under a quality-table run.

  quality_table.py OUT_DIR                 the table, best perplexity first
  quality_table.py --best PREFIX OUT_DIR   the name of the finished run starting with PREFIX
                                           whose pruned model has the lowest perplexity

A report whose job ran the masked gradient update (masked_update.steps > 0) gives a second row,
labelled "+ masked update": its kept weights were trained, so it is not a frozen-weight mask
result. A run named "*-mu" is such a rerun of another row's setting and shows only that row.
"""
import json
import math
import pathlib
import sys


def job_section(job_yaml, section):
    """The `key: value` lines of one top-level section of the report's job YAML."""
    out, inside = {}, False
    for line in job_yaml.splitlines():
        if not line.startswith(" "):
            inside = line.rstrip() == section + ":"
            continue
        if inside and ":" in line:
            k, v = line.strip().split(":", 1)
            out[k.strip()] = v.strip()
    return out


def num(v):
    """A YAML scalar or [a, b] list of numbers, written short: 0.050000000000000003 -> 0.05."""
    v = str(v).strip()
    if v.startswith("[") and v.endswith("]"):
        return "[" + ", ".join(num(x) for x in v[1:-1].split(",")) + "]"
    try:
        return f"{float(v):g}"
    except ValueError:
        return v


def describe(r):
    """What the pruned row's method was, with the settings that tell runs apart."""
    m = {k: num(v) for k, v in job_section(r.get("job_yaml", ""), "method").items()}
    name = r["method"]
    if name == "proxsparse":
        s = f"ProxSparse λ1={m.get('lambda1')} lr={m.get('lr')}"
        if m.get("epochs", "1") != "1":
            s += f" epochs={m['epochs']}"
        if m.get("trainable", "targets") != "targets":
            s += f" trainable={m['trainable']}"
        if float(m.get("lambda2", 0) or 0) != 0:
            s += f" λ2={m['lambda2']}"
        return s
    if name == "maskllm" and float(m.get("lr", 1)) < 1e-9:
        return f"{m.get('prior')} mask on the frozen weights (MaskLLM's prior, lr≈0)"
    if name == "maskllm":
        return (f"MaskLLM prior={m.get('prior')} α={m.get('prior_alpha')} lr={m.get('lr')} "
                f"τ={m.get('tau')} κ={m.get('kappa')}")
    if name == "sparsegpt":
        return "SparseGPT (weight update)"
    return {"wanda": "Wanda", "magnitude": "magnitude"}.get(name, name)


def steps_of(r):
    """Optimizer steps of the mask-learning run (ProxSparse, MaskLLM); None for one-shot."""
    training = r.get("training") or r.get("maskllm", {}).get("training") or {}
    return training.get("steps")


def ppl_of(evals):
    d = next(iter(evals.values()), {}) if evals else {}
    return d.get("perplexity", math.nan)


def load(root):
    rows, dense, samples = [], None, None
    for rep in sorted(pathlib.Path(root).glob("*/report.json")):
        r = json.loads(rep.read_text())
        name = rep.parent.name
        for text, d in r.get("dense", {}).items():
            dense = (text, d["perplexity"], d["windows"])
        samples = r.get("data", {}).get("calibration", {}).get("samples", samples)
        valid = r.get("validity", {}).get("valid")
        steps = steps_of(r)
        label = describe(r) + (f", {steps} steps" if steps else "")
        if not name.endswith("-mu"):
            rows.append((name, label, ppl_of(r.get("pruned")), valid, r.get("method_seconds", 0.0),
                         False))
        mu = r.get("masked_update")
        if mu:
            lr = num(job_section(r.get("job_yaml", ""), "masked_update").get("lr", "?"))
            rows.append((name if name.endswith("-mu") else name + " + masked update",
                         f"{label} + masked update ({mu.get('steps')} steps, lr {lr}; "
                         f"weights change)", ppl_of(mu.get("eval")), valid,
                         mu.get("seconds", 0.0), True))
    return rows, dense, samples


def best(prefix, root):
    rows, _, _ = load(root)
    cand = [(ppl, name) for name, _, ppl, _, _, masked_update in rows
            if name.startswith(prefix) and not math.isnan(ppl) and not masked_update]
    return min(cand)[1] if cand else ""


def main(root):
    rows, dense, samples = load(root)
    print("| run | method | perplexity | valid 2:4 | method time (s) |")
    print("| --- | --- | --- | --- | --- |")
    if dense:
        print(f"| dense | - | {dense[1]:.3f} | - | - |")
    for name, label, ppl, valid, secs, _ in sorted(rows, key=lambda x: (math.isnan(x[2]), x[2])):
        print(f"| {name} | {label} | {ppl:.3f} | {valid} | {secs:.1f} |")
    if dense:
        print(f"\nEvaluation: {dense[0]}, {dense[2]} windows. Calibration: {samples} samples "
              "for every method.")


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--best":
        print(best(sys.argv[2], sys.argv[3]))
    elif len(sys.argv) == 2:
        main(sys.argv[1])
    else:
        sys.exit(__doc__)
