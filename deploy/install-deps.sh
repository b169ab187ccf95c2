#!/bin/sh
# Installs every Debian package rnn-server needs to build, test and run.
#
# Usage (as root, on Debian 12 "bookworm", from a bare debian:bookworm image up):
#   deploy/install-deps.sh
#
# Idempotent: when every package is already installed it does nothing, so the
# Makefile can call it before each build. The Makefile, .ci/run and the
# Dockerfile all call this one script, so every machine is set up the same way.
set -eu

PACKAGES="
  build-essential cmake make pkg-config git ca-certificates
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  libdnnl-dev ocl-icd-opencl-dev libabsl-dev prometheus-cpp-dev nlohmann-json3-dev
  libnghttp2-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  python3 python3-numpy python3-h5py python3-grpcio python3-grpc-tools
  nghttp2-client prometheus chromium
"

missing=""
for p in $PACKAGES; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing="$missing $p"
  fi
done

if [ -z "$missing" ]; then
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps: missing packages:$missing" >&2
  echo "install-deps: run as root (or: sudo $0)" >&2
  exit 1
fi

echo "install-deps: installing$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update
# shellcheck disable=SC2086
apt-get install -y --no-install-recommends $missing
