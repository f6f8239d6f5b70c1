#!/usr/bin/env bash
# Instructions the gateway executes per accepted alert, counted by valgrind's callgrind: unlike
# time, they do not vary with a shared machine's noise, so two builds can be compared to the
# percent. Usage: scripts/ingest-instructions.sh [GATEWAY_BIN] (default: the release build).
#
# The gateway runs with no outputs under callgrind; loadgen (`--post`) posts its alert over 16
# keep-alive connections (800 requests of warm-up, then 8 000 counted). Only user-space
# instructions are counted: the kernel's share (socket writes, fsync) is not in the figure.
set -euo pipefail
cd "$(dirname "$0")/.."
gateway=${1:-target/release/peregrine-gateway}
loadgen=target/release/peregrine-loadgen
for bin in "$gateway" "$loadgen"; do
    [ -x "$bin" ] || { echo "no $bin: run 'cargo build --release --bins' first" >&2; exit 1; }
done
if ! command -v valgrind >/dev/null; then
    echo "installing valgrind" >&2
    apt-get install -y -qq valgrind >/dev/null
fi
work=$(mktemp -d)
trap 'kill "$vg" 2>/dev/null || true; rm -rf "$work"' EXIT
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
printf 'listen: "127.0.0.1:%s"\nspool: { dir: "%s/spool" }\noutputs: []\n' "$port" "$work" > "$work/gateway.yaml"
PEREGRINE_LOG=warn valgrind --tool=callgrind --callgrind-out-file="$work/cg.out" \
    "$gateway" --config "$work/gateway.yaml" > "$work/valgrind.log" 2>&1 &
vg=$!
for _ in $(seq 1 300); do
    (exec 3<>/dev/tcp/127.0.0.1/"$port") 2>/dev/null && break
    sleep 0.1
done
"$loadgen" --post 127.0.0.1:"$port" --connections 16 --max-requests 800 --seconds 600 >/dev/null
callgrind_control --zero "$vg" >/dev/null 2>&1
"$loadgen" --post 127.0.0.1:"$port" --connections 16 --max-requests 8000 --seconds 600 >/dev/null
callgrind_control --dump "$vg" >/dev/null 2>&1
total=$(callgrind_annotate "$work/cg.out.1" 2>/dev/null | awk '/PROGRAM TOTALS/ && !done {gsub(",", "", $1); print $1; done = 1}')
[[ -n $total ]] || { echo "callgrind_annotate printed no PROGRAM TOTALS" >&2; exit 1; }
echo "$gateway: $((total / 8000)) instructions per accepted alert (callgrind, user space, 8 000 alerts)"
