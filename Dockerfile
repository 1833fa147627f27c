# trivy-mirror image: the one binary as ENTRYPOINT, run as an unprivileged numeric user,
# happy with a read-only root filesystem (the mirror directory and /tmp are volumes).
# Default command: `sync`, configured by TRIVY_MIRROR_* variables (Cloud Run Jobs, Azure
# Container Apps Jobs, Kubernetes CronJobs); `serve /data …` makes it the mirror server.
#
# With network access (builds the binary in a Rust container):
#   docker build -t trivy-mirror .                      (or: podman build / buildah bud)
# From a binary built on the host, with no network and no pull beyond BASE_IMAGE:
#   cargo build --release
#   docker build --target runtime --build-arg BINARY=target/release/trivy-mirror \
#                [--build-arg BASE_IMAGE=<a glibc image of yours>] -t trivy-mirror .
# Run:
#   docker run --rm -e TRIVY_MIRROR_TO=gs://bucket/prefix trivy-mirror
#   docker run --read-only -v mirror:/data -p 8080:8080 trivy-mirror \
#       serve /data --listen 0.0.0.0:8080
# Variables, identities and schedules: docs/SERVERLESS.md; the chart: charts/trivy-mirror.

# The toolchain the project is tested with. The default runtime base is Debian 12 (glibc
# 2.36), so the build stage is Debian 12 too: a binary linked against a newer glibc would
# not start.
ARG RUST_VERSION=1.95
# distroless/cc: glibc, libgcc and the CA certificates rustls needs for HTTPS, no shell and
# no package manager. Any glibc image with CA certificates works as a base.
ARG BASE_IMAGE=gcr.io/distroless/cc-debian12:nonroot

FROM docker.io/library/rust:${RUST_VERSION}-slim-bookworm AS build
WORKDIR /src
# Only what `cargo build` reads (.dockerignore is an allowlist): the workspace manifest and
# lock file, the sources, and the fixtures crate's manifest, which the workspace lists.
COPY Cargo.toml Cargo.lock ./
COPY fixtures/Cargo.toml fixtures/Cargo.toml
COPY fixtures/src fixtures/src
COPY src src
# --locked: exactly the dependency versions that were tested. Symbols are stripped to keep
# the image small; the release profile's LTO still applies.
RUN CARGO_PROFILE_RELEASE_STRIP=symbols cargo build --release --locked --bin trivy-mirror \
    && install -D -m 0555 target/release/trivy-mirror /out/trivy-mirror

# Everything but the binary: shared by the two ways of getting one.
FROM ${BASE_IMAGE} AS base
LABEL org.opencontainers.image.title="trivy-mirror" \
      org.opencontainers.image.description="Mirror Trivy's databases and VEX Hub into S3, GCS, Azure Blob, a registry or a directory, and serve them" \
      org.opencontainers.image.licenses="Apache-2.0"
# Job runners collect stdout/stderr: JSON lines, and one summary line at the end of a run.
ENV TRIVY_MIRROR_LOG_FORMAT=json
# 65532 is distroless's `nonroot`; numeric, so `runAsNonRoot` can check it without
# /etc/passwd. Writable paths are volumes (/data for a served mirror).
USER 65532:65532
WORKDIR /data
# No HEALTHCHECK: the same image runs jobs, which report through their exit code, and the
# server, whose orchestrator probes /healthz (the chart's liveness probe; with docker or
# podman: --health-cmd '/usr/local/bin/trivy-mirror probe http://127.0.0.1:8080/healthz').
# Exec form: the binary is PID 1 and receives the runner's SIGTERM directly.
ENTRYPOINT ["/usr/local/bin/trivy-mirror"]
CMD ["sync"]

# A binary built on the host (CI, air-gapped builders): no network needed.
FROM base AS runtime
ARG BINARY=target/release/trivy-mirror
COPY ${BINARY} /usr/local/bin/trivy-mirror

# The default target: the binary from the build stage.
FROM base AS image
COPY --from=build /out/trivy-mirror /usr/local/bin/trivy-mirror
