#!/usr/bin/env bash
# Builds MCOS and runs every test (unit and e2e). The e2e tests start their own mcos-* processes
# (and, once the events layer exists, nats-server) on free loopback ports in temporary directories.
# Usage: tools/test.sh [preset] [extra ctest args]   (default preset: release)
set -euo pipefail
cd "$(dirname "$0")/.."
preset="${1:-release}"
shift || true
tools/build.sh "$preset"
# The grpc-js interop test needs @grpc/grpc-js from the npm registry; without it, it is skipped.
if command -v npm >/dev/null && [ ! -d build/js/node_modules/@grpc/grpc-js ]; then
  timeout 300 npm install --prefix build/js --no-audit --no-fund --loglevel=error \
    @grpc/grpc-js@1.14.7 @grpc/proto-loader@0.8.1 >/dev/null 2>&1 ||
    echo "test: cannot install @grpc/grpc-js with npm; the grpc-js interop test is skipped"
fi
ctest --test-dir "build/$preset" --output-on-failure --timeout 600 -j 2 "$@"
