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
//! - Ranges are for slow connections only. A registry that serves the blob itself (no
//!   redirect to another host) is usually as fast on one connection as on six, and on
//!   loopback or a LAN the extra requests cost more than they bring: there the first part
//!   streams through as it arrives while the time spent waiting for the network is added
//!   up, and unless it came slower than [`SLOW`] (timed only when it is at least [`TIMED`]
//!   bytes) the rest follows as one more range request, resumed from the byte it reached
//!   when it breaks.
//! - Parts are yielded strictly in order (`buffered`), so the caller's verifier hashes the
//!   bytes in order while later parts are still arriving.
//! - A part whose body breaks (reset, timeout, short body) is re-requested from the byte it
//!   reached, not from the start of the blob: a reset costs at most the bytes in flight.
//! - A server that ignores `Range` (200 instead of 206) is read as one plain stream; one that
//!   answers a wrong `Content-Range` is refused and the blob is fetched as one plain stream.
//!
//! Memory: at most `parts` × `part_size` bytes are in flight (6 × 2 MiB = 12 MiB by
//! default) per source, over all the blobs it serves at the same time (a semaphore of
//! `parts` slots, the first taken before the first request), plus the parts being handed on,
//! whatever the blob size; parts leave in 256 KiB slices so the fan-out's per-destination
//! queue stays a few MiB. A range that is streamed (the first part and the rest from a
//! registry serving blobs itself) holds nothing: it flows like a plain GET.
//! Small blobs (under two parts) take one plain GET.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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
    Refused(RangeMismatch),
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

/// A 206 whose Content-Range is not the range asked for.
#[derive(Debug, thiserror::Error)]
#[error("Content-Range {got:?} where {want:?} was asked for")]
pub(crate) struct RangeMismatch {
    got: String,
    want: String,
}

fn check_content_range(resp: &Response, start: u64, end: u64, size: u64) -> std::result::Result<(), RangeMismatch> {
    let got = resp.headers().get(CONTENT_RANGE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let want = format!("bytes {start}-{}/{size}", end - 1);
    if got == want { Ok(()) } else { Err(RangeMismatch { got: got.to_string(), want }) }
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
        check_content_range(&resp, from, end, self.desc.size)
            .map_err(|r| Error::rejected(&self.what, r.to_string()))?;
        Ok(resp)
    }

    async fn resolve(&self, range: &str) -> Result<Response> {
        let scope = crate::registry::pull_scope(&self.repo);
        self.registry.send(Method::GET, &self.blob_url, &scope, false, |r| r.header(RANGE, range)).await
    }

    /// Fetch `[start, end)` holding a slot (`slot`, or one taken here) until it is handed on.
    async fn part(&self, start: u64, end: u64, first: Option<(Response, Slot)>) -> Result<(Bytes, Slot)> {
        // Held until the part has been handed on, so that parts in flight plus parts
        // waiting their turn stay within the budget, and artifacts copied at the same time
        // share it instead of multiplying it.
        let (first, slot) = match first {
            Some((resp, slot)) => (Some(resp), slot),
            None => (None, take_slot(&self.slots).await),
        };
        Ok((self.read(start, end, first).await?, slot))
    }

    /// Read `[start, end)` into memory, resuming from where a broken body stopped.
    async fn read(&self, start: u64, end: u64, mut first: Option<Response>) -> Result<Bytes> {
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
                            Ok(_) => return Err(self.too_long()),
                            Err(e) => {
                                broke = Some(transport_error("GET", &url, &e));
                                break;
                            }
                        }
                    }
                    match broke {
                        None if buf.len() == len => return Ok(buf.freeze()),
                        None => short(url, buf.len() as u64, len as u64),
                        Some(e) => e,
                    }
                }
                Err(e) => e,
            };
            self.again(&mut attempt, err, start + buf.len() as u64).await?;
        }
    }

    /// After a failed request or a broken body: wait and return `Ok` to try again from
    /// `from`, or the error when it is not transient or the attempts are spent.
    async fn again(&self, attempt: &mut u32, err: Error, from: u64) -> Result<()> {
        *attempt += 1;
        // The next request asks only for what is still missing.
        tracing::debug!(blob = %self.desc.digest, from, "range broke; resuming it if the retry policy allows");
        self.retry.again("range", *attempt, err).await
    }

    fn too_long(&self) -> Error {
        Error::rejected(&self.what, "a range answer is longer than asked")
    }
}

