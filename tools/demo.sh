#!/usr/bin/env bash
# The README's main job: a local federation of three clusters (tools/federation.sh: three
# mcos-cluster processes on loopback, one secret, peered, ring "fed" with 3 replicas as the
# default), used through the `mcos` CLI as a person would: an object put at dc1 is read and listed
# at dc2 and dc3 with `replicas` naming all three, while `mcos watch` at dc2 prints every change
# made anywhere; dc3 is killed with -9 and puts and gets go on at the others; dc3 comes back and
# catches up (replication queue, anti-entropy), which `mcos admin repair status` shows. Then
# dc4, started alone with data of its own, joins (its data moves under ring "fed" and stays
# readable), ring "fed" grows to dc4, and dc1 is drained and removed with a progress bar while
# reads go on at dc2 (docs/placement.md, Moving data). Stops
# everything at the end (or on Ctrl-C). With --keep the federation keeps running
# (tools/federation.sh down stops it).
set -euo pipefail
cd "$(dirname "$0")/.."
keep=0
[ "${1:-}" = "--keep" ] && keep=1
work=$(mktemp -d "${TMPDIR:-/tmp}/mcos-demo-XXXXXX")
export MCOS_FEDERATION_DIR="$work/federation"
watch_pid=""
cleanup() {
  [ -z "$watch_pid" ] || kill "$watch_pid" 2>/dev/null || true
  if [ "$keep" = 0 ]; then
    tools/federation.sh down >/dev/null 2>&1 || true
    rm -rf "$work"
  fi
}
trap cleanup EXIT

echo "== tools/federation.sh up 3"
tools/federation.sh up 3
ep() { cat "$MCOS_FEDERATION_DIR/$1/endpoint"; }
export XDG_CONFIG_HOME="$work/config"   # the CLI keeps its login here, not in your home
mcos() { build/release/src/client/mcos "$@"; }
run() { echo "\$ mcos $*"; mcos "$@"; }
# `mcos stat` at cluster $1 until its replicas line names $2 clusters (the last copy may still
# be on its way when the put is acknowledged: W = 2 of 3).
stat_until() {
  local at=$1 want=$2 container=$3 object=$4 out=""
  for _ in $(seq 100); do
    out=$(mcos --endpoint "$(ep "$at")" stat "$container" "$object" 2>&1) || true
    [ "$(echo "$out" | awk '/^replicas:/{print $2}' | tr ',' '\n' | grep -c .)" = "$want" ] && break
    sleep 0.1
  done
  echo "\$ mcos --endpoint $(ep "$at") stat $container $object   # at $at"
  echo "$out"
}

mcos --endpoint "$(ep dc1)" login admin --password-stdin <"$MCOS_FEDERATION_DIR/admin-password"
echo "demo-password" | run admin user add demo --password-stdin
run admin cluster list
echo "-- the user logs in at each cluster (users are shared; each saved login is used only at its"
echo "   own cluster, the last one is the default)"
for at in dc3 dc2 dc1; do
  echo "demo-password" | run --endpoint "$(ep $at)" login demo --password-stdin
done
run mb photos
echo "-- mcos watch at dc2 (in the background) prints every change of 'photos', made anywhere"
echo "\$ mcos --endpoint $(ep dc2) watch photos &"
mcos --endpoint "$(ep dc2)" watch photos >"$work/watch.out" 2>&1 &
watch_pid=$!
for _ in $(seq 50); do grep -q "^watching" "$work/watch.out" && break; sleep 0.1; done
head -c $((20 * 1024 * 1024 + 123)) /dev/urandom >"$work/holiday.bin"
echo "-- put at dc1"
run put photos 2026/holiday.bin "$work/holiday.bin" --content-type application/octet-stream
echo "-- read and listed at dc2 and dc3"
stat_until dc2 3 photos 2026/holiday.bin
stat_until dc3 3 photos 2026/holiday.bin
run --endpoint "$(ep dc3)" ls photos
run --endpoint "$(ep dc2)" get photos 2026/holiday.bin "$work/back.bin"
cmp "$work/holiday.bin" "$work/back.bin" && echo "byte-identical at dc2: yes"

echo "== dc3 killed with -9"
tools/federation.sh stop dc3
for i in 1 2 3; do
  echo "written at dc1 while dc3 was down ($i)" >"$work/down-$i.txt"
  run --endpoint "$(ep dc1)" put photos "while-down/$i.txt" "$work/down-$i.txt"
