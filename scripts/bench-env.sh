# shellcheck shell=bash
# Sourced by the bench-*.sh scripts: installs the servers and rclone, builds
# baton into a temporary $work directory (removed on exit), and starts one
# versitygw on a free loopback port. Sets: bin, work, endpoint, s5cmd (empty
# when there is none), and the AWS_* variables of the gateway's only account.

bin=$(scripts/install-test-servers.sh all | tail -n1)
command -v rclone >/dev/null || { echo "rclone is missing (apt-get install rclone)" >&2; exit 1; }
# s5cmd, the fastest S3 copier, is not on the module proxy: $S5CMD, else a
# build beside the checkout (../shared/tools/s5cmd), else one on PATH; the
# benchmarks leave it out when there is none.
s5cmd=${S5CMD:-}
if [ -z "$s5cmd" ]; then
  if [ -x ../shared/tools/s5cmd ]; then s5cmd=$(cd ../shared/tools && pwd)/s5cmd
  else s5cmd=$(command -v s5cmd || true)
  fi
fi
[ -n "$s5cmd" ] || echo "no s5cmd (set S5CMD): the benchmarks compare with rclone only" >&2
work=$(mktemp -d -t baton-bench.XXXXXX)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT

scripts/build.sh "$work/baton"

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
export AWS_ACCESS_KEY_ID=benchaccess AWS_SECRET_ACCESS_KEY=benchsecret123 AWS_REGION=us-east-1
mkdir -p "$work/gw/bench"
"$bin/versitygw" --access "$AWS_ACCESS_KEY_ID" --secret "$AWS_SECRET_ACCESS_KEY" --port "127.0.0.1:$port" posix "$work/gw" >"$work/gw.log" 2>&1 &
export endpoint="http://127.0.0.1:$port"
for _ in $(seq 100); do (echo >/dev/tcp/127.0.0.1/"$port") 2>/dev/null && break; sleep 0.1; done
