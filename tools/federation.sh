#!/usr/bin/env bash
# A local federation on loopback: N clusters (default 3), each its own mcos-cluster process with
# its own data directory and its own nats-server (JetStream; events and WatchObjects), one
# federation secret, peered with each other, and a ring over all of them (replicas = min(3, N))
# as the default option's ring. The nats-servers are linked by leafnodes to dc1's.
#
#   tools/federation.sh up [N]        build, start, peer; prints each endpoint and the admin password
#   tools/federation.sh status        which clusters run, the federation as the first one sees it,
#                                     and its replication backlog
#   tools/federation.sh bench [ARGS]  mcos-bench against the running clusters (ARGS go to it),
#                                     with the servers' CPU and context switches per operation
#   tools/federation.sh stop NAME     kill -9 one cluster (it stays part of the federation)
#   tools/federation.sh start NAME    start a stopped cluster again (same data, same port)
#   tools/federation.sh start-alone NAME   start a new cluster NAME with the federation's secret
#                                     but not peered: give it data of its own, then join it with
#                                     `mcos admin cluster add --endpoint ITS:PORT` at a member
#   tools/federation.sh stop-nats NAME / start-nats NAME   the same for a cluster's nats-server
#   tools/federation.sh down          stop every cluster and nats-server this script started
#
# MCOS_FEDERATION_SETTLE_MS=MS (default 10000) is each cluster's --move-settle-ms: how long a
# former layout keeps taking writes after a ring change before its move can finish (the
# production default, 60000, is for uploads of many minutes).
# MCOS_FEDERATION_FLAGS="..." adds flags to every mcos-cluster it starts (e.g.
# "--anti-entropy-foreground-share 1" to compare a setting side by side).
# MCOS_BIN_DIR=DIR runs the binaries of another build tree (DIR/src/cluster/mcos-cluster, ...)
# without building, e.g. to compare two builds side by side.
# MCOS_FEDERATION_DELAY_MS=D (with up) puts the clusters D ms apart each way: every cluster gets a
# delay proxy in front of it (tools/mcos-delay-proxy) and tells its peers to call it there
# (mcos-cluster --advertise); clients still reach each cluster directly.
#
# State lives in $MCOS_FEDERATION_DIR (default: $TMPDIR/mcos-federation, or /tmp/...): the secret,
# the admin password, each cluster's data, log, pid and endpoint. Only processes whose pid this
# script recorded are ever signalled.
set -euo pipefail
self="$(cd "$(dirname "$0")" && pwd)/$(basename "$0")"
cd "$(dirname "$0")/.."
dir=${MCOS_FEDERATION_DIR:-${TMPDIR:-/tmp}/mcos-federation}
bin=${MCOS_BIN_DIR:-build/release}
cmd=${1:-}
shift || true

mcos() { XDG_CONFIG_HOME="$dir/config" "$bin/src/client/mcos" "$@"; }
names() { cat "$dir/names" 2>/dev/null || true; }
# Whether pid file $1 names a live process running $2 (a pid may have been reused since; a process
# this script just started may still be a copy of the shell, so its start-up waits use kill -0).
runs() {
  [ -f "$1" ] || return 1
  local pid cmd
  pid=$(cat "$1")
  kill -0 "$pid" 2>/dev/null || return 1
  cmd=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || return 1
  [[ $cmd == *"$2"* ]]
}
alive() { runs "$dir/$1/pid" mcos-cluster; }
endpoint() { cat "$dir/$1/endpoint"; }

nats_alive() { runs "$dir/$1/nats.pid" nats-server; }
proxy_alive() { runs "$dir/$1/proxy.pid" mcos-delay-proxy; }

