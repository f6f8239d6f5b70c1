# syntax=docker/dockerfile:1.7
# Two images from one build, each with only its binary:
#   docker build --target gateway -t peregrine-gateway .   # non-root (65532), no shell
#   docker build --target sensor  -t peregrine-sensor  .   # root with the capabilities it is given
# Layer caching: the cargo registry and target directory are BuildKit cache mounts, so a code
# change recompiles the changed crates only, not every dependency. The image build passes the
# source revision in (--build-arg PEREGRINE_REVISION=$(git rev-parse --short HEAD)); it shows in
# peregrine_build_info.

FROM rust:1.95-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends clang llvm libbpf-dev bpftool libssl-dev pkg-config \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
ARG PEREGRINE_REVISION=unknown
ENV PEREGRINE_REVISION=${PEREGRINE_REVISION}
# zlib (librdkafka links it) is not in the distroless images: the build's is copied with them.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin peregrine-gateway --bin peregrine-sensor \
 && mkdir -p /out/bin /out/lib /out/spool \
 && cp target/release/peregrine-gateway target/release/peregrine-sensor /out/bin/ \
 && cp -L "$(dpkg -L zlib1g | grep '/libz\.so\.1$')" /out/lib/

# The gateway: distroless (glibc, OpenSSL, CA certificates; no shell, no package manager), as
# the numeric non-root user 65532, its spool in a volume that user owns.
FROM gcr.io/distroless/cc-debian12:nonroot AS gateway
COPY --from=build /out/lib/ /usr/lib/
COPY --from=build /out/bin/peregrine-gateway /usr/local/bin/peregrine-gateway
COPY --from=build --chown=65532:65532 /out/spool/ /var/lib/peregrine/
COPY config/gateway.docker.yaml /etc/peregrine/gateway.yaml
USER 65532:65532
EXPOSE 2801
VOLUME ["/var/lib/peregrine"]
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD ["/usr/local/bin/peregrine-gateway", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/peregrine-gateway"]

# The sensor: distroless as well; it runs as root in its container because Kubernetes grants
# capabilities to root only (no ambient capabilities), and is given BPF, PERFMON, SYS_RESOURCE
# and SYS_PTRACE, never --privileged (deploy/kubernetes, docker-compose.yml).
FROM gcr.io/distroless/cc-debian12 AS sensor
COPY --from=build /out/lib/ /usr/lib/
COPY --from=build /out/bin/peregrine-sensor /usr/local/bin/peregrine-sensor
COPY config/rules/falco_rules.yaml /etc/peregrine/rules/falco_rules.yaml
EXPOSE 8765
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
  CMD ["/usr/local/bin/peregrine-sensor", "healthcheck", "--addr", "127.0.0.1:8765"]
ENTRYPOINT ["/usr/local/bin/peregrine-sensor"]
CMD ["run", "--rules", "/etc/peregrine/rules/falco_rules.yaml", "--metrics-listen", "0.0.0.0:8765"]
