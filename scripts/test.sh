#!/usr/bin/env bash
# The whole test suite: formatting, vet, staticcheck, and every Go test with the race
# detector, against the file store and against real S3 servers (versitygw and
# MinIO, installed and cached by scripts/install-test-servers.sh), in both
# modules: baton's and images/ (the image tests, kept apart so that BuildKit's
# Dockerfile parser is no dependency of baton). `make test` runs it.
#
# Under CI (CI=true) nothing may skip: BATON_REQUIRE_ALL=1 (internal/testenv)
# turns a test that cannot find its S3 server, root, a PID namespace or a tool
# into a failure, so a missing one never passes silently.
set -euo pipefail
cd "$(dirname "$0")/.."

# The settings every build needs (cgo, NVML bound lazily), for vet and test too.
# shellcheck source=internal/buildflags/flags.env
. internal/buildflags/flags.env
export CGO_ENABLED CGO_CFLAGS
export BATON_TOOLS="${BATON_TOOLS:-$HOME/.cache/baton-tools}"
if [ "${CI:-}" = true ]; then
  export BATON_REQUIRE_ALL=1
  scripts/install-test-servers.sh image-tools >/dev/null # buildah, debootstrap, shellcheck from Debian (as root)
  scripts/install-test-servers.sh cross-gcc >/dev/null   # gcc-aarch64-linux-gnu, for scripts/release.sh's test
fi

# The image test builds the Dockerfile on the host's module cache, and its
# `go mod download` wants every module of go.sum, also those no Linux build
# needs (gopsutil's purego is for macOS): fill the cache first.
go mod download
(cd images && go mod download)
scripts/install-test-servers.sh versitygw >/dev/null
scripts/install-test-servers.sh minio >/dev/null
scripts/install-test-servers.sh actionlint >/dev/null # for the test that checks .github/workflows
staticcheck=$(scripts/install-test-servers.sh staticcheck | tail -n1)/staticcheck

mapfile -t gofiles < <(git ls-files '*.go' 2>/dev/null || find . -name '*.go')
unformatted=$(gofmt -l "${gofiles[@]}")
if [ -n "$unformatted" ]; then
  echo "gofmt would change: $unformatted" >&2
  exit 1
fi
go vet ./...
"$staticcheck" ./...
(cd images && go vet ./... && "$staticcheck" ./...)
# -count=1: the real-server tests depend on binaries the test cache does not see.
go test -race -count=1 -timeout 30m -ldflags="$BATON_LDFLAGS" "$@" ./...
(cd images && go test -race -count=1 -timeout 30m "$@" ./...)
