//! Ranged, parallel, resumable blob downloads from a registry.
//!
//! Registries answer a blob GET with a redirect to a CDN (mirror.gcr.io to
//! storage.googleapis.com, ghcr.io to pkg-containers.githubusercontent.com) that caps each
//! connection's throughput. One stream then goes at one connection's speed, and a reset at
//! 90 % of the Java DB starts it over. So a large blob is fetched as [`RangeOptions::parts`]
//! `Range` requests in flight, each of [`RangeOptions::part_size`] bytes:
//!
//! - The first range goes to the registry with its credentials; the client follows the
//!   redirect, and reqwest drops the `Authorization` header when the redirect leaves the
//!   registry's host (as clients must for signed CDN URLs). The remaining ranges go straight
//!   to the URL the first one ended at, without credentials (or through the registry client,
//!   with them, when there was no redirect). A 401/403 there (an expired signed URL) resolves
//!   the redirect again, once.
//! - Parts are yielded strictly in order (`buffered`), so the caller's verifier hashes the
//!   bytes in order while later parts are still arriving.
//! - A part whose body breaks (reset, timeout, short body) is re-requested from the byte it
//!   reached, not from the start of the blob: a reset costs at most the bytes in flight.
//! - A server that ignores `Range` (200 instead of 206) is read as one plain stream; one that
//!   answers a wrong `Content-Range` is refused and the blob is fetched as one plain stream.
//!
//! Memory: at most `parts` × `part_size` bytes are in flight (6 × 2 MiB = 12 MiB by
//! default) per source, over all the blobs it serves at the same time (a semaphore of
//! `parts` slots), plus the parts being handed on, whatever the blob size; parts leave in 256 KiB
//! slices so the fan-out's per-destination queue stays a few MiB. Small blobs (under two
//! parts) take one plain GET.

use std::sync::{Arc, Mutex};

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt as _;
use reqwest::header::{CONTENT_RANGE, RANGE};
use reqwest::{Method, Response, StatusCode};

use super::RawBlob;
use crate::error::{Error, Result};
use crate::http::{RetryPolicy, status_error, strip_query, transport_error};
use crate::oci::Descriptor;
use crate::registry::RegistryClient;

/// How large blobs are fetched.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RangeOptions {
    /// Range requests in flight per blob; 1 fetches every blob as one stream.
    pub parts: usize,
    /// Bytes per range request.
    pub part_size: u64,
}

impl Default for RangeOptions {
    fn default() -> Self {
        RangeOptions { parts: 6, part_size: 2 * 1024 * 1024 }
    }
}

/// What the first range request found out about the server.
pub(crate) enum First {
    /// 206 with the right Content-Range: fetch the rest in ranges.
    Ranged(Response),
    /// 200: the server ignores Range; this response is the whole blob.
    Whole(Response),
    /// A Content-Range that does not match the request: fetch as one plain stream.
    Refused(String),
}

/// Classify the answer to `bytes=0-<end-1>` of a blob of `size` bytes.
pub(crate) fn classify(resp: Response, size: u64, end: u64) -> First {
    match resp.status() {
        StatusCode::PARTIAL_CONTENT => match check_content_range(&resp, 0, end, size) {
            Ok(()) => First::Ranged(resp),
            Err(reason) => First::Refused(reason),
        },
        _ => First::Whole(resp),
    }
}