/// A body that ended before the bytes its range promised.
fn short(url: String, got: u64, want: u64) -> Error {
    Error::Transport {
        method: "GET",
        url,
        cause: crate::error::Cause::Reset,
        message: format!("the range ended after {got} of {want} bytes"),
        transient: true,
        proxy: None,
        help: None,
    }
}

/// One of the source's range slots.
pub(crate) type Slot = tokio::sync::OwnedSemaphorePermit;

/// Wait for one of the source's range slots.
pub(crate) async fn take_slot(slots: &Arc<tokio::sync::Semaphore>) -> Slot {
    slots.clone().acquire_owned().await.expect("the semaphore is never closed")
}

/// A first part below this rate means one connection is slow: fetch the rest in ranges.
pub const SLOW: u64 = 32 * 1024 * 1024;

/// A first part is timed only from this size on; a smaller one says nothing about the link.
pub const TIMED: u64 = 1024 * 1024;

/// Whether `bytes` read in `took` show a slow connection ([`SLOW`], timed from [`TIMED`] bytes).
fn is_slow(bytes: u64, took: Duration) -> bool {
    bytes >= TIMED && (bytes as f64) < SLOW as f64 * took.as_secs_f64()
}

/// The registry and the blob a ranged download is for.
pub(crate) struct Blob {
    pub registry: Arc<RegistryClient>,
    pub repo: String,
    /// `/v2/<repo>/blobs/<digest>` on the registry.
    pub url: String,
    pub desc: Descriptor,
    /// For messages: which blob of which artifact from which source.
    pub what: String,
}

/// The blob as a stream, the answer to its first range (`first`, a 206 for the first part,
/// taken holding `slot`) already in hand: in parts when it came from another host than the
/// registry (a CDN); otherwise the first part streams through as it arrives, timed, and the
/// rest follows in parts if it came slowly, else as one more range request.
pub(crate) fn stream(
    blob: Blob,
    first: Response,
    slot: Slot,
    options: RangeOptions,
    slots: Arc<tokio::sync::Semaphore>,
) -> RawBlob {
    let final_url = first.url().to_string();
    let origin =
        |u: &str| url::Url::parse(u).ok().map(|u| (u.host_str().map(str::to_string), u.port_or_known_default()));
    let direct = origin(&final_url) == origin(&blob.url);
    let retry = blob.registry.retry().clone();
    let Blob { registry, repo, url: blob_url, desc, what } = blob;
    let (size, part) = (desc.size, options.part_size.max(1).min(desc.size));
    let parts =
        Arc::new(Parts { registry, repo, blob_url, desc, target: Mutex::new(final_url), direct, retry, what, slots });
    if !direct {
        return in_parts(parts, Some((first, slot)), 0, part, options.parts);
    }
    // Nothing of the head is held: it flows like a plain stream, so the slot goes back now.
    drop(slot);
    let head = Arc::new(Progress::default());
    let then = {
        let (parts, head) = (parts.clone(), head.clone());
        futures_util::stream::once(async move {
            if head.failed.load(Ordering::Relaxed) {
                return futures_util::stream::empty().boxed();
            }
            let waited = Duration::from_nanos(head.waited_ns.load(Ordering::Relaxed));
            let slow = is_slow(part, waited);
            tracing::debug!(blob = %parts.desc.digest, slow, secs = waited.as_secs_f64(), "first part from the registry itself");
            if slow {
                in_parts(parts, None, part, part, options.parts)
            } else {
                range(parts, part, size, None, Arc::default()).boxed()
            }
        })
        .flatten()
    };
    range(parts, 0, part, Some(first), head).chain(then).boxed()
}

/// The blob from `from` on as `in_flight` ranges of `part` bytes at a time, yielded in
/// order; `head`, when given, is the answer for the first of them and its slot.
fn in_parts(parts: Arc<Parts>, head: Option<(Response, Slot)>, from: u64, part: u64, in_flight: usize) -> RawBlob {
    let size = parts.desc.size;
    let head = Arc::new(Mutex::new(head));
    let ranges = (0..(size - from).div_ceil(part)).map(move |i| (from + i * part, (from + (i + 1) * part).min(size)));
    let fetches = futures_util::stream::iter(ranges).map(move |(start, end)| {
        let parts = parts.clone();
        let head = if start == from { head.lock().expect("not poisoned").take() } else { None };
        async move { parts.part(start, end, head).await }
    });
    let slices = fetches.buffered(in_flight.max(1)).flat_map(|part| match part {
        // The slot goes back here: what is left of this part is its slices.
        Ok((bytes, _slot)) => slices(bytes).left_stream(),
        Err(e) => futures_util::stream::iter([Err(e)]).right_stream(),
    });
    Box::pin(slices)
}

