#!/usr/bin/env bash
# `kubectl create --dry-run=client -f` over manifests, with no cluster: kubectl still needs API
# discovery to map each kind to its resource, so a loopback stand-in (fake-apiserver.py) serves
# discovery only (it refuses every write). --validate=false because there is no OpenAPI document
# to validate against offline; schemas and unknown fields are checked by validate-k8s-schemas.mjs
# and check-k8s-fields.py. What this checks: every document parses, decodes as its kind, names a
# kind the cluster would know (built-ins, MPIJob, ServiceMonitor, PrometheusRule) and gives it a
# valid name; kubectl prints one object per document.
#
# Usage: kubectl-dry-run.sh FILE...
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
PY=${PS_PYTHON:-/usr/bin/python3}
command -v kubectl >/dev/null || { echo "kubectl not found: run scripts/install-deps.sh" >&2; exit 1; }
work=$(mktemp -d)
server_pid=""
# shellcheck disable=SC2317  # called by the EXIT trap
cleanup() { [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
"$PY" "$here/fake-apiserver.py" "$work/port" --lifetime 120 &
server_pid=$!
for _ in $(seq 50); do [ -s "$work/port" ] && break; sleep 0.1; done
[ -s "$work/port" ] || { echo "fake-apiserver did not start" >&2; exit 1; }
cat > "$work/kubeconfig" <<KC
apiVersion: v1
kind: Config
clusters: [{name: offline, cluster: {server: "http://127.0.0.1:$(cat "$work/port")"}}]
contexts: [{name: offline, context: {cluster: offline, user: nobody}}]
current-context: offline
users: [{name: nobody, user: {}}]
KC
status=0
for f in "$@"; do
  docs=$("$PY" -c 'import sys, yaml; print(sum(1 for d in yaml.safe_load_all(open(sys.argv[1])) if d))' "$f")
  if ! out=$(kubectl --kubeconfig "$work/kubeconfig" --cache-dir "$work/cache" \
      create --dry-run=client --validate=false -o name -f "$f" 2>&1); then
    echo "FAIL $f:"; echo "$out"; status=1; continue
  fi
  got=$(printf '%s\n' "$out" | grep -c /) || true
  if [ "$got" -ne "$docs" ]; then
    echo "FAIL $f: $docs documents but kubectl accepted $got:"; echo "$out"; status=1; continue
  fi
  echo "ok   $f ($docs objects)"
done
exit $status
