//! VEX Hub over plain HTTPS as a [`Source`] of the VEX artifact
//! ([`crate::vex::artifact`]): the repository manifest (`--vex-source`) and the archives
//! its locations name are downloaded, checked with the rules of [`crate::vex`], and
//! packed as the same OCI artifact an air-gap bundle carries, so the engine copies VEX
//! like any other artifact. VEX Hub is small (~0.2 MB) and has no digests of its own, so
//! the whole release is fetched when the manifest is asked for and the blobs are then
//! served from memory; the manifest is deterministic (no timestamp of the run), so an
//! unchanged VEX Hub gives the same digest and the engine writes nothing.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;

use super::{RawBlob, RawManifest, Source};
use crate::artifact::{Kind, OciArtifact};
use crate::error::{Error, Result, Setting};
use crate::http::{ClientOptions, RetryPolicy, read_bounded, status_error, strip_query, transport_error};
use crate::oci::{Descriptor, Digest, OCI_MANIFEST};
use crate::vex::artifact::{VEX_MANIFEST_TYPE, build_manifest, descriptor, layer_type};
use crate::vex::{ArchiveChoice, MAX_VEX_ARCHIVE, MAX_VEX_MANIFEST, check_fetch_scheme, parse_location};

/// A VEX repository read over HTTP.
#[derive(Debug)]
pub struct VexHubSource {
    url: url::Url,
    label: String,
    choice: ArchiveChoice,
    insecure: bool,
    http: reqwest::Client,
    retry: RetryPolicy,
    /// The blobs of the releases built in this run, by digest.
    blobs: Mutex<HashMap<Digest, Bytes>>,
}

impl VexHubSource {
    /// Validate the manifest URL and build the client. `choice` picks the archive form to
    /// download (GitHub serves tar.gz and zip); `insecure` allows plain http and any
    /// certificate beyond localhost; `retry` is the run's policy for each download.
    pub fn new(
        manifest_url: &str,
        choice: ArchiveChoice,
        insecure: bool,
        ca_file: Option<PathBuf>,
        read_timeout: Option<Duration>,
        retry: RetryPolicy,
    ) -> Result<VexHubSource> {
        let bad = |reason: String| Error::config(Setting::VexSource, manifest_url, reason);
        let url = url::Url::parse(manifest_url).map_err(|e| bad(e.to_string()))?;
        check_fetch_scheme(&url, insecure).map_err(|e| bad(e.to_string()))?;
        let http = crate::http::client(&ClientOptions {
            insecure,
            ca_file: ca_file.as_deref(),
            read_timeout,
            ..ClientOptions::default()
        })?;
        let label = strip_query(url.as_str());
        Ok(VexHubSource { url, label, choice, insecure, http, retry, blobs: Mutex::default() })
    }

    /// GET `url` whole (at most `limit` bytes), again while the run's retry policy says so:
    /// a GET is idempotent, so a truncated body is fetched again too.
    async fn fetch(&self, url: &url::Url, limit: usize) -> Result<Bytes> {
        self.retry.run("GET", || self.fetch_once(url, limit)).await
    }

    async fn fetch_once(&self, url: &url::Url, limit: usize) -> Result<Bytes> {
        let resp = self.http.get(url.clone()).send().await.map_err(|e| transport_error("GET", url.as_str(), &e))?;
        if !resp.status().is_success() {
            return Err(status_error("GET", url.as_str(), resp).await);
        }
        read_bounded(resp, limit, "GET", url.as_str()).await
    }

