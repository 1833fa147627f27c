//! Where artifacts come from: one trait, [`Source`], at the I/O seam, and the checks every
//! source gets whatever it is.
//!
//! A source only fetches bytes: the manifest of a tag as received, and a blob as a raw
//! byte stream. What makes those bytes trustworthy is applied here, the same way for
//! every implementation: [`checked_manifest`] runs the shape checks of
//! [`crate::manifest::check`], and [`verified_blob`] wraps the stream so it fails unless
//! it carries exactly the descriptor's size and digest. A new source (the OCI image layout of an
//! air-gap bundle, an in-memory fake in the engine tests) implements the two fetches and
//! inherits every guarantee.
//!
//! Implementations: [`registry::RegistrySource`] (a namespace on an OCI registry),
//! [`bundle::BundleSource`] (an air-gap bundle: an OCI image layout directory or tar), and
//! [`vexhub::VexHubSource`] (VEX Hub over HTTP, packed as the VEX artifact).

pub mod bundle;
pub mod location;
pub mod ranged;
pub mod registry;
pub mod vexhub;

#[cfg(test)]
pub(crate) mod memory;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::stream::BoxStream;

use crate::artifact::OciArtifact;
use crate::error::{Error, Result};
use crate::manifest::{self, CheckedManifest};
use crate::oci::Descriptor;
use crate::stream::{BlobStream, verify};

pub use bundle::BundleSource;
pub use location::SourceLocation;
pub use registry::{DEFAULT_SOURCES, RegistrySource};

/// A manifest as a source served it: the exact bytes and the Content-Type, if any.
#[derive(Clone, Debug)]
pub struct RawManifest {
    /// The bytes received, never re-serialised.
    pub raw: Bytes,
    /// The media type the source declared for them.
    pub content_type: Option<String>,
}

/// Blob bytes as they arrive, not yet verified.
pub type RawBlob = BoxStream<'static, Result<Bytes>>;

/// One place artifacts can be read from.
#[async_trait]
pub trait Source: Send + Sync + std::fmt::Debug {
    /// How the user named it (`ghcr.io/aquasecurity`), for messages and the summary.
    fn label(&self) -> &str;

    /// The manifest `reference` points at in the artifact's repository: the artifact's tag,
    /// or the tag of its signature (`sha256-<hex>.sig`). `Ok(None)` when there is no such tag.
    async fn manifest(&self, artifact: &OciArtifact, reference: &str) -> Result<Option<RawManifest>>;

    /// The bytes of a blob the artifact's manifest references. The caller verifies them;
    /// an implementation may refuse early (a Content-Length that differs from `desc.size`).
    async fn blob(&self, artifact: &OciArtifact, desc: &Descriptor) -> Result<RawBlob>;
}

/// Fetch the artifact's manifest from `source` and shape-check it.
pub async fn checked_manifest(source: &dyn Source, artifact: &OciArtifact) -> Result<CheckedManifest> {
    match source.manifest(artifact, artifact.tag).await? {
        Some(m) => manifest::check(artifact, m.raw, m.content_type.as_deref()),
        None => Err(Error::NotFound { what: format!("{artifact}"), place: source.label().to_string() }),
    }
}

/// Stream a blob from `source`, verified against its descriptor while it flows.
pub async fn verified_blob(source: &dyn Source, artifact: &OciArtifact, desc: &Descriptor) -> Result<BlobStream> {
    let body = source.blob(artifact, desc).await?;
    Ok(verify(body, desc.clone(), format!("blob {} of {artifact} from {}", desc.digest, source.label())))
}
