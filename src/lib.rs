//! trivy-mirror: publish Trivy's databases (trivy-db, trivy-java-db, trivy-checks) and
//! VEX Hub as a static registry on S3, GCS, Azure Blob or a local directory, or push
//! them into any OCI registry, so that Trivy pulls from your own infrastructure.
//!
//! The pieces, from the outside in:
//! - [`settings`]: what a run can be told, validated into [`run::SyncConfig`] for every
//!   entry point; [`run`]: one run (sync, prune, report).
//! - [`sync`]: the copy engine (sources → verified streams → destinations).
//! - [`source`]: where artifacts come from (the [`source::Source`] trait and its checks).
//! - [`registry`]: the OCI distribution client; [`credentials`]: what it authenticates with;
//!   [`http`]: the HTTP floor every client stands on (clients, errors, retries).
//! - [`dest`]: the destination trait and its object-store and registry implementations.
//! - [`layout`]: object keys and headers of the static layout; [`serve`] serves it.
//! - [`oci`]: digests, names, media types; [`manifest`], [`artifact`]: what valid Trivy
//!   content looks like.
//! - [`vex`]: the VEX repository format and VEX Hub as an OCI artifact ([`vex::artifact`]),
//!   which the engine copies like the databases.
//! - [`bundle`]: the air-gap bundle format (an OCI image layout, as a directory or a tar).
//! - [`summary`]: the per-artifact summary of a run; [`verify`] checks a served mirror;
//!   [`db_metadata`] reads a database layer's `metadata.json`.
#![warn(missing_docs, unreachable_pub, missing_debug_implementations)]

pub mod artifact;
pub mod bundle;
pub mod credentials;
pub mod db_metadata;
pub mod dest;
pub mod error;
pub mod http;
pub mod layout;
pub mod manifest;
pub mod oci;
pub mod progress;
pub mod prune;
pub mod registry;
pub mod run;
pub mod serve;
pub mod settings;
pub mod signing;
pub mod source;
pub mod status_file;
pub mod stream;
pub mod summary;
pub mod sync;
pub mod verify;
pub mod vex;

pub use error::{Error, Result};

/// Helpers shared by the unit tests.
#[cfg(test)]
pub(crate) mod testing {
    /// A tar.gz holding `files` (path, contents).
    pub(crate) fn tar_gz(files: &[(&str, &[u8])]) -> Vec<u8> {
        let mut b = tar::Builder::new(flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast()));
        for (path, data) in files {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_cksum();
            b.append_data(&mut h, path, *data).unwrap();
        }
        b.into_inner().unwrap().finish().unwrap()
    }
}
