//! The static registry layout in an object store: S3, GCS, Azure Blob (through
//! `object_store`) or a local directory.
//!
//! Each object is written with the Content-Type and Cache-Control of its class
//! ([`crate::layout::ObjectClass`]). A local directory cannot store headers
//! (object_store's `LocalFileSystem` refuses attributes, apache/arrow-rs-object-store#331),
//! so `serve` derives them from the key instead.
//!
//! Small objects go up in one PUT. Blobs above [`SINGLE_PUT_MAX`] go up as multipart
//! uploads of [`PART_SIZE`] parts, at most [`PART_CONCURRENCY`] in flight, so memory is
//! bounded by `PART_SIZE × (PART_CONCURRENCY + 1)` ≈ 24 MiB per destination whatever the
//! blob size. The upload is completed only after the verifying stream ended cleanly and
//! aborted otherwise, so a corrupt or truncated blob never becomes visible. On a local
//! directory every object is written to a staging file, flushed to disk and renamed into
//! place (see [`super::durable`]).
//!
//! VEX is stored like any artifact (blobs, manifest, tag) and, before its tag, published
//! for Trivy as plain files ([`ObjectDestination::with_vex`]): the archives under their
//! fixed names, then the repository manifest rewritten to the mirror's URLs. A file whose
//! bytes did not change is not written again, so its ETag (and Trivy's `If-None-Match`)
//! stays valid.

use std::sync::Arc;

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use futures_util::{StreamExt as _, TryStreamExt as _};
use object_store::path::Path;
use object_store::{Attribute, Attributes, ObjectStore, ObjectStoreExt as _, PutOptions, PutPayload, WriteMultipart};

use super::{Destination, Files, Store};
use crate::artifact::Kind;
use crate::credentials::Env;
use crate::error::{Error, Result, Setting};
use crate::layout::{self, Layout, ObjectClass};
use crate::manifest::CheckedManifest;
use crate::oci::{Descriptor, Digest, MAX_MANIFEST_BYTES, validate_tag};
use crate::stream::{BlobStream, Upload};
use crate::vex::artifact::Release;
use crate::vex::{MANIFEST_KEY, MAX_VEX_ARCHIVE, MAX_VEX_MANIFEST, Publication};

/// Blobs up to this size are sent in a single PUT.
pub const SINGLE_PUT_MAX: u64 = 16 * 1024 * 1024;
/// Multipart part size (S3 needs ≥ 5 MiB for all parts but the last).
pub const PART_SIZE: usize = 8 * 1024 * 1024;
/// Parts uploaded concurrently.
pub const PART_CONCURRENCY: usize = 2;

/// Whether S3 uploads skip payload signing where the environment does not say. SigV4 would hash every part a second time
/// (12 % of a 1 GiB copy, docs/BENCHMARKS.md); the blob is digest-verified before the
/// upload is completed and TLS protects it in transit. Over plain http (emulators) keep
/// signing. An explicit AWS_UNSIGNED_PAYLOAD, which object_store reads, always wins.
fn unsigned_payload(env: Env<'_>) -> bool {
    let plain_http = ["AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL", "AWS_ENDPOINT"]
        .iter()
        .any(|k| env(k).is_some_and(|v| v.starts_with("http://")));
    env("AWS_UNSIGNED_PAYLOAD").is_none() && !plain_http
}

/// One stored object, as a listing shows it.
#[derive(Clone, Debug)]
pub struct Listed {
    /// Its key relative to the layout root (`v2/aquasecurity/trivy-db/blobs/sha256:…`).
    pub key: String,
    /// Its size in bytes.
    pub size: u64,
    /// When it was last written.
    pub modified: jiff::Timestamp,
}

/// A destination that is an object store (or a local directory) holding the layout.
#[derive(Debug)]
pub struct ObjectDestination {
    name: String,
    store: Arc<dyn ObjectStore>,
    layout: Layout,
    /// Whether the store keeps Content-Type/Cache-Control (not for a local directory).
    attributes: bool,
    /// For a local directory: the writer that flushes each object before publishing it.
    durable: Option<super::durable::DurableWriter>,
    tag_ttl: u32,
    /// Where VEX is published for Trivy, when it is mirrored here.
    vex: Option<Publication>,
}

