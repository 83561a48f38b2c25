#!/bin/sh
# Installs a baton binary into an image or a machine that does not have it
# (a rented image used as it is, Vast.ai's on-start script), and optionally
# starts `baton run --detach` with the arguments that follow the source.
#
# Usage: install.sh [--sha256 HEX] [--dest DIR] SOURCE [BATON RUN ARGS...]
#
#   SOURCE     a published release, vX.Y.Z: the archive for this machine
#              (baton_X.Y.Z_linux_amd64.tar.gz or _arm64) from
#              https://github.com/batonrun/baton/releases/download/vX.Y.Z/,
#              checked against that release's SHA256SUMS (BATON_RELEASE_URL
#              replaces the part before /vX.Y.Z: a mirror, a bucket, a path);
#              or where a binary is: https://... (or http://: the checksum is
#              what makes it safe), s3://bucket/key (needs the aws CLI and its
#              usual AWS_* variables; without it, give a presigned https URL:
#              `aws s3 presign s3://bucket/key`), file:///path or a path.
#   --sha256   the SHA-256, 64 hex digits, of the binary; for a release, of
#              its archive (its line in SHA256SUMS), which pins the release's
#              bytes beyond what SHA256SUMS says. Required for a binary
#              (nothing is installed unverified); also BATON_SHA256.
#   --dest     the directory to install baton into (default /usr/local/bin).
#   BATON RUN ARGS
#              when given, `baton run --detach ARGS...` is started after the
#              install: e.g. --pid-file /root/baton.pid -- python train.py.
#
# Running it again is safe: a binary already installed with the same
# checksum (for a release: one whose `baton version` is vX.Y.Z) is not
# fetched again, and a baton run whose pid file names a live baton is not
# started twice. Exit status: 0 done, 1 failed, 2 bad usage.
#
# Needs: sh, sha256sum (or shasum), curl or wget for http(s), aws for s3,
# tar and gzip for a release.
set -eu

prog=install.sh
die() { echo "$prog: $*" >&2; exit 1; }
usage() { echo "$prog: $*" >&2; echo "usage: $prog [--sha256 HEX] [--dest DIR] SOURCE [BATON RUN ARGS...]" >&2; exit 2; }

sha256=${BATON_SHA256:-}
dest=/usr/local/bin
while [ $# -gt 0 ]; do
  case $1 in
    --sha256) [ $# -ge 2 ] || usage "--sha256 needs a value"; sha256=$2; shift 2 ;;
    --sha256=*) sha256=${1#*=}; shift ;;
    --dest) [ $# -ge 2 ] || usage "--dest needs a value"; dest=$2; shift 2 ;;
    --dest=*) dest=${1#*=}; shift ;;
    -h|--help) sed -n '2,/^set -eu/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; exit 0 ;;
    --) shift; break ;;
    -*) usage "unknown option $1" ;;
    *) break ;;
  esac
done
[ $# -ge 1 ] || usage "no SOURCE: where is the baton binary? (or a release: vX.Y.Z)"
source=$1
shift

sha256=$(printf '%s' "${sha256#sha256:}" | tr 'A-F' 'a-f')
release=
case $source in
  v[0-9]*)
    release=${source#v}
    case $release in
      *[!0-9A-Za-z.-]*|*..*|.*) usage "$source: want a release vX.Y.Z" ;;
    esac
    ;;
  https://*|http://*|s3://*|file://*|/*|./*|../*)
    [ -n "$sha256" ] || usage "--sha256 is required (the binary's SHA-256, as sha256sum prints it)" ;;
  *) usage "$source: want an https://, http://, s3:// or file:// URL, a path, or a release vX.Y.Z" ;;
