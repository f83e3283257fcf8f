#!/usr/bin/env bash
# Packs what a GPU machine (Ubuntu 24.04 with CUDA LibTorch) lacks to build this project, from this
# Debian machine's packages: gRPC/Protobuf/Abseil/RE2/c-ares (grpc.tgz) and our other
# dependencies (deps.tgz): headers, libraries, CMake/pkg-config files, at the same paths. Usage: tools/make-device-deps.sh OUT_DIR  (writes OUT_DIR/deps.tgz and
# OUT_DIR/grpc.tgz). On the GPU machine: tools/device-setup.sh OUT_DIR unpacks both at /.
set -euo pipefail
out=${1:?usage: make-device-deps.sh OUT_DIR}
here=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$out"
# pack OUT.tgz PACKAGES...: every regular file (and link) the packages installed, minus docs.
pack() {
  local tgz=$1 list
  shift
  list=$(mktemp)
  for p in "$@"; do dpkg -L "$p"; done | while read -r f; do if [ -f "$f" ] || [ -L "$f" ]; then echo "$f"; fi; done |
    grep -v -E '\.a$|/doc/|/man/|/usr/src/' | sort -u >"$list"
  tar czf "$tgz" -T "$list" 2>/dev/null
  rm -f "$list"
}
# gRPC 1.51 and its Protobuf/Abseil/RE2/c-ares match Ubuntu 24.04's sonames.
grpc_pkgs=(libgrpc++-dev libgrpc-dev libgrpc++1.51 libgrpc29 libprotobuf-dev libprotobuf32 libabsl-dev
           libabsl20220623 libre2-dev libre2-9 libc-ares-dev libc-ares2 protobuf-compiler-grpc
           libprotoc32 libprotoc-dev)
[ -f "$out/grpc.tgz" ] || pack "$out/grpc.tgz" "${grpc_pkgs[@]}"
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
