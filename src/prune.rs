//! Retention for the static layout: remove blobs and digest manifests that no tag and
//! none of the last N versions reference, once they have been unreferenced for longer
//! than a grace period, and dated snapshot tags beyond the newest N.
//!
//! Without it a 6-hourly mirror grows by the size of every new database (~300 MB a day).
//! The grace period protects readers: a CDN may serve a cached tag for its TTL, and a
//! client may be halfway through a download of the previous version. A version becomes
//! unreferenced when the next one is published, so its "unreferenced since" is the write
//! time of the next newer digest manifest; a blob no kept manifest references is
//! unreferenced since it was written (a sync killed before its manifest, say).
//! Nothing a tag points to is ever removed.
//!
//! Signatures (`sha256-<hex>.sig` tags and the manifests they point to) are not versions:
//! a signature stays exactly as long as the version it signs, and goes with it.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use jiff::Timestamp;
use serde::Serialize;

use crate::artifact::ARTIFACTS;
use crate::dest::Files as _;
use crate::dest::object::{Listed, ObjectDestination};
use crate::error::Result;
use crate::layout;
use crate::oci::{Digest, join_repository, validate_tag};

/// Retention settings.
#[derive(Clone, Debug)]
pub struct PruneOptions {
    /// Versions (digest manifests) and snapshot tags kept per repository, newest first.
    pub keep: usize,
    /// How long something must have been unreferenced before it is removed.
    pub grace: Duration,
    /// Only report.
    pub dry_run: bool,
    /// Published namespace (`aquasecurity`).
    pub namespace: String,
}

/// One object removed (or that would be).
#[derive(Clone, Debug, Serialize)]
pub struct Removal {
    /// Its key below the static layout's root.
    pub key: String,
    /// Its size.
    pub bytes: u64,
}

/// What a prune did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct PruneReport {
    /// Objects removed (or, with dry-run, that would be), in removal order.
    pub removed: Vec<Removal>,
    /// Whether this was a dry run.
    pub dry_run: bool,
}

impl PruneReport {
    /// Bytes reclaimed.
    pub fn bytes(&self) -> u64 {
        self.removed.iter().map(|r| r.bytes).sum()
    }
}

/// Prune every repository of the layout.
pub async fn prune(dest: &ObjectDestination, options: &PruneOptions, now: Timestamp) -> Result<PruneReport> {
    let mut report = PruneReport { dry_run: options.dry_run, ..Default::default() };
    let repos: BTreeSet<String> = ARTIFACTS.iter().map(|a| join_repository(&options.namespace, a.name)).collect();
    for repo in repos {
        prune_repo(dest, &repo, options, now, &mut report).await?;
    }
    Ok(report)
}

fn name_of(key: &str) -> &str {
    key.rsplit('/').next().unwrap_or(key)
}

