#!/usr/bin/env bash
# Configures and builds MCOS (Release with debug info by default) into build/<preset>.
# Usage: tools/build.sh [dev|asan|release]   (default: release)
set -euo pipefail
cd "$(dirname "$0")/.."
preset="${1:-release}"
tools/install-deps.sh
export CCACHE_BASEDIR="$PWD"
if [ ! -f "build/$preset/build.ninja" ]; then
  cmake --preset "$preset" >/dev/null
fi
cmake --build --preset "$preset" -j "${MCOS_JOBS:-2}"
