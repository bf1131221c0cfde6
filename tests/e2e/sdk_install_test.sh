#!/usr/bin/env bash
# Installs MCOS to a temporary prefix with `cmake --install`, builds examples/hello against it with
# find_package(mcos), and runs it against a real mcos-cluster.
# Usage: sdk_install_test.sh SOURCE_DIR BUILD_DIR
set -euo pipefail
src=$1
build=$2
work=$(mktemp -d "${TMPDIR:-/tmp}/mcos-sdk-test-XXXXXX")
pid=""
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$work"' EXIT
cmake --install "$build" --prefix "$work/prefix" >/dev/null
cmake -S "$src/examples/hello" -B "$work/hello" -G Ninja -DCMAKE_PREFIX_PATH="$work/prefix" \
  -DCMAKE_CXX_COMPILER_LAUNCHER=ccache >/dev/null
cmake --build "$work/hello" >/dev/null
MCOS_ADMIN_PASSWORD=sdk-admin "$work/prefix/bin/mcos-cluster" --data-dir "$work/cluster" \
  --listen 127.0.0.1:0 --argon2-memory-kib 1024 >"$work/out" 2>"$work/log" &
pid=$!
for _ in $(seq 100); do grep -q "listening on" "$work/out" && break; sleep 0.1; done
ep=$(awk '/listening on/{print $3}' "$work/out")
"$work/hello/mcos-hello" "$ep" admin sdk-admin >/dev/null  # a second run must work too
out=$("$work/hello/mcos-hello" "$ep" admin sdk-admin)
echo "$out"
[ "$out" = "hello from the SDK (etag $(printf 'hello from the SDK' | md5sum | cut -d' ' -f1))" ]
