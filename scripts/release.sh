#!/usr/bin/env bash
# Builds the release of baton VERSION: a binary for linux/amd64 and one for
# linux/arm64 (GH200 and other Grace hosts), each packed with LICENSE and
# README.md, install.sh beside them, and SHA256SUMS over all of it:
#
#   scripts/release.sh VERSION [OUTDIR]      # or: make release VERSION=1.2.3
#
#   VERSION  X.Y.Z or vX.Y.Z (a pre-release suffix is fine: 1.2.3-rc.1); the
#            binaries print vX.Y.Z (`baton version`), the files say X.Y.Z
#   OUTDIR   where the files go (default dist), emptied of an older release
#
# It writes OUTDIR/baton_X.Y.Z_linux_amd64.tar.gz, ..._linux_arm64.tar.gz,
# install.sh and SHA256SUMS, the names .github/workflows/release.yml uploads
# and scripts/install.sh fetches (docs/release.md).
#
# Both builds go through scripts/build.sh (cgo: the settings of
# internal/buildflags/flags.env), with -trimpath, -s -w and the version
# stamped, so the same commit gives the same bytes on any machine with the
# same Go and gcc: the archives too (sorted, mtime of the commit, owner 0,
# gzip -n). The architecture that is not the host's needs Debian's cross
# compiler: gcc-aarch64-linux-gnu on amd64 (gcc-x86-64-linux-gnu on arm64).
#
# Each binary is checked: an ELF of its architecture, needing no glibc newer
# than 2.34 (what the images and docs promise), and the host's runs
# `baton version` and prints the version.
set -euo pipefail

prog=release.sh
die() { echo "$prog: $*" >&2; exit 1; }
if [ $# -lt 1 ] || [ $# -gt 2 ]; then
  echo "usage: scripts/release.sh VERSION [OUTDIR]" >&2
  exit 2
fi
version=${1#v}
if ! [[ $version =~ ^[0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.-]+)?$ ]]; then
  echo "$prog: VERSION $1: want X.Y.Z or vX.Y.Z, e.g. 1.2.3 or v1.2.3-rc.1" >&2
  exit 2
fi
outdir=${2:-dist}
case $outdir in
/*) ;;
*) outdir=$PWD/$outdir ;;
esac
cd "$(dirname "$0")/.."

for tool in go tar gzip sha256sum od; do
  command -v "$tool" >/dev/null 2>&1 || die "$tool is not installed"
done

case $(go env GOHOSTARCH) in
amd64) host=amd64 ;;
arm64) host=arm64 ;;
*) die "builds on linux/amd64 or linux/arm64 only, not $(go env GOHOSTARCH)" ;;
esac

# cc ARCH prints the C compiler for ARCH: the host's own, or Debian's cross gcc.
cc() {
  if [ "$1" = "$host" ]; then
    echo "${CC:-gcc}"
    return
  fi
  case $1 in
  arm64) echo aarch64-linux-gnu-gcc ;;
  amd64) echo x86_64-linux-gnu-gcc ;;
  esac
}
# crosspkg ARCH prints the Debian package of ARCH's cross compiler.
crosspkg() {
  case $1 in
  arm64) echo gcc-aarch64-linux-gnu ;;
  amd64) echo gcc-x86-64-linux-gnu ;;
  esac
}
for arch in amd64 arm64; do
  compiler=$(cc "$arch")
  if ! command -v "$compiler" >/dev/null 2>&1; then
    if [ "$arch" = "$host" ]; then
      die "no C compiler ($compiler) for linux/$arch: baton needs cgo"
    fi
    die "no cross compiler for linux/$arch ($compiler): install Debian's package $(crosspkg "$arch") (apt-get install -y $(crosspkg "$arch"))"
  fi
done

# The archives' files all get the time of the commit (or SOURCE_DATE_EPOCH),
# so that a rebuild of the same commit gives the same archive.
epoch=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || echo 0)}

# elf_machine FILE prints FILE's ELF machine: 62 x86-64, 183 aarch64; and
# fails unless FILE is a 64-bit little-endian ELF.
elf_machine() {
  local magic
  magic=$(od -An -tx1 -N6 "$1" | tr -d ' \n')
  [ "$magic" = 7f454c460201 ] || return 1
  od -An -tu2 -j18 -N2 "$1" | tr -d ' \n'
}

# glibc_max FILE prints the newest GLIBC_x.y symbol version FILE needs, or
# nothing when readelf is missing.
glibc_max() {
  command -v readelf >/dev/null 2>&1 || return 0
  readelf -V --wide "$1" | grep -o 'GLIBC_[0-9][0-9.]*' | sed 's/GLIBC_//' | sort -t. -k1,1n -k2,2n -k3,3n | tail -n1
}

mkdir -p "$outdir"
rm -f "$outdir"/baton_*_linux_*.tar.gz "$outdir/SHA256SUMS" "$outdir/install.sh"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

for arch in amd64 arm64; do
  name=baton_${version}_linux_$arch
  stage=$work/$name
  mkdir -p "$stage"
  echo "$prog: building $name ($(cc "$arch"))..." >&2
  GOOS=linux GOARCH=$arch CC=$(cc "$arch") GOFLAGS="${GOFLAGS:+$GOFLAGS }-trimpath" \
    scripts/build.sh "$stage/baton" -s -w -X "main.version=v$version"

  case $arch in
  amd64) want=62 ;;
  arm64) want=183 ;;
  esac
  got=$(elf_machine "$stage/baton") || die "$name: the binary is not a 64-bit ELF"
  [ "$got" = "$want" ] || die "$name: the binary is for ELF machine $got, want $want ($arch)"
  if command -v file >/dev/null 2>&1; then
    echo "$prog: $(file -b "$stage/baton")" >&2
  fi
  glibc=$(glibc_max "$stage/baton")
  if [ -n "$glibc" ] && [ "$(printf '%s\n2.34\n' "$glibc" | sort -t. -k1,1n -k2,2n | tail -n1)" != 2.34 ]; then
    die "$name needs glibc $glibc, newer than the 2.34 baton promises: build on an older system (Debian 12, Ubuntu 22.04)"
  fi
  if [ "$arch" = "$host" ]; then
    out=$("$stage/baton" version) || die "$name: baton version failed: $out"
    case $out in
    "baton v$version "*) echo "$prog: $out" >&2 ;;
    *) die "$name: baton version printed \"$out\", want baton v$version" ;;
    esac
  fi

  cp LICENSE README.md "$stage/"
  chmod 0755 "$stage/baton"
  chmod 0644 "$stage/LICENSE" "$stage/README.md"
  (cd "$stage" && tar --create --format=ustar --sort=name --mtime="@$epoch" \
    --owner=0 --group=0 --numeric-owner LICENSE README.md baton) | gzip -9 -n >"$outdir/$name.tar.gz"
done
install -m 0755 scripts/install.sh "$outdir/install.sh"
touch -d "@$epoch" "$outdir/install.sh"

(cd "$outdir" && sha256sum baton_"${version}"_linux_amd64.tar.gz baton_"${version}"_linux_arm64.tar.gz install.sh >SHA256SUMS)
(cd "$outdir" && sha256sum --check --quiet SHA256SUMS) || die "SHA256SUMS does not verify"
echo "$prog: release $version in $outdir:" >&2
(cd "$outdir" && for f in baton_"${version}"_linux_amd64.tar.gz baton_"${version}"_linux_arm64.tar.gz install.sh SHA256SUMS; do
  printf '%10d  %s\n' "$(stat -c %s "$f")" "$f"
done) >&2
cat "$outdir/SHA256SUMS"
