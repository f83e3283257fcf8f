#!/usr/bin/env python3
"""Generates the provisioned Grafana dashboards (deploy/grafana/dashboards/*.json).

The JSON files are committed (Grafana reads them as they are); this script is their source so the
three dashboards share one layout vocabulary. After editing it run
    python3 deploy/grafana/generate-dashboards.py
and commit both; tests/deploy checks that the committed JSON equals the script's output, and that
every metric the queries use is in docs/metrics.md. Every query selects the Prometheus data source
through the ${datasource} variable so the dashboards work with any provisioned Prometheus.
"""
import json
import pathlib
import sys

DS = {"type": "prometheus", "uid": "${datasource}"}
OUT = pathlib.Path(__file__).resolve().parent / "dashboards"


class Layout:
    """Places panels left to right on Grafana's 24-column grid, wrapping to new rows."""

    def __init__(self):
        self.x, self.y, self.row_h, self.next_id = 0, 0, 0, 1

    def place(self, w, h):
        if self.x + w > 24:
            self.x, self.y, self.row_h = 0, self.y + self.row_h, 0
        pos = {"x": self.x, "y": self.y, "w": w, "h": h}
        self.x += w
        self.row_h = max(self.row_h, h)
        pid, self.next_id = self.next_id, self.next_id + 1
        return pid, pos

    def row(self, title):
        if self.x:
            self.x, self.y, self.row_h = 0, self.y + self.row_h, 0
        pid, self.next_id = self.next_id, self.next_id + 1
        panel = {"id": pid, "type": "row", "title": title, "collapsed": False, "panels": [],
                 "gridPos": {"x": 0, "y": self.y, "w": 24, "h": 1}}
        self.y += 1
        return panel


def target(expr, legend="", ref="A", instant=False, fmt="time_series"):
    t = {"datasource": DS, "expr": expr, "legendFormat": legend, "refId": ref, "format": fmt}
    if instant:
        t.update({"instant": True, "range": False})
    return t


def timeseries(lay, title, targets, unit="short", w=12, h=8, stack=False, desc="", minmax=None,
               thresholds=None):
    pid, pos = lay.place(w, h)
    custom = {"drawStyle": "line", "lineWidth": 1, "fillOpacity": 10, "showPoints": "never",
              "spanNulls": False, "stacking": {"mode": "normal" if stack else "none",
                                               "group": "A"}}
    if thresholds:
        custom["thresholdsStyle"] = {"mode": "line"}
    defaults = {"unit": unit, "custom": custom,
                "thresholds": {"mode": "absolute", "steps": [{"color": "green", "value": None}] +
                               [{"color": "red", "value": v} for v in (thresholds or [])]}}
    if minmax:
        defaults["min"], defaults["max"] = minmax
    return {"id": pid, "type": "timeseries", "title": title, "description": desc,
            "datasource": DS, "gridPos": pos, "targets": targets,
            "fieldConfig": {"defaults": defaults, "overrides": []},
            "options": {"legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
                        "tooltip": {"mode": "multi", "sort": "desc"}}}


def stat(lay, title, expr, unit="short", w=4, h=4, legend="", desc="", steps=None,
         mappings=None):
    pid, pos = lay.place(w, h)
    steps = steps or [("green", None)]
    return {"id": pid, "type": "stat", "title": title, "description": desc, "datasource": DS,
            "gridPos": pos, "targets": [target(expr, legend, instant=True)],
            "fieldConfig": {"defaults": {
                "unit": unit, "mappings": mappings or [],
                "thresholds": {"mode": "absolute",
                               "steps": [{"color": c, "value": v} for c, v in steps]}},
                "overrides": []},
            "options": {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                        "colorMode": "background", "graphMode": "none", "textMode": "auto",
                        "justifyMode": "auto", "orientation": "auto"}}


