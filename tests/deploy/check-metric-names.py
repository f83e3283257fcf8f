#!/usr/bin/env python3
"""Checks that every metric the alert rules and Grafana dashboards use is one psd exports.

Sources of truth:
  * docs/metrics.md (the contract table), always;
  * a live psd /metrics page, with --live URL (or --live-file FILE for a saved page).
Used names come from the PromQL of every rule (deploy/prometheus/rules/*.yml) and every dashboard
panel target and template variable (deploy/grafana/dashboards/*.json). Names containing ':' must
be recording rules defined in the rule files; `up` is Prometheus's own. Label names in selectors
must be labels the metric has (plus the scrape's job/instance, and le for histogram buckets).
Exit status 0 when everything is known, 1 with one line per problem otherwise.
"""
import argparse
import json
import pathlib
import re
import sys
import urllib.request

import yaml

PROMQL_KEYWORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or",
    "unless", "offset", "inf", "nan", "atan2",
}
# Aggregations take a parameter list we must not read as metrics; functions are followed by '('.
GROUPING = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
IDENT = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")
SCRAPE_LABELS = {"job", "instance", "namespace", "pod", "service", "endpoint", "container"}
HIST_SUFFIXES = ("_bucket", "_sum", "_count")
BUILTIN = {"up"}


def load_contract(path):
    """docs/metrics.md table rows: | `name` | type | labels | meaning |"""
    metrics = {}
    for line in pathlib.Path(path).read_text().splitlines():
        m = re.match(r"\|\s*`([a-z_:][a-z0-9_:]*)`\s*\|\s*(\w+)\s*\|([^|]*)\|", line)
        if m:
            labels = set(re.findall(r"`([a-z_]+)`", m.group(3)))
            metrics[m.group(1)] = (m.group(2), labels)
    if not metrics:
        sys.exit(f"{path}: no metric table found")
    return metrics


