//! One conformance routine for every destination, in the manner of object_store's
//! `integration` module: the promises of [`Destination`] (and of [`Files`] where a
//! destination has them) checked against a live backend. The unit tests run it on
//! `InMemory` and a local directory; the integration tests on moto S3, Azurite, the GCS
//! XML API and a distribution registry. Built with the `conformance` feature (the crate's
//! own tests enable it).
//!
//! What it checks, in a repository of its own (`conformance/<run>/trivy-db`):
//! - an absent tag and an absent blob read as absent;
//! - a blob whose stream fails (a digest mismatch arrives after the last byte) leaves
//!   nothing behind, in one request and, with `large`, through a multipart upload;
//! - a good blob is stored whole and then found, but not under another size;
//! - a manifest is stored as the exact bytes given, the tags then resolve to its digest,
//!   and a static layout lists the tags;
//! - plain files round-trip, and a missing one reads as absent;
//! - a signature's blobs and manifest are stored and its tag (`sha256-<hex>.sig`) and
//!   digest resolve to the exact bytes.
//!
//! A destination that keeps unpacked data ([`Keeps::Unpacked`], Trivy's cache) is checked
//! for what it promises instead: a real layer unpacked while it streams, refused when
//! corrupt, visible with its manifest under the artifact's own tag only, nothing to read
//! back, and anything it cannot hold refused rather than silently dropped.

use bytes::Bytes;
use futures_util::stream;

use super::{Destination, Files, Keeps};
use crate::artifact::OCI_ARTIFACTS;
use crate::error::Result;
use crate::layout;
use crate::manifest::{self, CheckedManifest};
use crate::oci::{Descriptor, Digest, OCI_MANIFEST};
use crate::stream::{BlobStream, Upload, verify};

/// Blob size that takes the multipart path of object stores (above `SINGLE_PUT_MAX`).
pub const LARGE_BLOB: usize = 17 * 1024 * 1024;

/// Run every check against `dest`; `run` keeps repositories of separate runs apart, and
/// `large` adds the multipart checks (17 MiB each way). Panics with a message naming the
/// destination and the broken promise. What is checked follows what the destination
/// [`Keeps`].
pub async fn run(dest: &dyn Destination, run: &str, large: bool) {
    let repo = format!("conformance/{run}/trivy-db");
    assert_eq!(dest.manifest(&repo, "2").await.unwrap_or_else(|e| panic!("{}: manifest: {e}", dest.name())), None);
    match dest.keeps() {
        Keeps::Oci => oci(dest, &repo, large).await,
        Keeps::Unpacked => unpacked(dest, &repo).await,
    }
}

/// A blob whose stream turns out corrupt (a flipped byte, found at the end) commits
/// nothing.
async fn refuses_corrupt(dest: &dyn Destination, repo: &str, layer: &Descriptor, bytes: &[u8]) {
    let name = dest.name();
    let mut corrupt = bytes.to_vec();
    corrupt[bytes.len() / 2] ^= 1;
    let refused = dest.put_blob(repo, layer, chunked(corrupt, layer.clone())).await;
    assert!(refused.is_err(), "{name}: a blob that fails verification was accepted");
    let visible = dest.has_blob(repo, layer).await.unwrap_or_else(|e| panic!("{name}: has_blob: {e}"));
    assert!(!visible, "{name}: a refused blob is visible");
}