# With a delay (the file delay-ms, from MCOS_FEDERATION_DELAY_MS at up): starts cluster $1's
# delay proxy unless it runs, and prints the --advertise arguments that send peers through it.
advertise_args() {
  local name=$1
  [ -n "$(cat "$dir/delay-ms" 2>/dev/null)" ] || return 0
  if ! proxy_alive "$name"; then
    : >"$dir/$name/proxy-endpoint"
    "$bin/tools/mcos-delay-proxy" --delay-ms "$(cat "$dir/delay-ms")" \
      --target-port-file "$dir/$name/port" >"$dir/$name/proxy-endpoint" 2>>"$dir/$name/proxy.log" &
    echo $! >"$dir/$name/proxy.pid"
    for _ in $(seq 50); do
      [ -s "$dir/$name/proxy-endpoint" ] && break
      sleep 0.1
    done
  fi
  echo --advertise "$(cat "$dir/$name/proxy-endpoint")"
}

# Starts cluster $1's nats-server: on free ports the first time (kept for restarts), its
# configuration written by mcos-cluster (logins derived from the cluster's keys), linked to dc1's
# leafnode port unless it is dc1.
start_nats() {
  local name=$1 listen=127.0.0.1:0 leaf=127.0.0.1:0 remote=()
  mkdir -p "$dir/$name"
  [ -f "$dir/$name/nats-endpoint" ] && listen=$(cat "$dir/$name/nats-endpoint")
  [ -f "$dir/$name/nats-leaf" ] && leaf=$(cat "$dir/$name/nats-leaf")
  [ "$name" != dc1 ] && remote=(--nats-leaf-remote "$(cat "$dir/dc1/nats-leaf")")
  "$bin/src/cluster/mcos-cluster" --name "$name" --data-dir "$dir/$name/data" \
    --federation-secret-file "$dir/federation.secret" --write-nats-config "$dir/$name/nats.conf" \
    --nats-listen "$listen" --nats-leaf-listen "$leaf" "${remote[@]}"
  : >"$dir/$name/nats.log"
  nats-server -c "$dir/$name/nats.conf" >>"$dir/$name/nats.log" 2>&1 &
  echo $! >"$dir/$name/nats.pid"
  for _ in $(seq 100); do
    grep -q "Server is ready" "$dir/$name/nats.log" 2>/dev/null && break
    kill -0 "$(cat "$dir/$name/nats.pid")" 2>/dev/null || break  # (it may not have exec'd yet)
    sleep 0.1
  done
  if ! grep -q "Server is ready" "$dir/$name/nats.log"; then
    echo "error: the nats-server of $name did not start; its log:" >&2
    tail -n 20 "$dir/$name/nats.log" >&2
    exit 1
  fi
  grep -o "client connections on [0-9.:]*" "$dir/$name/nats.log" | awk '{print $4}' | tail -1 \
    >"$dir/$name/nats-endpoint"
  grep -o "leafnode connections on [0-9.:]*" "$dir/$name/nats.log" | awk '{print $4}' | tail -1 \
    >"$dir/$name/nats-leaf"
}

# Starts cluster $1 (region $2) listening on $3 (host:port; :0 picks one) and waits until it serves.
start_cluster() {
  local name=$1 region=$2 listen=$3 advertise extra
  mkdir -p "$dir/$name"
  : >"$dir/$name/stdout"
  read -r -a advertise <<<"$(advertise_args "$name")"
  read -r -a extra <<<"${MCOS_FEDERATION_FLAGS:-}"
  MCOS_ADMIN_PASSWORD=$(cat "$dir/admin-password") \
    "$bin/src/cluster/mcos-cluster" --name "$name" --region "$region" \
    --data-dir "$dir/$name/data" --listen "$listen" \
    --federation-secret-file "$dir/federation.secret" \
    --nats "nats://$(cat "$dir/$name/nats-endpoint")" "${advertise[@]}" \
    --move-settle-ms "${MCOS_FEDERATION_SETTLE_MS:-10000}" "${extra[@]}" \
    >"$dir/$name/stdout" 2>>"$dir/$name/cluster.log" &
  echo $! >"$dir/$name/pid"
  for _ in $(seq 300); do
    grep -q "listening on" "$dir/$name/stdout" 2>/dev/null && break
    kill -0 "$(cat "$dir/$name/pid")" 2>/dev/null || break  # (it may not have exec'd yet)
    sleep 0.1
  done
  local ep
  ep=$(awk '/listening on/{print $3}' "$dir/$name/stdout")
  if [ -z "$ep" ]; then
    echo "error: cluster $name did not start; its log:" >&2
    tail -n 20 "$dir/$name/cluster.log" >&2
    exit 1
  fi
  echo "$ep" >"$dir/$name/endpoint"
  echo "${ep##*:}" >"$dir/$name/port"
  echo "$region" >"$dir/$name/region"
}

