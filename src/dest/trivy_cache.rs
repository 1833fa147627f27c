//! `--to trivy-cache:DIR`: Trivy's own cache directory, ready for `trivy --cache-dir DIR`
//! (docs/TRIVY.md, "Trivy's cache directory", from Trivy's pkg/db, pkg/javadb, pkg/policy
//! and pkg/vex/repo):
//!
//! ```text
//! db/trivy.db, db/metadata.json                the trivy-db layer, unpacked
//! java-db/trivy-java.db, java-db/metadata.json the trivy-java-db layer, unpacked
//! policy/content/…, policy/metadata.json       one trivy-checks bundle (:2 or :1), unpacked
//! vex/repositories/default/…                   VEX Hub as Trivy's default VEX repository
//! .trivy-mirror/<name>-<tag>.json              the manifest each came from (exact bytes;
//!                                              vexhub-latest.json for VEX)
//! ```
//!
//! Each `metadata.json` carries `DownloadedAt` = the time of writing, as Trivy stamps it
//! after its own download, so a Trivy without the skip flags does not download again
//! while the database's `NextUpdate` is ahead (or for its grace period after).
//!
//! Layers are unpacked while they stream (never held whole) into a staging directory
//! under `.trivy-mirror/`, checked member by member (plain relative paths, regular files
//! and directories only, bounded total size), and only after the stream ended with a
//! verified digest are the files renamed into place, the database before its
//! `metadata.json`; a reader never sees a half-written file. The recorded manifest is
//! written last: a rerun with nothing new finds it, checks the files are there, and
//! writes nothing.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Component, Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::TryStreamExt as _;
use serde_json::{Value, json};

use super::Destination;
use super::durable::{DurableWriter, io_error};
use crate::artifact::{ARTIFACTS, Kind, OciArtifact};
use crate::error::{Error, Result};
use crate::manifest::CheckedManifest;
use crate::oci::{Descriptor, Digest};
use crate::source::RawBlob;
use crate::stream::{BlobStream, Upload};
use crate::vex::Format;

/// Largest total a layer may unpack to (the Java DB is ~1.3 GB unpacked today).
const MAX_UNPACKED: u64 = 32 * 1024 * 1024 * 1024;
/// Trivy's default VEX repository name (pkg/vex/repo: the `default` entry it creates).
const VEX_REPOSITORY: &str = "default";
/// The VEX spec version Trivy reads, and the name of its content directory.
const VEX_SPEC: &str = "0.1";
/// Where this tool keeps its own records inside the cache.
const RECORDS: &str = ".trivy-mirror";

/// A Trivy cache directory being written.
#[derive(Debug)]
pub struct TrivyCache {
    name: String,
    root: PathBuf,
    checks_tag: &'static str,
    /// Unpacked layers waiting for their manifest, by layer digest.
    staged: Mutex<HashMap<Digest, PathBuf>>,
    /// The VEX artifact's blobs (small), waiting for its manifest, by digest.
    vex_blobs: Mutex<HashMap<Digest, Bytes>>,
    next: AtomicU64,
    /// Small files (metadata.json, cache.json, records): staged beside, flushed, renamed.
    writer: DurableWriter,
}

/// Where an artifact goes in the cache.
struct Place {
    dir: &'static str,
    /// The files a complete unpacked layer holds (empty: a tree, the checks bundle).
    files: &'static [&'static str],
}

fn place(kind: Kind) -> Place {
    match kind {
        Kind::Db => Place { dir: "db", files: &["trivy.db", "metadata.json"] },
        Kind::JavaDb => Place { dir: "java-db", files: &["trivy-java.db", "metadata.json"] },
        _ => Place { dir: "policy", files: &[] },
    }
}

/// The time Trivy writes into `DownloadedAt` (RFC 3339, UTC, as Go's time.Time marshals).
fn now() -> String {
    jiff::Timestamp::now().to_string()
}

impl TrivyCache {
    /// Open (create) the cache directory. `checks_tag` is the trivy-checks tag it holds.
    pub fn open(name: &str, root: &Path, checks_tag: &'static str) -> Result<TrivyCache> {
        std::fs::create_dir_all(root.join(RECORDS)).map_err(io_error("creating", root))?;
        Ok(TrivyCache {
            name: name.to_string(),
            root: root.to_path_buf(),
            checks_tag,
            staged: Mutex::new(HashMap::new()),
            vex_blobs: Mutex::new(HashMap::new()),
            next: AtomicU64::new(0),
            writer: DurableWriter::new(root),
        })
    }

