//! Writing an air-gap bundle ([`crate::bundle`]): an OCI image layout directory
//! (`--to oci:DIR`) or a single tar of one (`--to oci-archive:FILE`).
//!
//! A directory is updated in place, like any other destination: blobs are written
//! durably beside their final name and renamed ([`super::durable`]), `index.json` is
//! rewritten (staged, renamed) after each manifest, and a rerun copies only what is new.
//! After a run that wrote something, blobs no manifest in the index references any more
//! are removed, so a directory carried across the gap every week does not grow.
//!
//! A tar is written fresh on every run, as one stream: each blob becomes a member as it
//! arrives (its size is known from the descriptor, so the header goes first), a blob whose
//! stream fails is cut off again (the file is truncated back to where its header began),
//! and `index.json` and `oci-layout` close the archive. It is written as
//! `FILE.partial-<pid>` and renamed over `FILE` only when complete; a run that stops
//! early leaves the previous `FILE` untouched and removes the partial one.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::StreamExt as _;
use tokio::io::{AsyncSeekExt as _, AsyncWriteExt as _};

use super::Destination;
use super::durable::{DurableWriter, io_error};
use crate::bundle::{self, INDEX_FILE, IndexEntry, LAYOUT_CONTENT, LAYOUT_FILE};
use crate::error::{Error, Result};
use crate::manifest::CheckedManifest;
use crate::oci::{Descriptor, Digest};
use crate::source::RawBlob;
use crate::stream::{BlobStream, Upload};

/// An OCI image layout being written.
#[derive(Debug)]
pub struct BundleDestination {
    name: String,
    mode: Mode,
    index: Mutex<Vec<IndexEntry>>,
    /// Held while `index.json` is updated and written.
    index_turn: tokio::sync::Mutex<()>,
}

#[derive(Debug)]
enum Mode {
    Dir { root: PathBuf, writer: DurableWriter },
    Archive { path: PathBuf, partial: PathBuf, tar: tokio::sync::Mutex<Tar> },
}

/// The tar being written: the open file, where the next member goes, what it holds.
#[derive(Debug, Default)]
struct Tar {
    file: Option<tokio::fs::File>,
    end: u64,
    blobs: BTreeMap<Digest, u64>,
    manifests: BTreeMap<Digest, Bytes>,
    done: bool,
}

