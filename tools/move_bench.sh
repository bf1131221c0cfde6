#!/usr/bin/env bash
# Moving data on a local federation of three clusters (tools/federation.sh), the figures of
# docs/placement.md "Moving data": the default option on ring "pair" over {dc1, dc2} (2 replicas)
# holds SMALL objects of 100 KiB and LARGE objects of 256 MiB; the ring is changed to {dc2, dc3}
# under a 16-client small-object load (mcos-bench at all three clusters), first at the servers'
# default copy rate, then back to {dc1, dc2} unthrottled (`mcos admin rebalance rate 100000`).
# Printed per move: the p50/p99 of the load's creates before the change, while it is paused
# (writes go to both layouts, nothing is copied) and while data is copied, the bytes copied and
# MB/s, and the time from the resume until the former layout was retired. Set
# MCOS_FEDERATION_FLAGS (tools/federation.sh) to compare server settings, e.g.
# "--anti-entropy-foreground-share 1".
# Usage: tools/move_bench.sh [SMALL] [LARGE]   (default 10000 and 10). Stops what it started.
set -euo pipefail
cd "$(dirname "$0")/.."
small=${1:-10000}
large=${2:-10}
work=$(mktemp -d "${TMPDIR:-/tmp}/mcos-move-bench-XXXXXX")
export MCOS_FEDERATION_DIR="$work/federation"
load_pid=""
cleanup() {
  [ -z "$load_pid" ] || kill "$load_pid" 2>/dev/null || true
  tools/federation.sh down >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
tools/build.sh release >/dev/null
tools/federation.sh up 3 >/dev/null
ep() { cat "$MCOS_FEDERATION_DIR/$1/endpoint"; }
password=$(cat "$MCOS_FEDERATION_DIR/admin-password")
export XDG_CONFIG_HOME="$work/config"
mcos() { build/release/src/client/mcos --endpoint "$(ep dc2)" "$@"; }
bench() {
  build/release/tools/mcos-bench --admin-password "$password" --large-mib 0 \
    --endpoints "$(ep dc1),$(ep dc2),$(ep dc3)" --clients 16 "$@"
}
mcos login admin --password-stdin <<<"$password" >/dev/null
mcos admin ring create pair --replicas 2 --partition-power 12 --member dc1:1:region-1 \
  --member dc2:1:region-2 >/dev/null
mcos admin option set-ring default pair >/dev/null

echo "== filling: $small objects of 100 KiB and $large of 256 MiB on ring pair {dc1, dc2}"
start=$(date +%s.%N)
bench --seconds 1 --list-objects "$small" --list-object-bytes 102400 --list-rounds 1 |
  grep -E "could not|objects made" || true
head -c $((256 << 20)) /dev/urandom >"$work/large.bin"
mcos mb large >/dev/null
for i in $(seq "$large"); do mcos put large "l/$i" "$work/large.bin" >/dev/null; done
rm -f "$work/large.bin"
awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN {printf "filled in %.0f s\n", e - s}'

# Moves ring pair to members $2... under load (cluster $1 gains the data) and prints the figures.
# The change is made paused first, so that the load's cost of writing to both layouts shows apart
# from the copying's; then the move resumes. Copied: the bytes the gaining cluster's anti-entropy
# logged after the resume, until its last such line.
move() {
  local target=$1 args=()
  shift
  for m in "$@"; do args+=(--member "$m"); done
  local log="$MCOS_FEDERATION_DIR/$target/cluster.log"
  echo "-- load before the move (creates for 10 s)"
  bench --seconds 10 | grep -E "^create"
  mcos admin rebalance pause >/dev/null
  mcos admin ring update pair "${args[@]}" | head -1
  echo "-- paused: writes go to both layouts, nothing is copied (creates for 10 s)"
  bench --seconds 10 | grep -E "^create"
  bench --seconds 30 >"$work/during.txt" &
  load_pid=$!
  sleep 1
  local lines t0 t1
  lines=$(wc -l <"$log")
  t0=$(date +%s.%N)
  mcos admin rebalance resume >/dev/null
  while mcos --json admin rebalance status | grep -q '"option"'; do sleep 0.5; done
  t1=$(date +%s.%N)
  tail -n +"$((lines + 1))" "$log" | grep "anti-entropy: copied" >"$work/copied.txt" || true
  local bytes last
  bytes=$(grep -o '([0-9]* bytes)' "$work/copied.txt" | tr -dc '0-9\n' | awk '{s += $1} END {print s + 0}')
  last=$(tail -1 "$work/copied.txt" | awk '{print $1}')
  last=$(date -d "$last" +%s.%N 2>/dev/null || echo "$t1")
  awk -v s="$t0" -v c="$last" -v e="$t1" -v b="$bytes" -v t="$target" 'BEGIN {
    printf "%s copied %.0f MB in %.1f s: %.1f MB/s; the former layout was retired %.1f s after the resume\n",
      t, b / 1e6, c - s, b / 1e6 / (c - s), e - s }'
  wait "$load_pid" || true
  load_pid=""
  # (mcos-bench's phases run one after the other: its first, create, is the one that overlaps
  # the copying.)
  echo "-- load while data is copied (creates for 30 s from 1 s before the resume)"
  grep -E "^create" "$work/during.txt"
}
echo "== move 1: pair {dc1, dc2} -> {dc2, dc3}, the servers' default copy rate"
move dc3 dc2:1:region-2 dc3:1:region-3
echo "== move 2: pair {dc2, dc3} -> {dc1, dc2}, unthrottled (mcos admin rebalance rate 100000)"
mcos admin rebalance rate 100000
move dc1 dc1:1:region-1 dc2:1:region-2
