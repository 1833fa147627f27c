# trivy-mirror publisher image: runs `trivy-mirror sync` configured by TRIVY_MIRROR_*
# environment variables, for Cloud Run Jobs, Azure Container Apps Jobs or any job runner.
# Build:  docker build -t trivy-mirror .        (or: podman build / buildah bud)
# Run:    docker run --rm -e TRIVY_MIRROR_TO=gs://bucket/prefix trivy-mirror
# Variables, identities and schedules: docs/SERVERLESS.md.

# The toolchain the project is tested with. The runtime below is Debian 12 (glibc 2.36),
# so the build stage is Debian 12 too: a binary linked against a newer glibc would not start.
ARG RUST_VERSION=1.95

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

# distroless/cc: glibc, libgcc and the CA certificates rustls needs for HTTPS, no shell and
# no package manager. The `nonroot` variant defines the unprivileged user 65532.
FROM gcr.io/distroless/cc-debian12:nonroot
LABEL org.opencontainers.image.title="trivy-mirror" \
      org.opencontainers.image.description="Publish Trivy's databases and VEX Hub as a static registry on S3, GCS, Azure Blob or a directory" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /out/trivy-mirror /usr/local/bin/trivy-mirror
# Job runners collect stdout/stderr: JSON lines, and one summary line at the end of a run.
ENV TRIVY_MIRROR_LOG_FORMAT=json
USER 65532:65532
# A job runs to completion and reports through its exit code; there is nothing to probe.
HEALTHCHECK NONE
# Exec form: the binary is PID 1 and receives the runner's SIGTERM directly.
ENTRYPOINT ["/usr/local/bin/trivy-mirror"]
CMD ["sync"]
