#!/usr/bin/env python3
"""A loopback stand-in for the Hugging Face Hub's HTTP API, for the download tests.

Serves ROOT/ORG/NAME/* as the model ORG/NAME:
  GET /api/models/ORG/NAME/revision/REV[?blobs=true]  model info: sha, siblings (size; lfs sha256
                                                       for *.safetensors)
  GET /ORG/NAME/resolve/REV/FILE                       302 to /cdn/ORG/NAME/FILE (as the Hub
                                                       redirects to its CDN), which honours Range
Marker files in a repository directory change its behaviour:
  .gated    401 without a token, 403 with a token other than "good-token"
  .flaky    the first request for each *.safetensors file sends half of it and drops the line
  .badsha   the model info gives a wrong SHA-256 for *.safetensors
REV must be "main" or the commit id. Every request line is appended to LOG (Range included).
Usage: fake_hub.py ROOT PORT_FILE LOG
"""
import hashlib
import json
import os
import sys
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ROOT, PORT_FILE, LOG = sys.argv[1], sys.argv[2], sys.argv[3]
COMMIT = "3f1c9a7e5b2d4c6a8e0f1b3d5c7e9a1b2c4d6e8f"
flaky_done = set()


def repo_dir(org, name):
    d = os.path.join(ROOT, org, name)
    return d if os.path.isdir(d) else None


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def error(self, status, code, message=""):
        body = json.dumps({"error": message or code}).encode()
        self.send_response(status)
        self.send_header("X-Error-Code", code)
        if message:
            self.send_header("X-Error-Message", message)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def allowed(self, d):
        if not os.path.exists(os.path.join(d, ".gated")):
            return True
        auth = self.headers.get("Authorization", "")
        if not auth:
            self.error(401, "GatedRepo", "Access to this model is restricted")
        elif auth != "Bearer good-token":
            self.error(403, "GatedRepo", "You have not accepted the conditions")
        else:
            return True
        return False

    def do_GET(self):
        with open(LOG, "a") as f:
            f.write(f"GET {self.path} range={self.headers.get('Range', '-')}\n")
        url = urllib.parse.urlparse(self.path)
        parts = [urllib.parse.unquote(p) for p in url.path.strip("/").split("/")]
        if len(parts) == 6 and parts[:2] == ["api", "models"] and parts[4] == "revision":
            return self.info(parts[2], parts[3], parts[5])
        if len(parts) >= 5 and parts[2] == "resolve":
            d = repo_dir(parts[0], parts[1])
            if d is None:
                return self.error(404, "RepoNotFound")
            if not self.allowed(d):
                return
            if parts[3] not in ("main", COMMIT):
                return self.error(404, "RevisionNotFound")
            name = "/".join(parts[4:])
            if not os.path.isfile(os.path.join(d, name)):
                return self.error(404, "EntryNotFound")
            self.send_response(302)
            self.send_header("Location", f"/cdn/{parts[0]}/{parts[1]}/{urllib.parse.quote(name)}")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if len(parts) >= 4 and parts[0] == "cdn":
            return self.cdn(parts[1], parts[2], "/".join(parts[3:]))
        self.error(404, "NotFound")

    def info(self, org, name, rev):
        d = repo_dir(org, name)
        if d is None:
            return self.error(404, "RepoNotFound", "Repository not found")
        if not self.allowed(d):
            return
        if rev not in ("main", COMMIT):
            return self.error(404, "RevisionNotFound", "Invalid rev id")
        siblings = []
        for fn in sorted(os.listdir(d)):
            if fn.startswith("."):
                continue
            data = open(os.path.join(d, fn), "rb").read()
            s = {"rfilename": fn, "size": len(data)}
            if fn.endswith(".safetensors"):
                sha = hashlib.sha256(data).hexdigest()
                if os.path.exists(os.path.join(d, ".badsha")):
                    sha = "0" * 64
                s["lfs"] = {"sha256": sha, "size": len(data), "pointerSize": 134}
            siblings.append(s)
        body = json.dumps({"id": f"{org}/{name}", "sha": COMMIT, "siblings": siblings}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def cdn(self, org, name, fn):
        d = repo_dir(org, name)
        path = os.path.join(d or "", fn)
        if d is None or not os.path.isfile(path):
            return self.error(404, "EntryNotFound")
        data = open(path, "rb").read()
        start, status = 0, 200
        rng = self.headers.get("Range")
        if rng and rng.startswith("bytes=") and rng.endswith("-"):
            start, status = int(rng[6:-1]), 206
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
        self.send_response(status)
        self.send_header("Content-Length", str(len(data) - start))
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.end_headers()
        key = (org, name, fn)
        if (fn.endswith(".safetensors") and os.path.exists(os.path.join(d, ".flaky"))
                and key not in flaky_done):
            flaky_done.add(key)
            self.wfile.write(data[start:start + (len(data) - start) // 2])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(2)
            return
        self.wfile.write(data[start:])


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
with open(PORT_FILE + ".tmp", "w") as f:
    f.write(str(server.server_address[1]))
os.rename(PORT_FILE + ".tmp", PORT_FILE)
server.serve_forever()
