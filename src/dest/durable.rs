//! Durable file writes for the destinations on disk (a static layout in a directory, an
//! air-gap bundle directory, Trivy's cache). Each object is written to a staging file
//! beside its final name (`<name>#<n>`, the pattern object_store's `LocalFileSystem` uses
//! too, so listings and retention never mistake it for a key), flushed to disk, renamed
//! into place, and then the directory itself is flushed, so that after a power loss a
//! published name never points at an empty or partial file (docs/BENCHMARKS.md,
//! "Durability of directory output"). object_store renames without `fsync`; reads,
//! listings and deletes still go through it, on the same files.
//!
//! A failed or refused stream removes its staging file: nothing half-written stays.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use futures_util::StreamExt as _;
use tokio::io::AsyncWriteExt as _;

use crate::error::{Error, Result};
use crate::stream::BlobStream;

/// An [`Error::Io`] maker for `what` (`writing`, `renaming into`) on `path`.
pub(super) fn io_error(what: &str, path: &Path) -> impl FnOnce(std::io::Error) -> Error {
    let context = format!("{what} {}", path.display());
    move |source| Error::Io { context, source }
}

/// Writes objects under a root directory durably.
#[derive(Debug)]
pub(super) struct DurableWriter {
    root: PathBuf,
    next: AtomicU64,
}

impl DurableWriter {
    pub(super) fn new(root: &Path) -> Self {
        DurableWriter { root: root.to_path_buf(), next: AtomicU64::new(0) }
    }

    /// Write `body` at `key` (a `/`-separated object key below the root).
    pub(super) async fn put(&self, key: &str, body: Bytes) -> Result<u64> {
        self.put_stream(key, Box::pin(futures_util::stream::iter([Ok(body)]))).await
    }

    /// Write a stream at `key`; commit only if it ends without an error item.
    pub(super) async fn put_stream(&self, key: &str, mut body: BlobStream) -> Result<u64> {
        let target = self.root.join(key);
        let dir = target.parent().expect("a key has a parent").to_path_buf();
        let io = |what: &str, path: &Path| {
            let context = format!("{what} {}", path.display());
            move |source| Error::Io { context, source }
        };
        tokio::fs::create_dir_all(&dir).await.map_err(io("creating", &dir))?;
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let staging = PathBuf::from(format!("{}#{}-{n}", target.display(), std::process::id()));
        let written = async {
            let mut file = tokio::fs::File::create(&staging).await.map_err(io("creating", &staging))?;
            let mut written = 0u64;
            while let Some(chunk) = body.next().await {
                let chunk = chunk?;
                file.write_all(&chunk).await.map_err(io("writing", &staging))?;
                written += chunk.len() as u64;
            }
            file.sync_all().await.map_err(io("flushing", &staging))?;
            Ok::<u64, Error>(written)
        }
        .await;
        let written = match written {
            Ok(n) => n,
            Err(e) => {
                let _ = tokio::fs::remove_file(&staging).await;
                return Err(e);
            }
        };
        if let Err(e) = tokio::fs::rename(&staging, &target).await {
            let _ = tokio::fs::remove_file(&staging).await;
            return Err(io("renaming into", &target)(e));
        }
        // The rename lives in the directory: flush it too.
        let d = dir.clone();
        tokio::task::spawn_blocking(move || std::fs::File::open(&d)?.sync_all())
            .await
            .expect("the flush task does not panic")
            .map_err(io("flushing", &dir))?;
        Ok(written)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_write_lands_whole_and_a_failed_one_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let w = DurableWriter::new(dir.path());
        assert_eq!(w.put("v2/r/blobs/sha256:ab", Bytes::from_static(b"hello")).await.unwrap(), 5);
        assert_eq!(std::fs::read(dir.path().join("v2/r/blobs/sha256:ab")).unwrap(), b"hello");

        let failing: BlobStream = Box::pin(futures_util::stream::iter([
            Ok(Bytes::from_static(b"part")),
            Err(Error::Mismatch { what: "blob".into(), reason: "digest mismatch".into() }),
        ]));
        assert!(w.put_stream("v2/r/blobs/sha256:cd", failing).await.is_err());
        let names: Vec<_> =
            std::fs::read_dir(dir.path().join("v2/r/blobs")).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, ["sha256:ab"], "no staging file and no partial blob remain");
    }
}
