#!/usr/bin/env bash
# Packs what the GPU machine lacks to build this project: the shared gRPC/Protobuf/Abseil/RE2 bundle
# (../shared/tools/make-device-bundle.sh) plus our other Debian dependencies (headers, libraries,
# CMake/pkg-config files). Usage: tools/make-device-deps.sh OUT_DIR  (writes OUT_DIR/deps.tgz and
# OUT_DIR/grpc.tgz). On the GPU machine: tools/device-setup.sh OUT_DIR unpacks both at /.
set -euo pipefail
out=${1:?usage: make-device-deps.sh OUT_DIR}
here=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$out"
shared_tools=${PS_SHARED_TOOLS:-$here/../shared/tools}
[ -f "$out/grpc.tgz" ] || bash "$shared_tools/make-device-bundle.sh" "$out/grpc.tgz" >/dev/null
# Only -dev packages and the runtime libraries Ubuntu 24.04 lacks; never libc, libssl or zlib runtimes.
pkgs="nlohmann-json3-dev libyaml-cpp-dev libyaml-cpp0.7 libsentencepiece-dev libsentencepiece0
      libcli11-dev libcpp-httplib-dev libgtest-dev libgmock-dev googletest libsqlite3-dev
      libssl-dev zlib1g-dev"
pkgs="$pkgs libutf8proc-dev libutf8proc2"  # NFC for Qwen2-style tokenizer.json
pkgs="$pkgs libcpp-httplib0.11 libbrotli-dev libbrotli1"  # psserve links the compiled cpp-httplib
list=$(mktemp)
for p in $pkgs; do dpkg -L "$p"; done | while read -r f; do if [ -f "$f" ] || [ -L "$f" ]; then echo "$f"; fi; done |
  grep -v -E '/doc/|/man/|/usr/src/' | sort -u > "$list"
tar czf "$out/deps.tgz" -T "$list" 2>/dev/null
rm -f "$list"
echo "wrote $out/deps.tgz ($(du -h "$out/deps.tgz" | cut -f1)) and $out/grpc.tgz ($(du -h "$out/grpc.tgz" | cut -f1))"
