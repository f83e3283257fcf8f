#!/usr/bin/env bash
# The test command: installs what it needs, builds, and runs every test through ctest.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
bash "$here/scripts/install-deps.sh" test
bash "$here/scripts/build.sh" -DPS_BUILD_TESTS=ON -DPS_BUILD_BENCH=ON
cd "${BUILD_DIR:-$here/build}"
ctest --output-on-failure -j "${JOBS:-$(nproc)}" --timeout 1200
