#!/usr/bin/env bash
# Builds MCOS and runs every test (unit and e2e). The e2e tests start their own mcos-* processes
# (and, once the events layer exists, nats-server) on free loopback ports in temporary directories.
# Usage: tools/test.sh [preset] [extra ctest args]   (default preset: release)
set -euo pipefail
cd "$(dirname "$0")/.."
preset="${1:-release}"
shift || true
tools/build.sh "$preset"
ctest --test-dir "build/$preset" --output-on-failure --timeout 600 -j 2 "$@"