def table(lay, title, targets, w=24, h=8, desc="", rename=None, units=None):
    pid, pos = lay.place(w, h)
    overrides = [{"matcher": {"id": "byName", "options": name},
                  "properties": [{"id": "unit", "value": unit}]}
                 for name, unit in (units or {}).items()]
    return {"id": pid, "type": "table", "title": title, "description": desc, "datasource": DS,
            "gridPos": pos, "targets": targets,
            "fieldConfig": {"defaults": {}, "overrides": overrides},
            "options": {"showHeader": True, "footer": {"show": False}},
            "transformations": [
                {"id": "merge", "options": {}},
                {"id": "organize", "options": {
                    "excludeByName": {"Time": True, "__name__": True, "job": True,
                                      "instance": True},
                    "renameByName": rename or {}}}]}


def variables(job_var=None):
    out = [{"name": "datasource", "label": "Data source", "type": "datasource",
            "query": "prometheus", "current": {}, "hide": 0, "refresh": 1, "regex": "",
            "options": []}]
    if job_var:
        multi = job_var == "multi"
        out.append({"name": "job_id", "label": "Job", "type": "query", "datasource": DS,
                    "definition": "label_values(proxsparse_job_step, job_id)",
                    "query": {"query": "label_values(proxsparse_job_step, job_id)",
                              "refId": "job_id"},
                    "refresh": 2, "sort": 1, "multi": multi, "includeAll": multi,
                    "current": {}, "hide": 0, "regex": "", "options": []})
    return out


def dashboard(uid, title, desc, panels, tags, job_var=None, links=True):
    return {
        "uid": uid, "title": title, "description": desc, "tags": ["proxsparse"] + tags,
        "schemaVersion": 39, "version": 1, "editable": True, "graphTooltip": 1,
        "time": {"from": "now-6h", "to": "now"}, "refresh": "30s", "timezone": "",
        "templating": {"list": variables(job_var)},
        "annotations": {"list": [{
            "builtIn": 1, "datasource": {"type": "grafana", "uid": "-- Grafana --"},
            "enable": True, "hide": True, "iconColor": "rgba(0, 211, 255, 1)",
            "name": "Annotations & Alerts", "type": "dashboard"}]},
        "links": [{"type": "dashboards", "tags": ["proxsparse"], "asDropdown": False,
                   "title": "ProxSparse", "includeVars": False, "keepTime": True}]
        if links else [],
        "panels": panels,
    }


def fleet():
    lay, p = Layout(), []
    p.append(lay.row("Coordinator"))
    p.append(stat(lay, "Coordinator", 'up{job="proxsparse"}',
                  steps=[("red", None), ("green", 1)],
                  mappings=[{"type": "value", "options": {
                      "0": {"text": "DOWN"}, "1": {"text": "UP"}}}],
                  desc="Prometheus reaches psd's /metrics."))
    p.append(stat(lay, "Running", 'proxsparse_jobs{state="RUNNING"}'))
    p.append(stat(lay, "Queued", "proxsparse_queue_length",
                  steps=[("green", None), ("yellow", 1)]))
    p.append(stat(lay, "Failed (total)", 'proxsparse_jobs{state="FAILED"}',
                  steps=[("green", None), ("red", 1)]))
    p.append(stat(lay, "Fleet throughput", "proxsparse:tokens_per_second:sum", unit="tokens/s"))
    p.append(stat(lay, "Failed attempts (24h)", "increase(proxsparse_job_failures_total[24h])",
                  steps=[("green", None), ("yellow", 1)], desc="Attempts that ended in failure,"
                  " retried or not."))
    p.append(lay.row("Jobs"))
    p.append(timeseries(lay, "Jobs by state", [target("proxsparse_jobs", "{{state}}")],
                        desc="Jobs in each state of the store (finished ones included)."))
    p.append(timeseries(lay, "Queue length", [target("proxsparse_queue_length", "queued")],
                        desc="Jobs waiting for a free slot (--max-concurrent-jobs) or resources."))
    p.append(timeseries(lay, "Throughput by job",
                        [target("proxsparse_job_tokens_per_second", "{{job_id}} {{method}}")],
                        unit="tokens/s", stack=True))
    p.append(timeseries(lay, "Progress by job",
                        [target("proxsparse:job_progress_ratio", "{{job_id}} {{method}}")],
                        unit="percentunit", minmax=(0, 1)))
    p.append(table(lay, "Running jobs", [
        target("proxsparse_job_step", ref="A", instant=True, fmt="table"),
        target("proxsparse_job_total_steps", ref="B", instant=True, fmt="table"),
        target("proxsparse_job_loss", ref="C", instant=True, fmt="table"),
        target("proxsparse_job_eta_seconds", ref="D", instant=True, fmt="table"),
        target("proxsparse_job_attempts", ref="E", instant=True, fmt="table")],
        rename={"Value #A": "step", "Value #B": "total steps", "Value #C": "loss",
                "Value #D": "ETA", "Value #E": "attempts"},
        units={"ETA": "s"}, desc="One row per job that reports progress."))
    p.append(lay.row("API"))
    p.append(timeseries(lay, "gRPC requests",
                        [target("sum by (method, code) "
                                "(rate(proxsparse_grpc_requests_total[$__rate_interval]))",
                                "{{method}} {{code}}")], unit="reqps"))
    p.append(timeseries(lay, "gRPC latency p99",
                        [target("histogram_quantile(0.99, sum by (le, method) "
                                "(rate(proxsparse_grpc_request_duration_seconds_bucket"
                                "[$__rate_interval])))", "{{method}}")], unit="s"))
    p.append(table(lay, "Build", [target("proxsparse_build_info", ref="A", instant=True,
                                         fmt="table")], h=4, rename={"Value": "up"}))
    return dashboard("proxsparse-fleet", "ProxSparse / Fleet overview",
                     "Coordinator health, jobs by state, queue, fleet throughput, API traffic.",
                     p, ["fleet"])


