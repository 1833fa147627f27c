//! Pushing into an OCI registry (`oci://host[/namespace]`): ECR, GAR, ACR, Harbor,
//! distribution, anything speaking the distribution API.
//!
//! Blobs already present are skipped (HEAD). A blob this run has seen in another
//! repository of the same registry is mounted from there rather than uploaded (the
//! trivy-db, java-db and checks configs are the same `{}` blob). Manifests are pushed as
//! the exact upstream bytes with their media type, by digest first, then under the tag.

use std::collections::HashMap;
use std::sync::Mutex;

use bytes::Bytes;
use futures_util::TryStreamExt as _;

use super::Destination;
use crate::error::{Error, Help, Result};
use crate::manifest::CheckedManifest;
use crate::oci::{Descriptor, Digest, join_repository};
use crate::registry::{RegistryClient, RegistryOptions};
use crate::stream::{BlobStream, Upload};
use async_trait::async_trait;

/// A registry destination.
#[derive(Debug)]
pub struct RegistryDestination {
    name: String,
    registry: RegistryClient,
    namespace: String,
    /// Where in this registry each blob is known to exist, for cross-repository mounts.
    known: Mutex<HashMap<Digest, String>>,
}

impl RegistryDestination {
    /// A destination pushing to `host` under `namespace`.
    pub fn new(name: &str, host: &str, namespace: &str, options: RegistryOptions) -> Result<Self> {
        Ok(RegistryDestination {
            name: name.to_string(),
            registry: RegistryClient::new(host, options)?,
            namespace: namespace.to_string(),
            known: Mutex::default(),
        })
    }

    fn remember(&self, digest: &Digest, repo: &str) {
        self.known.lock().expect("not poisoned").entry(digest.clone()).or_insert_with(|| repo.to_string());
    }

    fn repo(&self, repo: &str) -> String {
        join_repository(&self.namespace, repo)
    }
}

#[async_trait]
impl Destination for RegistryDestination {
    fn name(&self) -> &str {
        &self.name
    }

    async fn manifest(&self, repo: &str, reference: &str) -> Result<Option<Bytes>> {
        Ok(self.registry.get_manifest(&self.repo(repo), reference).await?.map(|(b, _)| b))
    }

    async fn read_blob(&self, repo: &str, blob: &Descriptor) -> Result<Option<crate::source::RawBlob>> {
        let resp = match self.registry.get_blob(&self.repo(repo), &blob.digest).await {
            Ok(resp) => resp,
            Err(Error::Http { status: 404, .. }) => return Ok(None),
            Err(e) => return Err(e),
        };
        let url = resp.url().to_string();
        Ok(Some(Box::pin(resp.bytes_stream().map_err(move |e| crate::http::transport_error("GET", &url, &e)))))
    }

    async fn has_blob(&self, repo: &str, blob: &Descriptor) -> Result<bool> {
        let repo = self.repo(repo);
        if self.registry.blob_exists(&repo, blob).await? {
            self.remember(&blob.digest, &repo);
            return Ok(true);
        }
        let from = self.known.lock().expect("not poisoned").get(&blob.digest).cloned();
        if let Some(from) = from
            && from != repo
            && self.registry.mount_blob(&repo, &from, blob).await?
        {
            tracing::debug!(digest = %blob.digest, from, to = repo, "mounted");
            return Ok(true);
        }
        Ok(false)
    }

    async fn put_blob(&self, repo: &str, blob: &Descriptor, body: BlobStream) -> Result<Upload> {
        let repo = self.repo(repo);
        let upload = self.registry.push_blob(&repo, blob, body).await?;
        if matches!(upload, Upload::Stored(_)) {
            self.remember(&blob.digest, &repo);
        }
        Ok(upload)
    }

    async fn put_manifest(&self, repo: &str, manifest: &CheckedManifest, tags: &[String]) -> Result<()> {
        let repo = self.repo(repo);
        let refs = std::iter::once(manifest.digest.as_str()).chain(tags.iter().map(String::as_str));
        for reference in refs {
            self.registry.put_manifest(&repo, reference, &manifest.raw, &manifest.media_type).await.map_err(|e| {
                match e {
                    // Quay (and Harbor before 2.0) refuse artifact media types they are not
                    // configured to accept.
                    Error::Http { status: 400 | 415, .. } => e.with_help(Help::AllowMediaTypes {
                        config: manifest.config.media_type.clone(),
                        layer: manifest.layer.media_type.clone(),
                    }),
                    e => e,
                }
            })?;
        }
        Ok(())
    }

    async fn put_signature(&self, repo: &str, signature: &crate::signing::Signature) -> Result<()> {
        let repo = self.repo(repo);
        let mt = crate::signing::Signature::MEDIA_TYPE;
        for reference in [signature.digest.as_str(), signature.tag.as_str()] {
            self.registry.put_manifest(&repo, reference, &signature.manifest, mt).await?;
        }
        Ok(())
    }

    fn client_reference(&self, repo: &str) -> Option<String> {
        Some(format!("{}/{}", self.registry.host(), self.repo(repo)))
    }

    async fn finish(&self) -> Result<()> {
        Ok(())
    }
}
