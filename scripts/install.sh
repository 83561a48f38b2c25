#!/bin/sh
# Installs a baton binary into an image or a machine that does not have it
# (a rented image used as it is, Vast.ai's on-start script), and optionally
# starts `baton run --detach` with the arguments that follow the source.
#
# Usage: install.sh --sha256 HEX [--dest DIR] SOURCE [BATON RUN ARGS...]
#
#   SOURCE     where the binary is: https://... (or http://: the checksum is
#              what makes it safe), s3://bucket/key (needs the aws CLI and its
#              usual AWS_* variables; without it, give a presigned https URL:
#              `aws s3 presign s3://bucket/key`), file:///path or a path.
#   --sha256   the binary's SHA-256, 64 hex digits (required: nothing is
#              installed unverified). Also BATON_SHA256.
#   --dest     the directory to install baton into (default /usr/local/bin).
#   BATON RUN ARGS
#              when given, `baton run --detach ARGS...` is started after the
#              install: e.g. --pid-file /root/baton.pid -- python train.py.
#
# Running it again is safe: a binary already installed with the same
# checksum is not fetched again, and a baton run whose pid file names a live
# baton is not started twice. Exit status: 0 done, 1 failed, 2 bad usage.
#
# Needs: sh, sha256sum (or shasum), curl or wget for http(s), aws for s3.
set -eu

prog=install.sh
die() { echo "$prog: $*" >&2; exit 1; }
usage() { echo "$prog: $*" >&2; echo "usage: $prog --sha256 HEX [--dest DIR] SOURCE [BATON RUN ARGS...]" >&2; exit 2; }

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
[ $# -ge 1 ] || usage "no SOURCE: where is the baton binary?"
source=$1
shift

sha256=$(printf '%s' "${sha256#sha256:}" | tr 'A-F' 'a-f')
[ -n "$sha256" ] || usage "--sha256 is required (the binary's SHA-256, as sha256sum prints it)"
case $sha256 in
  *[!0-9a-f]*) usage "--sha256 $sha256: not hex" ;;
esac
[ ${#sha256} -eq 64 ] || usage "--sha256 $sha256: want 64 hex digits, got ${#sha256}"
case $source in
  https://*|http://*|s3://*|file://*|/*|./*|../*) ;;
  *) usage "$source: want an https://, http://, s3:// or file:// URL, or a path" ;;
esac

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

target=$dest/baton
if [ -x "$target" ] && [ "$(hash "$target")" = "$sha256" ]; then
  echo "$prog: $target is already installed with SHA-256 $sha256"
else
  mkdir -p "$dest" || die "cannot create $dest"
  # The download goes next to the target, so the final rename is atomic
  # and a running baton is never overwritten in place.
  tmp=$(mktemp "$dest/.baton.XXXXXX") || die "cannot write into $dest"
  trap 'rm -f "$tmp"' EXIT
  trap 'exit 1' HUP INT TERM
  case $source in
    https://*|http://*)
      if command -v curl >/dev/null 2>&1; then
        curl -fsSL --retry 3 --connect-timeout 20 -o "$tmp" "$source" || die "download failed: $source (curl status $?)"
      elif command -v wget >/dev/null 2>&1; then
        wget -q -t 3 -T 20 -O "$tmp" "$source" || die "download failed: $source (wget status $?)"
      else
        die "neither curl nor wget is installed: cannot fetch $source"
      fi
      ;;
    s3://*)
      command -v aws >/dev/null 2>&1 ||
        die "$source needs the aws CLI, which is not installed; or give a presigned https URL (aws s3 presign $source)"
      aws s3 cp --only-show-errors "$source" "$tmp" >&2 || die "aws s3 cp $source failed (see above)"
      ;;
    *) # file:// or a path
      path=${source#file://}
      [ -f "$path" ] || die "no such file: $path"
      cp "$path" "$tmp" || die "cannot copy $path"
      ;;
  esac
  got=$(hash "$tmp")
  [ "$got" = "$sha256" ] || die "SHA-256 mismatch for $source: got $got, want $sha256; nothing installed"
  chmod 0755 "$tmp"
  # A binary that cannot run here (another architecture, a glibc older than
  # 2.34) fails now rather than at the container's start.
  out=$("$tmp" version 2>&1) || die "the binary does not run on this system: $(printf '%s' "$out" | head -n 3)"
  mv -f "$tmp" "$target" || die "cannot install $target"
  trap - EXIT HUP INT TERM
  echo "$prog: installed $target: $out"
fi

if [ $# -gt 0 ]; then
  exec "$target" run --detach "$@"
fi