case "$cmd" in
  up)
    n=${1:-3}
    [[ "$n" =~ ^[1-9][0-9]?$ ]] || { echo "usage: $0 up [N]  (N = 1..99 clusters)" >&2; exit 2; }
    if [ -f "$dir/names" ]; then
      for name in $(names); do
        if alive "$name"; then
          echo "error: a federation already runs from $dir; run '$0 down' first" >&2
          exit 1
        fi
      done
      rm -rf "$dir"
    fi
    [ -n "${MCOS_BIN_DIR:-}" ] || tools/build.sh release >/dev/null
    # A start that fails half-way stops whatever it started (else its processes outlive their pid
    # files at the next up).
    trap 'echo "up failed: stopping what it started" >&2; "$self" down >/dev/null 2>&1 || true' EXIT
    mkdir -p "$dir" && chmod 700 "$dir"
    (umask 077 && head -c 48 /dev/urandom | base64 >"$dir/federation.secret")
    (umask 077 && echo "fed-admin-$(head -c 9 /dev/urandom | base64 | tr -dc 'a-zA-Z0-9')" \
      >"$dir/admin-password")
    : >"$dir/names"
    echo "${MCOS_FEDERATION_DELAY_MS:-}" >"$dir/delay-ms"
    for i in $(seq "$n"); do
      start_nats "dc$i"
      start_cluster "dc$i" "region-$i" 127.0.0.1:0
      echo "dc$i" >>"$dir/names"
      echo "dc$i listening on $(endpoint "dc$i") (pid $(cat "$dir/dc$i/pid")), its nats-server on" \
        "$(cat "$dir/dc$i/nats-endpoint")"
    done
    first=$(endpoint dc1)
    mcos --endpoint "$first" login admin --password-stdin <"$dir/admin-password" >/dev/null
    for i in $(seq 2 "$n"); do
      echo "peered dc1 with $(mcos admin cluster add --endpoint "$(endpoint "dc$i")")"
    done
    # Every cluster knows every other and its servers (rings may name only known clusters).
    for _ in $(seq 100); do
      [ "$(mcos admin cluster list | awk '$4 == "up"' | wc -l)" = "$n" ] && break
      sleep 0.1
    done
    replicas=$((n < 3 ? n : 3))
    members=()
    for i in $(seq "$n"); do members+=(--member "dc$i:1:region-$i"); done
    mcos admin ring create fed --replicas "$replicas" --partition-power 12 "${members[@]}" >/dev/null
    # The peers' bootstrap rows may still be merging in (ABORTED): try again then.
    for _ in $(seq 50); do
      mcos admin option set-ring default fed >/dev/null 2>&1 && break
      sleep 0.2
    done
    mcos admin option list | grep -q "^default.*fed" || {
      echo "error: could not make ring 'fed' the default option's ring" >&2
      exit 1
    }
    echo "ring 'fed': $replicas replicas over $n clusters, the default option's ring"
    echo
    echo "admin password: $(cat "$dir/admin-password")   (also in $dir/admin-password)"
    for name in $(names); do echo "$name: mcos --endpoint $(endpoint "$name") ..."; done
    echo "status: $0 status    stop everything: $0 down"
    trap - EXIT
    ;;
  status)
    [ -f "$dir/names" ] || { echo "no federation in $dir (start one with: $0 up)"; exit 1; }
    live=""
    for name in $(names); do
      if alive "$name"; then
        echo "$name running (pid $(cat "$dir/$name/pid")) on $(endpoint "$name")"
        [ -n "$live" ] || live=$name
      else
        echo "$name stopped"
      fi
    done
    if [ -n "$live" ]; then
      mcos --endpoint "$(endpoint "$live")" login admin --password-stdin \
        <"$dir/admin-password" >/dev/null
      echo "-- clusters as $live sees them (name, region, endpoint, state, last contact)"
      mcos admin cluster list
      echo "-- writes $live still has to send"
      mcos admin repair status
    fi
    ;;
  bench)
    # mcos-bench against every running cluster, with the server cost per operation summed over
    # the clusters and their nats-servers; further arguments go to mcos-bench.
    [ -f "$dir/names" ] || { echo "no federation in $dir (start one with: $0 up)" >&2; exit 1; }
    eps="" pids=""
    for name in $(names); do
      alive "$name" || continue
      eps="$eps${eps:+,}$(endpoint "$name")"
      pids="$pids${pids:+,}$(cat "$dir/$name/pid")"
      if nats_alive "$name"; then pids="$pids,$(cat "$dir/$name/nats.pid")"; fi
    done
    [ -n "$eps" ] || { echo "no cluster of $dir runs" >&2; exit 1; }
    "$bin/tools/mcos-bench" --endpoints "$eps" --server-pids "$pids" \
      --admin-password "$(cat "$dir/admin-password")" "$@"
    ;;
  stop)
    name=${1:?usage: $0 stop NAME}
    alive "$name" || { echo "$name is not running" >&2; exit 1; }
    kill -9 "$(cat "$dir/$name/pid")"
    while alive "$name"; do sleep 0.05; done
    echo "killed $name (kill -9)"
    ;;
  start)
    name=${1:?usage: $0 start NAME}
    [ -f "$dir/$name/endpoint" ] || { echo "unknown cluster $name" >&2; exit 1; }
    alive "$name" && { echo "$name is already running" >&2; exit 1; }
    start_cluster "$name" "$(cat "$dir/$name/region")" "$(endpoint "$name")"
    echo "$name listening on $(endpoint "$name") again (pid $(cat "$dir/$name/pid"))"
    ;;
  start-alone)
    name=${1:?usage: $0 start-alone NAME}
    [ -f "$dir/names" ] || { echo "no federation in $dir (start one with: $0 up)" >&2; exit 1; }
    [[ "$name" =~ ^[a-z][a-z0-9-]{0,30}$ ]] || { echo "bad cluster name '$name'" >&2; exit 2; }
    grep -qx "$name" "$dir/names" && { echo "$name is already a cluster of $dir" >&2; exit 1; }
    start_nats "$name"
    start_cluster "$name" "region-$name" 127.0.0.1:0
    echo "$name" >>"$dir/names"
    echo "$name listening on $(endpoint "$name") (pid $(cat "$dir/$name/pid")), alone"
    ;;
  stop-nats)
    name=${1:?usage: $0 stop-nats NAME}
    nats_alive "$name" || { echo "the nats-server of $name is not running" >&2; exit 1; }
    kill -9 "$(cat "$dir/$name/nats.pid")"
    while nats_alive "$name"; do sleep 0.05; done
    echo "killed the nats-server of $name (kill -9)"
    ;;
  start-nats)
    name=${1:?usage: $0 start-nats NAME}
    [ -f "$dir/$name/nats-endpoint" ] || { echo "unknown cluster $name" >&2; exit 1; }
    nats_alive "$name" && { echo "the nats-server of $name is already running" >&2; exit 1; }
    start_nats "$name"
    echo "the nats-server of $name listens on $(cat "$dir/$name/nats-endpoint") again"
    ;;
  down)
    for name in $(names); do
      if alive "$name"; then
        pid=$(cat "$dir/$name/pid")
        kill "$pid"
        for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
        echo "stopped $name"
      fi
      if nats_alive "$name"; then
        pid=$(cat "$dir/$name/nats.pid")
        kill "$pid"
        for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
        echo "stopped the nats-server of $name"
      fi
      if proxy_alive "$name"; then
        kill "$(cat "$dir/$name/proxy.pid")"
        echo "stopped the delay proxy of $name"
      fi
    done
    ;;
  *)
    sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'
    [ -z "$cmd" ] || [ "$cmd" = "-h" ] || [ "$cmd" = "--help" ] || exit 2
    ;;
esac
