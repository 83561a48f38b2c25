#!/usr/bin/env bash
# Installs the real S3 servers that the test suite and the benchmarks run against:
# versitygw and MinIO, and the staticcheck and actionlint linters (actionlint checks
# .github/workflows), built with `go install` through the Go module proxy at pinned versions. The binaries are cached outside the checkout (BATON_TOOLS, default
# ~/.cache/baton-tools) so a second run takes no time. rclone (the benchmark peer)
# comes from Debian's packages when apt-get is there.
#
# Prints the directory that holds the binaries on its last line.
set -euo pipefail

VERSITYGW_VERSION=v1.8.0
STATICCHECK_VERSION=v0.8.2
ACTIONLINT_VERSION=v1.7.12
MINIO_VERSION=v0.0.0-20260212201848-7aac2a2c5b7c

tools=${BATON_TOOLS:-$HOME/.cache/baton-tools}
bin="$tools/bin"
mkdir -p "$bin"

# install NAME VERSION PACKAGE: go install PACKAGE@VERSION unless NAME-VERSION is cached.
install() {
  local name=$1 version=$2 pkg=$3
  local target="$bin/$name-$version"
  if [ ! -x "$target" ]; then
    echo "installing $name $version (go install; minutes on 2 cores)..." >&2
    local gobin
    gobin=$(mktemp -d)
    GOBIN="$gobin" CGO_ENABLED=0 GOFLAGS=-trimpath go install "$pkg@$version" >&2
    mv "$gobin/$name" "$target"
    rm -rf "$gobin"
  fi
  ln -sf "$name-$version" "$bin/$name"
}

want=${1:-all}
case "$want" in
  all|versitygw) install versitygw "$VERSITYGW_VERSION" github.com/versity/versitygw/cmd/versitygw ;;
esac
case "$want" in
  all|minio) install minio "$MINIO_VERSION" github.com/minio/minio ;;
esac
case "$want" in
  all|staticcheck) install staticcheck "$STATICCHECK_VERSION" honnef.co/go/tools/cmd/staticcheck ;;
esac
case "$want" in
  all|actionlint) install actionlint "$ACTIONLINT_VERSION" github.com/rhysd/actionlint/cmd/actionlint ;;
esac
case "$want" in
  all|rclone)
    if ! command -v rclone >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
      echo "installing rclone from Debian's packages..." >&2
      (apt-get install -y -qq rclone >/dev/null 2>&1 || { apt-get update -qq >/dev/null && apt-get install -y -qq rclone >/dev/null; }) >&2
    fi
    ;;
esac

# --- tools from Debian's packages (explicit only) ----------------------------
# `install-test-servers.sh image-tools`: buildah, debootstrap and shellcheck,
# for the image tests (go test ./images ./scripts): buildah builds the
# Dockerfiles with the vfs storage driver and chroot isolation on a base
# debootstrap makes.
# `install-test-servers.sh cross-gcc`: gcc-aarch64-linux-gnu, the C cross
# compiler scripts/release.sh builds the linux/arm64 binary with (cgo), for
# its test (go test ./scripts).
# Each needs root and apt-get, and does nothing when its commands are there.

# install_apt WHAT COMMAND:PACKAGE...: apt-get install the PACKAGE of each
# COMMAND that is not on PATH.
install_apt() {
  local what=$1 missing=() pair
  shift
  for pair in "$@"; do
    command -v "${pair%%:*}" >/dev/null 2>&1 || missing+=("${pair#*:}")
  done
  [ "${#missing[@]}" = 0 ] && return 0
  if ! command -v apt-get >/dev/null 2>&1 || [ "$(id -u)" != 0 ]; then
    echo "$what: ${missing[*]} missing; install them as root with apt-get" >&2
    return 1
  fi
  echo "installing ${missing[*]} from Debian's packages..." >&2
  (apt-get install -y -qq "${missing[@]}" >/dev/null 2>&1 ||
    { apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null; }) >&2
}
case "$want" in
  image-tools) install_apt image-tools buildah:buildah debootstrap:debootstrap shellcheck:shellcheck ;;
  cross-gcc) install_apt cross-gcc aarch64-linux-gnu-gcc:gcc-aarch64-linux-gnu ;;
esac

echo "$bin"
