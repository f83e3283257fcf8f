#!/usr/bin/env bash
# Installs the pinned npm checkers (tests/deploy/npm/package-lock.json) into DIR with `npm ci`,
# once per lock file: kubernetes-models (Kubernetes + Prometheus Operator JSON schemas),
# js-yaml and dockerfilelint. Needs the npm registry the first time.
# Usage: npm-install.sh DIR
set -euo pipefail
src=$(cd "$(dirname "$0")/npm" && pwd)
dir=$1
mkdir -p "$dir"
if [ -d "$dir/node_modules" ] && cmp -s "$src/package-lock.json" "$dir/package-lock.json"; then
  echo "npm-install: $dir is up to date"; exit 0
fi
command -v npm >/dev/null || { echo "npm not found (Node.js is needed for the deploy checks)" >&2; exit 1; }
cp "$src/package.json" "$src/package-lock.json" "$dir/"
cd "$dir" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
