#!/usr/bin/env bash
# Installs what `make run` or `make test` needs and is missing, on Debian/Ubuntu.
# Usage: scripts/setup.sh run|test
# Idempotent and quiet when everything is there. As root it uses apt-get; otherwise sudo.
set -euo pipefail

mode=${1:-test}

if ! command -v cargo >/dev/null 2>&1; then
  echo "setup: cargo is missing. Install Rust from https://rustup.rs (stable 1.94 or newer)." >&2
  exit 1
fi

# command -> Debian package that provides it
# The sensor's kernel side is built with clang from libbpf's headers, against the running
# kernel's BTF dumped by bpftool.
declare -A run_needs=(
  [cc]=gcc
  [pkg-config]=pkg-config
  [/usr/include/openssl/ssl.h]=libssl-dev   # TLS and SCRAM for Kafka (librdkafka links OpenSSL)
  [make]=make
  [clang]=clang
  [bpftool]=bpftool
  [/usr/include/bpf/bpf_helpers.h]=libbpf-dev
)
declare -A test_needs=(
  [cc]=gcc
  [pkg-config]=pkg-config
  [/usr/include/openssl/ssl.h]=libssl-dev   # TLS and SCRAM for Kafka (librdkafka links OpenSSL)
  [make]=make
  [clang]=clang
  [bpftool]=bpftool
  [/usr/include/bpf/bpf_helpers.h]=libbpf-dev
  [python3]=python3                # live sensor tests drive memfd and ptrace from python
  [ip]=iproute2                    # live tests make network namespaces with veth pairs
  [unshare]=util-linux             # ... and mount namespaces (overlay, /etc/hosts); setpriv
  [script]=bsdutils                # a shell with a pseudo-terminal ('Terminal shell in container')
  [pip3]=python3-pip               # test peers from PyPI (osmem-server)
  [promtool]=prometheus            # metrics tests run `promtool check metrics`
  [docker-compose]=docker-compose  # `make test` validates docker-compose.yml
  [prometheus-alertmanager]=prometheus-alertmanager  # the alertmanager output's real peer
  [rsyslogd]=rsyslog               # the syslog output's real peer
  [redis-server]=redis-server      # the redis output's real peer
  [mosquitto]=mosquitto            # the mqtt output's real peer
  [nats-server]=nats-server        # the nats output's real peer (JetStream)
  [/usr/lib/python3/dist-packages/aiosmtpd]=python3-aiosmtpd  # the smtp output's real peer
  [/usr/lib/rabbitmq/bin/rabbitmq-server]=rabbitmq-server  # the rabbitmq output's real peer
  [pkg:rsyslog-gnutls]=rsyslog-gnutls  # ... and its TLS (a plugin, no command)
  [prometheus]=prometheus          # the dashboard test scrapes a live gateway and sensor
  [systemd-analyze]=systemd        # `systemd-analyze verify` checks deploy/systemd's units
  [chromium]=chromium              # the console's tests drive a real headless browser
  [chromedriver]=chromium-driver   # ... through WebDriver
)

# A user's PATH on Debian has no sbin, where bpftool lives; the build finds it there too.
have() {
  case "$1" in
    pkg:*) dpkg-query -W -f='${Status}' "${1#pkg:}" 2>/dev/null | grep -q 'install ok installed' ;;
    /*) [ -e "$1" ] ;;
    *) command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ] || [ -x "/sbin/$1" ] ;;
  esac
}

missing=()
if [ "$mode" = run ]; then
  for cmd in "${!run_needs[@]}"; do have "$cmd" || missing+=("${run_needs[$cmd]}"); done
else
  for cmd in "${!test_needs[@]}"; do have "$cmd" || missing+=("${test_needs[$cmd]}"); done
fi

# Test peers from PyPI: osmem-server (an OpenSearch-API emulator the Elasticsearch output's
# tests index into) and moto's server mode (SNS and SQS for the SNS output's tests).
install_python_peers() {
  [ "$mode" = test ] || return 0
  local wanted=()
  python3 -c 'import osmem_server' 2>/dev/null || wanted+=(osmem-server)
  command -v moto_server >/dev/null 2>&1 || wanted+=('moto[server]')
  # deploy/kubernetes is checked against the Kubernetes schemas it carries.
  command -v kubernetes-validate >/dev/null 2>&1 || wanted+=(kubernetes-validate)
  [ ${#wanted[@]} -eq 0 ] && return 0
  echo "setup: installing ${wanted[*]} from PyPI" >&2
  python3 -m pip install --quiet --disable-pip-version-check "${wanted[@]}" 2>/dev/null ||
    python3 -m pip install --quiet --disable-pip-version-check --break-system-packages "${wanted[@]}"
  hash -r
  command -v pyenv >/dev/null 2>&1 && pyenv rehash || true
}

# kubectl builds deploy/kubernetes's kustomizations (kustomize v5 is built in). Debian's own
# kubernetes-client is 1.20, whose kustomize v2 cannot read them; the machines this project
# runs on carry a current kubectl, so only say so when it is missing.
if [ "$mode" = test ] && ! command -v kubectl >/dev/null 2>&1; then
  echo "setup: kubectl (1.27 or newer, for kustomize v5) is missing: the Kubernetes manifest tests will fail until it is installed (https://kubernetes.io/docs/tasks/tools/)" >&2
fi

if [ ${#missing[@]} -eq 0 ]; then
  install_python_peers
  exit 0
fi

echo "setup: installing ${missing[*]}" >&2
if [ "$(id -u)" -eq 0 ]; then
  apt=(apt-get)
elif command -v sudo >/dev/null 2>&1; then
  apt=(sudo apt-get)
else
  echo "setup: need root or sudo to install: ${missing[*]}" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
"${apt[@]}" update -qq
"${apt[@]}" install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
install_python_peers
