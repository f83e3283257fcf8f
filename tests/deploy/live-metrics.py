#!/usr/bin/python3
"""The dashboard/rule metric-name check against a running psd with a job in flight.

Starts psd on loopback (ports chosen by psd, read back from --ready-file) with the local launcher
and a temporary data directory, submits a short job with psctl, saves /metrics pages while the job
runs, then checks: `promtool check metrics` accepts a page taken mid-job, and every metric the
alert rules and dashboards use is exported with samples (check-metric-names.py --require-samples;
the NVML GPU metrics may lack samples on a CPU-only machine). psd and its workers are stopped at
the end whatever happens.

Usage: live-metrics.py PSD PSCTL WORKER SHARED_DATA
  WORKER  the worker program psd launches (psworker, or the service tests' fake_worker, which
          reports progress through the same client library; the job's name tells it how to run)
Exit 77 (ctest: skipped) when SHARED_DATA has no default model to validate the job against.
"""
import json
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parents[1]
GPU_METRICS = ["proxsparse_worker_gpu_memory_bytes", "proxsparse_worker_gpu_utilization_ratio"]
JOB = """\
name: step_s=0.5
model: {data}/codelm-19m
pattern: "2:4"
device: cpu
method:
  name: proxsparse
  lambda1: 1.0
calibration:
  path: {data}/code-calib.jsonl.gz
  samples: 8
  seqlen: 64
checkpoint:
  every_steps: 4
resources:
  ranks: 1
  gpus_per_rank: 0
  cpus_per_rank: 1
  memory_gb: 1
  time_limit_minutes: 5
"""


def fetch(url):
    with urllib.request.urlopen(url, timeout=5) as r:
        return r.read().decode()


def main():
    psd, psctl, worker, data = sys.argv[1:5]
    data = pathlib.Path(data).resolve()
    if not (data / "codelm-19m").is_dir():
        print(f"live-metrics: {data}/codelm-19m not found: skipped")
        return 77
    work = pathlib.Path(tempfile.mkdtemp(prefix="ps-live-metrics-"))
    (work / "job.yaml").write_text(JOB.format(data=data))
    ready = work / "ready.json"
    log = open(work / "psd.log", "w")
    proc = subprocess.Popen(
        [psd, "--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0",
         "--data-dir", str(work / "data"), "--launcher", "local", "--worker-bin", worker,
         "--ready-file", str(ready), "--allowed-roots", str(pathlib.Path(data).resolve())],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        for _ in range(200):
            if ready.exists() or proc.poll() is not None:
                break
            time.sleep(0.1)
        if not ready.exists():
            print("live-metrics: psd did not come up:\n" + (work / "psd.log").read_text())
            return 1
        addrs = json.loads(ready.read_text())
        url = f"http://{addrs['metrics']}/metrics"
        sub = subprocess.run([psctl, "--server", addrs["grpc"], "submit", str(work / "job.yaml")],
                             capture_output=True, text=True, timeout=60)
        if sub.returncode:
            print(f"live-metrics: psctl submit failed:\n{sub.stdout}{sub.stderr}")
            return 1
        print(f"live-metrics: submitted {sub.stdout.strip()}; scraping {url}")
        pages, in_flight, deadline = [], 0, time.time() + 120
        while time.time() < deadline and in_flight < 8:
            page = fetch(url)
            if "proxsparse_job_step{" in page and "proxsparse_job_checkpoint_age_seconds{" in page:
                in_flight += 1
                path = work / f"metrics-{len(pages)}.prom"
                path.write_text(page)
                pages.append(path)
            time.sleep(0.5)
        if not pages:
            print("live-metrics: no page showed a job in flight within 120 s; psd log:\n" +
                  (work / "psd.log").read_text()[-4000:])
            return 1
        check = subprocess.run(["promtool", "check", "metrics"], input=pages[0].read_text(),
                               capture_output=True, text=True)
        print(f"live-metrics: promtool check metrics: {'ok' if check.returncode == 0 else 'FAILED'}")
        print(check.stdout + check.stderr, end="")
        names = subprocess.run(
            [sys.executable, str(HERE / "check-metric-names.py"), "--root", str(ROOT),
             "--require-samples", "--optional", *GPU_METRICS, "--live-file",
             *map(str, pages)], capture_output=True, text=True)
        print(names.stdout + names.stderr, end="")
        failed = check.returncode or names.returncode
        if not failed:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"live-metrics: pages and psd log kept in {work}")
        return 1 if failed else 0
    finally:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=10)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()


if __name__ == "__main__":
    sys.exit(main())
