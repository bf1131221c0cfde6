#!/usr/bin/env bash
# Installs every Debian 12 package MCOS needs to build, test and run, if any is missing.
# Called by the README's commands and by .ci/run; needs root (or sudo) only when something is missing.
set -euo pipefail
PACKAGES=(
  build-essential cmake ninja-build ccache pkg-config
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler libabsl-dev
  libnats-dev nats-server librocksdb-dev libsqlite3-dev libcli11-dev
  libgtest-dev libgmock-dev libbenchmark-dev libssl-dev libargon2-dev prometheus-cpp-dev
  libxxhash-dev libgoogle-perftools-dev faketime
)
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
echo "install-deps: installing ${missing[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