impl ObjectDestination {
    /// Open the store a `--to` URL names (`name`, for messages). Endpoints and credentials
    /// come from the providers' usual environment variables, as object_store reads them;
    /// `env` reads the ones this crate looks at itself.
    pub fn open(name: &str, store: Store, tag_ttl: u32, env: Env<'_>) -> Result<Self> {
        let store_err = |source| Error::Store {
            destination: name.to_string(),
            operation: "open",
            key: String::new(),
            source: Box::new(source),
        };
        let (store, prefix): (Arc<dyn ObjectStore>, String) = match store {
            Store::Directory(dir) => {
                std::fs::create_dir_all(&dir)
                    .map_err(|e| Error::Io { context: format!("creating {}", dir.display()), source: e })?;
                let store = object_store::local::LocalFileSystem::new_with_prefix(&dir).map_err(store_err)?;
                let mut dest = Self::with_store(name, Arc::new(store), "", false, tag_ttl);
                dest.durable = Some(super::durable::DurableWriter::new(&dir));
                return Ok(dest);
            }
            Store::S3 { bucket, prefix } => {
                let mut builder = object_store::aws::AmazonS3Builder::from_env().with_bucket_name(bucket);
                if unsigned_payload(env) {
                    builder = builder.with_unsigned_payload(true);
                }
                (Arc::new(builder.build().map_err(store_err)?), prefix)
            }
            Store::Gcs { bucket, prefix } => {
                let s = object_store::gcp::GoogleCloudStorageBuilder::from_env()
                    .with_bucket_name(bucket)
                    .build()
                    .map_err(store_err)?;
                (Arc::new(s), prefix)
            }
            Store::Azure { container, prefix } => {
                let s = object_store::azure::MicrosoftAzureBuilder::from_env()
                    .with_container_name(container)
                    .build()
                    .map_err(store_err)?;
                (Arc::new(s), prefix)
            }
        };
        Ok(Self::with_store(name, store, &prefix, true, tag_ttl))
    }

    /// Wrap an already-built store (tests use `InMemory`).
    pub fn with_store(name: &str, store: Arc<dyn ObjectStore>, prefix: &str, attributes: bool, tag_ttl: u32) -> Self {
        ObjectDestination {
            name: name.to_string(),
            store,
            layout: Layout::new(prefix),
            attributes,
            tag_ttl,
            durable: None,
            vex: None,
        }
    }

    /// Publish VEX for Trivy at `publication` (the mirror's base URL and VEX prefix).
    pub fn with_vex(mut self, publication: Option<Publication>) -> Self {
        self.vex = publication;
        self
    }

    /// A stored blob read whole (VEX only: its blobs are small), checked against its digest.
    async fn blob_bytes(&self, repo: &str, blob: &Descriptor, limit: usize) -> Result<Bytes> {
        let key = layout::blob_key(repo, &blob.digest);
        let bytes = self.get_bounded(&key, limit).await?;
        match bytes {
            Some(b) if Digest::of(&b) == blob.digest => Ok(b),
            _ => Err(Error::Mismatch {
                what: format!("{key} in {}", self.name),
                reason: "missing or not the bytes of its digest".into(),
            }),
        }
    }

    /// Whether the VEX files of the version `raw` are in place: each archive with its
    /// layer's size, and the repository manifest pointing at `publication`.
    async fn vex_files_current(&self, raw: &[u8], publication: &Publication) -> Result<bool> {
        let titles = crate::vex::artifact::titles(raw);
        let files: Vec<&str> = titles.iter().map(|(title, _)| title.as_str()).collect();
        let published = self.get_bounded(&publication.key(MANIFEST_KEY), MAX_VEX_MANIFEST).await?;
        if !published.is_some_and(|p| crate::vex::artifact::points_at(&p, &files, publication)) {
            return Ok(false);
        }
        for (title, size) in titles {
            let path = self.path(&publication.key(&title))?;
            match self.store.head(&path).await {
                Ok(meta) if meta.size == size => {}
                Ok(_) | Err(object_store::Error::NotFound { .. }) => return Ok(false),
                Err(e) => return Err(self.err("head", &path)(e)),
            }
        }
        Ok(true)
    }