fn check_content_range(resp: &Response, start: u64, end: u64, size: u64) -> std::result::Result<(), String> {
    let got = resp.headers().get(CONTENT_RANGE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let want = format!("bytes {start}-{}/{size}", end - 1);
    if got == want { Ok(()) } else { Err(format!("Content-Range {got:?} where {want:?} was asked for")) }
}

/// Fetches the parts of one blob.
struct Parts {
    registry: Arc<RegistryClient>,
    repo: String,
    blob_url: String,
    desc: Descriptor,
    /// Where the ranges go: the URL the first request ended at.
    target: Mutex<String>,
    /// Whether `target` is the registry itself (credentials needed) or a CDN (none sent).
    direct: bool,
    retry: RetryPolicy,
    what: String,
    /// Range requests this source may have in flight, over all its blobs.
    slots: Arc<tokio::sync::Semaphore>,
}

impl Parts {
    async fn request(&self, from: u64, end: u64) -> Result<Response> {
        let range = format!("bytes={from}-{}", end - 1);
        let url = self.target.lock().expect("not poisoned").clone();
        let resp = if self.direct {
            let scope = crate::registry::pull_scope(&self.repo);
            self.registry.send(Method::GET, &url, &scope, false, |r| r.header(RANGE, range.as_str())).await?
        } else {
            let resp = self
                .registry
                .http()
                .get(&url)
                .header(RANGE, range.as_str())
                .send()
                .await
                .map_err(|e| transport_error("GET", &url, &e))?;
            if matches!(resp.status(), StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) {
                // A signed URL that expired: ask the registry where the blob is now.
                let fresh = self.resolve(&range).await?;
                *self.target.lock().expect("not poisoned") = fresh.url().to_string();
                fresh
            } else if !resp.status().is_success() {
                return Err(status_error("GET", &strip_query(&url), resp).await);
            } else {
                resp
            }
        };
        if resp.status() != StatusCode::PARTIAL_CONTENT {
            return Err(Error::rejected(&self.what, format!("a range request got HTTP {}, not 206", resp.status())));
        }
        check_content_range(&resp, from, end, self.desc.size).map_err(|r| Error::rejected(&self.what, r))?;
        Ok(resp)
    }

    async fn resolve(&self, range: &str) -> Result<Response> {
        let scope = crate::registry::pull_scope(&self.repo);
        self.registry.send(Method::GET, &self.blob_url, &scope, false, |r| r.header(RANGE, range)).await
    }

    /// Fetch `[start, end)`, resuming from where a broken body stopped.
    async fn part(
        &self,
        start: u64,
        end: u64,
        mut first: Option<Response>,
    ) -> Result<(Bytes, tokio::sync::OwnedSemaphorePermit)> {
        // Held until the part has been handed on, so that parts in flight plus parts
        // waiting their turn stay within the budget, and artifacts copied at the same time
        // share it instead of multiplying it.
        let slot = self.slots.clone().acquire_owned().await.expect("the semaphore is never closed");
        let len = (end - start) as usize;
        let mut buf = BytesMut::with_capacity(len);
        let mut attempt = 0;
        loop {
            let from = start + buf.len() as u64;
            let resp = match first.take() {
                Some(r) => Ok(r),
                None => self.request(from, end).await,
            };
            let err = match resp {
                Ok(resp) => {
                    let url = strip_query(resp.url().as_str());
                    let mut body = resp.bytes_stream();
                    let mut broke = None;
                    while let Some(chunk) = body.next().await {
                        match chunk {
                            Ok(c) if buf.len() + c.len() <= len => buf.extend_from_slice(&c),
                            Ok(_) => return Err(Error::rejected(&self.what, "a range answer is longer than asked")),
                            Err(e) => {
                                broke = Some(transport_error("GET", &url, &e));
                                break;
                            }
                        }
                    }
                    match broke {
                        None if buf.len() == len => return Ok((buf.freeze(), slot)),
                        None => Error::Transport {
                            method: "GET",
                            url,
                            cause: crate::error::Cause::Reset,
                            message: format!("the range ended after {} of {len} bytes", buf.len()),
                            transient: true,
                            help: None,
                        },
                        Some(e) => e,
                    }
                }
                Err(e) => e,
            };
            attempt += 1;
            if !err.is_transient() || attempt >= self.retry.attempts.max(1) {
                return Err(err);
            }
            let wait = self.retry.backoff(attempt - 1, err.retry_after());
            tracing::warn!(blob = %self.desc.digest, from = start + buf.len() as u64, error = %err, "range broke; resuming it");
            // The next request asks only for what is still missing.
            tokio::time::sleep(wait).await;
        }
    }
}

/// The blob as a stream of in-order parts, the first answer (`first`, a 206 for the first
/// part) already in hand. `final_url` is where that answer came from.
#[allow(clippy::too_many_arguments)]
pub(crate) fn stream(
    registry: Arc<RegistryClient>,
    repo: String,
    blob_url: String,
    desc: Descriptor,
    first: Response,
    options: RangeOptions,
    slots: Arc<tokio::sync::Semaphore>,
    retry: RetryPolicy,
    what: String,
) -> RawBlob {
    let final_url = first.url().to_string();
    let origin =
        |u: &str| url::Url::parse(u).ok().map(|u| (u.host_str().map(str::to_string), u.port_or_known_default()));
    let direct = origin(&final_url) == origin(&blob_url);
    let size = desc.size;
    let part = options.part_size.max(1);
    let parts =
        Arc::new(Parts { registry, repo, blob_url, desc, target: Mutex::new(final_url), direct, retry, what, slots });
    let first = Arc::new(Mutex::new(Some(first)));
    let ranges = (0..size.div_ceil(part)).map(move |i| (i * part, ((i + 1) * part).min(size)));
    let fetches = futures_util::stream::iter(ranges).map(move |(start, end)| {
        let parts = parts.clone();
        let initial = if start == 0 { first.lock().expect("not poisoned").take() } else { None };
        async move { parts.part(start, end, initial).await }
    });
    // Each part is handed on in 256 KiB slices (zero-copy): the fan-out downstream counts
    // chunks, and whole parts would let it queue many megabytes per destination.
    let slices = fetches.buffered(options.parts.max(1)).flat_map(|part| {
        let items: Vec<Result<Bytes>> = match part {
            // The slot goes back here: what is left of this part is the slices below.
            Ok((bytes, _slot)) => {
                (0..bytes.len()).step_by(SLICE).map(|i| Ok(bytes.slice(i..(i + SLICE).min(bytes.len())))).collect()
            }
            Err(e) => vec![Err(e)],
        };
        futures_util::stream::iter(items)
    });
    Box::pin(slices)
}

/// Size of the slices a part is handed on in.
const SLICE: usize = 256 * 1024;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_budget_is_small() {
        let o = RangeOptions::default();
        assert!(o.parts as u64 * o.part_size <= 12 * 1024 * 1024);
    }
}