    fn artifact(&self, repo: &str, tag: &str) -> Option<&'static OciArtifact> {
        self.artifact_of_repo(repo).filter(|a| a.tag == tag)
    }

    fn artifact_of_repo(&self, repo: &str) -> Option<&'static OciArtifact> {
        let name = repo.rsplit('/').next().unwrap_or(repo);
        ARTIFACTS.iter().find(|a| a.name == name && self.carries(a))
    }

    /// The artifact `repo` (and `tag`, if given) names, or why the cache cannot hold it:
    /// writes for anything else are refused, not dropped.
    fn held(&self, repo: &str, tag: Option<&str>) -> Result<&'static OciArtifact> {
        let artifact = self.artifact_of_repo(repo).filter(|a| tag.is_none_or(|t| t == a.tag));
        artifact.ok_or_else(|| {
            let what = format!("{repo}:{} for {}", tag.unwrap_or("*"), self.name);
            let holds = format!(
                "Trivy's cache holds trivy-db:2, trivy-java-db:1, trivy-checks:{} and VEX Hub",
                self.checks_tag
            );
            Error::rejected(what, holds)
        })
    }

    /// Write a small file under the cache root durably.
    async fn write_file(&self, path: &Path, body: &[u8]) -> Result<()> {
        let key = path.strip_prefix(&self.root).expect("written under the root").to_string_lossy().into_owned();
        self.writer.put(&key, Bytes::copy_from_slice(body)).await.map(drop)
    }

    fn record(&self, artifact: &OciArtifact) -> PathBuf {
        self.root.join(RECORDS).join(format!("{}-{}.json", artifact.name, artifact.tag))
    }

    fn staging_dir(&self) -> PathBuf {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        self.root.join(RECORDS).join(format!("staging-{}-{n}", std::process::id()))
    }

    /// Whether the unpacked files of `artifact` are all in place.
    fn complete(&self, artifact: &OciArtifact) -> bool {
        if artifact.kind == Kind::Vex {
            return self.vex_content().join("index.json").is_file();
        }
        let p = place(artifact.kind);
        let dir = self.root.join(p.dir);
        if p.files.is_empty() {
            dir.join("content").is_dir() && dir.join("metadata.json").is_file()
        } else {
            p.files.iter().all(|f| dir.join(f).is_file())
        }
    }

    /// Where Trivy reads the default VEX repository's content.
    fn vex_content(&self) -> PathBuf {
        self.root.join("vex/repositories").join(VEX_REPOSITORY).join(VEX_SPEC)
    }

    /// Write Trivy's VEX repository cache from the VEX artifact whose blobs were staged:
    /// the archive of the location with spec 0.1 unpacked from its `//subdir`, the
    /// upstream `vex-repository.json`, and `cache.json`.
    async fn write_vex_repository(&self, manifest: &CheckedManifest) -> Result<()> {
        let staged = |d: &Digest| {
            let blob = self.vex_blobs.lock().expect("not poisoned").get(d).cloned();
            blob.ok_or_else(|| Error::rejected("VEX artifact", format!("blob {d} was not sent before its manifest")))
        };
        let upstream = staged(&manifest.config.digest)?;
        let release = crate::vex::artifact::Release::read(&manifest.raw, &upstream)?;
        // Trivy reads exactly spec 0.1 (pkg/vex/repo: SchemaVersion); take its first location.
        let archive = release.archives.iter().find(|a| a.spec_version == VEX_SPEC).ok_or_else(|| {
            Error::rejected("VEX repository manifest", "no version with spec_version 0.1, the one Trivy reads")
        })?;
        let bytes = staged(&archive.layer.digest)?;
        let repo_dir = self.root.join("vex/repositories").join(VEX_REPOSITORY);
        let staging = self.staging_dir();
        let (format, subdir, dir, what) =
            (archive.format, archive.subdir.clone(), staging.clone(), format!("VEX archive {}", archive.file));
        let unpacked = tokio::task::spawn_blocking(move || {
            crate::vex::validate_archive(&bytes, format, &subdir, &what)?;
            unpack_vex(&bytes, format, &subdir, &dir).map_err(|e| Error::rejected(what, e.to_string()))
        })
        .await
        .expect("the unpack task does not panic");
        if let Err(e) = unpacked {
            let _ = tokio::fs::remove_dir_all(&staging).await;
            return Err(e);
        }
        tokio::fs::create_dir_all(&repo_dir).await.map_err(io_error("creating", &repo_dir))?;
        self.write_file(&repo_dir.join("vex-repository.json"), &upstream).await?;
        swap_dir(&staging, &self.vex_content()).await?;
        // Trivy's cache.json: when it last updated, and no ETags (the next online update
        // downloads in full).
        let cache = json!({"UpdatedAt": now(), "ETags": {}});
        self.write_file(&repo_dir.join("cache.json"), cache.to_string().as_bytes()).await
    }
}

