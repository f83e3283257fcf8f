#!/usr/bin/env bash
# On the GPU machine: unpacks the bundles made by tools/make-device-deps.sh and configures+builds
# the project against the CUDA LibTorch of the machine's Python into ${BUILD_DIR:-build-gpu}.
# Usage: tools/device-setup.sh DEPS_DIR [cmake args...]   (PS_TARGETS="a b" builds only those targets;
# PS_SKIP_BUILD=1 only unpacks the bundles, for binaries built earlier)
set -euo pipefail
deps=${1:?usage: device-setup.sh DEPS_DIR [cmake args]}
shift
here=$(cd "$(dirname "$0")/.." && pwd)
tar xzf "$deps/grpc.tgz" -C / && tar xzf "$deps/deps.tgz" -C / --skip-old-files && ldconfig
[[ -n ${PS_SKIP_BUILD:-} ]] && exit 0
torch_prefix=$(python3 -c 'import torch; print(torch.utils.cmake_prefix_path)')
build=${BUILD_DIR:-$here/build-gpu}
cmake -S "$here" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_PREFIX_PATH="$torch_prefix" -DCMAKE_CUDA_ARCHITECTURES=90 "$@"
cmake --build "$build" -j "$(nproc)" ${PS_TARGETS:+--target $PS_TARGETS}