async fn oci(dest: &dyn Destination, repo: &str, large: bool) {
    let name = dest.name().to_string();
    let artifact = &OCI_ARTIFACTS[0];
    let ok = |what: &str, r: Result<bool>| r.unwrap_or_else(|e| panic!("{name}: {what}: {e}"));

    let layer_bytes = pattern(if large { LARGE_BLOB } else { 4096 }, 7);
    let layer = descriptor(artifact.layer_media_type, &layer_bytes);
    assert!(!ok("has_blob before", dest.has_blob(repo, &layer).await), "{name}: absent blob reported present");
    refuses_corrupt(dest, repo, &layer, &layer_bytes).await;

    // A good one is stored whole (a destination may ask for it again once).
    let mut stored = None;
    for _ in 0..2 {
        match dest.put_blob(repo, &layer, chunked(layer_bytes.clone(), layer.clone())).await {
            Ok(Upload::Stored(n)) => {
                stored = Some(n);
                break;
            }
            Ok(Upload::Resend { .. }) => continue,
            Err(e) => panic!("{name}: put_blob: {e}"),
        }
    }
    assert_eq!(stored, Some(layer.size), "{name}: bytes stored");
    assert!(ok("has_blob", dest.has_blob(repo, &layer).await), "{name}: stored blob not found");
    let mut resized = layer.clone();
    resized.size += 1;
    assert!(!ok("has_blob of another size", dest.has_blob(repo, &resized).await), "{name}: size not compared");

    let config_bytes = b"{}".to_vec();
    let config = descriptor("application/vnd.aquasec.trivy.config.v1+json", &config_bytes);
    let put = dest.put_blob(repo, &config, chunked(config_bytes, config.clone())).await;
    assert!(matches!(put, Ok(Upload::Stored(2))), "{name}: config blob: {put:?}");

    let manifest = manifest_for(&config, &layer);
    let mut tags = vec!["2".to_string(), "2-20260101T0000Z".to_string()];
    dest.put_manifest(repo, &manifest, &tags).await.unwrap_or_else(|e| panic!("{name}: put_manifest: {e}"));
    for tag in &tags {
        let got = dest.manifest(repo, tag).await.unwrap_or_else(|e| panic!("{name}: manifest {tag}: {e}"));
        assert_eq!(got.as_ref(), Some(&manifest.raw), "{name}: tag {tag} resolves to the exact manifest bytes");
    }
    tags.push(check_signature(dest, repo, &manifest).await);
    dest.finish().await.unwrap_or_else(|e| panic!("{name}: finish: {e}"));

    if let Some(files) = dest.files() {
        check_files(&name, files, repo, &manifest, &tags).await;
    }
}

/// Trivy's cache: a real (tiny) trivy-db layer, unpacked while it streams, visible with
/// its manifest under the artifact's own tag; everything else refused, not dropped.
async fn unpacked(dest: &dyn Destination, repo: &str) {
    let name = dest.name().to_string();
    let ok = |what: &str, r: Result<bool>| r.unwrap_or_else(|e| panic!("{name}: {what}: {e}"));
    let layer_bytes = db_layer();
    let layer = descriptor(OCI_ARTIFACTS[0].layer_media_type, &layer_bytes);
    refuses_corrupt(dest, repo, &layer, &layer_bytes).await;
    let put = dest.put_blob(repo, &layer, chunked(layer_bytes.clone(), layer.clone())).await;
    assert!(matches!(put, Ok(Upload::Stored(n)) if n == layer.size), "{name}: layer: {put:?}");
    let early = ok("has_blob before the manifest", dest.has_blob(repo, &layer).await);
    assert!(!early, "{name}: a layer is visible before its manifest");
    let config_bytes = b"{}".to_vec();
    let config = descriptor("application/vnd.aquasec.trivy.config.v1+json", &config_bytes);
    let put = dest.put_blob(repo, &config, chunked(config_bytes, config.clone())).await;
    assert!(put.is_ok(), "{name}: config blob: {put:?}");
    assert!(ok("has_blob of a config", dest.has_blob(repo, &config).await), "{name}: a config is needed by none");

    let manifest = manifest_for(&config, &layer);
    let refused = dest.put_manifest(repo, &manifest, &["3".to_string()]).await;
    assert!(refused.is_err(), "{name}: a tag the cache cannot hold was accepted");
    let tags = ["2".to_string(), "2-20260101T0000Z".to_string()];
    dest.put_manifest(repo, &manifest, &tags).await.unwrap_or_else(|e| panic!("{name}: put_manifest: {e}"));
    for (tag, kept) in [("2", true), ("2-20260101T0000Z", false)] {
        let got = dest.manifest(repo, tag).await.unwrap_or_else(|e| panic!("{name}: manifest {tag}: {e}"));
        assert_eq!(got.as_ref(), kept.then_some(&manifest.raw), "{name}: tag {tag} (dated tags are not kept)");
    }
    assert!(ok("has_blob", dest.has_blob(repo, &layer).await), "{name}: published layer not found");
    let mut resized = layer.clone();
    resized.size += 1;
    assert!(!ok("has_blob of another size", dest.has_blob(repo, &resized).await), "{name}: size not compared");
    let read = dest.read_blob(repo, &layer).await.unwrap_or_else(|e| panic!("{name}: read_blob: {e}"));
    assert!(read.is_none(), "{name}: an unpacked store has no blob to read back");
    let elsewhere = dest.has_blob("conformance/other/not-trivy", &layer).await;
    assert!(elsewhere.is_err(), "{name}: a repository it cannot hold must be refused, not answered");
    dest.finish().await.unwrap_or_else(|e| panic!("{name}: finish: {e}"));
}