    /// Download and check the release; keep its blobs; return the artifact's manifest.
    async fn release(&self) -> Result<Bytes> {
        let upstream = self.fetch(&self.url, MAX_VEX_MANIFEST).await?;
        let (_, locations) = crate::vex::parse_manifest(&upstream, &self.label)?;
        let mut layers: Vec<(Descriptor, String)> = Vec::new();
        let mut blobs = vec![upstream.clone()];
        let mut created = None;
        for raw_loc in &locations {
            let loc = parse_location(raw_loc, self.choice, self.insecure)?;
            let bytes = self.fetch(&loc.fetch, MAX_VEX_ARCHIVE).await?;
            let what = format!("VEX archive {}", strip_query(loc.fetch.as_str()));
            let updated =
                crate::vex::validate_archive_off_runtime(bytes.clone(), loc.format, loc.subdir.clone(), what).await?;
            if layers.is_empty() {
                // The first archive's `updated_at` is the release's build time.
                created = updated;
            }
            // Two locations may end in the same file name; each needs its own.
            let mut file = loc.file.clone();
            if layers.iter().any(|(_, f)| *f == file) {
                file = format!("{}-{}", layers.len() + 1, file);
            }
            layers.push((descriptor(layer_type(loc.format), &bytes), file));
            blobs.push(bytes);
        }
        let raw = build_manifest(&descriptor(VEX_MANIFEST_TYPE, &upstream), &layers, created);
        let mut kept = self.blobs.lock().expect("not poisoned");
        for b in blobs {
            kept.insert(Digest::of(&b), b);
        }
        Ok(raw)
    }
}

#[async_trait]
impl Source for VexHubSource {
    fn label(&self) -> &str {
        &self.label
    }

    async fn manifest(&self, artifact: &OciArtifact, reference: &str) -> Result<Option<RawManifest>> {
        // VEX Hub signs nothing: only the release itself is here.
        if artifact.kind != Kind::Vex || reference != artifact.tag {
            return Ok(None);
        }
        let raw = self.release().await?;
        Ok(Some(RawManifest { raw, content_type: Some(OCI_MANIFEST.to_string()) }))
    }

    async fn blob(&self, _artifact: &OciArtifact, desc: &Descriptor) -> Result<RawBlob> {
        let bytes = self.blobs.lock().expect("not poisoned").get(&desc.digest).cloned();
        let bytes = bytes
            .ok_or_else(|| Error::NotFound { what: format!("blob {}", desc.digest), place: self.label.clone() })?;
        Ok(Box::pin(futures_util::stream::iter([Ok(bytes)])))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    use super::*;

    /// A server answering each connection with the next of `statuses` (then 200s), the body
    /// `hello`; counts the requests.
    async fn scripted(statuses: &'static [u16]) -> (String, Arc<AtomicU32>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let statuses = Arc::new(Mutex::new(statuses.iter().copied()));
        let count = Arc::new(AtomicU32::new(0));
        let counted = count.clone();
        tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                let mut request = Vec::new();
                let mut buf = [0u8; 1024];
                while !request.ends_with(b"\r\n\r\n") {
                    match conn.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                counted.fetch_add(1, Ordering::SeqCst);
                let status = statuses.lock().unwrap().next().unwrap_or(200);
                let response = format!("HTTP/1.1 {status} X\r\ncontent-length: 5\r\nconnection: close\r\n\r\nhello");
                let _ = conn.write_all(response.as_bytes()).await;
            }
        });
        (format!("http://{addr}/vex-repository.json"), count)
    }

    fn source(url: &str, attempts: u32) -> VexHubSource {
        let retry = RetryPolicy { attempts, initial_backoff: Duration::ZERO, max_backoff: Duration::ZERO };
        VexHubSource::new(url, ArchiveChoice::AsUpstream, false, None, None, retry).unwrap()
    }

    #[tokio::test]
    async fn downloads_follow_the_runs_retry_policy() {
        let (url, count) = scripted(&[503, 502]).await;
        let hub = source(&url, 3);
        assert_eq!(hub.fetch(&hub.url, 1024).await.unwrap(), "hello");
        assert_eq!(count.load(Ordering::SeqCst), 3, "two transient failures, then the body");

        let (url, count) = scripted(&[503, 503]).await;
        let hub = source(&url, 2);
        let err = hub.fetch(&hub.url, 1024).await.unwrap_err();
        assert!(matches!(err, Error::GaveUp { attempts: 2, .. }), "{err:?}");
        assert_eq!(count.load(Ordering::SeqCst), 2, "--retries bounds the attempts");

        let (url, count) = scripted(&[404]).await;
        let hub = source(&url, 3);
        assert!(hub.fetch(&hub.url, 1024).await.is_err());
        assert_eq!(count.load(Ordering::SeqCst), 1, "a permanent failure is not tried again");
    }
}
