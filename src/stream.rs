//! Blob streams: verification while bytes flow, and fan-out of one upstream read to
//! several destinations.
//!
//! Memory budget: a blob is never held whole. The verifier adds nothing but a running
//! hash. Fan-out holds at most [`FANOUT_DEPTH`] chunks (reqwest frames, ≤ 64 KiB in
//! practice) per destination; each destination then buffers at most its upload part
//! size times its part concurrency (see `dest::object`). With the defaults that is
//! about 8 MiB × 3 per object-store destination, whatever the blob size. On the source
//! side a ranged download holds its parts in flight (`source::ranged`: 6 × 2 MiB per
//! source by default), handed on in 256 KiB slices; a blob that is not ranged flows like
//! the plain stream.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::stream::{BoxStream, Stream, StreamExt};
use sha2::{Digest as _, Sha256};
use tokio::sync::mpsc;
use tokio_stream_lite::ReceiverStream;

use crate::error::{Error, Result};
use crate::oci::Descriptor;
use crate::oci::Digest;

/// A stream of blob bytes. A destination commits the blob only if the stream ends
/// without yielding an error; an error item (including a digest mismatch, which arrives
/// after the last byte) means abort.
pub type BlobStream = BoxStream<'static, Result<Bytes>>;

/// What became of a blob stream handed to a destination.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub enum Upload {
    /// Stored and committed: this many bytes were written.
    Stored(u64),
    /// Not stored, and not a failure: the destination met a refusal it works around by
    /// changing how it uploads (a 413 to a one-request upload switches a registry to
    /// chunks). Send the same blob again, at once; it goes through the new way.
    Resend {
        /// What was refused and what changed, for the log.
        reason: String,
    },
}

/// Chunks buffered per destination between the upstream read and the upload.
pub const FANOUT_DEPTH: usize = 16;

/// Wrap a raw byte stream so that it fails unless it carries exactly `expected.size`
/// bytes hashing to `expected.digest`. Oversize input fails as soon as it goes over.
pub fn verify<S, E>(inner: S, expected: Descriptor, what: String) -> BlobStream
where
    S: Stream<Item = std::result::Result<Bytes, E>> + Send + 'static,
    E: Into<Error>,
{
    Box::pin(Verify { inner: Box::pin(inner), hasher: Some(Sha256::new()), seen: 0, expected, what })
}

struct Verify<S> {
    inner: Pin<Box<S>>,
    hasher: Option<Sha256>,
    seen: u64,
    expected: Descriptor,
    what: String,
}

impl<S, E> Stream for Verify<S>
where
    S: Stream<Item = std::result::Result<Bytes, E>>,
    E: Into<Error>,
{
    type Item = Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        let Some(hasher) = this.hasher.as_mut() else {
            return Poll::Ready(None);
        };
        match this.inner.as_mut().poll_next(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Some(Ok(chunk))) => {
                this.seen += chunk.len() as u64;
                if this.seen > this.expected.size {
                    this.hasher = None;
                    return Poll::Ready(Some(Err(Error::Mismatch {
                        what: this.what.clone(),
                        reason: format!(
                            "upstream sent more than the {} bytes its descriptor declares",
                            this.expected.size
                        ),
                    })));
                }
                hasher.update(&chunk);
                Poll::Ready(Some(Ok(chunk)))
            }
            Poll::Ready(Some(Err(e))) => {
                this.hasher = None;
                Poll::Ready(Some(Err(e.into())))
            }
            Poll::Ready(None) => {
                let hasher = this.hasher.take().expect("checked above");
                if this.seen != this.expected.size {
                    return Poll::Ready(Some(Err(Error::Mismatch {
                        what: this.what.clone(),
                        reason: format!(
                            "upstream sent {} bytes, its descriptor declares {}",
                            this.seen, this.expected.size
                        ),
                    })));
                }
                let actual = Digest::from_hasher(hasher);
                if actual != this.expected.digest {
                    return Poll::Ready(Some(Err(Error::Mismatch {
                        what: this.what.clone(),
                        reason: format!("content hashes to {actual}, not {}", this.expected.digest),
                    })));
                }
                Poll::Ready(None)
            }
        }
    }
}

/// Split one stream into `n` streams carrying the same chunks (cheap `Bytes` clones).
/// Returns the branches and a driver future that reads the source; run them together.
/// The driver resolves to the source's outcome: `Err` if the source (or its
/// verification) failed, in which case every branch also ends with an error. A branch
/// whose consumer gives up is dropped without disturbing the others.
pub fn fan_out(source: BlobStream, n: usize) -> (Vec<BlobStream>, impl Future<Output = Result<()>> + Send) {
    fan_out_with(source, n, 0)
}

