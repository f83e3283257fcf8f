#!/usr/bin/env python3
"""Structural checks of the Grafana dashboards and provisioning files (Grafana itself is not
packaged for this OS, so nothing can render them here):
  * every dashboard parses, has a unique uid and title, and a schemaVersion;
  * panel ids are unique and panels lie on the 24-column grid without overlapping;
  * every query has a unique refId within its panel and uses the ${datasource} variable;
  * every $variable a query uses is defined (or is one of Grafana's built-ins);
  * the provisioning YAML files have the keys Grafana requires.
Exit status 0 when all hold, 1 with one line per problem otherwise.
"""
import json
import pathlib
import re
import sys

import yaml

root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else
                    pathlib.Path(__file__).resolve().parents[2])
BUILTIN_VARS = {"__rate_interval", "__interval", "__range", "__interval_ms", "__range_s"}
problems = []
uids, titles = set(), set()

for path in sorted((root / "deploy/grafana/dashboards").glob("*.json")):
    d = json.loads(path.read_text())
    name = path.name
    for key in ("uid", "title", "schemaVersion", "panels", "templating"):
        if key not in d:
            problems.append(f"{name}: missing {key}")
    if d.get("uid") in uids or d.get("title") in titles:
        problems.append(f"{name}: duplicate uid or title")
    uids.add(d.get("uid"))
    titles.add(d.get("title"))
    defined = {v["name"] for v in d.get("templating", {}).get("list", [])}
    ids, cells = set(), {}
    for p in d.get("panels", []):
        where = f"{name} / {p.get('title')}"
        if p.get("id") in ids:
            problems.append(f"{where}: duplicate panel id {p.get('id')}")
        ids.add(p.get("id"))
        g = p.get("gridPos", {})
        if not (0 <= g.get("x", -1) and g.get("w", 0) > 0 and g["x"] + g["w"] <= 24
                and g.get("h", 0) > 0 and g.get("y", -1) >= 0):
            problems.append(f"{where}: gridPos {g} off the 24-column grid")
            continue
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                if (x, y) in cells:
                    problems.append(f"{where}: overlaps {cells[(x, y)]}")
                    break
                cells[(x, y)] = p.get("title")
            else:
                continue
            break
        if p.get("type") == "row":
            continue
        refs = set()
        if not p.get("targets"):
            problems.append(f"{where}: no queries")
        for t in p.get("targets", []):
            if t.get("refId") in refs or not t.get("refId"):
                problems.append(f"{where}: missing or duplicate refId")
            refs.add(t.get("refId"))
            if t.get("datasource", {}).get("uid") != "${datasource}":
                problems.append(f"{where}: query does not use the ${{datasource}} variable")
            for var in re.findall(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)", t.get("expr", "")):
                if var not in defined and var not in BUILTIN_VARS:
                    problems.append(f"{where}: undefined variable ${var}")

prov = root / "deploy/grafana/provisioning"
dash = yaml.safe_load((prov / "dashboards/proxsparse.yaml").read_text())
if dash.get("apiVersion") != 1 or not all(
        p.get("type") == "file" and p.get("options", {}).get("path") for p in dash["providers"]):
    problems.append("provisioning/dashboards/proxsparse.yaml: needs apiVersion 1 and file providers")
ds = yaml.safe_load((prov / "datasources/prometheus.yaml").read_text())
if ds.get("apiVersion") != 1 or not all(
        d.get("type") == "prometheus" and d.get("url") for d in ds["datasources"]):
    problems.append("provisioning/datasources/prometheus.yaml: needs apiVersion 1, type, url")

for p in problems:
    print(p)
print(f"check-dashboards: {len(uids)} dashboards, {len(problems)} problem(s)")
sys.exit(1 if problems or not uids else 0)
