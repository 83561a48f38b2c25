#!/usr/bin/env bash
# Builds cmd/baton with the settings every build needs, which
# internal/buildflags/flags.env holds (cgo, NVML bound lazily):
#
#   scripts/build.sh OUTPUT [LDFLAG...]
#
# The LDFLAGs come first in -ldflags, e.g. the Dockerfile's
#   scripts/build.sh /baton -s -w -X main.version=v1.2.3
# Other go build flags come through GOFLAGS (GOFLAGS="-trimpath -buildvcs=false").
# `make build` and the scripts that need a baton call it.
set -euo pipefail
if [ $# -lt 1 ]; then
  echo "usage: scripts/build.sh OUTPUT [LDFLAG...]" >&2
  exit 2
fi
case $1 in
/*) out=$1 ;;
*) out=$PWD/$1 ;;
esac
shift
cd "$(dirname "$0")/.."
# shellcheck source=internal/buildflags/flags.env
. internal/buildflags/flags.env
export CGO_ENABLED CGO_CFLAGS
exec go build -ldflags="${*:+$* }$BATON_LDFLAGS" -o "$out" ./cmd/baton
