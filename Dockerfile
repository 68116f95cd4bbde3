# syntax=docker/dockerfile:1
#
# workmail-pat-monitor container image.
#
#   docker build -t workmail-pat-monitor .
#   docker run --rm -p 9795:9795 \
#     -v "$PWD/config.toml:/etc/workmail-pat-monitor/config.toml:ro" \
#     -e AWS_REGION=us-east-1 workmail-pat-monitor
#
# Needs BuildKit (the default builder since Docker 23) for the cache mounts.

ARG RUST_VERSION=1.95

# ---------------------------------------------------------------------------
# Build
# ---------------------------------------------------------------------------
FROM rust:${RUST_VERSION}-bookworm AS builder

WORKDIR /src

# The whole tree (less .dockerignore): optional targets such as benches/ need
# no special casing. The cargo registry and target/ are cache mounts, so a
# rebuild only recompiles what changed and downloads nothing it already has.
COPY . .

RUN --mount=type=cache,id=cargo-registry,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,id=cargo-git,target=/usr/local/cargo/git,sharing=locked \
    --mount=type=cache,id=workmail-pat-monitor-target,target=/src/target,sharing=locked \
    cargo build --release --locked --bin workmail-pat-monitor \
 && install -D -m 0755 target/release/workmail-pat-monitor /out/workmail-pat-monitor

# ---------------------------------------------------------------------------
# Runtime: glibc, libgcc, CA certificates, user "nonroot" (65532); no shell.
# ---------------------------------------------------------------------------
FROM gcr.io/distroless/cc-debian12:nonroot

ARG VERSION=dev
LABEL org.opencontainers.image.title="workmail-pat-monitor" \
      org.opencontainers.image.description="Prometheus exporter and policy-driven cleanup for Amazon WorkMail personal access tokens" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://github.com/example/workmail-pat-monitor" \
      org.opencontainers.image.version="${VERSION}"

COPY --from=builder /out/workmail-pat-monitor /usr/local/bin/workmail-pat-monitor

# The configuration is mounted at /etc/workmail-pat-monitor/config.toml (a
# ConfigMap on Kubernetes).
USER 65532:65532
EXPOSE 9795

ENTRYPOINT ["/usr/local/bin/workmail-pat-monitor"]
CMD ["run", "--config", "/etc/workmail-pat-monitor/config.toml"]
