//! Push side of the registry client: blob existence, streaming upload, manifest PUT.
//!
//! Uploads are monolithic by default: `POST /blobs/uploads/` then one streaming
//! `PUT ?digest=` with the known size, the mode registries support most widely (regclient
//! tries it first) and the one ECR handles correctly (its chunked PATCH answers 201 and
//! drops data, aws/containers-roadmap#2831). The registry checks the digest itself.
//!
//! Chunked uploads (`PATCH` with `Content-Range`, then an empty `PUT ?digest=`) are the
//! fallback for what sits in front of many self-hosted registries: an ingress or proxy
//! with a request-body limit (nginx's default is 1 MiB) answers 413 to the one big PUT.
//! The first 413 switches this registry to chunks for the rest of the run and the blob is
//! sent again; a chunk that still meets a 413 is halved on the spot, down to 64 KiB, so
//! the upload adapts to the limit without starting over. `--dest-chunk-size` starts in
//! chunked mode. Memory stays bounded by one chunk.

use std::sync::atomic::Ordering;

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt as _;
use reqwest::header::{CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, LOCATION};
use reqwest::{Method, Response, StatusCode};

use super::RegistryClient;

use crate::error::{Error, Help, Result};
use crate::http::strip_query;
use crate::oci::Descriptor;
use crate::stream::{BlobStream, Upload};

/// The chunk size taken when a one-request upload is refused as too large.
pub const FALLBACK_CHUNK: u64 = 8 * 1024 * 1024;

/// Chunks are never split below this.
pub const MIN_CHUNK: u64 = 64 * 1024;

/// `repository:<repo>:pull,push`.
pub(crate) fn push_scope(repo: &str) -> String {
    format!("repository:{repo}:pull,push")
}