impl BundleDestination {
    /// Open `oci:DIR` (`archive` false: read its index if there is one) or
    /// `oci-archive:FILE` (`archive` true: a new tar beside `FILE`).
    pub fn open(name: &str, path: &Path, archive: bool) -> Result<BundleDestination> {
        let mut index = Vec::new();
        let mode = if archive {
            let partial = PathBuf::from(format!("{}.partial-{}", path.display(), std::process::id()));
            Mode::Archive { path: path.to_path_buf(), partial, tar: tokio::sync::Mutex::new(Tar::default()) }
        } else {
            match std::fs::read(path.join(INDEX_FILE)) {
                Ok(raw) => index = bundle::parse_index(&raw)?,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_error("reading", &path.join(INDEX_FILE))(e)),
            }
            Mode::Dir { root: path.to_path_buf(), writer: DurableWriter::new(path) }
        };
        Ok(BundleDestination {
            name: name.to_string(),
            mode,
            index: Mutex::new(index),
            index_turn: tokio::sync::Mutex::new(()),
        })
    }

    fn entry(&self, repo: &str, reference: &str) -> Option<Descriptor> {
        let index = self.index.lock().expect("not poisoned");
        if let Ok(d) = Digest::parse(reference) {
            return index.iter().find(|e| e.repository == repo && e.manifest.digest == d).map(|e| e.manifest.clone());
        }
        index.iter().find(|e| e.repository == repo && e.tag == reference).map(|e| e.manifest.clone())
    }

    /// Append one member to the tar from a stream, or cut it off again if the stream fails.
    async fn append(&self, tar: &mut Tar, partial: &Path, desc: &Descriptor, mut body: BlobStream) -> Result<u64> {
        if tar.file.is_none() {
            tar.file = Some(tokio::fs::File::create(partial).await.map_err(io_error("creating", partial))?);
        }
        let start = tar.end;
        let file = tar.file.as_mut().expect("opened above");
        let written = async {
            file.write_all(&bundle::tar::header(&bundle::blob_path(&desc.digest), desc.size)).await?;
            let mut n = 0u64;
            while let Some(chunk) = body.next().await {
                let chunk = match chunk {
                    Ok(c) => c,
                    Err(e) => return Ok(Err(e)),
                };
                n += chunk.len() as u64;
                if n > desc.size {
                    break;
                }
                file.write_all(&chunk).await?;
            }
            if n != desc.size {
                let reason = format!("the stream carried {n} bytes, the descriptor says {}", desc.size);
                return Ok(Err(Error::rejected(format!("blob {}", desc.digest), reason)));
            }
            file.write_all(&[0; 512][..bundle::tar::padding(n)]).await?;
            Ok::<_, std::io::Error>(Ok(n))
        }
        .await;
        match written {
            Ok(Ok(n)) => {
                tar.end = start + 512 + n + bundle::tar::padding(n) as u64;
                tar.blobs.insert(desc.digest.clone(), n);
                Ok(n)
            }
            failed => {
                // Cut the member off: the next one starts where this header began.
                file.set_len(start).await.map_err(io_error("truncating", partial))?;
                file.seek(std::io::SeekFrom::Start(start)).await.map_err(io_error("seeking", partial))?;
                match failed {
                    Ok(Err(e)) => Err(e),
                    Err(e) => Err(io_error("writing", partial)(e)),
                    Ok(Ok(_)) => unreachable!(),
                }
            }
        }
    }

    /// Store a small blob given whole (a manifest).
    async fn put_bytes(&self, desc: &Descriptor, bytes: Bytes) -> Result<()> {
        let body: BlobStream = Box::pin(futures_util::stream::iter([Ok(bytes)]));
        match &self.mode {
            Mode::Dir { root, writer } => {
                if has_file(root, desc).await {
                    return Ok(());
                }
                writer.put_stream(&bundle::blob_path(&desc.digest), body).await.map(drop)
            }
            Mode::Archive { partial, tar, .. } => {
                let mut tar = tar.lock().await;
                if tar.blobs.contains_key(&desc.digest) {
                    return Ok(());
                }
                self.append(&mut tar, partial, desc, body).await.map(drop)
            }
        }
    }

    /// Store a manifest (exact bytes) and name it `repo:tag` for each of `tags`.
    async fn put_raw_manifest(&self, repo: &str, desc: &Descriptor, raw: Bytes, tags: &[String]) -> Result<()> {
        self.put_bytes(desc, raw.clone()).await?;
        if let Mode::Archive { tar, .. } = &self.mode {
            tar.lock().await.manifests.insert(desc.digest.clone(), raw);
        }
        // One index update at a time, render and write together: artifacts publish
        // concurrently, and an older rendering must never land after a newer one.
        let _turn = self.index_turn.lock().await;
        let rendered = {
            let mut index = self.index.lock().expect("not poisoned");
            for tag in tags {
                index.retain(|e| !(e.repository == repo && e.tag == *tag));
                index.push(IndexEntry { repository: repo.to_string(), tag: tag.clone(), manifest: desc.clone() });
            }
            bundle::render_index(&index)
        };
        if let Mode::Dir { writer, .. } = &self.mode {
            writer.put(INDEX_FILE, rendered).await?;
        }
        Ok(())
    }

    /// Remove blobs of an OCI image layout directory that no named manifest references.
    async fn collect_garbage(&self, root: &Path) -> Result<usize> {
        let entries = self.index.lock().expect("not poisoned").clone();
        let mut keep = BTreeSet::new();
        for e in &entries {
            keep.insert(e.manifest.digest.hex().to_string());
            let path = root.join(bundle::blob_path(&e.manifest.digest));
            let raw = tokio::fs::read(&path).await.map_err(io_error("reading", &path))?;
            let (config, layers) = bundle::manifest_blobs(&raw)?;
            keep.extend(std::iter::once(config).chain(layers).map(|d| d.digest.hex().to_string()));
        }
        let dir = root.join("blobs/sha256");
        let mut removed = 0;
        let mut listing = tokio::fs::read_dir(&dir).await.map_err(io_error("listing", &dir))?;
        while let Some(f) = listing.next_entry().await.map_err(io_error("listing", &dir))? {
            let name = f.file_name().to_string_lossy().into_owned();
            let is_blob = name.len() == 64 && name.bytes().all(|b| b.is_ascii_hexdigit());
            if is_blob && !keep.contains(&name) {
                tokio::fs::remove_file(f.path()).await.map_err(io_error("removing", &f.path()))?;
                removed += 1;
            }
        }
        Ok(removed)
    }
}

async fn has_file(root: &Path, desc: &Descriptor) -> bool {
    tokio::fs::symlink_metadata(root.join(bundle::blob_path(&desc.digest)))
        .await
        .is_ok_and(|m| m.is_file() && m.len() == desc.size)
}

#[async_trait]
impl Destination for BundleDestination {
    fn name(&self) -> &str {
        &self.name
    }

    async fn manifest(&self, repo: &str, reference: &str) -> Result<Option<Bytes>> {
        let Some(desc) = self.entry(repo, reference) else { return Ok(None) };
        match &self.mode {
            Mode::Dir { root, .. } => {
                let path = root.join(bundle::blob_path(&desc.digest));
                match tokio::fs::read(&path).await {
                    Ok(raw) => Ok(Some(Bytes::from(raw))),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                    Err(e) => Err(io_error("reading", &path)(e)),
                }
            }
            Mode::Archive { tar, .. } => Ok(tar.lock().await.manifests.get(&desc.digest).cloned()),
        }
    }

