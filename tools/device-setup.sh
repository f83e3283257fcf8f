#!/usr/bin/env bash
# On the GPU machine: unpacks the bundles made by tools/make-device-deps.sh and configures+builds
# the project against the CUDA LibTorch of the machine's Python into ${BUILD_DIR:-build-gpu}.
# Usage: [BUILD_TARGETS="t1 t2"] tools/device-setup.sh DEPS_DIR [cmake args...]
# (BUILD_TARGETS builds only those targets, to save device time.)
set -euo pipefail
deps=${1:?usage: device-setup.sh DEPS_DIR [cmake args]}
shift
here=$(cd "$(dirname "$0")/.." && pwd)
tar xzf "$deps/grpc.tgz" -C / && tar xzf "$deps/deps.tgz" -C / --skip-old-files && ldconfig
torch_prefix=$(python3 -c 'import torch; print(torch.utils.cmake_prefix_path)')
build=${BUILD_DIR:-$here/build-gpu}
cmake -S "$here" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_PREFIX_PATH="$torch_prefix" -DCMAKE_CUDA_ARCHITECTURES=90 "$@"
# shellcheck disable=SC2086  # BUILD_TARGETS is a space-separated list on purpose
cmake --build "$build" -j "$(nproc)" ${BUILD_TARGETS:+--target $BUILD_TARGETS}
