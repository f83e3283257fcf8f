#!/usr/bin/env python3
"""A loopback stand-in for the Kubernetes API server's *discovery* endpoints, so that
`kubectl create --dry-run=client` can map kinds to resources with no cluster (there is none here).

It answers /api, /api/v1, /apis and /apis/GROUP/VERSION with the resources the ProxSparse
manifests use (built-in kinds as Kubernetes 1.28 serves them, plus the MPI Operator's MPIJob and
the Prometheus Operator's ServiceMonitor and PrometheusRule) and 404 for everything else — in
particular for any write, so nothing can pretend to be created. It serves no OpenAPI document:
schema validation is done separately (tests/deploy/validate-k8s-schemas.mjs).

Usage: fake-apiserver.py PORT_FILE   (binds 127.0.0.1 on a free port, writes it to PORT_FILE,
serves until killed or for at most --lifetime seconds).
"""
import argparse
import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# group/version -> [(resource, kind, namespaced)]
RESOURCES = {
    "v1": [("configmaps", "ConfigMap", True), ("secrets", "Secret", True),
           ("services", "Service", True), ("serviceaccounts", "ServiceAccount", True),
           ("persistentvolumeclaims", "PersistentVolumeClaim", True), ("pods", "Pod", True),
           ("namespaces", "Namespace", False), ("events", "Event", True)],
    "apps/v1": [("statefulsets", "StatefulSet", True), ("deployments", "Deployment", True)],
    "batch/v1": [("jobs", "Job", True)],
    "rbac.authorization.k8s.io/v1": [("roles", "Role", True), ("rolebindings", "RoleBinding", True)],
    "networking.k8s.io/v1": [("networkpolicies", "NetworkPolicy", True)],
    "policy/v1": [("poddisruptionbudgets", "PodDisruptionBudget", True)],
    "kubeflow.org/v2beta1": [("mpijobs", "MPIJob", True)],
    "monitoring.coreos.com/v1": [("servicemonitors", "ServiceMonitor", True),
                                 ("prometheusrules", "PrometheusRule", True)],
}
VERBS = ["create", "delete", "get", "list", "patch", "update", "watch"]


def resource_list(gv):
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv,
            "resources": [{"name": r, "singularName": k.lower(), "namespaced": ns, "kind": k,
                           "verbs": VERBS} for r, k, ns in RESOURCES[gv]]}


def group_list():
    groups = {}
    for gv in RESOURCES:
        if "/" in gv:
            g, v = gv.split("/")
            groups.setdefault(g, []).append({"groupVersion": gv, "version": v})
    return {"kind": "APIGroupList", "apiVersion": "v1",
            "groups": [{"name": g, "versions": vs, "preferredVersion": vs[0]}
                       for g, vs in sorted(groups.items())]}


class Handler(BaseHTTPRequestHandler):
    def reply(self, code, body):
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        path = self.path.split("?")[0].rstrip("/")
        if path == "/api":
            return self.reply(200, {"kind": "APIVersions", "versions": ["v1"],
                                    "serverAddressByClientCIDRs": []})
        if path == "/api/v1":
            return self.reply(200, resource_list("v1"))
        if path == "/apis":
            return self.reply(200, group_list())
        if path.startswith("/apis/") and path[6:] in RESOURCES:
            return self.reply(200, resource_list(path[6:]))
        if path == "/version":
            return self.reply(200, {"major": "1", "minor": "28", "gitVersion": "v1.28.0"})
        self.reply(404, {"kind": "Status", "apiVersion": "v1", "status": "Failure",
                         "reason": "NotFound", "code": 404,
                         "message": f"fake-apiserver serves discovery only, not {path}"})

    def do_POST(self):  # a real create must never succeed here
        self.reply(405, {"kind": "Status", "status": "Failure", "code": 405,
                         "message": "fake-apiserver: writes are refused"})

    do_PUT = do_PATCH = do_DELETE = do_POST

    def log_message(self, fmt, *args):
        if self.server.verbose:
            sys.stderr.write("fake-apiserver: " + fmt % args + "\n")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("port_file")
    ap.add_argument("--lifetime", type=float, default=120)
    ap.add_argument("--verbose", action="store_true")
    args = ap.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.verbose = args.verbose
    threading.Timer(args.lifetime, server.shutdown).start()
    with open(args.port_file + ".tmp", "w") as f:
        f.write(str(server.server_address[1]))
    import os
    os.replace(args.port_file + ".tmp", args.port_file)
    server.serve_forever()


if __name__ == "__main__":
    main()
