//! Pushing into an OCI registry (`oci://host[/namespace]`).

use async_trait::async_trait;
use bytes::Bytes;

use super::Destination;
use crate::error::{Error, Result};
use crate::layout::ObjectClass;
use crate::manifest::{CheckedManifest, Descriptor};
use crate::reference::Digest;
use crate::registry::{Registry, RegistryOptions};
use crate::stream::BlobStream;

/// A registry destination.
#[derive(Debug)]
pub struct RegistryDestination {
    name: String,
    registry: Registry,
    namespace: String,
}

impl RegistryDestination {
    /// A destination pushing to `host` under `namespace`.
    pub fn new(name: &str, host: &str, namespace: &str, options: RegistryOptions) -> Result<Self> {
        Ok(RegistryDestination {
            name: name.to_string(),
            registry: Registry::new(host, options)?,
            namespace: namespace.to_string(),
        })
    }

    fn repo(&self, repo: &str) -> String {
        if self.namespace.is_empty() {
            repo.to_string()
        } else {
            format!("{}/{repo}", self.namespace)
        }
    }
}

#[async_trait]
impl Destination for RegistryDestination {
    fn name(&self) -> &str {
        &self.name
    }

    async fn tag_digest(&self, repo: &str, tag: &str) -> Result<Option<Digest>> {
        Ok(self
            .registry
            .get_manifest(&self.repo(repo), tag)
            .await?
            .map(|(b, _)| Digest::of(&b)))
    }

    async fn has_blob(&self, repo: &str, blob: &Descriptor) -> Result<bool> {
        self.registry.blob_exists(&self.repo(repo), blob).await
    }

    async fn put_blob(&self, repo: &str, blob: &Descriptor, body: BlobStream) -> Result<u64> {
        self.registry.push_blob(&self.repo(repo), blob, body).await
    }

    async fn put_manifest(&self, repo: &str, manifest: &CheckedManifest, tag: &str) -> Result<()> {
        let repo = self.repo(repo);
        self.registry
            .put_manifest(&repo, manifest.digest.as_str(), manifest)
            .await?;
        self.registry.put_manifest(&repo, tag, manifest).await
    }

    fn holds_files(&self) -> bool {
        false
    }

    async fn finish(&self) -> Result<()> {
        Ok(())
    }

    async fn get_file(&self, _rel_key: &str) -> Result<Option<Bytes>> {
        Ok(None)
    }

    async fn put_file(&self, rel_key: &str, _body: Bytes, _class: ObjectClass) -> Result<()> {
        Err(Error::config(
            "destination",
            self.name.clone(),
            format!(
                "a registry cannot hold the plain file {rel_key}; mirror VEX to an object-store destination"
            ),
        ))
    }
}
