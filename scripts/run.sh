#!/usr/bin/env bash
# `make run`: the gateway with config/gateway.yaml and, as root, the eBPF sensor with Falco's
# stable rules feeding it. Alerts appear on standard output (the gateway's `console` output).
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --release --bins
gateway=./target/release/peregrine-gateway
sensor=./target/release/peregrine-sensor

if [ "$(id -u)" -ne 0 ]; then
  echo "make run: the eBPF sensor needs root (or CAP_BPF and CAP_PERFMON) to load into the kernel;" >&2
  echo "make run: running the gateway alone on 127.0.0.1:2801 (POST Falco alerts to it)." >&2
  exec "$gateway" --config config/gateway.yaml
fi

"$gateway" --config config/gateway.yaml &
gateway_pid=$!
sensor_pid=
stop() {
  [ -n "$sensor_pid" ] && kill "$sensor_pid" 2>/dev/null
  kill "$gateway_pid" 2>/dev/null
  wait 2>/dev/null
}
trap stop EXIT INT TERM

for _ in $(seq 100); do
  if (exec 3<>/dev/tcp/127.0.0.1/2801) 2>/dev/null; then break; fi
  sleep 0.1
done
echo "make run: starting the eBPF sensor with config/rules/falco_rules.yaml -> http://127.0.0.1:2801/" >&2
"$sensor" run --rules config/rules/falco_rules.yaml --gateway http://127.0.0.1:2801/ &
sensor_pid=$!
wait -n "$gateway_pid" "$sensor_pid"