async fn prune_repo(
    dest: &ObjectDestination,
    repo: &str,
    options: &PruneOptions,
    now: Timestamp,
    report: &mut PruneReport,
) -> Result<()> {
    let grace = jiff::SignedDuration::try_from(options.grace).unwrap_or(jiff::SignedDuration::MAX);
    let old_enough = |since: Timestamp| now.duration_since(since) > grace;
    let manifests = dest.list(&layout::manifests_dir(repo)).await?;
    if manifests.is_empty() {
        return Ok(());
    }
    let (digests, tags): (Vec<&Listed>, Vec<&Listed>) =
        manifests.iter().partition(|o| Digest::parse(name_of(&o.key)).is_ok());
    // Digest manifests are versions, or signatures (told apart by their content).
    let mut versions = Vec::new();
    let mut signatures = Vec::new();
    let mut bodies: BTreeMap<&str, bytes::Bytes> = BTreeMap::new();
    for d in digests {
        let Some(body) = dest.get_file(&d.key).await? else { continue };
        if crate::signing::parse(&body).is_ok() {
            signatures.push(d)
        } else {
            versions.push(d)
        }
        bodies.insert(&d.key, body);
    }
    let (signature_tags, tags): (Vec<&Listed>, Vec<&Listed>) =
        tags.into_iter().partition(|t| crate::signing::is_signature_tag(name_of(&t.key)));

    // Snapshot tags (`<tag>-YYYYMMDDTHHMMZ`) beyond the newest `keep` per base tag go.
    let base_tags: BTreeSet<&str> = ARTIFACTS.iter().map(|a| a.tag).collect();
    let mut snapshots: BTreeMap<&str, Vec<&Listed>> = BTreeMap::new();
    let mut live_tags = Vec::new();
    for t in &tags {
        let name = name_of(&t.key);
        match name.split_once('-') {
            Some((base, stamp)) if base_tags.contains(base) && is_stamp(stamp) => {
                snapshots.entry(base).or_default().push(t)
            }
            _ if validate_tag(name).is_ok() => live_tags.push(*t),
            _ => {}
        }
    }
    let mut dropped_tags = Vec::new();
    for list in snapshots.values_mut() {
        list.sort_by(|a, b| name_of(&b.key).cmp(name_of(&a.key)));
        for (i, t) in list.iter().enumerate() {
            // Tag i left the newest-`keep` window when tag i-keep was written.
            if i < options.keep || !old_enough(list[i - options.keep].modified) {
                live_tags.push(t)
            } else {
                dropped_tags.push(*t)
            }
        }
    }

    // Digests that tags point at are never removed.
    let mut kept: BTreeSet<String> = BTreeSet::new();
    for t in &live_tags {
        if let Some(bytes) = dest.get_file(&t.key).await? {
            kept.insert(Digest::of(&bytes).to_string());
        }
    }
    // The newest `keep` versions, and versions superseded less than `grace` ago, stay.
    versions.sort_by_key(|o| std::cmp::Reverse(o.modified));
    for (i, v) in versions.iter().enumerate() {
        let superseded = if i == 0 { now } else { versions[i - 1].modified };
        if i < options.keep || !old_enough(superseded) {
            kept.insert(name_of(&v.key).to_string());
        }
    }
    // A signature tag stays with the version it signs, and so does what it points to.
    for t in signature_tags {
        let signed = crate::signing::signed_digest(name_of(&t.key)).map(|d| d.to_string()).unwrap_or_default();
        if !kept.contains(&signed) {
            dropped_tags.push(t);
        } else if let Some(bytes) = dest.get_file(&t.key).await? {
            kept.insert(Digest::of(&bytes).to_string());
        }
    }
    // Blobs referenced by any kept manifest stay.
    let mut referenced: BTreeSet<String> = BTreeSet::new();
    for v in versions.iter().chain(&signatures).filter(|v| kept.contains(name_of(&v.key))) {
        referenced.extend(bodies.get(v.key.as_str()).map(|b| referenced_blobs(b)).unwrap_or_default());
    }
    let blobs = dest.list(&format!("v2/{repo}/blobs")).await?;

    let mut removals: Vec<&Listed> = dropped_tags;
    removals.extend(versions.iter().filter(|v| !kept.contains(name_of(&v.key))).copied());
    // A signature no tag points to any more (its version went, or a new key re-signed).
    removals.extend(signatures.iter().filter(|s| !kept.contains(name_of(&s.key)) && old_enough(s.modified)));
    removals.extend(blobs.iter().filter(|b| !referenced.contains(name_of(&b.key)) && old_enough(b.modified)));
    // A removed tag (snapshot or signature) changes the listing.
    let tags_changed =
        removals.iter().any(|o| o.key.contains("/manifests/") && Digest::parse(name_of(&o.key)).is_err());
    for o in removals {
        tracing::info!(key = %o.key, bytes = o.size, dry_run = options.dry_run, "prune");
        if !options.dry_run {
            dest.delete(&o.key).await?;
        }
        report.removed.push(Removal { key: o.key.clone(), bytes: o.size });
    }
    if tags_changed && !options.dry_run {
        dest.write_tags_list(repo, &[]).await?;
    }
    Ok(())
}

/// `YYYYMMDDTHHMMZ`.
fn is_stamp(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 14 && b[8] == b'T' && b[13] == b'Z' && b[..8].iter().chain(&b[9..13]).all(u8::is_ascii_digit)
}

