#!/usr/bin/env bash
# The OpenStack Swift baseline MCOS's benchmarks are compared with (issue "One object path"): the
# classic all-in-one from Debian's packages, in a temporary directory on loopback: 3 replicas,
# 3 object, 3 container and 3 account servers (one worker each), one proxy worker with tempauth
# and memcached. Runs tools/swift_bench.py (16 keep-alive clients, 4 KiB objects, a 2,000-object
# listing) and a 256 MiB upload and download with curl, then stops everything it started.
#
#   tools/swift_baseline.sh [--install] [--seconds S] [--large-mib N] [--large-rounds K]
#
# --install: apt-get install the Swift packages first (as root). Compare in one window: run
# mcos-bench against tools/federation.sh right before or after.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
seconds=5
large_mib=256
large_rounds=2
install=0
while (($#)); do
  case $1 in
    --install) install=1 ;;
    --seconds) seconds=$2; shift ;;
    --large-mib) large_mib=$2; shift ;;
    --large-rounds) large_rounds=$2; shift ;;
    -h|--help) sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "swift_baseline: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
if ((install)); then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq swift swift-proxy swift-object \
    swift-container swift-account memcached curl >/dev/null
fi
for b in swift-ring-builder swift-proxy-server swift-object-server memcached curl; do
  command -v "$b" >/dev/null || { echo "swift_baseline: $b is missing: run with --install" >&2; exit 1; }
done

dir=$(mktemp -d "${TMPDIR:-/tmp}/swift-baseline.XXXXXX")
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$dir"
}
trap cleanup EXIT
free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

etc=$dir/etc
mkdir -p "$etc" "$dir/run"
cat >"$etc/swift.conf" <<EOF
[swift-hash]
swift_hash_path_suffix = mcos-baseline
swift_hash_path_prefix = mcos-baseline
[storage-policy:0]
name = Policy-0
default = yes
EOF
mc_port=$(free_port)
memcached -l 127.0.0.1 -p "$mc_port" -U 0 -m 64 -u "$(id -un)" &
pids+=($!)

# What every server's [DEFAULT] holds: one worker on loopback port $1, run as this user.
server_defaults() {
  printf 'bind_ip = 127.0.0.1\nbind_port = %s\nworkers = 1\nuser = %s\nswift_dir = %s\nlog_level = WARNING\n' \
    "$1" "$(id -un)" "$etc"
}
for kind in object container account; do
  swift-ring-builder "$etc/$kind.builder" create 8 3 1 >/dev/null
done
for n in 1 2 3; do
  mkdir -p "$dir/srv/$n/d$n"
  for kind in object container account; do
    port=$(free_port)
    swift-ring-builder "$etc/$kind.builder" add "r1z$n-127.0.0.1:$port/d$n" 1 >/dev/null
    extra=""
    [[ $kind == object ]] && extra="[object-replicator]
[object-updater]
[object-auditor]"
    [[ $kind == container ]] && extra="[container-replicator]
[container-updater]
[container-auditor]
[container-sync]"
    [[ $kind == account ]] && extra="[account-replicator]
[account-auditor]
[account-reaper]"
    cat >"$etc/$kind-$n.conf" <<EOF
[DEFAULT]
devices = $dir/srv/$n
mount_check = false
disable_fallocate = true
$(server_defaults "$port")
[pipeline:main]
pipeline = $kind-server
[app:$kind-server]
use = egg:swift#$kind
$extra
EOF
  done
done
for kind in object container account; do
  swift-ring-builder "$etc/$kind.builder" rebalance >/dev/null
done
proxy_port=$(free_port)
cat >"$etc/proxy.conf" <<EOF
[DEFAULT]
$(server_defaults "$proxy_port")
[pipeline:main]
pipeline = catch_errors gatekeeper healthcheck cache listing_formats tempauth copy proxy-server
[app:proxy-server]
use = egg:swift#proxy
account_autocreate = true
$(for f in catch_errors gatekeeper healthcheck listing_formats copy; do
    printf '[filter:%s]\nuse = egg:swift#%s\n' "$f" "$f"
  done)
[filter:cache]
use = egg:swift#memcache
memcache_servers = 127.0.0.1:$mc_port
[filter:tempauth]
use = egg:swift#tempauth
user_test_tester = testing .admin
EOF
for n in 1 2 3; do
  for kind in object container account; do
    "swift-$kind-server" "$etc/$kind-$n.conf" -v >"$dir/run/$kind-$n.log" 2>&1 &
    pids+=($!)
  done
done
swift-proxy-server "$etc/proxy.conf" -v >"$dir/run/proxy.log" 2>&1 &
pids+=($!)
auth=http://127.0.0.1:$proxy_port/auth/v1.0
for _ in $(seq 1 100); do
  curl -fs "http://127.0.0.1:$proxy_port/healthcheck" >/dev/null && break
  sleep 0.2
done
curl -fs "http://127.0.0.1:$proxy_port/healthcheck" >/dev/null || {
  echo "swift_baseline: the proxy did not start:" >&2; cat "$dir/run/proxy.log" >&2; exit 1; }
sleep 1  # the storage servers

/usr/bin/python3 "$here/swift_bench.py" --auth "$auth" --seconds "$seconds"

if ((large_mib > 0)); then
  headers=$(curl -fsi -H "X-Auth-User: test:tester" -H "X-Auth-Key: testing" "$auth")
  url=$(printf '%s' "$headers" | tr -d '\r' | awk -F': ' 'tolower($1)=="x-storage-url"{print $2}')
  token=$(printf '%s' "$headers" | tr -d '\r' | awk -F': ' 'tolower($1)=="x-auth-token"{print $2}')
  head -c $((large_mib << 20)) /dev/urandom >"$dir/large"
  curl -fs -X PUT -H "X-Auth-Token: $token" "$url/large" >/dev/null
  for r in $(seq 1 "$large_rounds"); do
    up=$(curl -fs -o /dev/null -w '%{time_total}' -X PUT -H "X-Auth-Token: $token" \
      -T "$dir/large" "$url/large/big")
    down=$(curl -fs -o /dev/null -w '%{time_total}' -H "X-Auth-Token: $token" "$url/large/big")
    awk -v m="$large_mib" -v u="$up" -v d="$down" -v r="$r" 'BEGIN {
      printf "large %d MiB round %d: upload %.0f MB/s, download %.0f MB/s\n", m, r,
        m * 1.048576 / u, m * 1.048576 / d }'
  done
fi
