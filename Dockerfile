# Multi-stage build of both Peregrine binaries into a slim runtime image.
FROM rust:1.95-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends clang llvm libbpf-dev bpftool libssl-dev pkg-config \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin peregrine-gateway --bin peregrine-sensor

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates libssl3 \
 && rm -rf /var/lib/apt/lists/* \
 && mkdir -p /var/lib/peregrine /etc/peregrine
COPY --from=build /src/target/release/peregrine-gateway /src/target/release/peregrine-sensor /usr/local/bin/
COPY config/gateway.docker.yaml /etc/peregrine/gateway.yaml
COPY config/rules/falco_rules.yaml /etc/peregrine/rules/falco_rules.yaml
EXPOSE 2801
VOLUME ["/var/lib/peregrine"]
ENTRYPOINT ["peregrine-gateway"]
CMD ["--config", "/etc/peregrine/gateway.yaml"]
