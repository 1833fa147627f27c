//! Where artifacts come from: an ordered list of registry namespaces
//! (`mirror.gcr.io/aquasec`, then `ghcr.io/aquasecurity` by default), each a
//! [`Registry`] client plus a path prefix.

use std::sync::Arc;

use futures_util::TryStreamExt as _;

use crate::artifact::OciArtifact;
use crate::error::{Error, Result};
use crate::manifest::{self, CheckedManifest, Descriptor};
use crate::reference::validate_repository;
use crate::registry::{Registry, RegistryOptions};
use crate::stream::{BlobStream, verify};

/// The upstream namespaces Trivy itself uses, in Trivy's order.
pub const DEFAULT_SOURCES: [&str; 2] = ["mirror.gcr.io/aquasec", "ghcr.io/aquasecurity"];

/// One upstream namespace.
#[derive(Debug, Clone)]
pub struct Source {
    registry: Arc<Registry>,
    namespace: String,
    label: String,
}

impl Source {
    /// Parse `host[:port]/namespace` (the namespace may have several components).
    pub fn parse(spec: &str, options: RegistryOptions) -> Result<Source> {
        let spec = spec.trim().trim_end_matches('/');
        let (host, namespace) = spec
            .split_once('/')
            .ok_or_else(|| Error::config("source", spec, "expected REGISTRY/NAMESPACE, e.g. ghcr.io/aquasecurity"))?;
        if spec.contains("://") {
            return Err(Error::config("source", spec, "give REGISTRY/NAMESPACE without a scheme"));
        }
        validate_repository(namespace).map_err(|_| {
            Error::config("source", spec, "the namespace must be lowercase letters, digits and . _ - separated by /")
        })?;
        Ok(Source {
            registry: Arc::new(Registry::new(host, options)?),
            namespace: namespace.to_string(),
            label: spec.to_string(),
        })
    }

    /// `host/namespace`, for messages and the summary.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// The upstream repository of `artifact`, e.g. `aquasec/trivy-db`.
    pub fn repository(&self, artifact: &OciArtifact) -> String {
        format!("{}/{}", self.namespace, artifact.name)
    }

    /// Fetch and shape-check the tag's manifest.
    pub async fn manifest(&self, artifact: &OciArtifact) -> Result<CheckedManifest> {
        let repo = self.repository(artifact);
        match self.registry.get_manifest(&repo, artifact.tag).await? {
            Some((raw, content_type)) => manifest::check(artifact, raw, content_type.as_deref()),
            None => Err(Error::Http {
                method: "GET",
                url: format!("{}/{repo}:{}", self.registry.host(), artifact.tag),
                status: 404,
                detail: ": no such tag upstream".into(),
                retry_after: None,
            }),
        }
    }

    /// Stream a blob, verified against its descriptor while it flows.
    pub async fn blob(&self, artifact: &OciArtifact, desc: &Descriptor) -> Result<BlobStream> {
        let repo = self.repository(artifact);
        let resp = self.registry.get_blob(&repo, &desc.digest).await?;
        let url = resp.url().to_string();
        if let Some(len) = resp.content_length()
            && len != desc.size
        {
            return Err(Error::rejected(
                format!("blob {} of {artifact} from {}", desc.digest, self.label),
                format!("Content-Length {len} differs from the descriptor size {}", desc.size),
            ));
        }
        let what = format!("blob {} of {artifact} from {}", desc.digest, self.label);
        let body = resp.bytes_stream().map_err(move |e| Error::transport("GET", &url, &e));
        Ok(verify(body, desc.clone(), what))
    }
}