def job():
    lay, p, j = Layout(), [], '{job_id="$job_id"}'
    p.append(lay.row("Status"))
    p.append(stat(lay, "Step", f"proxsparse_job_step{j}", w=3))
    p.append(stat(lay, "Planned steps", f"proxsparse_job_total_steps{j}", w=3))
    p.append(stat(lay, "Progress", f"proxsparse:job_progress_ratio{j}", unit="percentunit", w=3))
    p.append(stat(lay, "ETA", f"proxsparse_job_eta_seconds{j}", unit="s", w=3))
    p.append(stat(lay, "Tokens/s", f"proxsparse_job_tokens_per_second{j}", unit="short", w=3))
    p.append(stat(lay, "Attempts", f"proxsparse_job_attempts{j}", w=3,
                  steps=[("green", None), ("yellow", 2)]))
    p.append(stat(lay, "Checkpoint age", f"proxsparse_job_checkpoint_age_seconds{j}", unit="s",
                  w=3, steps=[("green", None), ("yellow", 1800), ("red", 3600)]))
    p.append(stat(lay, "Heartbeat age", f"proxsparse_job_heartbeat_age_seconds{j}", unit="s",
                  w=3, steps=[("green", None), ("yellow", 30), ("red", 120)]))
    p.append(lay.row("Training"))
    p.append(timeseries(lay, "Loss", [target(f"proxsparse_job_loss{j}", "loss")]))
    p.append(timeseries(
        lay, "Group sparsity (paper Figure 1)",
        [target(f"proxsparse_job_nm_sparse_ratio{j}", "N:M sparse (2:4)", "A"),
         target(f"proxsparse_job_three_sparse_ratio{j}", "3-sparse", "B"),
         target(f"proxsparse_job_dense_ratio{j}", "dense", "C")],
        unit="percentunit", minmax=(0, 1),
        desc="Fraction of groups of M weights with N non-zeros, with 3 non-zeros, and dense, "
             "as the prox drives the model to 2:4 (the paper's Figure 1 plots these against the "
             "step; here the x axis is time: hover for the step in the Step panel)."))
    p.append(timeseries(lay, "Mask flips", [target(f"proxsparse_job_mask_flips{j}", "flips")],
                        desc="Top-N mask changes since the previous report: falls to ~0 as the "
                             "mask settles."))
    p.append(timeseries(lay, "Learning rate",
                        [target(f"proxsparse_job_learning_rate{j}", "lr")], unit="short",
                        desc="Linear warmup (10%) then linear decay."))
    p.append(timeseries(lay, "Throughput", [target(f"proxsparse_job_tokens_per_second{j}",
                                                   "tokens/s")], unit="short"))
    p.append(timeseries(lay, "ETA", [target(f"proxsparse_job_eta_seconds{j}", "ETA")], unit="s"))
    p.append(timeseries(lay, "Checkpoint age",
                        [target(f"proxsparse_job_checkpoint_age_seconds{j}", "age")], unit="s",
                        thresholds=[3600],
                        desc="Saw-tooth: each drop to zero is a completed checkpoint. The red "
                             "line is the ProxSparseCheckpointTooOld threshold."))
    p.append(timeseries(lay, "Step time split",
                        [target(f"proxsparse_job_step_phase_seconds{j}", "{{phase}}")],
                        unit="s", stack=True))
    return dashboard("proxsparse-job", "ProxSparse / Job", "One training job: loss, group "
                     "sparsity ratios, mask flips, throughput, ETA, checkpoints.", p, ["job"],
                     job_var="single")


