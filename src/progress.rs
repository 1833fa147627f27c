//! Progress reporting seam: the engine says how many bytes of which blob went by; the
//! binary decides how to show it (progress bars on a terminal, nothing otherwise — the
//! logs already say what happened). Keeps terminal UI out of the library.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures_util::Stream;

use crate::stream::BlobStream;

/// Receives progress for one transfer.
pub trait Transfer: Send + Sync {
    /// `n` more bytes went by.
    fn advance(&self, n: u64);
    /// The transfer ended (successfully or not).
    fn finish(&self);
}

/// Creates a [`Transfer`] per blob.
pub trait Progress: Send + Sync + std::fmt::Debug {
    /// A blob of `total` bytes starts streaming; `label` names it (`trivy-db:2 layer`).
    fn start(&self, label: &str, total: u64) -> Box<dyn Transfer>;
}

/// Reports nothing.
#[derive(Debug, Default)]
pub struct Silent;

struct NoTransfer;

impl Transfer for NoTransfer {
    fn advance(&self, _: u64) {}
    fn finish(&self) {}
}

impl Progress for Silent {
    fn start(&self, _: &str, _: u64) -> Box<dyn Transfer> {
        Box::new(NoTransfer)
    }
}

/// Wrap a blob stream so every chunk advances `transfer`.
pub fn track(stream: BlobStream, transfer: Box<dyn Transfer>) -> BlobStream {
    Box::pin(Tracked { inner: stream, transfer: Arc::from(transfer) })
}

struct Tracked {
    inner: BlobStream,
    transfer: Arc<dyn Transfer>,
}

impl Stream for Tracked {
    type Item = crate::Result<bytes::Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let item = self.inner.as_mut().poll_next(cx);
        match &item {
            Poll::Ready(Some(Ok(chunk))) => self.transfer.advance(chunk.len() as u64),
            Poll::Ready(Some(Err(_)) | None) => self.transfer.finish(),
            Poll::Pending => {}
        }
        item
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        self.transfer.finish();
    }
}