    /// The VEX files: every archive under its fixed name, then the rewritten repository
    /// manifest, each checked first and written only if its bytes changed.
    async fn publish_vex(&self, repo: &str, manifest: &CheckedManifest) -> Result<()> {
        let publication = self.vex.as_ref().ok_or_else(|| {
            Error::config(Setting::BaseUrl, "", "publishing VEX for clients needs the mirror's public URL")
        })?;
        let config = self.blob_bytes(repo, &manifest.config, MAX_VEX_MANIFEST).await?;
        let release = Release::read(&manifest.raw, &config)?;
        let mut files = Vec::new();
        for archive in &release.archives {
            let bytes = self.blob_bytes(repo, &archive.layer, MAX_VEX_ARCHIVE).await?;
            let what = format!("VEX archive {}", archive.file);
            crate::vex::validate_archive_off_runtime(bytes.clone(), archive.format, archive.subdir.clone(), what)
                .await?;
            files.push((publication.key(&archive.file), bytes));
        }
        files.push((publication.key(MANIFEST_KEY), release.rewrite(publication)));
        for (key, body) in files {
            if self.get_file(&key).await?.is_some_and(|current| current == body) {
                continue;
            }
            self.put_file(&key, body, ObjectClass::of(&key).unwrap_or(ObjectClass::Json)).await?;
        }
        Ok(())
    }

    /// Every object below `rel_dir` (relative to the layout root), for retention.
    pub async fn list(&self, rel_dir: &str) -> Result<Vec<Listed>> {
        let prefix = Path::from(self.layout.key(rel_dir));
        let metas: Vec<_> = self.store.list(Some(&prefix)).try_collect().await.map_err(self.err("list", &prefix))?;
        Ok(metas
            .into_iter()
            .filter_map(|m| {
                let key = self.layout.relative(m.location.as_ref())?.to_string();
                let modified = jiff::Timestamp::from_millisecond(m.last_modified.timestamp_millis()).ok()?;
                Some(Listed { key, size: m.size, modified })
            })
            .collect())
    }