def workers():
    lay, p, j = Layout(), [], '{job_id=~"$job_id"}'
    p.append(lay.row("Step time"))
    p.append(timeseries(lay, "Step time split", [
        target(f"proxsparse_job_step_phase_seconds{j}", "{{job_id}} {{phase}}")],
        unit="s", stack=True, desc="forward_backward, communication (reduce-scatter, "
        "all-gather), optimizer (AdamW on owned layers), prox (EnumALM)."))
    p.append(timeseries(lay, "Step time", [
        target(f"proxsparse:job_step_seconds{j}", "{{job_id}}")], unit="s"))
    p.append(timeseries(lay, "Communication share", [
        target(f'proxsparse_job_step_phase_seconds{{job_id=~"$job_id", phase="communication"}}'
               f" / ignoring (phase) proxsparse:job_step_seconds{j}", "{{job_id}}")],
        unit="percentunit", minmax=(0, 1),
        desc="Fraction of the step spent in collectives: high values mean the interconnect, "
             "not the GPUs, sets the pace."))
    p.append(timeseries(lay, "Heartbeat age", [
        target(f"proxsparse_job_heartbeat_age_seconds{j}", "{{job_id}}")], unit="s",
        thresholds=[120], desc="Seconds since rank 0's last heartbeat. The red line is the "
        "ProxSparseHeartbeatStale threshold."))
    p.append(lay.row("GPUs (NVML, reported by the workers)"))
    p.append(timeseries(lay, "GPU memory in use", [
        target(f"proxsparse_worker_gpu_memory_bytes{j}", "{{job_id}} rank {{rank}}")],
        unit="bytes"))
    p.append(timeseries(lay, "GPU utilisation", [
        target(f"proxsparse_worker_gpu_utilization_ratio{j}", "{{job_id}} rank {{rank}}")],
        unit="percentunit", minmax=(0, 1)))
    p.append(table(lay, "Ranks now", [
        target(f"proxsparse_worker_gpu_memory_bytes{j}", ref="A", instant=True, fmt="table"),
        target(f"proxsparse_worker_gpu_utilization_ratio{j}", ref="B", instant=True,
               fmt="table")],
        rename={"Value #A": "GPU memory", "Value #B": "GPU utilisation"},
        units={"GPU memory": "bytes", "GPU utilisation": "percentunit"}))
    return dashboard("proxsparse-workers", "ProxSparse / Workers", "Step time split, GPU memory "
                     "and utilisation per rank, heartbeat age.", p, ["workers"], job_var="multi")


def render():
    return {"fleet.json": fleet(), "job.json": job(), "workers.json": workers()}


def main():
    check = "--check" in sys.argv[1:]
    stale = []
    for name, dash in render().items():
        text = json.dumps(dash, indent=2, sort_keys=False) + "\n"
        path = OUT / name
        if check:
            if not path.exists() or path.read_text() != text:
                stale.append(str(path))
        else:
            path.write_text(text)
    if stale:
        print("stale (run deploy/grafana/generate-dashboards.py):", *stale)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