#[async_trait]
impl Destination for TrivyCache {
    fn name(&self) -> &str {
        &self.name
    }

    fn carries(&self, artifact: &OciArtifact) -> bool {
        artifact.kind != Kind::Checks || artifact.tag == self.checks_tag
    }

    async fn manifest(&self, repo: &str, reference: &str) -> Result<Option<Bytes>> {
        let Some(artifact) = self.artifact(repo, reference) else { return Ok(None) };
        match tokio::fs::read(self.record(artifact)).await {
            Ok(raw) => Ok(Some(Bytes::from(raw))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_error("reading", &self.record(artifact))(e)),
        }
    }

    async fn read_blob(&self, _repo: &str, _blob: &Descriptor) -> Result<Option<RawBlob>> {
        // The cache holds unpacked files, not blobs: `--recheck` finds nothing to hash and
        // rewrites the layer.
        Ok(None)
    }

    async fn has_blob(&self, repo: &str, blob: &Descriptor) -> Result<bool> {
        let artifact = self.held(repo, None)?;
        if artifact.kind == Kind::Vex {
            // Every VEX blob is needed again to rewrite the repository, config included.
            let Ok(raw) = tokio::fs::read(self.record(artifact)).await else { return Ok(false) };
            let referenced = crate::bundle::manifest_blobs(&raw)
                .is_ok_and(|(config, layers)| std::iter::once(config).chain(layers).any(|d| d == *blob));
            return Ok(referenced && self.complete(artifact));
        }
        if blob.media_type != artifact.layer_media_type {
            return Ok(true); // a config: nothing of it is stored
        }
        let Ok(raw) = tokio::fs::read(self.record(artifact)).await else { return Ok(false) };
        let layer = crate::bundle::manifest_blobs(&raw).ok().and_then(|(_, l)| l.into_iter().next());
        Ok(layer.is_some_and(|l| l == *blob) && self.complete(artifact))
    }

    async fn put_blob(&self, repo: &str, blob: &Descriptor, body: BlobStream) -> Result<Upload> {
        if self.artifact_of_repo(repo).is_some_and(|a| a.kind == Kind::Vex) {
            // Small (the manifest check bounds them): kept whole until the manifest comes.
            let chunks: Vec<Bytes> = body.try_collect().await?;
            self.vex_blobs.lock().expect("not poisoned").insert(blob.digest.clone(), Bytes::from(chunks.concat()));
            return Ok(Upload::Stored(blob.size));
        }
        let artifact = Some(self.held(repo, None)?).filter(|a| blob.media_type == a.layer_media_type);
        let Some(artifact) = artifact else {
            // A config blob: read it to the end (that is where the digest is checked), keep nothing.
            let _: Vec<Bytes> = body.try_collect().await?;
            return Ok(Upload::Stored(0));
        };
        let staging = self.staging_dir();
        let reader = tokio_util::io::StreamReader::new(body.map_err(std::io::Error::other));
        let bridge = tokio_util::io::SyncIoBridge::new(reader);
        let dir = staging.clone();
        let unpacked = tokio::task::spawn_blocking(move || unpack_layer(bridge, &dir))
            .await
            .expect("the unpack task does not panic");
        let missing = place(artifact.kind).files.iter().find(|f| !staging.join(f).is_file()).copied();
        let failure = match unpacked {
            Err(e) => Some(match e.into_inner().map(|inner| inner.downcast::<Error>()) {
                Some(Ok(ours)) => *ours,
                Some(Err(other)) => Error::rejected(format!("layer {} of {artifact}", blob.digest), other.to_string()),
                None => Error::rejected(format!("layer {} of {artifact}", blob.digest), "unreadable tar.gz"),
            }),
            Ok(_) if missing.is_some() => Some(Error::rejected(
                format!("layer {} of {artifact}", blob.digest),
                format!("it holds no {}", missing.unwrap_or_default()),
            )),
            Ok(_) => None,
        };
        if let Some(e) = failure {
            let _ = tokio::fs::remove_dir_all(&staging).await;
            return Err(e);
        }
        if let Some(old) = self.staged.lock().expect("not poisoned").insert(blob.digest.clone(), staging) {
            let _ = std::fs::remove_dir_all(old);
        }
        Ok(Upload::Stored(blob.size))
    }