/// A tiny trivy-db layer: `trivy.db` and `metadata.json` in a tar.gz, as Trivy's cache
/// needs them.
fn db_layer() -> Vec<u8> {
    let metadata = br#"{"Version":2,"NextUpdate":"2026-01-01T06:00:00Z","UpdatedAt":"2026-01-01T00:00:00Z"}"#;
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut tar = tar::Builder::new(gz);
    for (file, body) in [("trivy.db", &b"conformance"[..]), ("metadata.json", &metadata[..])] {
        let mut header = tar::Header::new_gnu();
        header.set_size(body.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        tar.append_data(&mut header, file, body).expect("in memory");
    }
    tar.into_inner().and_then(|gz| gz.finish()).expect("in memory")
}

/// A signature's blobs and manifest are stored, and its tag and digest resolve to the
/// exact bytes. Returns its tag.
async fn check_signature(dest: &dyn Destination, repo: &str, manifest: &CheckedManifest) -> String {
    let name = dest.name();
    let key = crate::signing::SigningKey::generate();
    let provenance = crate::signing::Provenance { source: "conformance".into(), fetched: jiff::Timestamp::now() };
    let sig = crate::signing::sign(&key, &manifest.digest, repo, &provenance).await.unwrap();
    for (desc, bytes) in &sig.blobs {
        let put = dest.put_blob(repo, desc, chunked(bytes.to_vec(), desc.clone())).await;
        assert!(matches!(put, Ok(Upload::Stored(_))), "{name}: signature blob: {put:?}");
    }
    dest.put_signature(repo, &sig).await.unwrap_or_else(|e| panic!("{name}: put_signature: {e}"));
    for reference in [sig.tag.as_str(), sig.digest.as_str()] {
        let got = dest.manifest(repo, reference).await.unwrap_or_else(|e| panic!("{name}: manifest {reference}: {e}"));
        assert_eq!(got.as_ref(), Some(&sig.manifest), "{name}: signature {reference} is the exact bytes");
    }
    sig.tag
}

async fn check_files(name: &str, files: &dyn Files, repo: &str, manifest: &CheckedManifest, tags: &[String]) {
    let get =
        |key: String| async move { files.get_file(&key).await.unwrap_or_else(|e| panic!("{name}: get {key}: {e}")) };
    let by_digest = get(layout::manifest_key(repo, manifest.digest.as_str())).await;
    assert_eq!(by_digest.as_ref(), Some(&manifest.raw), "{name}: manifest by digest is the exact bytes");
    assert_eq!(get(layout::manifest_key(repo, &tags[0])).await.as_ref(), Some(&manifest.raw), "{name}: tag bytes");
    let list = get(layout::tags_list_key(repo)).await.expect("tags/list written");
    let list: serde_json::Value = serde_json::from_slice(&list).expect("tags/list is JSON");
    assert_eq!(list["tags"], serde_json::json!(tags), "{name}: tags/list");
    assert_eq!(get(layout::PING_KEY.to_string()).await.as_deref(), Some(layout::PING_BODY), "{name}: ping");

    let key = format!("{}/conformance.json", repo.replace('/', "-"));
    assert_eq!(get(key.clone()).await, None, "{name}: a missing file reads as absent");
    let body = Bytes::from_static(b"{\"ok\":true}\n");
    files
        .put_file(&key, body.clone(), layout::ObjectClass::Json)
        .await
        .unwrap_or_else(|e| panic!("{name}: put {key}: {e}"));
    assert_eq!(get(key).await, Some(body), "{name}: file round trip");
}

/// `len` bytes of a fixed pattern (incompressible enough, cheap to make).
fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| (i as u32).wrapping_mul(2_654_435_761).to_le_bytes()[3] ^ seed).collect()
}

