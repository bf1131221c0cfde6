#!/usr/bin/env bash
# On-disk size of one object after it is replaced 5 times, with a kill -9 of the cluster between
# the 3rd and the 4th replacement: how much space replaced data and interrupted processes leave.
# Usage: tools/space_bench.sh [MiB=200] [build dir=build/release]
set -euo pipefail
mib=${1:-200}
build=${2:-build/release}
bin="$build/src/cluster/mcos-cluster"
cli="$build/src/client/mcos"
w=$(mktemp -d "${TMPDIR:-/tmp}/mcos-space-XXXXXX")
pid=""
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; [ -n "$pid" ] && wait "$pid" 2>/dev/null; rm -rf "$w"' EXIT
start() {
  : >"$w/out"
  MCOS_ADMIN_PASSWORD=pw "$bin" --data-dir "$w/c" --listen 127.0.0.1:0 --argon2-memory-kib 1024 \
    >"$w/out" 2>>"$w/log" &
  pid=$!
  for _ in $(seq 100); do grep -q "listening on" "$w/out" && break; sleep 0.1; done
  ep=$(awk '/listening on/{print $3}' "$w/out")
}
# Disk used by the storage node, without its space reserve files.
usage() { du -sm --exclude='space-reserve*' "$w/c/storage" | cut -f1; }
start
export XDG_CONFIG_HOME="$w/cfg"
echo pw | "$cli" --endpoint "$ep" login admin --password-stdin >/dev/null
"$cli" mb big >/dev/null
head -c $((mib << 20)) /dev/urandom >"$w/obj"
"$cli" put big obj "$w/obj" >/dev/null
sleep 2
echo "one ${mib} MiB object: $(usage) MiB on disk"
for _ in 1 2 3; do "$cli" object update big obj "$w/obj" >/dev/null; done
kill -9 "$pid"
wait "$pid" 2>/dev/null || true
start
# A new port: the saved login goes only to the endpoint it came from.
echo pw | "$cli" --endpoint "$ep" login admin --password-stdin >/dev/null
for _ in 4 5; do "$cli" --endpoint "$ep" object update big obj "$w/obj" >/dev/null; done
for t in 1 5; do
  sleep "$t"
  echo "after 5 replacements and a kill -9, +${t}s: $(usage) MiB on disk"
done
