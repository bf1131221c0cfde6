#!/usr/bin/env bash
# The README's main job for now: starts a storage node (mcos-storage, RocksDB on disk) on a free
# loopback port in a temporary directory, stores a file through it, reads it back and checks it
# byte for byte, then stops the node. Later issues replace this with a whole cluster.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/build.sh release
bin=build/release
work=$(mktemp -d "${TMPDIR:-/tmp}/mcos-demo-XXXXXX")
node_pid=""
cleanup() {
  if [ -n "$node_pid" ] && kill -0 "$node_pid" 2>/dev/null; then kill "$node_pid"; wait "$node_pid" || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

"$bin/src/storage/mcos-storage" --data-dir "$work/node" --listen 127.0.0.1:0 \
  >"$work/stdout" 2>"$work/storage.log" &
node_pid=$!
for _ in $(seq 100); do grep -q "listening on" "$work/stdout" 2>/dev/null && break; sleep 0.1; done
endpoint=$(awk '/listening on/{print $3}' "$work/stdout")
[ -n "$endpoint" ] || { echo "mcos-storage did not start:"; cat "$work/storage.log"; exit 1; }
echo "== mcos-storage (pid $node_pid) listening on $endpoint, data in $work/node"

tool() { "$bin/tools/mcos-storage-tool" --endpoint "$endpoint" --user demo "$@"; }
head -c $((20 * 1024 * 1024 + 123)) /dev/urandom >"$work/file.bin"
echo "== put a 20 MiB file as photos/2026/holiday.bin"
tool put photos "2026/holiday.bin" "$work/file.bin" --content-type application/octet-stream |
  grep -E '"(applied|size|etag|checksum)"'
echo "== stat"
tool stat photos "2026/holiday.bin" | grep -E '"(size|etag|chunk_count)"'
echo "== get it back and compare"
tool get photos "2026/holiday.bin" "$work/back.bin"
md5sum "$work/file.bin" "$work/back.bin" | sed "s|$work/||"
cmp "$work/file.bin" "$work/back.bin" && echo "byte-identical: yes"
echo "== range read of bytes 1000..1015"
tool get photos "2026/holiday.bin" - --offset 1000 --length 16 | od -An -tx1
echo "== list with delimiter '/'"
tool put photos "readme.txt" <(echo "hello") >/dev/null
tool ls photos --delimiter / | grep -E '"object"|common_prefixes|"2026/"'
echo "== delete, then get (expect NOT_FOUND)"
tool rm photos readme.txt >/dev/null
tool get photos readme.txt - || true
echo "== stopping mcos-storage"
kill "$node_pid"; wait "$node_pid" || true; node_pid=""
tail -n 3 "$work/storage.log"
echo "demo OK"