fn descriptor(media_type: &str, bytes: &[u8]) -> Descriptor {
    Descriptor { media_type: media_type.into(), digest: Digest::of(bytes), size: bytes.len() as u64 }
}

/// `bytes` as a verifying stream of 64 KiB chunks, as a source would deliver them.
fn chunked(bytes: Vec<u8>, expected: Descriptor) -> BlobStream {
    let bytes = Bytes::from(bytes);
    let chunks: Vec<Result<Bytes>> =
        (0..bytes.len()).step_by(64 * 1024).map(|i| Ok(bytes.slice(i..(i + 64 * 1024).min(bytes.len())))).collect();
    verify(stream::iter(chunks), expected, "conformance blob".into())
}

/// A trivy-db-shaped manifest referencing `config` and `layer`, shape-checked as any
/// upstream manifest is.
fn manifest_for(config: &Descriptor, layer: &Descriptor) -> CheckedManifest {
    let raw = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": { "mediaType": config.media_type, "digest": config.digest.as_str(), "size": config.size },
        "layers": [{
            "mediaType": layer.media_type,
            "digest": layer.digest.as_str(),
            "size": layer.size,
            "annotations": { "org.opencontainers.image.title": "db.tar.gz" }
        }],
        "annotations": { "org.opencontainers.image.created": "2026-01-01T00:00:00Z" }
    });
    let raw = Bytes::from(serde_json::to_vec(&raw).expect("serializes"));
    manifest::check(&OCI_ARTIFACTS[0], raw, Some(OCI_MANIFEST)).expect("the conformance manifest is valid")
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use crate::dest::object::ObjectDestination;

    #[tokio::test]
    async fn in_memory() {
        let store = Arc::new(object_store::memory::InMemory::new());
        let dest = ObjectDestination::with_store("memory", store, "prefix", true, 300);
        super::run(&dest, "mem", true).await;
    }

    #[tokio::test]
    async fn local_directory() {
        let dir = tempfile::tempdir().unwrap();
        let store = super::super::Store::Directory(dir.path().to_path_buf());
        let dest = ObjectDestination::open(dir.path().to_str().unwrap(), store, 300, &|_| None).unwrap();
        super::run(&dest, "local", true).await;
        // Nothing but the static layout is left behind: no staging file of the refused uploads.
        let mut stray = Vec::new();
        for entry in walk(dir.path()) {
            let rel = entry.strip_prefix(dir.path()).unwrap().to_string_lossy().into_owned();
            // object_store stages a local write as `<key>#<n>` and renames it into place.
            if rel.contains('#') || !(rel.starts_with("v2/") || rel.ends_with("conformance.json")) {
                stray.push(rel);
            }
        }
        assert!(stray.is_empty(), "{stray:?}");
    }

    #[tokio::test]
    async fn trivy_cache() {
        let dir = tempfile::tempdir().unwrap();
        let cache = crate::dest::trivy_cache::TrivyCache::open("trivy-cache:c", &dir.path().join("c"), "2").unwrap();
        super::run(&cache, "cache", false).await;
        // What Trivy reads: the database and its metadata, with the time of writing.
        let metadata = std::fs::read(dir.path().join("c/db/metadata.json")).unwrap();
        let metadata: serde_json::Value = serde_json::from_slice(&metadata).unwrap();
        assert!(metadata["DownloadedAt"].is_string(), "{metadata}");
        assert_eq!(std::fs::read(dir.path().join("c/db/trivy.db")).unwrap(), b"conformance");
    }

    #[tokio::test]
    async fn bundle_directory_and_archive() {
        let dir = tempfile::tempdir().unwrap();
        let layout = crate::dest::bundle::BundleDestination::open("oci:x", &dir.path().join("x"), false).unwrap();
        super::run(&layout, "oci", true).await;
        let archive = dir.path().join("b.tar");
        let tar = crate::dest::bundle::BundleDestination::open("oci-archive:b.tar", &archive, true).unwrap();
        super::run(&tar, "tar", true).await;
        // The archive reads back as a bundle naming what was written.
        let read = crate::source::BundleSource::open(&archive, true).unwrap();
        assert_eq!(read.entries().len(), 3, "both tags and the signature are named");
    }

    fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
        let mut out = Vec::new();
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() { out.extend(walk(&p)) } else { out.push(p) }
        }
        out
    }
}
