//! An air-gap bundle as a [`Source`]: an OCI image layout directory (`oci:DIR`) or a tar
//! of one (`oci-archive:FILE`), in the format of [`crate::bundle`].
//!
//! Opening reads `index.json` (and, for a tar, the member headers) and checks them; every
//! manifest is then read by its digest and compared with the index's descriptor, and
//! every blob is streamed straight out of its file or tar member, so the engine's
//! verification (size, digest, shape) applies exactly as for a registry. Nothing is
//! extracted, nothing is held whole, and no network connection is opened. A directory
//! whose blob is a symbolic link is refused: the bundle came over an untrusted channel.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::TryStreamExt as _;
use tokio::io::{AsyncReadExt as _, AsyncSeekExt as _};

use super::{RawBlob, RawManifest, Source};
use crate::artifact::OciArtifact;
use crate::bundle::{self, INDEX_FILE, IndexEntry, LAYOUT_FILE, tar::Member};
use crate::error::{Error, Result, Setting};
use crate::oci::{Descriptor, Digest};

/// Where the OCI image layout's files are.
#[derive(Debug)]
enum Store {
    /// An OCI image layout directory.
    Dir(PathBuf),
    /// A tar of one, with the position of each member.
    Archive { path: PathBuf, members: BTreeMap<String, Member> },
}

/// A bundle to import from.
#[derive(Debug)]
pub struct BundleSource {
    label: String,
    store: Store,
    entries: Vec<IndexEntry>,
}

impl BundleSource {
    /// Open `oci:DIR` (`archive` false) or `oci-archive:FILE` (`archive` true) and check
    /// its index.
    pub fn open(path: &Path, archive: bool) -> Result<BundleSource> {
        let label = format!("{}:{}", if archive { "oci-archive" } else { "oci" }, path.display());
        let io = |e: std::io::Error| Error::config(Setting::Source, &label, e.to_string());
        let store = if archive {
            let file = std::fs::File::open(path).map_err(io)?;
            let len = file.metadata().map_err(io)?.len();
            let members = bundle::tar::scan(std::io::BufReader::new(file), len, &label)?;
            Store::Archive { path: path.to_path_buf(), members }
        } else {
            if !path.is_dir() {
                return Err(Error::config(Setting::Source, &label, "not a directory"));
            }
            Store::Dir(path.to_path_buf())
        };
        let mut source = BundleSource { label, store, entries: Vec::new() };
        if source.len(LAYOUT_FILE).is_err() {
            return Err(source.refuse(LAYOUT_FILE, "missing: this is not an OCI image layout"));
        }
        let raw = source.read_small_sync(INDEX_FILE, bundle::MAX_INDEX_BYTES)?;
        source.entries = bundle::parse_index(&raw).map_err(|e| match e {
            Error::Rejected { reason, .. } => source.refuse(INDEX_FILE, &reason),
            other => other,
        })?;
        Ok(source)
    }

    /// The named manifests the bundle holds.
    pub fn entries(&self) -> &[IndexEntry] {
        &self.entries
    }

    fn refuse(&self, member: &str, reason: &str) -> Error {
        Error::rejected(format!("{member} in bundle {}", self.label), reason)
    }

    /// Size of a member, refusing what is not a plain file.
    fn len(&self, rel: &str) -> Result<u64> {
        match &self.store {
            Store::Archive { members, .. } => {
                members.get(rel).map(|m| m.size).ok_or_else(|| self.refuse(rel, "missing from the bundle"))
            }
            Store::Dir(root) => match std::fs::symlink_metadata(root.join(rel)) {
                Ok(m) if m.file_type().is_file() => Ok(m.len()),
                Ok(_) => Err(self.refuse(rel, "not a regular file (links are refused)")),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(self.refuse(rel, "missing from the bundle")),
                Err(e) => Err(self.refuse(rel, &e.to_string())),
            },
        }
    }

    fn read_small_sync(&self, rel: &str, limit: usize) -> Result<Vec<u8>> {
        let len = self.len(rel)?;
        if len > limit as u64 {
            return Err(self.refuse(rel, &format!("{len} bytes is over the {limit}-byte limit")));
        }
        let read = || -> std::io::Result<Vec<u8>> {
            use std::io::{Read as _, Seek as _};
            let (path, offset) = self.location(rel);
            let mut f = std::fs::File::open(path)?;
            f.seek(std::io::SeekFrom::Start(offset))?;
            let mut buf = Vec::with_capacity(len as usize);
            f.take(len).read_to_end(&mut buf)?;
            Ok(buf)
        };
        read().map_err(|e| self.refuse(rel, &e.to_string()))
    }

    /// The file holding `rel` and the offset of its bytes.
    fn location(&self, rel: &str) -> (PathBuf, u64) {
        match &self.store {
            Store::Dir(root) => (root.join(rel), 0),
            Store::Archive { path, members } => (path.clone(), members.get(rel).map_or(0, |m| m.offset)),
        }
    }

    /// Stream a member of exactly `size` bytes.
    async fn stream(&self, rel: &str, size: u64) -> Result<RawBlob> {
        let len = self.len(rel)?;
        if len != size {
            return Err(self.refuse(rel, &format!("{len} bytes where the descriptor says {size}")));
        }
        let (path, offset) = self.location(rel);
        let what = format!("{rel} in bundle {}", self.label);
        let io = |e: std::io::Error| Error::Io { context: format!("reading {rel} in bundle"), source: e };
        let mut file = tokio::fs::File::open(&path).await.map_err(io)?;
        file.seek(std::io::SeekFrom::Start(offset)).await.map_err(io)?;
        let reader = file.take(size);
        let stream = tokio_util::io::ReaderStream::with_capacity(reader, 256 * 1024);
        Ok(Box::pin(stream.map_err(move |e| Error::Io { context: format!("reading {what}"), source: e })))
    }

    /// Read a whole blob of at most `limit` bytes and check it against `desc`.
    async fn read_verified(&self, desc: &Descriptor, limit: u64) -> Result<Bytes> {
        let rel = bundle::blob_path(&desc.digest);
        if desc.size > limit {
            return Err(self.refuse(&rel, &format!("{} bytes is over the {limit}-byte limit", desc.size)));
        }
        let body: Vec<Bytes> = self.stream(&rel, desc.size).await?.try_collect().await?;
        let bytes = Bytes::from(body.concat());
        if Digest::of(&bytes) != desc.digest {
            return Err(self.refuse(&rel, &format!("the bytes do not hash to {}", desc.digest)));
        }
        Ok(bytes)
    }
}

#[async_trait]
impl Source for BundleSource {
    fn label(&self) -> &str {
        &self.label
    }

    async fn manifest(&self, artifact: &OciArtifact, reference: &str) -> Result<Option<RawManifest>> {
        let Some(entry) = bundle::find(&self.entries, artifact.name, reference)? else { return Ok(None) };
        let raw = self.read_verified(&entry.manifest, crate::oci::MAX_MANIFEST_BYTES as u64).await?;
        Ok(Some(RawManifest { raw, content_type: Some(entry.manifest.media_type.clone()) }))
    }

    async fn blob(&self, _artifact: &OciArtifact, desc: &Descriptor) -> Result<RawBlob> {
        self.stream(&bundle::blob_path(&desc.digest), desc.size).await
    }
}
