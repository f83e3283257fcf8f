#!/usr/bin/env bash
# Configures and builds the project (tests on) into ${BUILD_DIR:-build}; with BUILD_TARGETS="a b"
# only those targets (and what they need) are built. Compiles go through
# scripts/compile-launcher.sh (bounded parallelism machine-wide, ccache when installed, paths
# relative to the checkout so that several checkouts share the cache).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD_DIR:-$here/build}
# The launcher bounds concurrent compiles machine-wide and uses ccache when present.
export CCACHE_BASEDIR="$here" CCACHE_NOHASHDIR=1
launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER="$here/scripts/compile-launcher.sh"
          -DCMAKE_CUDA_COMPILER_LAUNCHER="$here/scripts/compile-launcher.sh")
cmake -S "$here" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=${BUILD_TYPE:-RelWithDebInfo} \
  -DCMAKE_EXPORT_COMPILE_COMMANDS=ON "${launcher[@]}" "$@" >/dev/null
targets=()
for t in ${BUILD_TARGETS:-}; do targets+=(--target "$t"); done
cmake --build "$build" -j "${JOBS:-$(nproc)}" "${targets[@]}"
