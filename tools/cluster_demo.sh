#!/usr/bin/env bash
# One cluster alone (the README's main job, tools/demo.sh, is a federation): starts one whole
# MCOS cluster (mcos-cluster: storage node, controller, resolver and server in one process, RocksDB and SQLite on disk) on a free loopback port in a
# temporary directory, then uses it through the `mcos` CLI as a person would: the admin adds a
# user, the user logs in, makes a container, uploads a 20 MiB file, stats it, downloads it and
# checks it byte for byte, lists, deletes. Stops the cluster at the end (or on Ctrl-C).
# With --keep it leaves the cluster running and prints how to use it.
set -euo pipefail
cd "$(dirname "$0")/.."
keep=0
[ "${1:-}" = "--keep" ] && keep=1
tools/build.sh release
bin=build/release
work=$(mktemp -d "${TMPDIR:-/tmp}/mcos-demo-XXXXXX")
pid=""
cleanup() {
  if [ "$keep" = 0 ]; then
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then kill "$pid"; wait "$pid" || true; fi
    rm -rf "$work"
  fi
}
trap cleanup EXIT

export MCOS_ADMIN_PASSWORD="demo-admin-$RANDOM$RANDOM"
"$bin/src/cluster/mcos-cluster" --data-dir "$work/cluster" --listen 127.0.0.1:0 \
  >"$work/stdout" 2>"$work/cluster.log" &
pid=$!
for _ in $(seq 150); do grep -q "listening on" "$work/stdout" 2>/dev/null && break; sleep 0.1; done
endpoint=$(awk '/listening on/{print $3}' "$work/stdout")
[ -n "$endpoint" ] || { echo "mcos-cluster did not start:"; cat "$work/cluster.log"; exit 1; }
echo "== mcos-cluster (pid $pid) listening on $endpoint, data in $work/cluster"

export XDG_CONFIG_HOME="$work/config"   # the CLI keeps its login here, not in your home
mcos() { "$bin/src/client/mcos" "$@"; }
run() { echo "\$ mcos $*"; mcos "$@"; }

echo "$MCOS_ADMIN_PASSWORD" | mcos --endpoint "$endpoint" login admin --password-stdin
echo "demo-password" | run admin user add demo --password-stdin
run admin cluster status
run admin ring list
run admin ring update default --partition-power 17 --dry-run
echo "demo-password" | run --endpoint "$endpoint" login demo --password-stdin
run mb photos
head -c $((20 * 1024 * 1024 + 123)) /dev/urandom >"$work/holiday.bin"
run put photos 2026/holiday.bin "$work/holiday.bin" --content-type application/octet-stream --meta place=beach
run stat photos 2026/holiday.bin
run get photos 2026/holiday.bin "$work/back.bin"
md5sum "$work/holiday.bin" "$work/back.bin" | sed "s|$work/||"
cmp "$work/holiday.bin" "$work/back.bin" && echo "byte-identical: yes"
echo "hello" | run put photos readme.txt -
run ls
run ls photos --delimiter /
run get photos readme.txt -
run rm photos readme.txt
run get photos readme.txt - || true
if [ "$keep" = 1 ]; then
  echo
  echo "The cluster keeps running (pid $pid). Try:"
  echo "  export XDG_CONFIG_HOME=$work/config; $bin/src/client/mcos ls photos"
  echo "Stop it with: kill $pid"
else
  echo "== stopping mcos-cluster"
  kill "$pid"; wait "$pid" || true; pid=""
  tail -n 2 "$work/cluster.log"
fi
echo "demo OK"
