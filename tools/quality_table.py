#!/usr/bin/env python3
"""Prints the quality table (markdown) from the report.json files under a quality-table run."""
import json
import pathlib
import sys


def main(root):
    rows = []
    dense = None
    for rep in sorted(pathlib.Path(root).glob("*/report.json")):
        r = json.loads(rep.read_text())
        name = rep.parent.name
        for text, d in r.get("dense", {}).items():
            dense = (text, d["perplexity"], d["windows"])
        pr = next(iter(r.get("pruned", {}).values()), {})
        t = r.get("training", {})
        rows.append((name, r["method"], pr.get("perplexity", float("nan")),
                     r.get("validity", {}).get("valid"), r.get("method_seconds", 0.0),
                     t.get("final_loss", "")))
    print("| run | method | perplexity | valid 2:4 | method time (s) | final train loss |")
    print("| --- | --- | --- | --- | --- | --- |")
    if dense:
        print(f"| dense | - | {dense[1]:.3f} | - | - | - |")
    for name, method, ppl, valid, secs, loss in sorted(rows, key=lambda x: x[2]):
        loss = f"{loss:.4f}" if isinstance(loss, float) else ""
        print(f"| {name} | {method} | {ppl:.3f} | {valid} | {secs:.1f} | {loss} |")
    if dense:
        print(f"\nEvaluation: {dense[0]}, {dense[2]} windows.")


if __name__ == "__main__":
    main(sys.argv[1])
