#!/usr/bin/env bash
# The chart refuses bad values with a message that names the key, and renders its defaults.
# Usage: chart-negative.sh RENDER_BIN CHART_DIR
set -euo pipefail
render=$1 chart=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
expect_failure() {  # expect_failure "message part" values-yaml
  printf '%s\n' "$2" > "$work/v.yaml"
  if "$render" -f "$work/v.yaml" "$chart" > "$work/out" 2> "$work/err"; then
    echo "FAIL: rendering with {$2} succeeded"; exit 1
  fi
  grep -q "$1" "$work/err" || { echo "FAIL: error does not say '$1':"; cat "$work/err"; exit 1; }
  echo "ok   {$2} -> $(tail -1 "$work/err")"
}
expect_failure "launcher.kind must be MPIJob or Job" "launcher: {kind: Pod}"
expect_failure "tls.existingSecret is required" "tls: {enabled: true}"

# Defaults: a generated 40-character token, no TLS flags, the MPIJob RBAC.
"$render" "$chart" > "$work/default.yaml"
token=$(/usr/bin/python3 -c 'import base64, sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
s = [d for d in docs if d["kind"] == "Secret"][0]
print(base64.b64decode(s["data"]["token"]).decode())' "$work/default.yaml")
[ ${#token} -eq 40 ] || { echo "FAIL: generated token has ${#token} characters"; exit 1; }
fail() { echo "FAIL: $*"; exit 1; }
grep -q -- "--token-file=/etc/proxsparse/auth/token" "$work/default.yaml" || fail "no --token-file"
if grep -q -- "--tls-cert" "$work/default.yaml"; then fail "TLS flags without tls.enabled"; fi
grep -q "resources: \[mpijobs\]" "$work/default.yaml" || fail "no MPIJob RBAC rule"
# The Job launcher swaps the RBAC rules.
printf 'launcher: {kind: Job}\n' > "$work/job.yaml"
"$render" -f "$work/job.yaml" "$chart" > "$work/jobs.yaml"
grep -q "resources: \[jobs\]" "$work/jobs.yaml" || fail "no Job RBAC rule with launcher.kind=Job"
if grep -q mpijobs "$work/jobs.yaml"; then fail "MPIJob RBAC with launcher.kind=Job"; fi
echo "ok   defaults and launcher.kind=Job render as expected"
