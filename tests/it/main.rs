//! Integration tests: one binary, modules by area. They start real components (see
//! `harness`) installed by `scripts/install-test-deps.sh`.

mod harness;

/// Air-gap bundles (oci:, oci-archive:) and Trivy's cache (trivy-cache:).
mod airgap;

/// Help texts and the summary, against snapshots.
mod cli;

/// ECR, Artifact Registry and ACR credentials from the job's cloud identity.
mod cloud_credentials;
/// The destination conformance routine against every real backend.
mod conformance;
/// The container image under podman: built from this binary, run read-only as non-root.
mod container;
/// Repair of damaged mirrors, rollback protection, offline failures, mistyped URLs.
mod healing;
/// The AWS Lambda handler under cargo lambda watch.
mod lambda;
/// Ranged, resumable downloads through a redirecting, rate-limited CDN stand-in.
mod link;
/// Local directory + `serve`: the main job.
mod local;
/// S3 and Azure Blob emulators behind the CDN stand-in.
mod object_stores;
/// verify, status, retention.
mod operate;
/// Pushing into OCI registries.
mod registry;
/// Kills, injected faults, concurrent runs, hostile input.
mod reliability;
/// `serve` as a service: HTTP semantics, health, metrics, TLS, Basic auth.
mod serve;
/// Signed provenance: cosign signatures checked with openssl, required on import.
mod signing;
/// Static checks of the Terraform modules.
mod terraform;
/// VEX Hub mirroring with the real Trivy client.
mod vex;