esac
if [ -n "$sha256" ]; then
  case $sha256 in
    *[!0-9a-f]*) usage "--sha256 $sha256: not hex" ;;
  esac
  [ ${#sha256} -eq 64 ] || usage "--sha256 $sha256: want 64 hex digits, got ${#sha256}"
fi

# hash FILE prints the SHA-256 of FILE.
hash() {
  if command -v sha256sum >/dev/null 2>&1; then
    sha256sum "$1" | cut -d' ' -f1
  elif command -v shasum >/dev/null 2>&1; then
    shasum -a 256 "$1" | cut -d' ' -f1
  else
    die "neither sha256sum nor shasum is installed: cannot check the binary"
  fi
}

# fetch SOURCE FILE copies SOURCE (https, http, s3, file URL or path) to FILE.
fetch() {
  case $1 in
    https://*|http://*)
      if command -v curl >/dev/null 2>&1; then
        curl -fsSL --retry 3 --connect-timeout 20 -o "$2" "$1" || die "download failed: $1 (curl status $?)"
      elif command -v wget >/dev/null 2>&1; then
        wget -q -t 3 -T 20 -O "$2" "$1" || die "download failed: $1 (wget status $?)"
      else
        die "neither curl nor wget is installed: cannot fetch $1"
      fi
      ;;
    s3://*)
      command -v aws >/dev/null 2>&1 ||
        die "$1 needs the aws CLI, which is not installed; or give a presigned https URL (aws s3 presign $1)"
      aws s3 cp --only-show-errors "$1" "$2" >&2 || die "aws s3 cp $1 failed (see above)"
      ;;
    *) # file:// or a path
      path=${1#file://}
      [ -f "$path" ] || die "no such file: $path"
      cp "$path" "$2" || die "cannot copy $path"
      ;;
  esac
}

target=$dest/baton
installed=
if [ -x "$target" ]; then
  if [ -n "$release" ]; then
    case $("$target" version 2>/dev/null) in
      "baton v$release "*) installed="version v$release" ;;
    esac
  elif [ "$(hash "$target")" = "$sha256" ]; then
    installed="SHA-256 $sha256"
  fi
fi
if [ -n "$installed" ]; then
  echo "$prog: $target is already installed with $installed"
else
  mkdir -p "$dest" || die "cannot create $dest"
  # The download goes next to the target, so the final rename is atomic
  # and a running baton is never overwritten in place.
  tmp=$(mktemp -d "$dest/.baton.XXXXXX") || die "cannot write into $dest"
  trap 'rm -rf "$tmp"' EXIT
  trap 'exit 1' HUP INT TERM
  if [ -n "$release" ]; then
    case $(uname -m) in
      x86_64|amd64) arch=amd64 ;;
      aarch64|arm64) arch=arm64 ;;
      *) die "no release of baton for $(uname -m): there are linux/amd64 and linux/arm64" ;;
    esac
    base=${BATON_RELEASE_URL:-https://github.com/batonrun/baton/releases/download}
    archive=baton_${release}_linux_$arch.tar.gz
    fetch "${base%/}/v$release/SHA256SUMS" "$tmp/SHA256SUMS"
    fetch "${base%/}/v$release/$archive" "$tmp/$archive"
    want=$(awk -v f="$archive" '$2 == f || $2 == "*" f { print $1; exit }' "$tmp/SHA256SUMS" | tr 'A-F' 'a-f')
    [ -n "$want" ] || die "v$release's SHA256SUMS has no line for $archive; nothing installed"
    got=$(hash "$tmp/$archive")
    [ "$got" = "$want" ] || die "SHA-256 mismatch for $archive: got $got, SHA256SUMS says $want; nothing installed"
    [ -z "$sha256" ] || [ "$got" = "$sha256" ] ||
      die "SHA-256 mismatch for $archive: got $got, want $sha256 (--sha256); nothing installed"
    (cd "$tmp" && tar -xzf "$archive" baton) || die "cannot unpack baton from $archive"
    from="$archive (SHA-256 $got)"
  else
    fetch "$source" "$tmp/baton"
    got=$(hash "$tmp/baton")
    [ "$got" = "$sha256" ] || die "SHA-256 mismatch for $source: got $got, want $sha256; nothing installed"
    from=$source
  fi
  chmod 0755 "$tmp/baton"
  # A binary that cannot run here (another architecture, a glibc older than
  # 2.34) fails now rather than at the container's start.
  out=$("$tmp/baton" version 2>&1) || die "the binary does not run on this system: $(printf '%s' "$out" | head -n 3)"
  case $release:$out in
    :*|*:"baton v$release "*) ;;
    *) die "$from holds $out, not v$release; nothing installed" ;;
  esac
  mv -f "$tmp/baton" "$target" || die "cannot install $target"
  rm -rf "$tmp"
  trap - EXIT HUP INT TERM
  echo "$prog: installed $target: $out"
fi

if [ $# -gt 0 ]; then
  exec "$target" run --detach "$@"
fi