def strip_promql(expr):
    """Returns (expr without strings, durations, label matchers and grouping lists,
    [(metric, matcher text)] for selectors with braces)."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`', '""', expr)
    selectors = [(m.group(1), m.group(2))
                 for m in re.finditer(r"([A-Za-z_:][A-Za-z0-9_:]*)\s*\{([^}]*)\}", expr)]
    expr = re.sub(r"\{[^}]*\}", " ", expr)
    expr = re.sub(r"\[[^\]]*\]", " ", expr)
    expr = GROUPING.sub(" ", expr)
    expr = re.sub(r"\$\{?[A-Za-z_][A-Za-z0-9_]*(:[a-z]+)?\}?", " 1 ", expr)  # Grafana variables
    return expr, selectors


def metric_names(expr):
    """Metric names in one PromQL expression."""
    body, selectors = strip_promql(expr)
    names = set()
    for m in IDENT.finditer(body):
        word = m.group(0)
        after = body[m.end():].lstrip()
        before = body[:m.start()].rstrip()
        if after.startswith("("):      # function or aggregation
            continue
        if word.lower() in PROMQL_KEYWORDS:
            continue
        if before and (before[-1].isdigit() or before[-1] == "."):  # 15m, 1e3, 0.5
            continue
        if re.fullmatch(r"\d.*", word):
            continue
        names.add(word)
    for name, _ in selectors:
        if name.lower() not in PROMQL_KEYWORDS:
            names.add(name)
    return names, selectors


def grafana_queries(dashboard):
    """(where, PromQL) for every panel target and query variable of a dashboard."""
    title = dashboard.get("title", "?")
    panels = list(dashboard.get("panels", []))
    while panels:
        p = panels.pop()
        panels.extend(p.get("panels", []))
        for t in p.get("targets", []):
            if t.get("expr"):
                yield f"{title} / {p.get('title', '?')}", t["expr"]
    for v in dashboard.get("templating", {}).get("list", []):
        q = v.get("query")
        if isinstance(q, dict):
            q = q.get("query")
        if v.get("type") != "query" or not q:
            continue
        m = re.fullmatch(r"\s*label_values\(\s*(.*?)\s*,\s*[a-z_]+\s*\)\s*", q)
        yield f"{title} / ${v.get('name')}", m.group(1) if m else q


def rule_queries(path):
    doc = yaml.safe_load(pathlib.Path(path).read_text())
    for group in doc.get("groups", []):
        for rule in group.get("rules", []):
            yield f"{path.name} / {rule.get('alert') or rule.get('record')}", rule["expr"], \
                rule.get("record")


def live_names(text):
    """(declared family names, names with samples) on a /metrics page."""
    declared, sampled = set(), set()
    for line in text.splitlines():
        if line.startswith("# TYPE ") or line.startswith("# HELP "):
            declared.add(line.split()[2])
        elif line and not line.startswith("#"):
            name = re.match(r"[A-Za-z_:][A-Za-z0-9_:]*", line).group(0)
            sampled.add(name)
            for suffix in HIST_SUFFIXES:
                if name.endswith(suffix):
                    sampled.add(name[:-len(suffix)])
    return declared | sampled, sampled


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", default=pathlib.Path(__file__).resolve().parents[2], type=pathlib.Path)
    ap.add_argument("--rules", nargs="*", type=pathlib.Path)
    ap.add_argument("--dashboards", nargs="*", type=pathlib.Path)
    ap.add_argument("--live", help="URL of a running psd's /metrics")
    ap.add_argument("--live-file", type=pathlib.Path, nargs="*", default=[],
                    help="saved /metrics pages (their union is the live set)")
    ap.add_argument("--require-samples", action="store_true",
                    help="live: every used metric must have samples, not just a TYPE line "
                         "(a job in flight)")
    ap.add_argument("--optional", nargs="*", default=[],
                    help="live: metrics that may lack samples (e.g. NVML ones on CPU jobs)")
    args = ap.parse_args()
    root = args.root
    rules = args.rules if args.rules is not None else \
        sorted((root / "deploy/prometheus/rules").glob("*.yml"))
    dashboards = args.dashboards if args.dashboards is not None else \
        sorted((root / "deploy/grafana/dashboards").glob("*.json"))
    contract = load_contract(root / "docs/metrics.md")

    queries, recorded = [], set()
    for path in rules:
        for where, expr, record in rule_queries(path):
            queries.append((where, expr))
            if record:
                recorded.add(record)
    for path in dashboards:
        queries.extend(grafana_queries(json.loads(path.read_text())))

    live, sampled = None, set()
    pages = [f.read_text() for f in args.live_file]
    if args.live:
        with urllib.request.urlopen(args.live, timeout=10) as r:
            pages.append(r.read().decode())
    if pages:
        live = set()
        for page in pages:
            names, with_samples = live_names(page)
            live |= names
            sampled |= with_samples

    problems, used = [], set()
    for where, expr in queries:
        names, selectors = metric_names(expr)
        for name in sorted(names):
            base = name
            if name not in contract:
                for suffix in HIST_SUFFIXES:
                    if name.endswith(suffix) and contract.get(name[:-len(suffix)], ("",))[0] \
                            == "histogram":
                        base = name[:-len(suffix)]
            if ":" in name:
                if name not in recorded:
                    problems.append(f"{where}: recording rule {name} is not defined")
                continue
            if name in BUILTIN:
                continue
            if base not in contract:
                problems.append(f"{where}: {name} is not in docs/metrics.md")
                continue
            used.add(base)
            if live is not None and base not in live and name not in live:
                problems.append(f"{where}: {name} is not exported by the live psd")
            elif live is not None and args.require_samples and base not in sampled \
                    and base not in args.optional:
                problems.append(f"{where}: {name} has no samples on the live psd")
        for name, matchers in selectors:
            if name not in contract:
                continue
            allowed = contract[name][1] | SCRAPE_LABELS | {"le"}
            for label in re.findall(r"([A-Za-z_][A-Za-z0-9_]*)\s*(?:=~|!~|!=|=)", matchers):
                if label not in allowed:
                    problems.append(f"{where}: {name} has no label {label}")
    # Every alert's runbook annotation must point at a heading of docs/operations.md.
    anchors = {re.sub(r"[^a-z0-9 -]", "", h.strip().lower()).replace(" ", "-")
               for h in re.findall(r"^#+ (.*)$", (root / "docs/operations.md").read_text(), re.M)}
    for path in rules:
        doc = yaml.safe_load(pathlib.Path(path).read_text())
        for group in doc.get("groups", []):
            for rule in group.get("rules", []):
                runbook = rule.get("annotations", {}).get("runbook")
                if runbook and runbook.split("#")[-1] not in anchors:
                    problems.append(f"{path.name} / {rule['alert']}: runbook {runbook} has no "
                                    "heading in docs/operations.md")
    for p in problems:
        print(p)
    print(f"check-metric-names: {len(queries)} queries, {len(used)} distinct metrics, "
          f"{len(problems)} problem(s)" + ("" if live is None else ", checked against live psd"))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
