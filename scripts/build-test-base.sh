#!/usr/bin/env bash
# Makes the local Debian base that baton's image tests build on, since public
# base images (CUDA, PyTorch, golang) cannot be pulled where the tests run:
# a debootstrap root with what the tests need (python3 for the example
# trainer, curl for scripts/install.sh, gcc and libc6-dev for the cgo build
# stage of the Dockerfile, CA certificates), packed as a tarball.
#
# The tarball is cached outside the checkout (BATON_TOOLS, default
# ~/.cache/baton-tools) under a name that changes with the suite and the
# package list, so a second run takes no time; a lock lets several test
# processes ask for it at once. Needs root and debootstrap, and reaches only
# the Debian mirror.
#
# Usage: scripts/build-test-base.sh          prints the tarball's path
# Environment: BATON_DEBIAN_SUITE (bookworm, the suite of golang:1.26-bookworm),
# BATON_DEBIAN_MIRROR (http://deb.debian.org/debian).
set -euo pipefail

suite=${BATON_DEBIAN_SUITE:-bookworm}
mirror=${BATON_DEBIAN_MIRROR:-http://deb.debian.org/debian}
# openssh-server and git are left out on purpose: images/pytorch installs them
# with apt when its base lacks them, and the test goes through that path.
packages=ca-certificates,curl,python3,gcc,libc6-dev
version=1 # bump to rebuild every cached base

tools=${BATON_TOOLS:-$HOME/.cache/baton-tools}
dir="$tools/debian"
mkdir -p "$dir"

key=$(printf '%s\n' "$version" "$suite" "$mirror" "$packages" | sha256sum | cut -c1-12)
tarball="$dir/$suite-$key.tar"

if [ ! -s "$tarball" ]; then
  command -v debootstrap >/dev/null 2>&1 || {
    echo "build-test-base: debootstrap not found (apt-get install debootstrap)" >&2
    exit 1
  }
  [ "$(id -u)" = 0 ] || { echo "build-test-base: debootstrap needs root" >&2; exit 1; }
  exec 9>"$tarball.lock"
  flock 9
  if [ ! -s "$tarball" ]; then # another process may have made it while we waited
    echo "build-test-base: debootstrap $suite with $packages (a minute or two)..." >&2
    work=$(mktemp -d "$dir/root.XXXXXX")
    trap 'rm -rf "$work"' EXIT
    if ! debootstrap --variant=minbase --include="$packages" "$suite" "$work/root" "$mirror" >"$work/log" 2>&1; then
      tail -n 20 "$work/log" >&2
      echo "build-test-base: debootstrap failed (log above)" >&2
      exit 1
    fi
    # What a container runtime would provide, and what a debootstrap root
    # does not need in an image: apt's caches.
    rm -rf "$work/root/var/cache/apt/archives/"*.deb "$work/root/var/lib/apt/lists/"*
    tar --numeric-owner -C "$work/root" -cf "$work/base.tar" .
    mv "$work/base.tar" "$tarball"
  fi
fi
echo "$tarball"