    /// Delete an object (retention only: the sync engine never deletes).
    pub async fn delete(&self, rel: &str) -> Result<()> {
        let path = self.path(rel)?;
        match self.store.delete(&path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.err("delete", &path)(e)),
        }
    }

    fn path(&self, rel: &str) -> Result<Path> {
        let key = self.layout.key(rel);
        Path::parse(&key).map_err(|e| Error::Store {
            destination: self.name.clone(),
            operation: "build key",
            key,
            source: Box::new(object_store::Error::InvalidPath { source: e }),
        })
    }

    fn err(&self, operation: &'static str, path: &Path) -> impl FnOnce(object_store::Error) -> Error {
        let (destination, key) = (self.name.clone(), path.to_string());
        move |source| Error::Store { destination, operation, key, source: Box::new(source) }
    }

    fn attributes(&self, class: ObjectClass, media_type: Option<&str>) -> Attributes {
        let mut attrs = Attributes::new();
        if self.attributes {
            let ct = class.fixed_content_type().map(str::to_string).or_else(|| media_type.map(str::to_string));
            if let Some(ct) = ct {
                attrs.insert(Attribute::ContentType, ct.into());
            }
            attrs.insert(Attribute::CacheControl, class.cache_control(self.tag_ttl).into());
        }
        attrs
    }

    async fn put_small(&self, rel: &str, body: Bytes, class: ObjectClass, media_type: Option<&str>) -> Result<()> {
        let path = self.path(rel)?;
        if let Some(durable) = &self.durable {
            return durable.put(path.as_ref(), body).await.map(|_| ());
        }
        let opts = PutOptions::from(self.attributes(class, media_type));
        self.store.put_opts(&path, PutPayload::from(body), opts).await.map_err(self.err("put", &path))?;
        Ok(())
    }

    /// Read an object, refusing anything over `limit` bytes.
    async fn get_bounded(&self, rel: &str, limit: usize) -> Result<Option<Bytes>> {
        let path = self.path(rel)?;
        match self.store.get(&path).await {
            Ok(r) if r.meta.size > limit as u64 => {
                Err(Error::TooLarge { what: format!("{} in {}", path, self.name), limit: limit as u64 })
            }
            Ok(r) => Ok(Some(r.bytes().await.map_err(self.err("get", &path))?)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.err("get", &path)(e)),
        }
    }

    /// Tags of `repo` present in the layout (keys under `manifests/` that are tags).
    async fn tags(&self, repo: &str) -> Result<Vec<String>> {
        let dir = self.path(&layout::manifests_dir(repo))?;
        let listing = self.store.list_with_delimiter(Some(&dir)).await.map_err(self.err("list", &dir))?;
        Ok(listing
            .objects
            .iter()
            .filter_map(|o| o.location.filename())
            .filter(|name| validate_tag(name).is_ok())
            .map(str::to_string)
            .collect())
    }

    /// Rewrite `tags/list` from what is stored, plus `extra` tags just written (a listing
    /// may not show them yet on eventually consistent stores).
    pub async fn write_tags_list(&self, repo: &str, extra: &[String]) -> Result<()> {
        let mut tags = self.tags(repo).await?;
        tags.extend(extra.iter().cloned());
        let body = Bytes::from(layout::tags_list_body(repo, &tags));
        self.put_small(&layout::tags_list_key(repo), body, ObjectClass::TagsList, None).await
    }

    async fn put_multipart(&self, path: &Path, attrs: Attributes, mut body: BlobStream) -> Result<u64> {
        let upload = self
            .store
            .put_multipart_opts(path, attrs.into())
            .await
            .map_err(self.err("start multipart upload", path))?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, PART_SIZE);
        let mut written = 0u64;
        while let Some(item) = body.next().await {
            let outcome = match item {
                Ok(chunk) => writer.wait_for_capacity(PART_CONCURRENCY).await.map(|()| chunk),
                Err(e) => {
                    let _ = writer.abort().await;
                    return Err(e);
                }
            };
            match outcome {
                Ok(chunk) => {
                    written += chunk.len() as u64;
                    writer.put(chunk);
                }
                Err(e) => {
                    let _ = writer.abort().await;
                    return Err(self.err("upload part", path)(e));
                }
            }
        }
        writer.finish().await.map_err(self.err("complete multipart upload", path))?;
        Ok(written)
    }
}

#[async_trait]
impl Destination for ObjectDestination {
    fn name(&self) -> &str {
        &self.name
    }

    async fn manifest(&self, repo: &str, reference: &str) -> Result<Option<Bytes>> {
        self.get_bounded(&layout::manifest_key(repo, reference), MAX_MANIFEST_BYTES).await
    }

    /// A VEX version is current only while its archives are there with their layers' sizes
    /// and the published repository manifest points at this mirror's URL: a lost file or a
    /// changed --base-url / --vex-prefix is published again by the next plain sync. Costs
    /// one small GET plus one HEAD per archive.
    async fn published_current(&self, _repo: &str, manifest: &CheckedManifest) -> Result<bool> {
        match &self.vex {
            Some(publication) if manifest.kind == Kind::Vex => self.vex_files_current(&manifest.raw, publication).await,
            _ => Ok(true),
        }
    }

