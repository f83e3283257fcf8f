#!/usr/bin/env bash
# The chart refuses bad values with a message that names the key, and its defaults and switches
# render what psd needs (psd --config file, RBAC, credentials shared with the workers).
# Usage: chart-negative.sh RENDER_BIN CHART_DIR
set -euo pipefail
render=$1 chart=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
expect_failure() {  # expect_failure "message part" values-yaml
  printf '%s\n' "$2" > "$work/v.yaml"
  if "$render" -f "$work/v.yaml" "$chart" > "$work/out" 2> "$work/err"; then
    fail "rendering with {$2} succeeded"
  fi
  grep -q "$1" "$work/err" || { cat "$work/err"; fail "error does not say '$1'"; }
  echo "ok   {$2} -> $(tail -1 "$work/err" | sed 's/.*error calling [a-z]*: //')"
}
expect_failure "tls.existingSecret is required" "tls: {enabled: true}"
expect_failure "artifacts.accessModes must include ReadWriteMany" \
  "artifacts: {accessModes: [ReadWriteOnce]}"

# psd.yaml of a rendering, parsed.
config() {
  /usr/bin/python3 -c 'import sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
cm = [d for d in docs if d["kind"] == "ConfigMap" and "psd.yaml" in d["data"]][0]
print(yaml.safe_dump(yaml.safe_load(cm["data"]["psd.yaml"])))' "$1"
}

# Defaults: a generated 40-character token shared on the data volume, no TLS, MPIJob rights.
"$render" "$chart" > "$work/default.yaml"
token=$(/usr/bin/python3 -c 'import base64, sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
s = [d for d in docs if d["kind"] == "Secret"][0]
print(base64.b64decode(s["data"]["token"]).decode())' "$work/default.yaml")
[ ${#token} -eq 40 ] || fail "generated token has ${#token} characters"
config "$work/default.yaml" > "$work/psd.yaml"
grep -qx "token-file: /var/lib/proxsparse/data/.psd/token" "$work/psd.yaml" || fail "token-file"
grep -qx "launcher: kubernetes" "$work/psd.yaml" || fail "launcher"
grep -qx "k8s-pvc: proxsparse-artifacts" "$work/psd.yaml" || fail "k8s-pvc"
if grep -q "tls-cert" "$work/psd.yaml"; then fail "TLS flags without tls.enabled"; fi
grep -q "resources: \[mpijobs\]" "$work/default.yaml" || fail "no MPIJob RBAC rule"
grep -q "cp /etc/proxsparse/auth/token" "$work/default.yaml" || fail "token not shared"
echo "ok   defaults: psd.yaml, generated token shared with workers, MPIJob RBAC"

# TLS with mutual auth, extra psd flags, no MPI Operator.
cat > "$work/v.yaml" <<'V'
tls: {enabled: true, existingSecret: my-tls, mutual: true}
coordinator: {config: {max-attempts: 5, heartbeat-timeout: 60}}
launcher: {mpiOperator: false}
V
"$render" -f "$work/v.yaml" "$chart" > "$work/tls.yaml"
config "$work/tls.yaml" > "$work/psd.yaml"
for line in "tls-cert: /etc/proxsparse/tls/tls.crt" "tls-client-ca: /etc/proxsparse/tls/ca.crt" \
    "worker-tls-ca: /var/lib/proxsparse/data/.psd/ca.crt" \
    "worker-tls-cert: /var/lib/proxsparse/data/.psd/worker.crt" \
    "worker-tls-key: /var/lib/proxsparse/data/.psd/worker.key" "max-attempts: 5" \
    "heartbeat-timeout: 60"; do
  grep -qx "$line" "$work/psd.yaml" || fail "psd.yaml lacks '$line'"
done
if grep -q mpijobs "$work/tls.yaml"; then fail "MPIJob RBAC with launcher.mpiOperator=false"; fi
# Workers' client certificate: mounted from the server Secret by default, copied for the workers.
grep -q "secretName: my-tls" "$work/tls.yaml" || fail "worker-tls from the server Secret"
grep -q "/etc/proxsparse/worker-tls/tls.\$f" "$work/tls.yaml" || fail "worker certificate copy"
echo "ok   TLS (mutual), extra psd flags, launcher.mpiOperator=false"
