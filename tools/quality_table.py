#!/usr/bin/env python3
"""Prints the quality table (markdown) from the report.json files under a quality-table run.

  quality_table.py OUT_DIR                 the table, best perplexity first
  quality_table.py --best PREFIX OUT_DIR   the name of the finished run starting with PREFIX
                                           whose pruned model has the lowest perplexity
  quality_table.py --check OUT_DIR         exits 1 unless every report passed the on-disk check

One job gives up to three rows, each on the same evaluation windows: the method's mask (report
"pruned"), then, when the job ran them, "+ OBS reconstruction" (reconstruct: obs) or
"+ least-squares reconstruction" (reconstruct: lsq) and
"+ masked update" (masked_update.steps > 0; after the reconstruction when both ran). The "kept
weights" column says which rows keep the original weights (W0 ⊙ mask, bit for bit) and which
change them (SparseGPT's own update, the reconstruction, the masked update). A run named "*-rec"
or "*-mu" is a rerun of another row's setting and shows only its reconstruction / update rows.
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
        return "SparseGPT"
    return {"wanda": "Wanda", "magnitude": "magnitude"}.get(name, name)


def steps_of(r):
    """Optimizer steps of the mask-learning run (ProxSparse, MaskLLM); None for one-shot."""
    training = r.get("training") or r.get("maskllm", {}).get("training") or {}
    return training.get("steps")


def ppl_of(evals):
    d = next(iter(evals.values()), {}) if evals else {}
    return d.get("perplexity", math.nan)


# Row: (run, label, perplexity, kept weights, valid, seconds, stage)
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
        own = "changed (SparseGPT update)" if r["method"] == "sparsegpt" else "original"
        # The on-disk check is of the published model: the job's last stage.
        final = r.get("final", {}).get("stage") or (
            "masked_update" if r.get("masked_update") else "pruned")
        checked = {stage: (valid if stage == final else "not published")
                   for stage in ("pruned", "reconstruction", "masked_update")}
        rerun = name.endswith("-mu") or name.endswith("-rec")
        if not rerun:
            rows.append((name, label, ppl_of(r.get("pruned")), own, checked["pruned"],
                         r.get("method_seconds", 0.0), "pruned"))
            for base, ev in (r.get("baselines") or {}).items():
                rows.append((f"{name} baseline {base}", f"{describe({'method': base})} (baseline "
                             "in the same job)", ppl_of(ev), "original", "not published",
                             r.get("baseline_method_seconds", {}).get(base, 0.0), "baseline"))
        rec = r.get("reconstruction")
        if rec:
            how = {"lsq": "least-squares reconstruction"}.get(rec.get("method"),
                                                              "OBS reconstruction")
            if r["method"] == "sparsegpt":  # its mask, re-solved from W0 (its update replaced)
                label = "SparseGPT's mask"
            label += " + " + how
            rows.append((name + " + rec" if not rerun else name, label, ppl_of(rec.get("eval")),
                         "changed (reconstruction)", checked["reconstruction"],
                         rec.get("seconds", 0.0),
                         "reconstruction"))
        mu = r.get("masked_update")
        if mu:
            lr = num(job_section(r.get("job_yaml", ""), "masked_update").get("lr", "?"))
            rows.append((name + " + mu" if not rerun else name + " (mu)",
                         f"{label} + masked update ({mu.get('steps')} steps, lr {lr})",
                         ppl_of(mu.get("eval")),
                         "changed (" + ("reconstruction, " if rec else
                                        "SparseGPT update, " if r["method"] == "sparsegpt" else
                                        "") + "masked update)",
                         checked["masked_update"], mu.get("seconds", 0.0), "masked_update"))
    return rows, dense, samples


def best(prefix, root):
    rows, _, _ = load(root)
    cand = [(row[2], row[0]) for row in rows
            if row[0].startswith(prefix) and not math.isnan(row[2]) and row[6] == "pruned"]
    return min(cand)[1] if cand else ""


def check(root):
    bad = []
    reports = sorted(pathlib.Path(root).glob("*/report.json"))
    for rep in reports:
        v = json.loads(rep.read_text()).get("validity", {})
        if not v.get("valid"):
            bad.append(rep.parent.name)
    for name in bad:
        print(f"on-disk check FAILED: {name}", file=sys.stderr)
    print(f"on-disk check: {len(reports) - len(bad)} of {len(reports)} published models pass "
          "(<= N of M, masks file = the method's mask, zero outside it, frozen-weight rows "
          "bit-identical)")
    return 1 if bad or not reports else 0


def main(root):
    rows, dense, samples = load(root)
    print("| run | method | perplexity | kept weights | published model valid on disk | time (s) |")
    print("| --- | --- | --- | --- | --- | --- |")
    if dense:
        print(f"| dense | - | {dense[1]:.3f} | original | - | - |")
    for name, label, ppl, kept, valid, secs, _ in sorted(
            rows, key=lambda x: (math.isnan(x[2]), x[2])):
        print(f"| {name} | {label} | {ppl:.3f} | {kept} | {valid} | {secs:.1f} |")
    if dense:
        print(f"\nEvaluation: {dense[0]}, {dense[2]} windows. Calibration: {samples} samples "
              "for every method. Time: the method's, or the reconstruction's / masked update's "
              "for those rows.")


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--best":
        print(best(sys.argv[2], sys.argv[3]))
    elif len(sys.argv) == 3 and sys.argv[1] == "--check":
        sys.exit(check(sys.argv[2]))
    elif len(sys.argv) == 2:
        main(sys.argv[1])
    else:
        sys.exit(__doc__)
