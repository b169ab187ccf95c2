#!/bin/sh
# Sets this machine up to build and run the project's containers without a
# Docker engine or an image registry: Debian's podman (with runc), podman-
# compose, the dnsname plugin (service names resolve on compose networks),
# and the base images `debian:bookworm` and `debian:bookworm-slim` made
# locally with debootstrap, since no registry can be reached.
#
# Usage (as root, on Debian 12):
#   deploy/setup-podman.sh
#
# Idempotent: what is already in place is left alone, so CI and developers
# run it before every container test (make check-container does).
# The local bookworm-slim is the same debootstrapped image as bookworm, so
# image sizes measured here overstate what a real slim base gives.
set -eu

PACKAGES="podman runc podman-compose golang-github-containernetworking-plugin-dnsname
  dnsmasq-base debootstrap docker-compose"
MIRROR=${MIRROR:-http://deb.debian.org/debian}

missing=""
for p in $PACKAGES; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing="$missing $p"
  fi
done
if [ -n "$missing" ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "setup-podman: missing packages:$missing (run as root)" >&2
    exit 1
  fi
  echo "setup-podman: installing$missing"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  # shellcheck disable=SC2086
  apt-get install -y -q --no-install-recommends $missing
fi

# crun, podman's default runtime, fails on this kernel's hybrid cgroup
# setup and when raising rlimits; runc works. The default ulimits keep
# containers within what an unprivileged runtime may set.
conf=/etc/containers/containers.conf
want='[engine]
runtime = "runc"

[containers]
default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]'
if [ "$(cat "$conf" 2>/dev/null)" != "$want" ]; then
  mkdir -p /etc/containers
  printf '%s\n' "$want" >"$conf"
  echo "setup-podman: wrote $conf"
fi

# The base images, from Debian rather than a registry.
if ! podman image exists docker.io/library/debian:bookworm; then
  root=$(mktemp -d /tmp/bookworm-root.XXXXXX)
  echo "setup-podman: debootstrap bookworm (about a minute)"
  debootstrap --variant=minbase bookworm "$root" "$MIRROR" >"$root.log" 2>&1 ||
    { tail -n 20 "$root.log" >&2; exit 1; }
  tar -C "$root" -c . | podman import - docker.io/library/debian:bookworm
  rm -rf "$root" "$root.log"
fi
if ! podman image exists docker.io/library/debian:bookworm-slim; then
  podman tag docker.io/library/debian:bookworm docker.io/library/debian:bookworm-slim
fi
echo "setup-podman: ready ($(podman --version), runtime runc)"