/// The config and layer digests a manifest references (empty if it does not parse).
fn referenced_blobs(manifest: &[u8]) -> Vec<String> {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(manifest) else { return Vec::new() };
    let mut out = Vec::new();
    if let Some(d) = v["config"]["digest"].as_str() {
        out.push(d.to_string());
    }
    for l in v["layers"].as_array().into_iter().flatten() {
        if let Some(d) = l["digest"].as_str() {
            out.push(d.to_string());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::ObjectClass;
    use bytes::Bytes;
    use std::sync::Arc;

    fn manifest(layer: &Digest) -> Bytes {
        Bytes::from(format!(
            r#"{{"schemaVersion":2,"config":{{"mediaType":"x","digest":"{}","size":2}},"layers":[{{"mediaType":"y","digest":"{layer}","size":1}}]}}"#,
            Digest::of(b"{}")
        ))
    }

    /// Version `i`: its one-byte layer and its manifest by digest. Returns (manifest digest,
    /// layer digest, manifest).
    async fn put_version(dest: &ObjectDestination, repo: &str, i: u8) -> (Digest, Digest, Bytes) {
        let layer = Digest::of(&[i]);
        let m = manifest(&layer);
        let d = Digest::of(&m);
        dest.put_file(&layout::blob_key(repo, &layer), Bytes::from(vec![i]), ObjectClass::Blob).await.unwrap();
        dest.put_file(&layout::manifest_key(repo, d.as_str()), m.clone(), ObjectClass::DigestManifest).await.unwrap();
        (d, layer, m)
    }

    #[tokio::test]
    async fn keeps_tagged_and_recent_versions_and_removes_the_rest() {
        let store = Arc::new(object_store::memory::InMemory::new());
        let dest = ObjectDestination::with_store("mem", store, "", true, 300);
        let repo = "aquasecurity/trivy-db";
        let mut digests = Vec::new();
        for i in 0..4u8 {
            let (d, layer, m) = put_version(&dest, repo, i).await;
            if i == 3 {
                dest.put_file(&layout::manifest_key(repo, "2"), m, ObjectClass::TagManifest).await.unwrap();
            }
            digests.push((d, layer));
            // InMemory timestamps have millisecond resolution; keep versions ordered.
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let options = PruneOptions { keep: 2, grace: Duration::ZERO, dry_run: true, namespace: "aquasecurity".into() };
        let later = Timestamp::now() + jiff::SignedDuration::from_secs(10);
        let dry = prune(&dest, &options, later).await.unwrap();
        let keys: BTreeSet<_> = dry.removed.iter().map(|r| r.key.clone()).collect();
        for (i, (d, layer)) in digests.iter().enumerate() {
            let gone = i < 2;
            assert_eq!(keys.contains(&layout::manifest_key(repo, d.as_str())), gone, "manifest {i}");
            assert_eq!(keys.contains(&layout::blob_key(repo, layer)), gone, "blob {i}");
        }
        // Dry run removed nothing.
        assert!(dest.get_file(&layout::manifest_key(repo, digests[0].0.as_str())).await.unwrap().is_some());

        // A long grace period protects recently superseded versions.
        let patient = PruneOptions { grace: Duration::from_secs(3600), ..options.clone() };
        assert!(prune(&dest, &patient, later).await.unwrap().removed.is_empty());

        let real = PruneOptions { dry_run: false, ..options };
        let done = prune(&dest, &real, later).await.unwrap();
        assert_eq!(done.removed.len(), 4);
        assert!(dest.get_file(&layout::manifest_key(repo, digests[0].0.as_str())).await.unwrap().is_none());
        assert!(dest.get_file(&layout::manifest_key(repo, "2")).await.unwrap().is_some());
    }

    #[tokio::test]
    async fn a_signature_goes_with_the_version_it_signs() {
        let store = Arc::new(object_store::memory::InMemory::new());
        let dest = ObjectDestination::with_store("mem", store, "", true, 300);
        let repo = "aquasecurity/trivy-db";
        let key = crate::signing::SigningKey::from_pem(crate::signing::TEST_KEY.as_bytes(), "test", None).unwrap();
        let provenance = crate::signing::Provenance { source: "upstream".into(), fetched: Timestamp::now() };
        let mut signatures = Vec::new();
        for i in 0..3u8 {
            let (d, _, m) = put_version(&dest, repo, i).await;
            let sig = crate::signing::sign(&key, &d, repo, &provenance).await.unwrap();
            for (desc, bytes) in &sig.blobs {
                dest.put_file(&layout::blob_key(repo, &desc.digest), bytes.clone(), ObjectClass::Blob).await.unwrap();
            }
            for reference in [sig.digest.as_str(), sig.tag.as_str()] {
                let key = layout::manifest_key(repo, reference);
                dest.put_file(&key, sig.manifest.clone(), ObjectClass::TagManifest).await.unwrap();
            }
            if i == 2 {
                dest.put_file(&layout::manifest_key(repo, "2"), m, ObjectClass::TagManifest).await.unwrap();
            }
            signatures.push(sig);
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        // keep 1: versions 0 and 1 go, and with them their signatures; signatures are not
        // versions, so they do not crowd the newest-`keep` window.
        let options = PruneOptions { keep: 1, grace: Duration::ZERO, dry_run: false, namespace: "aquasecurity".into() };
        let later = Timestamp::now() + jiff::SignedDuration::from_secs(10);
        let done = prune(&dest, &options, later).await.unwrap();
        let removed: BTreeSet<_> = done.removed.iter().map(|r| r.key.clone()).collect();
        for (i, sig) in signatures.iter().enumerate() {
            let gone = i < 2;
            for key in [layout::manifest_key(repo, &sig.tag), layout::manifest_key(repo, sig.digest.as_str())] {
                assert_eq!(removed.contains(&key), gone, "signature {i}: {key}");
            }
            for (desc, _) in &sig.blobs {
                assert_eq!(removed.contains(&layout::blob_key(repo, &desc.digest)), gone, "signature blob {i}");
            }
        }
        let listing = dest.get_file(&layout::tags_list_key(repo)).await.unwrap().unwrap();
        let listing = String::from_utf8(listing.to_vec()).unwrap();
        assert!(listing.contains(&signatures[2].tag) && !listing.contains(&signatures[0].tag), "{listing}");
    }

    #[test]
    fn snapshot_stamps() {
        assert!(is_stamp("20261126T0600Z"));
        assert!(!is_stamp("20261126T0600"));
        assert!(!is_stamp("latest"));
    }
}
