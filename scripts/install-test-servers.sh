#!/usr/bin/env bash
# Installs the real S3 servers that the test suite and the benchmarks run against:
# versitygw and MinIO, and the staticcheck linter, built with `go install` through
# the Go module proxy at pinned versions. The binaries are cached outside the checkout (BATON_TOOLS, default
# ~/.cache/baton-tools) so a second run takes no time. rclone (the benchmark peer)
# comes from Debian's packages when apt-get is there.
#
# Prints the directory that holds the binaries on its last line.
set -euo pipefail

VERSITYGW_VERSION=v1.8.0
STATICCHECK_VERSION=v0.8.2
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
  all|rclone)
    if ! command -v rclone >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
      echo "installing rclone from Debian's packages..." >&2
      (apt-get install -y -qq rclone >/dev/null 2>&1 || { apt-get update -qq >/dev/null && apt-get install -y -qq rclone >/dev/null; }) >&2
    fi
    ;;
esac

# --- image tools (explicit only: `install-test-servers.sh image-tools`) -------
# buildah, debootstrap and shellcheck from Debian's packages, for the image
# tests (go test ./images ./scripts): buildah builds the Dockerfiles with the
# vfs storage driver and chroot isolation on a base debootstrap makes. Needs
# root and apt-get; does nothing when all three are there.
install_image_tools() {
  local missing=() tool
  for tool in buildah debootstrap shellcheck; do
    command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
  done
  [ "${#missing[@]}" = 0 ] && return 0
  if ! command -v apt-get >/dev/null 2>&1 || [ "$(id -u)" != 0 ]; then
    echo "image-tools: ${missing[*]} missing; install them as root with apt-get" >&2
    return 1
  fi
  echo "installing ${missing[*]} from Debian's packages..." >&2
  (apt-get install -y -qq "${missing[@]}" >/dev/null 2>&1 ||
    { apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null; }) >&2
}
case "$want" in
  image-tools) install_image_tools ;;
esac

echo "$bin"