    async fn read_blob(&self, _repo: &str, blob: &Descriptor) -> Result<Option<RawBlob>> {
        let Mode::Dir { root, .. } = &self.mode else { return Ok(None) };
        let path = root.join(bundle::blob_path(&blob.digest));
        match tokio::fs::File::open(&path).await {
            Ok(f) => {
                let what = path.display().to_string();
                let stream = tokio_util::io::ReaderStream::with_capacity(f, 256 * 1024);
                Ok(Some(Box::pin(futures_util::TryStreamExt::map_err(stream, move |e| Error::Io {
                    context: format!("reading {what}"),
                    source: e,
                }))))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_error("reading", &path)(e)),
        }
    }

    async fn has_blob(&self, _repo: &str, blob: &Descriptor) -> Result<bool> {
        Ok(match &self.mode {
            Mode::Dir { root, .. } => has_file(root, blob).await,
            Mode::Archive { tar, .. } => tar.lock().await.blobs.get(&blob.digest) == Some(&blob.size),
        })
    }

    async fn put_blob(&self, _repo: &str, blob: &Descriptor, body: BlobStream) -> Result<Upload> {
        match &self.mode {
            Mode::Dir { writer, .. } => {
                writer.put_stream(&bundle::blob_path(&blob.digest), body).await.map(Upload::Stored)
            }
            Mode::Archive { partial, tar, .. } => {
                let mut tar = tar.lock().await;
                if tar.blobs.get(&blob.digest) == Some(&blob.size) {
                    // Two artifacts sharing a blob (the `{}` config) sent it at the same
                    // time: a tar must name it once. Read it to its end, keep nothing.
                    drop(tar);
                    let _: Vec<Bytes> = futures_util::TryStreamExt::try_collect(body).await?;
                    return Ok(Upload::Stored(0));
                }
                self.append(&mut tar, partial, blob, body).await.map(Upload::Stored)
            }
        }
    }

    async fn put_manifest(&self, repo: &str, manifest: &CheckedManifest, tags: &[String]) -> Result<()> {
        let desc = Descriptor {
            media_type: manifest.media_type.clone(),
            digest: manifest.digest.clone(),
            size: manifest.raw.len() as u64,
        };
        self.put_raw_manifest(repo, &desc, manifest.raw.clone(), tags).await
    }

    async fn put_signature(&self, repo: &str, signature: &crate::signing::Signature) -> Result<()> {
        let desc = Descriptor {
            media_type: crate::signing::Signature::MEDIA_TYPE.to_string(),
            digest: signature.digest.clone(),
            size: signature.manifest.len() as u64,
        };
        self.put_raw_manifest(repo, &desc, signature.manifest.clone(), std::slice::from_ref(&signature.tag)).await
    }

    async fn finish(&self) -> Result<()> {
        match &self.mode {
            Mode::Dir { root, writer } => {
                if !root.join(LAYOUT_FILE).exists() {
                    writer.put(LAYOUT_FILE, Bytes::from_static(LAYOUT_CONTENT)).await?;
                }
                let removed = self.collect_garbage(root).await?;
                tracing::debug!(destination = self.name, removed, "unreferenced blobs removed");
                Ok(())
            }
            Mode::Archive { path, partial, tar } => {
                let mut tar = tar.lock().await;
                if tar.done {
                    return Ok(());
                }
                let index = bundle::render_index(&self.index.lock().expect("not poisoned"));
                let Tar { file, end, .. } = &mut *tar;
                let file = file.as_mut().ok_or_else(|| Error::rejected(self.name.clone(), "nothing was written"))?;
                let write = async {
                    for (name, body) in [(LAYOUT_FILE, &Bytes::from_static(LAYOUT_CONTENT)), (INDEX_FILE, &index)] {
                        file.write_all(&bundle::tar::header(name, body.len() as u64)).await?;
                        file.write_all(body).await?;
                        file.write_all(&[0; 512][..bundle::tar::padding(body.len() as u64)]).await?;
                    }
                    file.write_all(&bundle::tar::END).await?;
                    file.sync_all().await
                };
                write.await.map_err(io_error("writing", partial))?;
                *end = 0;
                tar.file = None;
                tokio::fs::rename(partial, path).await.map_err(io_error("renaming into", path))?;
                tar.done = true;
                Ok(())
            }
        }
    }
}

impl Drop for BundleDestination {
    fn drop(&mut self) {
        if let Mode::Archive { partial, tar, .. } = &self.mode
            && !tar.try_lock().is_ok_and(|t| t.done)
        {
            let _ = std::fs::remove_file(partial);
        }
    }
}