    async fn put_manifest(&self, repo: &str, manifest: &CheckedManifest, tags: &[String]) -> Result<()> {
        // Stored by digest only (before a signature, which a cache does not keep): an
        // unpacked cache has nothing to store until the tag. Dated tags are not kept.
        let Some(tag) = tags.first() else { return Ok(()) };
        let artifact = self.held(repo, Some(tag))?;
        if artifact.kind == Kind::Vex {
            self.write_vex_repository(manifest).await?;
            return self.write_file(&self.record(artifact), &manifest.raw).await;
        }
        let staged = self.staged.lock().expect("not poisoned").remove(&manifest.layer.digest);
        let p = place(artifact.kind);
        let dir = self.root.join(p.dir);
        tokio::fs::create_dir_all(&dir).await.map_err(io_error("creating", &dir))?;
        match staged {
            Some(staging) => {
                let metadata = if p.files.is_empty() {
                    // pkg/policy: the manifest digest, and the semver major of the manifest's
                    // version annotation; without one Trivy records a custom build (0).
                    let major = manifest
                        .version
                        .as_deref()
                        .and_then(|v| v.trim_start_matches('v').split('.').next()?.parse::<u64>().ok());
                    swap_dir(&staging, &dir.join("content")).await?;
                    let mut m = json!({"Digest": manifest.digest.as_str(), "DownloadedAt": now(),
                                       "MajorVersion": major.unwrap_or(0)});
                    if major.unwrap_or(0) == 0 {
                        m["CustomBuild"] = Value::Bool(true);
                    }
                    m
                } else {
                    let staged_meta = staging.join("metadata.json");
                    let raw = tokio::fs::read(&staged_meta).await.map_err(io_error("reading", &staged_meta))?;
                    let mut meta: Value = serde_json::from_slice(&raw).map_err(|e| {
                        Error::rejected(format!("metadata.json of {artifact}"), format!("not JSON: {e}"))
                    })?;
                    meta.as_object_mut()
                        .ok_or_else(|| Error::rejected(format!("metadata.json of {artifact}"), "not a JSON object"))?
                        .insert("DownloadedAt".into(), Value::String(now()));
                    // The database first, its metadata last: metadata.json says what is there.
                    for f in p.files.iter().filter(|f| **f != "metadata.json") {
                        rename(&staging.join(f), &dir.join(f)).await?;
                    }
                    let _ = tokio::fs::remove_dir_all(&staging).await;
                    meta
                };
                let mut out = serde_json::to_vec(&metadata).expect("JSON serializes");
                out.push(b'\n');
                self.write_file(&dir.join("metadata.json"), &out).await?;
            }
            None if self.complete(artifact) => {} // the files are in place; only the record was missing
            None => {
                return Err(Error::rejected(format!("{artifact}"), "its layer was not unpacked before its manifest"));
            }
        }
        self.write_file(&self.record(artifact), &manifest.raw).await
    }

    async fn put_signature(&self, _repo: &str, _signature: &crate::signing::Signature) -> Result<()> {
        Ok(())
    }

    fn keeps(&self) -> super::Keeps {
        super::Keeps::Unpacked
    }

    async fn finish(&self) -> Result<()> {
        Ok(())
    }
}

impl Drop for TrivyCache {
    fn drop(&mut self) {
        for (_, dir) in self.staged.lock().expect("not poisoned").drain() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

async fn rename(from: &Path, to: &Path) -> Result<()> {
    tokio::fs::rename(from, to).await.map_err(io_error("renaming into", to))
}

/// Put the directory `staging` at `target`, replacing what is there.
async fn swap_dir(staging: &Path, target: &Path) -> Result<()> {
    let old = PathBuf::from(format!("{}.old-{}", target.display(), std::process::id()));
    if tokio::fs::symlink_metadata(target).await.is_ok() {
        rename(target, &old).await?;
    }
    rename(staging, target).await?;
    let _ = tokio::fs::remove_dir_all(&old).await;
    Ok(())
}

/// A member path as a relative path under the destination, or why not.
fn safe_path(raw: &Path) -> std::io::Result<PathBuf> {
    let mut out = PathBuf::new();
    for c in raw.components() {
        match c {
            Component::Normal(p) => out.push(p),
            Component::CurDir => {}
            _ => return Err(std::io::Error::other(format!("member {} leaves the directory", raw.display()))),
        }
    }
    Ok(out)
}

/// Unpack a gzipped tar from `reader` into `dir`, then read `reader` to its end (where a
/// verifying stream checks the digest).
fn unpack_layer(reader: impl Read, dir: &Path) -> std::io::Result<u64> {
    let mut counted = Counted { inner: reader, n: 0 };
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(&mut counted));
    unpack_tar(&mut archive, dir, Path::new(""))?;
    drop(archive);
    std::io::copy(&mut counted, &mut std::io::sink())?;
    Ok(counted.n)
}

/// Unpack the members of `archive` under `strip` into `dir`: regular files and
/// directories with plain relative paths only, within [`MAX_UNPACKED`].
fn unpack_tar<R: Read>(archive: &mut tar::Archive<R>, dir: &Path, strip: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let mut total = 0u64;
    for entry in archive.entries()? {
        let mut entry = entry?;
        let path = safe_path(&entry.path()?)?;
        let Ok(rel) = path.strip_prefix(strip) else { continue };
        if rel.as_os_str().is_empty() {
            continue;
        }
        let target = dir.join(rel);
        match entry.header().entry_type() {
            tar::EntryType::Directory => std::fs::create_dir_all(&target)?,
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                total += entry.size();
                if total > MAX_UNPACKED {
                    return Err(std::io::Error::other("the archive unpacks to more than the limit"));
                }
                write_member(&mut entry, &target)?;
            }
            // pax and GNU long-name headers are consumed by the tar crate itself.
            other => return Err(std::io::Error::other(format!("member {} is a {other:?}", path.display()))),
        }
    }
    Ok(())
}

