#!/usr/bin/env bash
# Runs grpc_js_cancel.js (an independent grpc-js client) against a real mcos-cluster. Skipped (exit
# 77) when node or the @grpc/grpc-js package is not there: tools/test.sh installs the package into
# build/js when npm is available.
# Usage: grpc_js_test.sh SOURCE_DIR CLUSTER_BIN CLI_BIN JS_DIR
set -euo pipefail
src=$1
cluster_bin=$2
cli=$3
js=$4
if ! command -v node >/dev/null || [ ! -d "$js/node_modules/@grpc/grpc-js" ]; then
  echo "skipped: node or @grpc/grpc-js (in $js/node_modules) is missing"
  exit 77
fi
work=$(mktemp -d "${TMPDIR:-/tmp}/mcos-js-test-XXXXXX")
pid=""
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$work"' EXIT
MCOS_ADMIN_PASSWORD=js-admin "$cluster_bin" --data-dir "$work/cluster" --listen 127.0.0.1:0 \
  --argon2-memory-kib 1024 --reserve-mib 8 >"$work/out" 2>"$work/log" &
pid=$!
for _ in $(seq 100); do grep -q "listening on" "$work/out" && break; sleep 0.1; done
ep=$(awk '/listening on/{print $3}' "$work/out")
export XDG_CONFIG_HOME="$work/config"
echo js-admin | "$cli" --endpoint "$ep" login admin --password-stdin >/dev/null
echo js-pw | "$cli" admin user add jsuser --password-stdin >/dev/null
echo js-pw | "$cli" --endpoint "$ep" login jsuser --password-stdin >/dev/null
"$cli" mb js >/dev/null
head -c 5242880 /dev/urandom >"$work/five"
"$cli" put js obj "$work/five" >/dev/null
token=$(sed -n 's/^token=//p' "$XDG_CONFIG_HOME/mcos/credentials")
NODE_PATH="$js/node_modules" node "$src/tests/interop/grpc_js_cancel.js" "$ep" "$token" \
  "$src/proto" 10
