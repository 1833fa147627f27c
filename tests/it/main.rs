//! Integration tests: one binary, modules by area. They start real components (see
//! `harness`) installed by `scripts/install-test-deps.sh`.

mod harness;

/// Local directory + `serve`: the main job.
mod local;
/// The AWS Lambda handler under cargo lambda watch.
mod lambda;
/// S3, Azure Blob and GCS emulators behind the CDN stand-in.
mod object_stores;
/// Static checks of the Terraform modules.
mod terraform;
