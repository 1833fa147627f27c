//! Push side of the registry client: blob existence, streaming upload, manifest PUT.
//!
//! Uploads are monolithic: `POST /blobs/uploads/` then one streaming `PUT ?digest=` with
//! the known size, the mode registries support most widely (regclient tries it first) and
//! the one ECR handles correctly (its chunked PATCH answers 201 and drops data,
//! aws/containers-roadmap#2831). The registry checks the digest itself.

use bytes::Bytes;
use reqwest::header::{CONTENT_LENGTH, CONTENT_TYPE, LOCATION};
use reqwest::{Method, StatusCode};

use super::Registry;
use crate::error::{Error, Result};
use crate::manifest::{CheckedManifest, Descriptor};
use crate::stream::BlobStream;

/// `repository:<repo>:pull,push`.
pub(crate) fn push_scope(repo: &str) -> String {
    format!("repository:{repo}:pull,push")
}

impl Registry {
    /// HEAD the blob: present with the right size?
    pub async fn blob_exists(&self, repo: &str, blob: &Descriptor) -> Result<bool> {
        let url = self.url(&format!("{repo}/blobs/{}", blob.digest)).await?;
        let resp = self.send(Method::HEAD, &url, &push_scope(repo), true, |r| r).await?;
        Ok(resp.status() != StatusCode::NOT_FOUND && resp.content_length().is_none_or(|n| n == blob.size))
    }

    /// Try a cross-repository mount of `blob` from `from` into `repo`. `Ok(false)` when
    /// the registry declines (it then opens an upload session, which is cancelled).
    pub async fn mount_blob(&self, repo: &str, from: &str, blob: &Descriptor) -> Result<bool> {
        let mut url = url::Url::parse(&self.url(&format!("{repo}/blobs/uploads/")).await?)
            .map_err(|e| Error::rejected("mount URL", e.to_string()))?;
        url.query_pairs_mut().append_pair("mount", blob.digest.as_str()).append_pair("from", from);
        // Token services need pull on the source as well as push on the target
        // (oras-project/rust-oci-client#235 is the same bug in another client).
        let scope = format!("{} repository:{from}:pull", push_scope(repo));
        let resp = self.send(Method::POST, url.as_str(), &scope, false, |r| r.header(CONTENT_LENGTH, "0")).await?;
        if resp.status() == StatusCode::CREATED {
            return Ok(true);
        }
        // 202: the registry declined and opened an upload session; close it.
        if let Some(location) = resp.headers().get(LOCATION).and_then(|v| v.to_str().ok())
            && let Ok(session) = url.join(location)
        {
            let _ = self.send(Method::DELETE, session.as_str(), &scope, true, |r| r).await;
        }
        Ok(false)
    }

    /// Upload a blob from a verifying stream in one streaming PUT.
    pub async fn push_blob(&self, repo: &str, blob: &Descriptor, body: BlobStream) -> Result<u64> {
        let scope = push_scope(repo);
        let start = self.url(&format!("{repo}/blobs/uploads/")).await?;
        let resp = self.send(Method::POST, &start, &scope, false, |r| r.header(CONTENT_LENGTH, "0")).await?;
        let location = resp
            .headers()
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| Error::rejected(format!("upload session from {}", self.host()), "no Location header"))?;
        let mut url = url::Url::parse(&start)
            .and_then(|base| base.join(location))
            .map_err(|e| Error::rejected(format!("upload location {location:?}"), e.to_string()))?;
        url.query_pairs_mut().append_pair("digest", blob.digest.as_str());
        let url = url.to_string();
        // The body can be sent once only, so this request is not retried here: the sync
        // engine retries the whole blob transfer from the source.
        let body = std::sync::Mutex::new(Some(body));
        self.send_once(Method::PUT, &url, &scope, |r| {
            let stream = body.lock().expect("not poisoned").take();
            let r = r.header(CONTENT_TYPE, "application/octet-stream").header(CONTENT_LENGTH, blob.size);
            match stream {
                Some(s) => r.body(reqwest::Body::wrap_stream(s)),
                None => r.body(Bytes::new()),
            }
        })
        .await?;
        Ok(blob.size)
    }

    /// PUT a manifest's exact bytes under a tag or digest.
    pub async fn put_manifest(&self, repo: &str, reference: &str, manifest: &CheckedManifest) -> Result<()> {
        let url = self.url(&format!("{repo}/manifests/{reference}")).await?;
        let raw = manifest.raw.clone();
        let media_type = manifest.media_type.clone();
        match self
            .send(Method::PUT, &url, &push_scope(repo), false, |r| {
                r.header(CONTENT_TYPE, media_type.as_str()).body(raw.clone())
            })
            .await
        {
            Ok(_) => Ok(()),
            Err(Error::Http { status, detail, url, method, retry_after }) if status == 400 || status == 415 => {
                Err(Error::Http {
                    method,
                    url,
                    status,
                    detail: format!(
                        "{detail} (the registry refused the manifest: allow the artifact media types {} and {} — Quay needs FEATURE_GENERAL_OCI_SUPPORT and ALLOWED_OCI_ARTIFACT_TYPES, Harbor ≥ 2.0 accepts them)",
                        manifest.config.media_type, manifest.layer.media_type
                    ),
                    retry_after,
                })
            }
            Err(e) => Err(e),
        }
    }
}