/// Like [`fan_out`], but the last `best_effort` branches never slow the others down: when
/// such a branch's buffer is full it is cut off (its stream just ends early). Used for
/// side readers such as the `metadata.json` inspector, which must not throttle a copy
/// to gzip-inflate speed (docs/BENCHMARKS.md, finding 1).
pub fn fan_out_with(
    source: BlobStream,
    n: usize,
    best_effort: usize,
) -> (Vec<BlobStream>, impl Future<Output = Result<()>> + Send) {
    let required = n.saturating_sub(best_effort);
    let (senders, branches): (Vec<_>, Vec<_>) = (0..n)
        .map(|_| {
            let (tx, rx) = mpsc::channel::<Result<Bytes>>(FANOUT_DEPTH);
            (tx, ReceiverStream::new(rx).boxed())
        })
        .unzip();
    let driver = async move {
        let mut source = source;
        let mut senders: Vec<_> = senders.into_iter().map(Some).collect();
        while let Some(item) = source.next().await {
            match item {
                Ok(chunk) => {
                    for (i, slot) in senders.iter_mut().enumerate() {
                        let Some(tx) = slot else { continue };
                        let delivered = if i < required {
                            tx.send(Ok(chunk.clone())).await.is_ok()
                        } else {
                            tx.try_send(Ok(chunk.clone())).is_ok()
                        };
                        if !delivered {
                            *slot = None;
                        }
                    }
                    if senders.iter().all(Option::is_none) {
                        return Ok(());
                    }
                }
                Err(e) => {
                    for tx in senders.iter().flatten() {
                        let _ = tx.send(Err(Error::rejected("blob", format!("upstream failed: {e}")))).await;
                    }
                    return Err(e);
                }
            }
        }
        Ok(())
    };
    (branches, driver)
}

/// A minimal `Stream` over a tokio mpsc receiver (what tokio-stream's wrapper does),
/// kept here to avoid a dependency for ten lines.
mod tokio_stream_lite {
    use super::*;

    pub(super) struct ReceiverStream<T>(mpsc::Receiver<T>);

    impl<T> ReceiverStream<T> {
        pub(super) fn new(rx: mpsc::Receiver<T>) -> Self {
            ReceiverStream(rx)
        }
    }

    impl<T> Stream for ReceiverStream<T> {
        type Item = T;
        fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
            self.0.poll_recv(cx)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::stream;

    fn desc(data: &[u8]) -> Descriptor {
        Descriptor { media_type: "x".into(), digest: Digest::of(data), size: data.len() as u64 }
    }

    async fn drain(s: BlobStream) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        let mut s = s;
        while let Some(c) = s.next().await {
            out.extend_from_slice(&c?);
        }
        Ok(out)
    }

    fn chunks(data: &'static [u8]) -> impl Stream<Item = Result<Bytes>> + Send + 'static {
        stream::iter(data.chunks(3).map(|c| Ok(Bytes::from_static(c))).collect::<Vec<_>>())
    }

    #[tokio::test]
    async fn verification_passes_good_bytes_and_refuses_bad_ones() {
        let data: &'static [u8] = b"hello, trivy mirror";
        assert_eq!(drain(verify(chunks(data), desc(data), "b".into())).await.unwrap(), data);

        let mut wrong = desc(data);
        wrong.digest = Digest::of(b"other");
        let err = drain(verify(chunks(data), wrong, "b".into())).await.unwrap_err();
        assert!(err.to_string().contains("hashes to"), "{err}");

        let mut short = desc(data);
        short.size -= 1;
        let err = drain(verify(chunks(data), short, "b".into())).await.unwrap_err();
        assert!(err.to_string().contains("more than"), "{err}");

        let mut long = desc(data);
        long.size += 1;
        let err = drain(verify(chunks(data), long, "b".into())).await.unwrap_err();
        assert!(err.to_string().contains("declares"), "{err}");
    }

    #[tokio::test]
    async fn fan_out_delivers_every_byte_to_every_branch() {
        let data: &'static [u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
        let (branches, driver) = fan_out(verify(chunks(data), desc(data), "b".into()), 3);
        let (outs, res) = tokio::join!(futures_util::future::join_all(branches.into_iter().map(drain)), driver);
        res.unwrap();
        for out in outs {
            assert_eq!(out.unwrap(), data);
        }
    }

    #[tokio::test]
    async fn fan_out_propagates_a_corrupt_source_to_every_branch() {
        let data: &'static [u8] = b"0123456789";
        let mut wrong = desc(data);
        wrong.digest = Digest::of(b"x");
        let (branches, driver) = fan_out(verify(chunks(data), wrong, "b".into()), 2);
        let (outs, res) = tokio::join!(futures_util::future::join_all(branches.into_iter().map(drain)), driver);
        assert!(res.is_err());
        assert!(outs.iter().all(Result::is_err));
    }

    #[tokio::test]
    async fn a_slow_best_effort_branch_is_cut_off_instead_of_slowing_the_copy() {
        let data: Vec<u8> = (0..=255u8).cycle().take(64 * 1024).collect();
        let data: &'static [u8] = data.leak();
        let source = stream::iter(data.chunks(100).map(|c| Ok::<_, Error>(Bytes::from_static(c))).collect::<Vec<_>>());
        let (mut branches, driver) = fan_out_with(verify(source, desc(data), "b".into()), 2, 1);
        let lossy = branches.pop().unwrap();
        // The required branch is drained while the best-effort one is never read.
        let (out, res) = tokio::join!(drain(branches.pop().unwrap()), driver);
        res.unwrap();
        assert_eq!(out.unwrap(), data);
        let partial = drain(lossy).await.unwrap();
        assert!(partial.len() < data.len(), "the idle best-effort branch should have been cut off");
    }

    #[tokio::test]
    async fn a_branch_that_gives_up_does_not_stop_the_others() {
        let data: &'static [u8] = b"0123456789abcdefghij";
        let (mut branches, driver) = fan_out(verify(chunks(data), desc(data), "b".into()), 2);
        drop(branches.pop());
        let (out, res) = tokio::join!(drain(branches.pop().unwrap()), driver);
        res.unwrap();
        assert_eq!(out.unwrap(), data);
    }
}
