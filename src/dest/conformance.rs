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
//! - where signatures are kept, a signature's blobs and manifest are stored and its tag
//!   (`sha256-<hex>.sig`) and digest resolve to the exact bytes.

use bytes::Bytes;
use futures_util::stream;

use super::{Destination, Files};
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
/// destination and the broken promise.
pub async fn run(dest: &dyn Destination, run: &str, large: bool) {
    let name = dest.name().to_string();
    let repo = format!("conformance/{run}/trivy-db");
    let artifact = &OCI_ARTIFACTS[0];
    let ok = |what: &str, r: Result<bool>| r.unwrap_or_else(|e| panic!("{name}: {what}: {e}"));

    assert_eq!(dest.manifest(&repo, "2").await.unwrap_or_else(|e| panic!("{name}: manifest: {e}")), None);

    let layer_bytes = pattern(if large { LARGE_BLOB } else { 4096 }, 7);
    let layer = descriptor(artifact.layer_media_type, &layer_bytes);
    assert!(!ok("has_blob before", dest.has_blob(&repo, &layer).await), "{name}: absent blob reported present");

    // A stream that turns out corrupt commits nothing.
    let mut corrupt = layer_bytes.clone();
    corrupt[layer_bytes.len() / 2] ^= 1;
    let refused = dest.put_blob(&repo, &layer, chunked(corrupt, layer.clone())).await;
    assert!(refused.is_err(), "{name}: a blob that fails verification was accepted");
    assert!(
        !ok("has_blob after a refused upload", dest.has_blob(&repo, &layer).await),
        "{name}: a refused blob is visible"
    );

    // A good one is stored whole (a destination may ask for it again once).
    let mut stored = None;
    for _ in 0..2 {
        match dest.put_blob(&repo, &layer, chunked(layer_bytes.clone(), layer.clone())).await {
            Ok(Upload::Stored(n)) => {
                stored = Some(n);
                break;
            }
            Ok(Upload::Resend { .. }) => continue,
            Err(e) => panic!("{name}: put_blob: {e}"),
        }
    }
    assert_eq!(stored, Some(layer.size), "{name}: bytes stored");
    assert!(ok("has_blob", dest.has_blob(&repo, &layer).await), "{name}: stored blob not found");
    let mut resized = layer.clone();
    resized.size += 1;
    assert!(!ok("has_blob of another size", dest.has_blob(&repo, &resized).await), "{name}: size not compared");

    let config_bytes = b"{}".to_vec();
    let config = descriptor("application/vnd.aquasec.trivy.config.v1+json", &config_bytes);
    let put = dest.put_blob(&repo, &config, chunked(config_bytes, config.clone())).await;
    assert!(matches!(put, Ok(Upload::Stored(2))), "{name}: config blob: {put:?}");

    let manifest = manifest_for(&config, &layer);
    let tags = ["2".to_string(), "2-20260101T0000Z".to_string()];
    dest.put_manifest(&repo, &manifest, &tags).await.unwrap_or_else(|e| panic!("{name}: put_manifest: {e}"));
    for tag in &tags {
        let got = dest.manifest(&repo, tag).await.unwrap_or_else(|e| panic!("{name}: manifest {tag}: {e}"));
        assert_eq!(got.as_ref(), Some(&manifest.raw), "{name}: tag {tag} resolves to the exact manifest bytes");
    }
    dest.finish().await.unwrap_or_else(|e| panic!("{name}: finish: {e}"));

    if let Some(files) = dest.files() {
        check_files(&name, files, &repo, &manifest, &tags).await;
    }
    if dest.keeps_signatures() {
        check_signature(dest, &repo, &manifest).await;
    }
}

async fn check_signature(dest: &dyn Destination, repo: &str, manifest: &CheckedManifest) {
    let name = dest.name();
    let key = crate::signing::SigningKey::generate();
    let provenance = crate::signing::Provenance { source: "conformance".into(), fetched: jiff::Timestamp::now() };
    let sig = crate::signing::sign(&key, &manifest.digest, repo, &provenance);
    for (desc, bytes) in &sig.blobs {
        let put = dest.put_blob(repo, desc, chunked(bytes.to_vec(), desc.clone())).await;
        assert!(matches!(put, Ok(Upload::Stored(_))), "{name}: signature blob: {put:?}");
    }
    dest.put_signature(repo, &sig).await.unwrap_or_else(|e| panic!("{name}: put_signature: {e}"));
    for reference in [sig.tag.as_str(), sig.digest.as_str()] {
        let got = dest.manifest(repo, reference).await.unwrap_or_else(|e| panic!("{name}: manifest {reference}: {e}"));
        assert_eq!(got.as_ref(), Some(&sig.manifest), "{name}: signature {reference} is the exact bytes");
    }
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
        let url = super::super::DestinationUrl::Local(dir.path().to_path_buf());
        let dest = ObjectDestination::open(dir.path().to_str().unwrap(), url, 300).unwrap();
        super::run(&dest, "local", true).await;
        // Nothing but the layout is left behind: no staging file of the refused uploads.
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
    async fn bundle_directory_and_archive() {
        let dir = tempfile::tempdir().unwrap();
        let layout = crate::dest::bundle::BundleDestination::open("oci:x", &dir.path().join("x"), false).unwrap();
        super::run(&layout, "oci", true).await;
        let archive = dir.path().join("b.tar");
        let tar = crate::dest::bundle::BundleDestination::open("oci-archive:b.tar", &archive, true).unwrap();
        super::run(&tar, "tar", true).await;
        // The archive reads back as a bundle naming what was written.
        let read = crate::source::BundleSource::open(&archive, true).unwrap();
        assert_eq!(read.entries().len(), 2, "both tags are named");
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