/// A part handed on in 256 KiB slices (zero-copy): the fan-out downstream counts chunks,
/// and whole parts would let it queue many megabytes per destination.
fn slices(bytes: Bytes) -> impl futures_util::Stream<Item = Result<Bytes>> + Send + 'static {
    let items: Vec<Result<Bytes>> =
        (0..bytes.len()).step_by(SLICE).map(|i| Ok(bytes.slice(i..(i + SLICE).min(bytes.len())))).collect();
    futures_util::stream::iter(items)
}

/// Size of the slices a part is handed on in.
const SLICE: usize = 256 * 1024;

/// What a streamed range tells whoever comes after it.
#[derive(Default)]
struct Progress {
    /// Time spent waiting for the network (not for the consumer), in nanoseconds.
    waited_ns: AtomicU64,
    /// Whether the range ended in an error.
    failed: AtomicBool,
}

/// A range being streamed.
struct Streamed {
    parts: Arc<Parts>,
    reached: u64,
    end: u64,
    /// Where the request being read started.
    since: u64,
    body: Option<(String, futures_util::stream::BoxStream<'static, reqwest::Result<Bytes>>)>,
    attempt: u32,
    progress: Arc<Progress>,
}

/// `[from, end)` as one range request, streamed as it arrives (`first`: its answer, when
/// already in hand) and asked again from the byte it reached when it breaks.
fn range(
    parts: Arc<Parts>,
    from: u64,
    end: u64,
    first: Option<Response>,
    progress: Arc<Progress>,
) -> impl futures_util::Stream<Item = Result<Bytes>> + Send + 'static {
    let body = first.map(|r| (strip_query(r.url().as_str()), r.bytes_stream().boxed()));
    let state = Streamed { parts, reached: from, end, since: from, body, attempt: 0, progress };
    futures_util::stream::unfold(state, |mut s| async move {
        loop {
            if s.progress.failed.load(Ordering::Relaxed) || s.reached >= s.end {
                return None;
            }
            let err = match &mut s.body {
                None => match s.parts.request(s.reached, s.end).await {
                    Ok(resp) => {
                        s.since = s.reached;
                        s.body = Some((strip_query(resp.url().as_str()), resp.bytes_stream().boxed()));
                        continue;
                    }
                    Err(e) => e,
                },
                Some((url, body)) => {
                    let asked = Instant::now();
                    let chunk = body.next().await;
                    s.progress.waited_ns.fetch_add(asked.elapsed().as_nanos() as u64, Ordering::Relaxed);
                    match chunk {
                        Some(Ok(c)) if s.reached + c.len() as u64 <= s.end => {
                            s.reached += c.len() as u64;
                            // Progress since the last break: a long stream gets its attempts anew.
                            s.attempt = 0;
                            return Some((Ok(c), s));
                        }
                        Some(Ok(_)) => s.parts.too_long(),
                        Some(Err(e)) => transport_error("GET", url, &e),
                        None => short(url.clone(), s.reached - s.since, s.end - s.since),
                    }
                }
            };
            s.body = None;
            if let Err(e) = s.parts.again(&mut s.attempt, err, s.reached).await {
                s.progress.failed.store(true, Ordering::Relaxed);
                return Some((Err(e), s));
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_first_part_large_enough_and_slower_than_the_threshold_is_slow() {
        let ms = std::time::Duration::from_millis;
        // 2 MiB in 10 ms (200 MiB/s, loopback or a LAN) and in 200 ms (10 MiB/s, a capped link).
        assert!(!is_slow(2 * TIMED, ms(10)));
        assert!(is_slow(2 * TIMED, ms(200)));
        // Exactly at the threshold is not slow; 64 KiB says nothing however long it took.
        assert!(!is_slow(SLOW, ms(1000)));
        assert!(!is_slow(64 * 1024, ms(1000)));
    }

    #[test]
    fn the_default_budget_is_small() {
        let o = RangeOptions::default();
        assert!(o.parts as u64 * o.part_size <= 12 * 1024 * 1024);
    }
}
