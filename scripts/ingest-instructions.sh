#!/usr/bin/env bash
# Instructions the gateway executes per accepted alert, counted by valgrind's callgrind: unlike
# time, they do not vary with a shared machine's noise, so two builds can be compared to the
# percent. Usage: scripts/ingest-instructions.sh [GATEWAY_BIN] (default: the release build).
#
# The gateway runs with no outputs under callgrind; 16 keep-alive clients post loadgen's alert
# (800 requests of warm-up, then 8 000 counted). Only user-space instructions are counted: the
# kernel's share (socket writes, fsync) is not in the figure.
set -euo pipefail
cd "$(dirname "$0")/.."
gateway=${1:-target/release/peregrine-gateway}
[ -x "$gateway" ] || { echo "no $gateway: run 'cargo build --release --bins' first" >&2; exit 1; }
if ! command -v valgrind >/dev/null; then
    echo "installing valgrind" >&2
    apt-get install -y -qq valgrind >/dev/null
fi
work=$(mktemp -d)
trap 'kill "$vg" 2>/dev/null || true; rm -rf "$work"' EXIT
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
sed -n 's/^const ALERT: &str = r#"\(.*\)"#;$/\1/p' tests/bin/loadgen.rs > "$work/alert.json"
[ -s "$work/alert.json" ] || { echo "could not read the alert from tests/bin/loadgen.rs" >&2; exit 1; }
printf 'listen: "127.0.0.1:%s"\nspool: { dir: "%s/spool" }\noutputs: []\n' "$port" "$work" > "$work/gateway.yaml"
PEREGRINE_LOG=warn valgrind --tool=callgrind --callgrind-out-file="$work/cg.out" \
    "$gateway" --config "$work/gateway.yaml" > "$work/valgrind.log" 2>&1 &
vg=$!
cat > "$work/client.py" <<'PY'
import socket, sys, threading
port, conns, per, body = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), open(sys.argv[4], 'rb').read().strip()
request = (b"POST / HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n"
           b"content-length: %d\r\n\r\n" % len(body)) + body
failed = []
def client():
    s = socket.create_connection(('127.0.0.1', port), timeout=60)
    answers = s.makefile('rb')
    for _ in range(per):
        s.sendall(request)
        status = answers.readline()
        if b' 200 ' not in status:
            failed.append(status)
        length = 0
        while (line := answers.readline()) not in (b'\r\n', b''):
            if line.lower().startswith(b'content-length:'):
                length = int(line.split(b':')[1])
        answers.read(length)
    s.close()
threads = [threading.Thread(target=client) for _ in range(conns)]
for t in threads: t.start()
for t in threads: t.join()
if failed:
    sys.exit(f"{len(failed)} requests not accepted, e.g. {failed[0]!r}")
PY
for _ in $(seq 1 300); do
    (exec 3<>/dev/tcp/127.0.0.1/"$port") 2>/dev/null && break
    sleep 0.1
done
python3 "$work/client.py" "$port" 16 50 "$work/alert.json"
callgrind_control --zero "$vg" >/dev/null 2>&1
python3 "$work/client.py" "$port" 16 500 "$work/alert.json"
callgrind_control --dump "$vg" >/dev/null 2>&1
total=$(callgrind_annotate "$work/cg.out.1" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1; exit}')
echo "$gateway: $((total / 8000)) instructions per accepted alert (callgrind, user space, 8 000 alerts)"