done
echo "written at dc2 while dc3 was down" | run --endpoint "$(ep dc2)" put photos while-down/at-dc2.txt -
run --endpoint "$(ep dc2)" get photos while-down/1.txt -
run --endpoint "$(ep dc1)" get photos while-down/at-dc2.txt -
run --endpoint "$(ep dc1)" ls photos --prefix while-down/
sleep 2   # long enough for the peers to mark dc3 down
tools/federation.sh status

echo "== dc3 started again: it catches up from the replication queues of dc1 and dc2"
tools/federation.sh start dc3
for f in while-down/1.txt while-down/2.txt while-down/3.txt while-down/at-dc2.txt; do
  stat_until dc3 3 photos "$f" | grep -E "^\\$|^replicas:"
done
run --endpoint "$(ep dc3)" get photos while-down/at-dc2.txt -
tools/federation.sh status
echo "-- what mcos watch at dc2 printed meanwhile"
sleep 1
kill "$watch_pid" 2>/dev/null || true
watch_pid=""
cat "$work/watch.out"
[ "$(grep -c ' put photos/' "$work/watch.out")" -ge 5 ] || {
  echo "error: mcos watch saw fewer than the 5 puts" >&2
  exit 1
}

# The operator's CLI keeps its own login (the user's stays where it is).
admin() { echo "\$ mcos $*"; XDG_CONFIG_HOME="$work/admin-config" mcos "$@"; }
admin_login() {
  XDG_CONFIG_HOME="$work/admin-config" mcos --endpoint "$(ep "$1")" login admin --password-stdin \
    <"$MCOS_FEDERATION_DIR/admin-password" >/dev/null
}
echo "== dc4, started alone, gets data of its own"
tools/federation.sh start-alone dc4
admin_login dc4
admin --endpoint "$(ep dc4)" mb archive
for i in 1 2 3; do
  echo "archived at dc4 before it joined ($i)" >"$work/archive-$i.txt"
  admin --endpoint "$(ep dc4)" put archive "old/$i.txt" "$work/archive-$i.txt" >/dev/null
done
admin --endpoint "$(ep dc4)" ls archive
echo "== dc4 joins the federation: its data moves under ring fed, readable all along"
admin_login dc2
admin --endpoint "$(ep dc2)" admin cluster add --endpoint "$(ep dc4)"
admin --endpoint "$(ep dc2)" get archive old/2.txt -
admin --endpoint "$(ep dc2)" admin rebalance status --watch | tail -n 1
admin --endpoint "$(ep dc2)" stat archive old/2.txt | grep -E "^replicas:"

echo "== ring fed grows to dc4, then dc1 is drained and removed while reads go on at dc2"
admin --endpoint "$(ep dc2)" admin ring update fed --member dc1:1:region-1 --member dc2:1:region-2 \
  --member dc3:1:region-3 --member dc4:1:region-dc4
admin --endpoint "$(ep dc2)" admin rebalance status --watch | tail -n 1
# The user reads at dc2 all along (in the background), counting what failed.
(
  ok=0 failed=0
  while [ ! -f "$work/stop-reads" ]; do
    if mcos --endpoint "$(ep dc2)" get photos 2026/holiday.bin "$work/read.bin" >/dev/null 2>&1 &&
      cmp -s "$work/holiday.bin" "$work/read.bin"; then
      ok=$((ok + 1))
    else
      failed=$((failed + 1))
    fi
  done
  echo "$ok $failed" >"$work/reads"
) &
reader_pid=$!
admin --endpoint "$(ep dc2)" admin cluster remove dc1 --drain
touch "$work/stop-reads"
wait "$reader_pid"
read -r reads_ok reads_failed <"$work/reads"
echo "-- reads of photos/2026/holiday.bin (20 MiB) at dc2 during the drain: $reads_ok whole and" \
  "byte-identical, $reads_failed failed"
[ "$reads_failed" = 0 ] && [ "$reads_ok" -gt 0 ] || {
  echo "error: reads failed during the drain" >&2
  exit 1
}
admin --endpoint "$(ep dc2)" admin cluster list
stat_until dc3 3 photos 2026/holiday.bin | grep -E "^\\$|^replicas:"
echo "demo-password" | run --endpoint "$(ep dc4)" login demo --password-stdin
run --endpoint "$(ep dc4)" get photos while-down/1.txt -
if [ "$keep" = 1 ]; then
  echo
  echo "The federation keeps running ($MCOS_FEDERATION_DIR). Try:"
  echo "  export XDG_CONFIG_HOME=$work/config; build/release/src/client/mcos --endpoint $(ep dc2) ls photos"
  echo "Stop it with: MCOS_FEDERATION_DIR=$MCOS_FEDERATION_DIR tools/federation.sh down"
else
  echo "== tools/federation.sh down"
  tools/federation.sh down
fi
echo "demo OK"
