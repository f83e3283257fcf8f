#!/usr/bin/env bash
# Builds deploy/helm/render (the offline `helm template`) with Debian's Go toolchain and libraries
# in GOPATH mode (no module proxy is reachable), vets it and checks its formatting.
# Usage: build-renderer.sh OUTPUT_BINARY [GOCACHE_DIR]
set -euo pipefail
src=$(cd "$(dirname "$0")/../../deploy/helm/render" && pwd)
command -v go >/dev/null || { echo "go not found: run scripts/install-deps.sh (golang-go)" >&2; exit 1; }
export GO111MODULE=off GOPATH=/usr/share/gocode GOFLAGS='' GOCACHE=${2:-$(dirname "$1")/gocache}
cd "$src"
go build -o "$1" .
go vet .
unformatted=$(gofmt -l .)
[ -z "$unformatted" ] || { echo "not gofmt-formatted: $unformatted" >&2; exit 1; }
echo "build-renderer: built $1"
