//! A namespace on an OCI registry as a [`Source`]: `mirror.gcr.io/aquasec`, then
//! `ghcr.io/aquasecurity` by default, each a [`RegistryClient`] plus a path prefix.

use std::sync::Arc;

use async_trait::async_trait;
use futures_util::TryStreamExt as _;

use super::ranged::{self, RangeOptions};
use super::{RawBlob, RawManifest, Source};
use crate::artifact::OciArtifact;
use crate::error::{Error, Result, Setting};
use crate::oci::Descriptor;
use crate::oci::{join_repository, validate_repository};
use crate::registry::{RegistryClient, RegistryOptions};

/// The upstream namespaces Trivy itself uses, in Trivy's order.
pub const DEFAULT_SOURCES: [&str; 2] = ["mirror.gcr.io/aquasec", "ghcr.io/aquasecurity"];

/// One upstream registry namespace.
#[derive(Debug, Clone)]
pub struct RegistrySource {
    registry: Arc<RegistryClient>,
    namespace: String,
    label: String,
    ranges: RangeOptions,
    /// Range requests in flight over all blobs of this source (`ranges.parts`).
    slots: Arc<tokio::sync::Semaphore>,
}

impl RegistrySource {
    /// Parse `host[:port]/namespace` (the namespace may have several components).
    pub fn parse(spec: &str, options: RegistryOptions) -> Result<RegistrySource> {
        let spec = spec.trim().trim_end_matches('/');
        let (host, namespace) = spec.split_once('/').ok_or_else(|| {
            Error::config(Setting::Source, spec, "expected REGISTRY/NAMESPACE, e.g. ghcr.io/aquasecurity")
        })?;
        if spec.contains("://") {
            return Err(Error::config(Setting::Source, spec, "give REGISTRY/NAMESPACE without a scheme"));
        }
        // `host:port` only: `s3:/x` or `oci:dir` is not a registry.
        if let Some((_, port)) = host.split_once(':')
            && (port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()))
        {
            return Err(Error::config(
                Setting::Source,
                spec,
                "expected REGISTRY[:PORT]/NAMESPACE, e.g. ghcr.io/aquasecurity or 127.0.0.1:5000/aquasecurity",
            ));
        }
        validate_repository(namespace).map_err(|_| {
            Error::config(
                Setting::Source,
                spec,
                "the namespace must be lowercase letters, digits and . _ - separated by /",
            )
        })?;
        Ok(RegistrySource {
            registry: Arc::new(RegistryClient::new(host, options)?),
            namespace: namespace.to_string(),
            label: spec.to_string(),
            ranges: RangeOptions::default(),
            slots: Arc::new(tokio::sync::Semaphore::new(RangeOptions::default().parts)),
        })
    }

    /// Fetch large blobs in ranges like this ([`RangeOptions`]; `parts: 1` for one stream).
    pub fn with_ranges(mut self, ranges: RangeOptions) -> Self {
        self.ranges = ranges;
        self.slots = Arc::new(tokio::sync::Semaphore::new(ranges.parts.max(1)));
        self
    }

    /// The upstream repository of `artifact`, e.g. `aquasec/trivy-db`.
    pub fn repository(&self, artifact: &OciArtifact) -> String {
        join_repository(&self.namespace, artifact.name)
    }
}

#[async_trait]
impl Source for RegistrySource {
    fn label(&self) -> &str {
        &self.label
    }

    async fn manifest(&self, artifact: &OciArtifact, reference: &str) -> Result<Option<RawManifest>> {
        let found = self.registry.get_manifest(&self.repository(artifact), reference).await?;
        Ok(found.map(|(raw, content_type)| RawManifest { raw, content_type }))
    }

    async fn blob(&self, artifact: &OciArtifact, desc: &Descriptor) -> Result<RawBlob> {
        let repo = self.repository(artifact);
        let what = format!("blob {} of {artifact} from {}", desc.digest, self.label);
        let part = self.ranges.part_size.max(1);
        if self.ranges.parts > 1 && desc.size >= 2 * part {
            let slot = ranged::take_slot(&self.slots).await;
            let (url, resp) = self.registry.get_blob_head(&repo, &desc.digest, part).await?;
            match ranged::classify(resp, desc.size, part) {
                ranged::First::Ranged(first) => {
                    let blob = ranged::Blob { registry: self.registry.clone(), repo, url, desc: desc.clone(), what };
                    return Ok(ranged::stream(blob, first, slot, self.ranges, self.slots.clone()));
                }
                ranged::First::Whole(resp) => return plain(resp, desc, &what),
                ranged::First::Refused(reason) => {
                    tracing::warn!(blob = %desc.digest, source = self.label, %reason, "ranges refused; one stream instead");
                }
            }
        }
        let resp = self.registry.get_blob(&repo, &desc.digest).await?;
        plain(resp, desc, &what)
    }
}

/// A whole-blob answer as a stream, refused early if its length is not the descriptor's.
fn plain(resp: reqwest::Response, desc: &Descriptor, what: &str) -> Result<RawBlob> {
    let url = resp.url().to_string();
    if let Some(len) = resp.content_length()
        && len != desc.size
    {
        return Err(Error::rejected(
            what,
            format!("Content-Length {len} differs from the descriptor size {}", desc.size),
        ));
    }
    Ok(Box::pin(resp.bytes_stream().map_err(move |e| crate::http::transport_error("GET", &url, &e))))
}