fn write_member(reader: &mut impl Read, target: &Path) -> std::io::Result<()> {
    if let Some(parent) = target.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let mut f = std::fs::File::create(target)?;
    std::io::copy(reader, &mut f)?;
    f.sync_all()
}

/// Unpack the `subdir` of a VEX archive into `dir`.
fn unpack_vex(bytes: &[u8], format: Format, subdir: &str, dir: &Path) -> std::io::Result<()> {
    match format {
        Format::TarGz => {
            let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(bytes));
            unpack_tar(&mut archive, dir, Path::new(subdir))
        }
        Format::Zip => {
            let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes)).map_err(std::io::Error::other)?;
            std::fs::create_dir_all(dir)?;
            let mut total = 0u64;
            for i in 0..archive.len() {
                let mut entry = archive.by_index(i).map_err(std::io::Error::other)?;
                let path = safe_path(Path::new(entry.name()))?;
                let Ok(rel) = path.strip_prefix(subdir) else { continue };
                if rel.as_os_str().is_empty() || entry.is_dir() {
                    continue;
                }
                total += entry.size();
                if total > MAX_UNPACKED || entry.is_symlink() {
                    return Err(std::io::Error::other(format!("member {} is refused", path.display())));
                }
                write_member(&mut entry, &dir.join(rel))?;
            }
            Ok(())
        }
    }
}

/// Counts what passes through.
struct Counted<R> {
    inner: R,
    n: u64,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.n += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::tar_gz;

    #[test]
    fn a_layer_unpacks_and_hostile_members_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let good = tar_gz(&[("trivy.db", b"bolt"), ("metadata.json", b"{}")]);
        let n = unpack_layer(&good[..], &dir.path().join("a")).unwrap();
        assert_eq!(n, good.len() as u64, "the whole stream is read, to its end");
        assert_eq!(std::fs::read(dir.path().join("a/trivy.db")).unwrap(), b"bolt");

        // tar::Builder refuses `..`, so patch the name into the header.
        let mut raw = Vec::new();
        let mut h = tar::Header::new_gnu();
        h.as_old_mut().name[..13].copy_from_slice(b"../escape.txt");
        h.set_size(1);
        h.set_mode(0o644);
        h.set_cksum();
        raw.extend_from_slice(h.as_bytes());
        raw.extend_from_slice(&[b'x'; 512]);
        raw.extend_from_slice(&[0; 1024]);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, &raw).unwrap();
        let bad = gz.finish().unwrap();
        let err = unpack_layer(&bad[..], &dir.path().join("b")).unwrap_err().to_string();
        assert!(err.contains("leaves the directory"), "{err}");
        assert!(!dir.path().join("escape.txt").exists());
    }

    #[test]
    fn a_vex_archive_unpacks_its_subdir() {
        let dir = tempfile::tempdir().unwrap();
        let archive = tar_gz(&[("vexhub-main/index.json", b"{}"), ("vexhub-main/pkg/a.json", b"[]"), ("README", b"x")]);
        unpack_vex(&archive, Format::TarGz, "vexhub-main", dir.path()).unwrap();
        assert!(dir.path().join("index.json").is_file());
        assert!(dir.path().join("pkg/a.json").is_file());
        assert!(!dir.path().join("README").exists());
    }
}