    async fn read_blob(&self, repo: &str, blob: &Descriptor) -> Result<Option<crate::source::RawBlob>> {
        let path = self.path(&layout::blob_key(repo, &blob.digest))?;
        match self.store.get(&path).await {
            Ok(r) => {
                let (destination, key) = (self.name.clone(), path.to_string());
                let stream = r.into_stream().map(move |item| {
                    item.map_err(|source| Error::Store {
                        destination: destination.clone(),
                        operation: "read",
                        key: key.clone(),
                        source: Box::new(source),
                    })
                });
                Ok(Some(Box::pin(stream)))
            }
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.err("get", &path)(e)),
        }
    }

    async fn has_blob(&self, repo: &str, blob: &Descriptor) -> Result<bool> {
        let path = self.path(&layout::blob_key(repo, &blob.digest))?;
        match self.store.head(&path).await {
            Ok(meta) => Ok(meta.size == blob.size),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(self.err("head", &path)(e)),
        }
    }

    async fn put_blob(&self, repo: &str, blob: &Descriptor, mut body: BlobStream) -> Result<Upload> {
        let path = self.path(&layout::blob_key(repo, &blob.digest))?;
        if let Some(durable) = &self.durable {
            return durable.put_stream(path.as_ref(), body).await.map(Upload::Stored);
        }
        let attrs = self.attributes(ObjectClass::Blob, None);
        if blob.size > SINGLE_PUT_MAX {
            return self.put_multipart(&path, attrs, body).await.map(Upload::Stored);
        }
        // Small blob: collect (bounded by the verified size) and send in one PUT, which
        // every store and emulator supports.
        let mut buf = BytesMut::with_capacity(blob.size as usize);
        while let Some(chunk) = body.next().await {
            buf.extend_from_slice(&chunk?);
        }
        let len = buf.len() as u64;
        self.store
            .put_opts(&path, PutPayload::from(buf.freeze()), attrs.into())
            .await
            .map_err(self.err("put", &path))?;
        Ok(Upload::Stored(len))
    }

    async fn put_manifest(&self, repo: &str, manifest: &CheckedManifest, tags: &[String]) -> Result<()> {
        // The VEX files are what Trivy follows, its "tag": written with the tags, not by a
        // digest-only store (which the engine makes before a signature).
        if manifest.kind == Kind::Vex && !tags.is_empty() {
            self.publish_vex(repo, manifest).await?;
        }
        let mt = Some(manifest.media_type.as_str());
        let by_digest = layout::manifest_key(repo, manifest.digest.as_str());
        self.put_small(&by_digest, manifest.raw.clone(), ObjectClass::DigestManifest, mt).await?;
        for tag in tags {
            self.put_small(&layout::manifest_key(repo, tag), manifest.raw.clone(), ObjectClass::TagManifest, mt)
                .await?;
        }
        self.write_tags_list(repo, tags).await
    }

    async fn put_signature(&self, repo: &str, signature: &crate::signing::Signature) -> Result<()> {
        let mt = Some(crate::signing::Signature::MEDIA_TYPE);
        let by_digest = layout::manifest_key(repo, signature.digest.as_str());
        self.put_small(&by_digest, signature.manifest.clone(), ObjectClass::DigestManifest, mt).await?;
        let tag = layout::manifest_key(repo, &signature.tag);
        self.put_small(&tag, signature.manifest.clone(), ObjectClass::TagManifest, mt).await?;
        self.write_tags_list(repo, std::slice::from_ref(&signature.tag)).await
    }

    fn client_reference(&self, repo: &str) -> Option<String> {
        self.vex.as_ref().map(|p| format!("{}/{repo}", p.host_path()))
    }

    async fn finish(&self) -> Result<()> {
        self.put_small(layout::PING_KEY, Bytes::from_static(layout::PING_BODY), ObjectClass::Ping, None).await
    }

    fn files(&self) -> Option<&dyn Files> {
        Some(self)
    }
}

#[async_trait]
impl Files for ObjectDestination {
    async fn get_file(&self, rel_key: &str) -> Result<Option<Bytes>> {
        self.get_bounded(rel_key, 512 * 1024 * 1024).await
    }

    async fn put_file(&self, rel_key: &str, body: Bytes, class: ObjectClass) -> Result<()> {
        self.put_small(rel_key, body, class, None).await
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn unsigned_payload_unless_plain_http_or_explicit() {
        let decide = |vars: &[(&str, &str)]| {
            let env = |name: &str| vars.iter().find(|(k, _)| *k == name).map(|(_, v)| v.to_string());
            super::unsigned_payload(&env)
        };
        assert!(decide(&[]));
        assert!(decide(&[("AWS_ENDPOINT_URL", "https://s3.example.com")]));
        assert!(!decide(&[("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:9000")]));
        assert!(!decide(&[("AWS_ENDPOINT", "http://minio:9000")]));
        assert!(!decide(&[("AWS_UNSIGNED_PAYLOAD", "false")]));
    }
}
