#!/usr/bin/env bash
# Self-healing figures on a local federation of three clusters (tools/federation.sh, each with its
# nats-server), printed as it goes:
#   1. In sync: with OBJECTS objects stored (default 100000), the CPU each mcos-cluster process
#      uses per minute and the bytes anti-entropy exchanges per minute (digests and scans).
#   2. Convergence: dc3 killed with -9 for OUTAGE seconds (default 60) while mcos-bench loads dc1
#      and dc2; both replication queues then emptied (sqlite3, while they run); dc3 started again
#      under the same load: the time until anti-entropy at dc3 reports every partition in sync with
#      both peers (a full pass begun after the restart), records and MB copied per second, and the
#      load's p99 while it repairs against a baseline taken before the outage.
# Usage: tools/repair_bench.sh [OBJECTS] [OUTAGE_SECONDS]. Stops everything it started at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
objects=${1:-100000}
outage=${2:-60}
command -v sqlite3 >/dev/null || { echo "error: needs the sqlite3 command (apt-get install sqlite3)" >&2; exit 2; }
work=$(mktemp -d "${TMPDIR:-/tmp}/mcos-repair-bench-XXXXXX")
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
pid() { cat "$MCOS_FEDERATION_DIR/$1/pid"; }
password=$(cat "$MCOS_FEDERATION_DIR/admin-password")
export XDG_CONFIG_HOME="$work/config"
mcos() { build/release/src/client/mcos "$@"; }
bench() { build/release/tools/mcos-bench --admin-password "$password" --large-mib 0 "$@"; }
for c in dc1 dc2 dc3; do
  mcos --endpoint "$(ep $c)" login admin --password-stdin <<<"$password" >/dev/null
done
# Sum of a numeric field over the links into cluster $1 (from its repair status, JSON).
field_sum() {
  { mcos --endpoint "$(ep "$1")" --json admin repair status || true; } |
    { grep -o "\"$2\": *\"\\?[0-9]*" || true; } | { grep -o '[0-9]*$' || true; } |
    awk '{s += $1} END {print s + 0}'
}
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)

echo "== loading $objects objects (mcos-bench --list-objects, 16 clients over the three clusters)"
bench --endpoints "$(ep dc1),$(ep dc2),$(ep dc3)" --clients 16 --seconds 1 \
  --list-objects "$objects" | grep -E "^list|could not"
echo "== in sync: 60 s with no load"
sleep 10  # one anti-entropy pass (5 s) to settle
declare -A before
for c in dc1 dc2 dc3; do before[$c]=$(ticks "$(pid $c)"); done
bytes_before=0
for c in dc1 dc2 dc3; do bytes_before=$((bytes_before + $(field_sum $c anti_entropy_bytes_exchanged))); done
sleep "${IN_SYNC_SECONDS:-60}"
bytes_after=0
for c in dc1 dc2 dc3; do bytes_after=$((bytes_after + $(field_sum $c anti_entropy_bytes_exchanged))); done
for c in dc1 dc2 dc3; do
  used=$(( $(ticks "$(pid $c)") - before[$c] ))
  echo "$c: $(awk -v t="$used" -v hz="$hz" 'BEGIN {printf "%.2f", t / hz}') CPU seconds in 60 s" \
    "(whole process: anti-entropy, scrubber loop, health checks, federation sync, probes)"
done
echo "anti-entropy: $((bytes_after - bytes_before)) bytes of digests and scans in 60 s, all six links" \
  "($(field_sum dc1 partitions_out_of_sync) partitions out of sync at dc1)"

echo "== baseline: 10 s of load at dc1 and dc2 (8 clients)"
bench --endpoints "$(ep dc1),$(ep dc2)" --clients 8 --seconds 10 | grep -E "create|stat "
echo "== dc3 killed for $outage s under load at dc1 and dc2"
tools/federation.sh stop dc3 >/dev/null
bench --endpoints "$(ep dc1),$(ep dc2)" --clients 8 --seconds $((outage / 3)) | grep -E "create|delete"
for c in dc1 dc2; do
  db="$MCOS_FEDERATION_DIR/$c/data/controller/controller.db"
  n=$(sqlite3 -cmd ".timeout 10000" "$db" \
    "SELECT COUNT(*) FROM replication_queue; DELETE FROM replication_queue;" |
    head -1)
  echo "$c: emptied its replication queue ($n tasks for dc3)"
done
echo "== dc3 started again under load; anti-entropy alone repairs it"
bench --endpoints "$(ep dc1),$(ep dc2)" --clients 8 --seconds 10 >"$work/during.txt" &
load_pid=$!
sleep 1
start=$(date +%s.%N)
tools/federation.sh start dc3 >/dev/null
mcos --endpoint "$(ep dc3)" login admin --password-stdin <<<"$password" >/dev/null
while true; do
  status=$(mcos --endpoint "$(ep dc3)" --json admin repair status 2>/dev/null || true)
  passes=$(echo "$status" | { grep -o '"last_full_pass"' || true; } | wc -l)
  behind=$(echo "$status" | { grep -o '"partitions_out_of_sync": *"\?[0-9]*' || true; } |
    { grep -o '[0-9]*$' || true; } | awk '{s += $1} END {print s + 0}')
  compared=$(echo "$status" | { grep -o '"partitions_compared"' || true; } | wc -l)
  if [ "$passes" -ge 2 ] && [ "$compared" -ge 2 ] && [ "$behind" = 0 ]; then break; fi
  sleep 0.2
done
end=$(date +%s.%N)
records=$(field_sum dc3 records_repaired)
bytes=$(field_sum dc3 bytes_repaired)
awk -v s="$start" -v e="$end" -v r="$records" -v b="$bytes" 'BEGIN {
  t = e - s; printf "dc3 in sync with dc1 and dc2 %.1f s after its start: %d records (%.1f MB) copied, %.0f records/s, %.2f MB/s\n", t, r, b / 1e6, r / t, b / 1e6 / t }'
echo "dc3's anti-entropy passes that copied something (start was $(date -u -d @"${start%.*}" +%H:%M:%S)):"
grep "anti-entropy: copied" "$MCOS_FEDERATION_DIR/dc3/cluster.log" | cut -c1-160
wait "$load_pid" || true
load_pid=""
echo "load at dc1 and dc2 while dc3 repaired:"
grep -E "create|stat " "$work/during.txt"
