#!/bin/sh
# Proves deploy/install-deps.sh takes a bare Debian 12 (what the
# debian:bookworm image holds: no compiler, no CMake) to a passing `make test`,
# the way a new user or the container build meets it: debootstrap a minbase
# bookworm into a directory, install only make and git, clone this checkout
# into it and run `make test` under chroot.
#
# Usage (as root; needs debootstrap and a Debian mirror):
#   deploy/check-bare-install.sh [WORKDIR]    # default: a fresh mktemp -d
# Takes 15-30 minutes on 2 cores, most of it the build. Cleans up its mounts.
set -eu
src=$(cd "$(dirname "$0")/.." && pwd)
work=${1:-$(mktemp -d /tmp/rnn-bare.XXXXXX)}
mkdir -p "$work"
root="$work/root"
mirror=${MIRROR:-http://deb.debian.org/debian}

cleanup() {
  umount "$root/proc" 2>/dev/null || true
  umount "$root/dev" 2>/dev/null || true
}
trap cleanup EXIT

echo "bare-install: debootstrap into $root"
debootstrap --variant=minbase bookworm "$root" "$mirror" >"$work/debootstrap.log"
mount -t proc proc "$root/proc"
mount --bind /dev "$root/dev"
cp /etc/resolv.conf "$root/etc/resolv.conf"
chroot "$root" sh -c 'apt-get update -q && apt-get install -y -q --no-install-recommends make git ca-certificates' \
  >"$work/base-packages.log"
git clone -q "$src" "$root/project"
echo "bare-install: make test under chroot (log: $work/make-test.log)"
if chroot "$root" sh -c 'cd /project && make test' >"$work/make-test.log" 2>&1; then
  tail -n 3 "$work/make-test.log"
  echo "bare-install: PASSED"
else
  tail -n 40 "$work/make-test.log"
  echo "bare-install: FAILED"
  exit 1
fi
