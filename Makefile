# Peregrine — the two commands users rely on are `make run` and `make test`.
CARGO ?= cargo
COMPOSE ?= docker-compose

.PHONY: run test build release lint bench-gateway bench-outputs bench-backlog bench-console bench-flaky bench-fanout bench-latency bench-ingest-instructions bench-engine check-compose deps-run deps-test clean

## run: set up what is missing, build, start the gateway with config/gateway.yaml and, as root,
## the eBPF sensor with Falco's stable rules feeding it
run: deps-run
	scripts/run.sh

# Tests that load BPF programs are #[ignore]d; as root, run them too.
ROOT_ONLY_TESTS := $(if $(filter 0,$(shell id -u)),-- --include-ignored,)

## test: set up what is missing and run the whole test suite
test: deps-test lint
	$(CARGO) build --workspace --bins
	$(CARGO) test --workspace $(ROOT_ONLY_TESTS)
	$(MAKE) check-compose

build:
	$(CARGO) build --workspace --bins

release:
	$(CARGO) build --release --bins

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

## bench-gateway: ingest benchmark, the gateway against a bare hyper server in one run
bench-gateway: release
	./target/release/peregrine-loadgen --connections 128

## bench-outputs: how fast each output drains a backlog into a local peer, in one run
bench-outputs: release
	./target/release/peregrine-outbench --alerts 100000

## bench-console: accept rate with the console's index on, against the same gateway with it off
bench-console: release
	./target/release/peregrine-loadgen --console --outputs 0 --connections 32

## bench-backlog: gateway memory with 1 000 000 alerts behind a dead output, against a baseline
bench-backlog: release
	./target/release/peregrine-backlogmem --alerts 1000000

## bench-flaky: a webhook draining a backlog into a receiver failing 30 % of requests, against healthy
bench-flaky: release
	./target/release/peregrine-outbench --flaky 0.3 --alerts 300000

## bench-fanout: three webhook outputs draining a backlog into one sink, against a lean client
bench-fanout: release
	./target/release/peregrine-outbench --fanout 3 --alerts 100000

## bench-latency: POST-to-delivery latency at a steady 1 000 alerts/s, three webhook outputs
bench-latency: release
	./target/release/peregrine-loadgen --latency 1000 --seconds 10 --rounds 3 --connections 8

## bench-ingest-instructions: the gateway's instructions per accepted alert under callgrind (noise-free)
bench-ingest-instructions: release
	./scripts/ingest-instructions.sh

## bench-engine: the rule engine on Falco's stable rules (criterion)
bench-engine:
	$(CARGO) bench -p peregrine-engine --bench engine

check-compose:
	GRAFANA_ADMIN_PASSWORD=only-for-validation $(COMPOSE) -f docker-compose.yml config -q
	promtool check config deploy/prometheus/prometheus.yml

deps-run:
	@scripts/setup.sh run

deps-test:
	@scripts/setup.sh test

clean:
	$(CARGO) clean
	rm -rf data