impl RegistryClient {
    /// HEAD the blob: present with the right size?
    pub async fn blob_exists(&self, repo: &str, blob: &Descriptor) -> Result<bool> {
        let url = self.url(&format!("{repo}/blobs/{}", blob.digest)).await?;
        let resp = self.send(Method::HEAD, &url, &push_scope(repo), true, |r| r).await?;
        // The header, not `Response::content_length()`: a HEAD response has an empty body,
        // and reqwest reports that body's length (0), not the blob's.
        let length =
            resp.headers().get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
        Ok(resp.status() != StatusCode::NOT_FOUND && length.is_none_or(|n| n == blob.size))
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

    /// Upload a blob from a verifying stream: one streaming PUT, or chunks once this
    /// registry is in chunked mode. A one-request upload refused as too large switches the
    /// registry to chunks and answers [`Upload::Resend`].
    pub async fn push_blob(&self, repo: &str, blob: &Descriptor, body: BlobStream) -> Result<Upload> {
        self.push_blob_inner(repo, blob, body).await.map_err(|e| match e {
            // Older trivy-db builds have a zero-length config blob, which Harbor before 2.x
            // fails to store with a 500 (aquasecurity/trivy#4112).
            Error::Http { status, .. } if blob.size == 0 && status >= 500 => e.with_help(Help::ZeroLengthBlob),
            e => e,
        })
    }

    async fn push_blob_inner(&self, repo: &str, blob: &Descriptor, body: BlobStream) -> Result<Upload> {
        let scope = push_scope(repo);
        let (session, min_chunk) = self.start_upload(repo, &scope).await?;
        let chunk = self.upload_chunk.load(Ordering::Relaxed);
        if chunk > 0 {
            return self.push_chunks(&scope, blob, body, session, min_chunk).await.map(Upload::Stored);
        }
        let mut url = session;
        url.query_pairs_mut().append_pair("digest", blob.digest.as_str());
        // The body can be sent once only, so this request is not retried here: the sync
        // engine retries the whole blob transfer from the source.
        let body = std::sync::Mutex::new(Some(body));
        let sent = self
            .send_once(Method::PUT, url.as_str(), &scope, false, |r| {
                let stream = body.lock().expect("not poisoned").take();
                let r = r.header(CONTENT_TYPE, "application/octet-stream").header(CONTENT_LENGTH, blob.size);
                match stream {
                    Some(s) => r.body(reqwest::Body::wrap_stream(s)),
                    None => r.body(Bytes::new()),
                }
            })
            .await;
        match sent {
            Ok(_) => Ok(Upload::Stored(blob.size)),
            Err(Error::Http { status: 413, url, .. }) => {
                // Keep a smaller chunk size another blob may already have learned.
                let _ = self.upload_chunk.compare_exchange(0, FALLBACK_CHUNK, Ordering::Relaxed, Ordering::Relaxed);
                tracing::info!(host = self.host(), "blob refused as too large in one request; uploading in chunks");
                Ok(Upload::Resend {
                    reason: format!(
                        "PUT {url}: HTTP 413: the registry or a proxy in front of it limits request bodies; \
                         switching to chunked uploads"
                    ),
                })
            }
            Err(e) => Err(e),
        }
    }

    /// `POST /blobs/uploads/`: the session URL to send the blob to, and the smallest chunk
    /// the registry takes (`OCI-Chunk-Min-Length`, else [`MIN_CHUNK`]).
    async fn start_upload(&self, repo: &str, scope: &str) -> Result<(url::Url, u64)> {
        let start = self.url(&format!("{repo}/blobs/uploads/")).await?;
        let resp = self.send(Method::POST, &start, scope, false, |r| r.header(CONTENT_LENGTH, "0")).await?;
        let min = resp
            .headers()
            .get("OCI-Chunk-Min-Length")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map_or(MIN_CHUNK, |m| m.max(MIN_CHUNK));
        Ok((next_location(&start, &resp)?, min))
    }

    /// Send the blob as `PATCH` chunks of the current chunk size, then close the session
    /// with `PUT ?digest=`. A chunk refused with 413 is split in half and sent again.
    async fn push_chunks(
        &self,
        scope: &str,
        blob: &Descriptor,
        mut body: BlobStream,
        session: url::Url,
        min_chunk: u64,
    ) -> Result<u64> {
        let mut location = session;
        let mut offset = 0u64;
        let mut buf = BytesMut::new();
        let mut done = false;
        while !done || !buf.is_empty() {
            let chunk = self.upload_chunk.load(Ordering::Relaxed).max(min_chunk) as usize;
            while !done && buf.len() < chunk {
                match body.next().await {
                    Some(bytes) => buf.extend_from_slice(&bytes?),
                    None => done = true,
                }
            }
            if buf.is_empty() {
                break;
            }
            let piece = buf.split_to(chunk.min(buf.len())).freeze();
            let len = piece.len() as u64;
            let range = format!("{offset}-{}", offset + len - 1);
            let sent = self
                .send_once(Method::PATCH, location.as_str(), scope, true, |r| {
                    r.header(CONTENT_TYPE, "application/octet-stream")
                        .header(CONTENT_RANGE, range.as_str())
                        .header(CONTENT_LENGTH, len)
                        .body(piece.clone())
                })
                .await;
            match sent {
                Ok(resp) => {
                    check_chunk_accepted(&resp, offset + len, &location)?;
                    location = next_location(location.as_str(), &resp)?;
                    offset += len;
                }
                Err(Error::Http { status: 413, .. }) if len / 2 >= min_chunk => {
                    // Nothing of this chunk was taken: put it back and halve the size.
                    self.upload_chunk.fetch_min(len / 2, Ordering::Relaxed);
                    tracing::info!(host = self.host(), chunk = len / 2, "chunk refused as too large; halving");
                    let mut back = BytesMut::from(&piece[..]);
                    back.extend_from_slice(&buf);
                    buf = back;
                }
                Err(e) => return Err(e),
            }
        }
        if offset != blob.size {
            return Err(Error::rejected(
                format!("blob {}", blob.digest),
                format!("the source sent {offset} bytes, the manifest says {}", blob.size),
            ));
        }
        location.query_pairs_mut().append_pair("digest", blob.digest.as_str());
        self.send(Method::PUT, location.as_str(), scope, false, |r| r.header(CONTENT_LENGTH, "0")).await?;
        Ok(blob.size)
    }

    /// PUT a manifest's exact bytes, with its media type, under a tag or digest.
    pub async fn put_manifest(&self, repo: &str, reference: &str, raw: &Bytes, media_type: &str) -> Result<()> {
        let url = self.url(&format!("{repo}/manifests/{reference}")).await?;
        self.send(Method::PUT, &url, &push_scope(repo), false, |r| {
            r.header(CONTENT_TYPE, media_type).body(raw.clone())
        })
        .await?;
        Ok(())
    }
}

/// A chunk counts as taken only on 202 with the registry's `Range` ending where ours did:
/// ECR answers 201 and drops chunked data (aws/containers-roadmap#2831), which would
/// otherwise surface only as a digest error at the end.
fn check_chunk_accepted(resp: &Response, end: u64, location: &url::Url) -> Result<()> {
    let what = || format!("chunked upload at {}", strip_query(location.as_str()));
    if resp.status() != StatusCode::ACCEPTED {
        return Err(Error::rejected(
            what(),
            format!("the registry answered {} to a chunk instead of 202", resp.status().as_u16()),
        )
        .with_help(Help::NoChunkedUploads));
    }
    let range = resp.headers().get(reqwest::header::RANGE).and_then(|v| v.to_str().ok());
    if let Some(range) = range {
        let last = range.trim().trim_start_matches("bytes=").rsplit('-').next().and_then(|n| n.parse::<u64>().ok());
        if last != Some(end - 1) {
            return Err(Error::rejected(
                what(),
                format!("the registry holds {range:?} after a chunk ending at byte {}", end - 1),
            ));
        }
    }
    Ok(())
}

/// The upload session URL a response points to, resolved against the request URL.
fn next_location(request: &str, resp: &Response) -> Result<url::Url> {
    let location =
        resp.headers().get(LOCATION).and_then(|v| v.to_str().ok()).ok_or_else(|| {
            Error::rejected(format!("upload session at {}", strip_query(request)), "no Location header")
        })?;
    url::Url::parse(request)
        .and_then(|base| base.join(location))
        .map_err(|e| Error::rejected(format!("upload location {location:?}"), e.to_string()))
}
