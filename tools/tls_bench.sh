#!/usr/bin/env bash
# The cost of TLS: mcos-bench against a plaintext mcos-cluster and against one serving TLS (a
# throwaway CA and certificate made here with openssl), alternately, `rounds` times each, in one
# run (figures drift between runs on a VM: compare within one).
# Usage: tools/tls_bench.sh [rounds=2] [seconds per phase=3] [large MiB=256] [build dir=build/release]
set -euo pipefail
rounds=${1:-2}
seconds=${2:-3}
large=${3:-256}
build=${4:-build/release}
w=$(mktemp -d "${TMPDIR:-/tmp}/mcos-tls-bench-XXXXXX")
trap 'rm -rf "$w"' EXIT
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 \
  -subj /CN=mcos-bench-ca -keyout "$w/ca.key" -out "$w/ca.pem" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj /CN=mcos-bench \
  -keyout "$w/cluster.key" -out "$w/cluster.csr" 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' >"$w/ext"
openssl x509 -req -in "$w/cluster.csr" -CA "$w/ca.pem" -CAkey "$w/ca.key" -CAcreateserial \
  -days 1 -extfile "$w/ext" -out "$w/cluster.pem" 2>/dev/null
bench="$build/tools/mcos-bench"
cluster="$build/src/cluster/mcos-cluster"
for r in $(seq "$rounds"); do
  echo "== round $r: plaintext"
  "$bench" --cluster-bin "$cluster" --seconds "$seconds" --large-mib "$large"
  echo "== round $r: TLS"
  "$bench" --cluster-bin "$cluster" --seconds "$seconds" --large-mib "$large" \
    --tls-ca "$w/ca.pem" --tls-cert "$w/cluster.pem" --tls-key "$w/cluster.key"
done
