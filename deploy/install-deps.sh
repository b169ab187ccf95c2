#!/bin/sh
# Installs the Debian packages rnn-server needs to build, test and run.
#
# Usage (as root, on Debian 12 "bookworm", from a bare debian:bookworm image up):
#   deploy/install-deps.sh            # build + test: what `make test` needs
#   deploy/install-deps.sh --build    # compiler, CMake, -dev packages, not
#                                     # the tests' tools: deploy/Dockerfile's
#                                     # build stage (on debian:bookworm)
#   deploy/install-deps.sh --runtime  # the shared libraries the binaries load:
#                                     # deploy/Dockerfile's runtime stage (on
#                                     # debian:bookworm-slim)
#
# Idempotent: when every package is already installed it does nothing, so the
# Makefile can call it before each build. Every machine is set up by this one
# script: the Makefile's deps step, which each build target runs first (so
# `make run`, `make test` and .ci/run go through it), and deploy/Dockerfile,
# with --build and --runtime. deploy/check-bare-install.sh proves it on a
# bare bookworm.
set -eu

# What rnn-server, rnn-client, rnn-loadgen and rnn-eval load at run time
# (`ldd` on each, mapped to packages with `dpkg -S`).
RUNTIME="
  libgrpc++1.51 libgrpc29 libprotobuf32 libabsl20220623 libc-ares2 libre2-9 libssl3
  libdnnl2 libgomp1 ocl-icd-libopencl1
  libprometheus-cpp-core1.0 libprometheus-cpp-pull1.0 libcivetweb1
  libnghttp2-14 zlib1g libjemalloc2
"
BUILD="
  build-essential cmake make pkg-config git ca-certificates
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  libdnnl-dev ocl-icd-opencl-dev libabsl-dev prometheus-cpp-dev nlohmann-json3-dev
  libnghttp2-dev libjemalloc-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  python3
"
# The tests' own tools: Python's numpy/h5py/grpc for the oracles and
# generic client, h2load, a real Prometheus, Chromium for the report
# screenshot, clang for the thread-safety analysis (make thread-safety),
# openssl for the TLS tests' throwaway certificates, python3-h2 for the
# hostile HTTP/2 clients, clang's sanitizer runtimes and libFuzzer
# (libclang-rt-14-dev, only recommended by clang) and llvm-symbolizer (llvm)
# for make fuzz.
TEST="
  python3-numpy python3-h5py python3-grpcio python3-grpc-tools python3-h2
  nghttp2-client prometheus chromium clang libclang-rt-14-dev llvm openssl
"

case "${1:-}" in
  "") PACKAGES="$BUILD $TEST" ;;
  --build) PACKAGES="$BUILD" ;;
  --runtime) PACKAGES="$RUNTIME" ;;
  *) echo "usage: $0 [--build | --runtime]" >&2; exit 2 ;;
esac

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
  echo "install-deps: run as root (or: sudo $0 ${1:-})" >&2
  exit 1
fi

echo "install-deps: installing$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update
# shellcheck disable=SC2086
apt-get install -y --no-install-recommends $missing
