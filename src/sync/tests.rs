//! The engine's fast tier: whole syncs in process, from in-memory sources into
//! object_store's `InMemory`, in milliseconds and with no external service. What a user
//! would check is asserted on what the destination holds afterwards (the static layout's
//! keys and bytes), plus the order of the writes, recorded by a thin wrapper.

use std::collections::BTreeSet;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use object_store::memory::InMemory;
use trivy_mirror_fixtures as fx;

use super::*;
use crate::dest::object::ObjectDestination;
use crate::dest::{Destination, Files};
use crate::error::Help;
use crate::http::RetryPolicy;
use crate::layout;
use crate::manifest::CheckedManifest;
use crate::oci::Descriptor;
use crate::oci::Digest;
use crate::source::memory::{Fault, MemorySource};
use crate::stream::{BlobStream, Upload};

/// trivy-db:2, trivy-java-db:1 and trivy-checks:1/:2 fixtures.
pub(super) struct Set {
    pub(super) db: fx::Artifact,
    pub(super) java: fx::Artifact,
    pub(super) checks1: fx::Artifact,
    pub(super) checks2: fx::Artifact,
}

pub(super) fn set() -> Set {
    Set {
        db: fx::trivy_db(&Default::default()),
        java: fx::java_db(&Default::default()),
        checks1: fx::checks_bundle("1.9.0"),
        checks2: fx::checks_bundle("2.2.0"),
    }
}

pub(super) fn source(label: &str, s: &Set) -> Arc<MemorySource> {
    let src = MemorySource::new(label);
    src.add("trivy-db", "2", &s.db).add("trivy-java-db", "1", &s.java).add("trivy-checks", "1", &s.checks1).add(
        "trivy-checks",
        "2",
        &s.checks2,
    );
    Arc::new(src)
}

pub(super) fn plan(sources: Vec<Arc<MemorySource>>, only: &[Kind]) -> SyncPlan {
    let sources: Vec<Arc<dyn Source>> = sources.into_iter().map(|s| s as Arc<dyn Source>).collect();
    SyncPlan {
        vex_sources: sources.clone(),
        sources,
        namespace: "aquasecurity".into(),
        only: only.iter().copied().collect(),
        snapshot_tags: false,
        allow_downgrade: false,
        recheck: false,
        retry: RetryPolicy { attempts: 3, initial_backoff: Duration::ZERO, max_backoff: Duration::ZERO },
        concurrency: 3,
        progress: Arc::new(crate::progress::Silent),
        signing: Signing::default(),
    }
}

pub(super) const OCI_KINDS: [Kind; 3] = [Kind::Db, Kind::JavaDb, Kind::Checks];

/// The public URL of the in-memory static layouts (where their VEX locations point).
const MIRROR_URL: &str = "https://mirror.example.com";

/// What the recording wrapper makes of a destination call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Call {
    Blob(String),
    Manifest(String, Vec<String>),
    Finish,
}

/// A static layout in memory, wrapped to record the order of writes and to fail or
/// renegotiate on demand (faults no real store produces when asked).
#[derive(Debug)]
pub(super) struct Recorder {
    inner: ObjectDestination,
    store: Arc<InMemory>,
    calls: Mutex<Vec<Call>>,
    /// `put_blob` fails (not transiently) for this many calls.
    refuse_blobs: Mutex<usize>,
    /// `put_blob` answers `Upload::Resend` for this many calls.
    resend: Mutex<usize>,
}

impl Recorder {
    pub(super) fn new(name: &str) -> Arc<Recorder> {
        Recorder::publishing(name, Arc::new(InMemory::new()), MIRROR_URL, "")
    }

    /// A static layout over `store` publishing VEX at `base_url` under `prefix`.
    fn publishing(name: &str, store: Arc<InMemory>, base_url: &str, prefix: &str) -> Arc<Recorder> {
        let vex = crate::vex::Publication::new(base_url, prefix, false).unwrap();
        Arc::new(Recorder {
            inner: ObjectDestination::with_store(name, store.clone(), "", true, 300).with_vex(Some(vex)),
            store,
            calls: Mutex::default(),
            refuse_blobs: Mutex::new(0),
            resend: Mutex::new(0),
        })
    }

    pub(super) fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }

    pub(super) async fn get(&self, key: &str) -> Option<Bytes> {
        self.inner.get_file(key).await.unwrap()
    }

    /// Every object key of the layout.
    pub(super) async fn keys(&self) -> BTreeSet<String> {
        self.inner.list("").await.unwrap().into_iter().map(|l| l.key).collect()
    }

    /// When an object was last written (InMemory keeps nanoseconds: the order of writes).
    async fn written_at(&self, key: &str) -> impl Ord + use<> {
        use object_store::ObjectStoreExt as _;
        self.store.head(&object_store::path::Path::from(key)).await.unwrap().last_modified
    }

    pub(super) async fn delete(&self, key: &str) {
        self.inner.delete(key).await.unwrap();
    }

    fn take(counter: &Mutex<usize>) -> bool {
        let mut n = counter.lock().unwrap();
        let hit = *n > 0;
        *n = n.saturating_sub(1);
        hit
    }
}

#[async_trait]
impl Destination for Recorder {
    fn name(&self) -> &str {
        self.inner.name()
    }
    async fn manifest(&self, repo: &str, reference: &str) -> Result<Option<Bytes>> {
        self.inner.manifest(repo, reference).await
    }
    async fn read_blob(&self, repo: &str, blob: &Descriptor) -> Result<Option<crate::source::RawBlob>> {
        self.inner.read_blob(repo, blob).await
    }
    async fn has_blob(&self, repo: &str, blob: &Descriptor) -> Result<bool> {
        self.inner.has_blob(repo, blob).await
    }
    async fn put_blob(&self, repo: &str, blob: &Descriptor, body: BlobStream) -> Result<Upload> {
        if Recorder::take(&self.refuse_blobs) {
            return Err(Error::rejected(format!("blob {}", blob.digest), "quota exceeded"));
        }
        if Recorder::take(&self.resend) {
            drop(body);
            return Ok(Upload::Resend { reason: "switching upload mode".into() });
        }
        let out = self.inner.put_blob(repo, blob, body).await?;
        self.calls.lock().unwrap().push(Call::Blob(format!("{repo}@{}", blob.digest)));
        Ok(out)
    }
    async fn put_manifest(&self, repo: &str, manifest: &CheckedManifest, tags: &[String]) -> Result<()> {
        self.inner.put_manifest(repo, manifest, tags).await?;
        self.calls.lock().unwrap().push(Call::Manifest(format!("{repo}@{}", manifest.digest), tags.to_vec()));
        Ok(())
    }
    async fn put_signature(&self, repo: &str, signature: &crate::signing::Signature) -> Result<()> {
        self.inner.put_signature(repo, signature).await?;
        self.calls
            .lock()
            .unwrap()
            .push(Call::Manifest(format!("{repo}@{}", signature.digest), vec![signature.tag.clone()]));
        Ok(())
    }
    async fn finish(&self) -> Result<()> {
        self.calls.lock().unwrap().push(Call::Finish);
        self.inner.finish().await
    }
    fn files(&self) -> Option<&dyn Files> {
        self.inner.files()
    }
    fn client_reference(&self, repo: &str) -> Option<String> {
        self.inner.client_reference(repo)
    }
    async fn published_current(&self, repo: &str, manifest: &CheckedManifest) -> Result<bool> {
        self.inner.published_current(repo, manifest).await
    }
}

pub(super) fn outcomes(report: &Report) -> Vec<(String, String, Outcome)> {
    report.entries.iter().map(|e| (e.artifact.clone(), e.destination.clone(), e.outcome.clone())).collect()
}

pub(super) fn dests(list: &[&Arc<Recorder>]) -> Vec<Arc<dyn Destination>> {
    list.iter().map(|d| Arc::clone(d) as Arc<dyn Destination>).collect()
}

#[tokio::test]
async fn a_first_run_publishes_every_artifact_byte_exact_and_in_order() {
    let s = set();
    let src = source("upstream", &s);
    let dest = Recorder::new("mem");
    let report = sync(&plan(vec![src], &OCI_KINDS), &dests(&[&dest])).await;

    let labels: Vec<_> = report.entries.iter().map(|e| (e.artifact.as_str(), e.outcome.clone())).collect();
    assert_eq!(
        labels,
        [
            ("trivy-db:2", Outcome::Written),
            ("trivy-java-db:1", Outcome::Written),
            ("trivy-checks:1", Outcome::Written),
            ("trivy-checks:2", Outcome::Written),
        ]
    );
    for (repo, tag, fixture) in [
        ("aquasecurity/trivy-db", "2", &s.db),
        ("aquasecurity/trivy-java-db", "1", &s.java),
        ("aquasecurity/trivy-checks", "1", &s.checks1),
        ("aquasecurity/trivy-checks", "2", &s.checks2),
    ] {
        let tagged = dest.get(&layout::manifest_key(repo, tag)).await.expect("tag published");
        assert_eq!(tagged, fixture.manifest, "{repo}:{tag} is the exact upstream bytes");
        let by_digest = dest.get(&layout::manifest_key(repo, &fixture.manifest_digest())).await.unwrap();
        assert_eq!(by_digest, fixture.manifest);
        let layer = Digest::parse(&fixture.layer_digest()).unwrap();
        assert_eq!(dest.get(&layout::blob_key(repo, &layer)).await.unwrap(), fixture.layer);
    }
    assert!(dest.get(layout::PING_KEY).await.is_some(), "the /v2/ ping is written");
    let status: serde_json::Value =
        serde_json::from_slice(&dest.get(crate::status_file::STATUS_KEY).await.unwrap()).unwrap();
    assert!(status.to_string().contains(&s.db.manifest_digest()), "status.json names the published digest");

    // Per artifact: layer, then config, then the manifest (artifacts run concurrently, so
    // their calls interleave); the ping comes last.
    let calls = dest.calls();
    let db_repo = "aquasecurity/trivy-db";
    let db: Vec<_> = calls
        .iter()
        .filter(|c| match c {
            Call::Blob(b) => b.starts_with(&format!("{db_repo}@")),
            Call::Manifest(m, _) => m.starts_with(&format!("{db_repo}@")),
            Call::Finish => false,
        })
        .cloned()
        .collect();
    let expected = [
        Call::Blob(format!("{db_repo}@{}", s.db.layer_digest())),
        Call::Blob(format!("{db_repo}@{}", s.db.config_digest())),
        Call::Manifest(format!("{db_repo}@{}", s.db.manifest_digest()), vec!["2".into()]),
    ];
    assert_eq!(db, expected);
    assert_eq!(calls.last(), Some(&Call::Finish));
    // Every artifact has the same `{}` config: one upload per repository (trivy-checks:1
    // and :2 go one after the other), so :2 finds it already there after :1.
    let config = s.checks2.config_digest();
    let config_uploads = calls.iter().filter(|c| matches!(c, Call::Blob(b) if b.ends_with(&config))).count();
    assert_eq!(config_uploads, 3, "{calls:?}");
}

#[tokio::test]
async fn a_rerun_with_nothing_new_reads_no_blob_and_writes_nothing_but_status() {
    let s = set();
    let src = source("upstream", &s);
    let dest = Recorder::new("mem");
    let p = plan(vec![src.clone()], &OCI_KINDS);
    sync(&p, &dests(&[&dest])).await;
    let keys = dest.keys().await;
    let blobs_before = src.blob_requests.load(Ordering::SeqCst);
    let calls_before = dest.calls().len();

    let report = sync(&p, &dests(&[&dest])).await;
    assert!(report.entries.iter().all(|e| e.outcome == Outcome::Unchanged), "{:?}", outcomes(&report));
    assert!(report.entries.iter().all(|e| e.bytes_written == 0));
    assert_eq!(src.blob_requests.load(Ordering::SeqCst), blobs_before, "no blob is read from the source");
    assert_eq!(dest.calls().len(), calls_before, "no blob, manifest or ping is written again");
    assert_eq!(dest.keys().await, keys);
}

#[tokio::test]
async fn one_failing_destination_does_not_stop_the_others() {
    let s = set();
    let good = Recorder::new("good");
    let bad = Recorder::new("bad");
    *bad.refuse_blobs.lock().unwrap() = usize::MAX;
    let report = sync(&plan(vec![source("upstream", &s)], &[Kind::Db]), &dests(&[&good, &bad])).await;

    assert_eq!(
        outcomes(&report),
        [("trivy-db:2".into(), "good".into(), Outcome::Written), ("trivy-db:2".into(), "bad".into(), Outcome::Failed),]
    );
    let failed = report.entries.iter().find(|e| e.destination == "bad").unwrap();
    assert!(failed.why().unwrap().contains("quota exceeded"), "{failed:?}");
    assert!(good.get(&layout::manifest_key("aquasecurity/trivy-db", "2")).await.is_some());
    assert!(
        bad.get(&layout::manifest_key("aquasecurity/trivy-db", "2")).await.is_none(),
        "a destination that lacks a blob gets no manifest or tag"
    );
    assert!(!bad.calls().iter().any(|c| matches!(c, Call::Manifest(..))));
    // The source was read once for both destinations (one stream, fanned out).
    assert!(!report.success());
}

#[tokio::test]
async fn a_source_cut_mid_blob_is_retried_and_the_blob_lands_whole() {
    let s = set();
    let src = source("upstream", &s);
    src.fault(&s.java.layer_digest(), Fault::CutAfter(s.java.layer.len() / 2), 2);
    let dest = Recorder::new("mem");
    let report = sync(&plan(vec![src.clone()], &[Kind::JavaDb]), &dests(&[&dest])).await;

    assert_eq!(report.entries[0].outcome, Outcome::Written, "{:?}", report.entries[0]);
    // Two cut attempts plus the one that went through, plus the config.
    assert_eq!(src.blob_requests.load(Ordering::SeqCst), 4);
    let layer = Digest::parse(&s.java.layer_digest()).unwrap();
    assert_eq!(dest.get(&layout::blob_key("aquasecurity/trivy-java-db", &layer)).await.unwrap(), s.java.layer);
}

#[tokio::test]
async fn a_source_that_keeps_failing_mid_blob_publishes_nothing_of_that_artifact() {
    let s = set();
    let src = source("upstream", &s);
    src.fault(&s.db.layer_digest(), Fault::CutAfter(100), usize::MAX);
    let dest = Recorder::new("mem");
    let report = sync(&plan(vec![src.clone()], &[Kind::Db]), &dests(&[&dest])).await;

    let e = &report.entries[0];
    assert_eq!(e.outcome, Outcome::Failed);
    let error = e.why().unwrap();
    assert!(error.contains("no source could provide it") && error.contains("connection reset"), "{error}");
    assert_eq!(src.blob_requests.load(Ordering::SeqCst), 3, "as many attempts as the retry policy allows");
    let keys = dest.keys().await;
    assert!(!keys.iter().any(|k| k.contains("trivy-db")), "nothing of trivy-db is visible: {keys:?}");
}

#[tokio::test]
async fn a_corrupt_blob_is_refused_and_the_next_source_serves_the_artifact() {
    let s = set();
    let first = source("first", &s);
    first.fault(&s.db.layer_digest(), Fault::Flip, usize::MAX);
    let second = source("second", &s);
    let dest = Recorder::new("mem");
    let report = sync(&plan(vec![first.clone(), second.clone()], &[Kind::Db]), &dests(&[&dest])).await;

    let e = &report.entries[0];
    assert_eq!(e.outcome, Outcome::Written, "{e:?}");
    assert_eq!(e.source.as_deref(), Some("second"));
    assert_eq!(first.blob_requests.load(Ordering::SeqCst), 1, "a digest mismatch is not retried");
    let layer = Digest::parse(&s.db.layer_digest()).unwrap();
    assert_eq!(dest.get(&layout::blob_key("aquasecurity/trivy-db", &layer)).await.unwrap(), s.db.layer);
}

#[tokio::test]
async fn an_unreachable_or_empty_first_source_falls_back_to_the_next() {
    let s = set();
    let down = source("down", &s);
    down.set_unreachable();
    let empty = Arc::new(MemorySource::new("empty"));
    let up = source("up", &s);
    let dest = Recorder::new("mem");
    let report = sync(&plan(vec![down.clone(), empty.clone(), up], &[Kind::Checks]), &dests(&[&dest])).await;

    for e in &report.entries {
        assert_eq!((e.outcome.clone(), e.source.as_deref()), (Outcome::Written, Some("up")), "{e:?}");
    }
    assert_eq!(empty.manifest_requests.load(Ordering::SeqCst), 2, "asked for checks:1 and :2");

    // With no source left, the error names every source and why.
    let report = sync(&plan(vec![down, empty], &[Kind::Db]), &dests(&[&dest])).await;
    let error = report.entries[0].why().unwrap();
    assert!(error.contains("down (DNS lookup failed)"), "{error}");
    assert!(error.contains("empty (no trivy-db:2)"), "{error}");
}

#[tokio::test]
async fn a_destination_that_changes_upload_mode_gets_the_blob_again_once() {
    let s = set();
    let src = source("upstream", &s);
    let dest = Recorder::new("mem");
    *dest.resend.lock().unwrap() = 1;
    let report = sync(&plan(vec![src.clone()], &[Kind::Db]), &dests(&[&dest])).await;
    assert_eq!(report.entries[0].outcome, Outcome::Written, "{:?}", report.entries[0]);
    assert_eq!(src.blob_requests.load(Ordering::SeqCst), 3, "layer twice, config once");

    // A destination that keeps asking fails instead of looping.
    let stubborn = Recorder::new("stubborn");
    *stubborn.resend.lock().unwrap() = usize::MAX;
    let report = sync(&plan(vec![src], &[Kind::Db]), &dests(&[&stubborn])).await;
    let e = &report.entries[0];
    assert_eq!(e.outcome, Outcome::Failed);
    assert!(e.why().unwrap().contains("asked for it twice"), "{e:?}");
}

#[tokio::test]
async fn a_new_upstream_version_replaces_the_tag_and_keeps_blobs_already_there() {
    let s = set();
    let dest = Recorder::new("mem");
    sync(&plan(vec![source("upstream", &s)], &[Kind::Checks]), &dests(&[&dest])).await;

    let newer = fx::checks_bundle("2.3.0");
    let src = MemorySource::new("upstream");
    src.add("trivy-checks", "1", &s.checks1).add("trivy-checks", "2", &newer);
    let report = sync(&plan(vec![Arc::new(src)], &[Kind::Checks]), &dests(&[&dest])).await;

    assert_eq!(
        outcomes(&report).into_iter().map(|(a, _, o)| (a, o)).collect::<Vec<_>>(),
        [("trivy-checks:1".into(), Outcome::Unchanged), ("trivy-checks:2".into(), Outcome::Written)]
    );
    let updated = &report.entries[1];
    assert_eq!(updated.blobs_skipped, 1, "the shared config blob is already there");
    assert_eq!(updated.bytes_written, newer.layer.len() as u64);
    let tag = dest.get(&layout::manifest_key("aquasecurity/trivy-checks", "2")).await.unwrap();
    assert_eq!(tag, newer.manifest);
}

pub(super) fn db_at(when: &str) -> fx::Artifact {
    fx::trivy_db(&fx::DbOptions::at(when.parse().unwrap()))
}

fn db_source(label: &str, db: &fx::Artifact) -> Arc<MemorySource> {
    let src = MemorySource::new(label);
    src.add("trivy-db", "2", db);
    Arc::new(src)
}

#[tokio::test]
async fn a_blob_lost_behind_the_publishers_back_is_repaired_on_the_next_run() {
    let s = set();
    let dest = Recorder::new("mem");
    let p = plan(vec![source("upstream", &s)], &[Kind::Db]);
    sync(&p, &dests(&[&dest])).await;
    let layer = Digest::parse(&s.db.layer_digest()).unwrap();
    dest.inner.delete(&layout::blob_key("aquasecurity/trivy-db", &layer)).await.unwrap();

    let report = sync(&p, &dests(&[&dest])).await;
    let e = &report.entries[0];
    assert_eq!(e.outcome, Outcome::Repaired, "{e:?}");
    assert_eq!(e.bytes_written, s.db.layer.len() as u64, "only the lost blob is copied");
    assert_eq!(dest.get(&layout::blob_key("aquasecurity/trivy-db", &layer)).await.unwrap(), s.db.layer);
    let status = String::from_utf8(dest.get(crate::status_file::STATUS_KEY).await.unwrap().to_vec()).unwrap();
    assert!(status.contains("last_repaired"), "{status}");
    // Healthy again: the next run is a plain no-op.
    let report = sync(&p, &dests(&[&dest])).await;
    assert_eq!(report.entries[0].outcome, Outcome::Unchanged);
}

#[tokio::test]
async fn an_older_build_never_replaces_a_newer_one_unless_allowed() {
    let (older, newer, newest) =
        (db_at("2026-11-25T06:00:00Z"), db_at("2026-11-26T06:00:00Z"), db_at("2026-11-27T06:00:00Z"));
    let dest = Recorder::new("mem");
    let tag = || async { dest.get(&layout::manifest_key("aquasecurity/trivy-db", "2")).await.unwrap() };
    sync(&plan(vec![db_source("fresh", &newer)], &[Kind::Db]), &dests(&[&dest])).await;

    // A stale source alone: refused, the newer build stays, the run fails.
    let report = sync(&plan(vec![db_source("stale", &older)], &[Kind::Db]), &dests(&[&dest])).await;
    let e = &report.entries[0];
    assert_eq!(e.outcome, Outcome::Failed);
    let error = e.why().unwrap();
    assert!(error.contains("2026-11-26T06:00:00Z") && error.contains("2026-11-25T06:00:00Z"), "{error}");
    assert_eq!(e.help(), Some(&Help::AllowDowngrade));
    assert_eq!(tag().await, newer.manifest);

    // A stale first source does not block a fresh second one.
    let stale = db_source("stale", &older);
    let report = sync(&plan(vec![stale.clone(), db_source("fresh", &newest)], &[Kind::Db]), &dests(&[&dest])).await;
    let e = &report.entries[0];
    assert_eq!((e.outcome.clone(), e.source.as_deref()), (Outcome::Written, Some("fresh")), "{e:?}");
    assert_eq!(stale.blob_requests.load(Ordering::SeqCst), 0, "nothing is copied from the stale source");
    assert_eq!(tag().await, newest.manifest);

    // A deliberate rollback.
    let mut p = plan(vec![db_source("stale", &older)], &[Kind::Db]);
    p.allow_downgrade = true;
    assert_eq!(sync(&p, &dests(&[&dest])).await.entries[0].outcome, Outcome::Written);
    assert_eq!(tag().await, older.manifest);
}

#[tokio::test]
async fn an_unreachable_source_is_asked_once_and_the_error_is_one_line_with_a_hint() {
    let s = set();
    let down = source("mirror.example/aquasec", &s);
    down.set_unreachable();
    let also_down = source("ghcr.example/aquasecurity", &s);
    also_down.set_unreachable();
    let dest = Recorder::new("mem");
    let report = sync(&plan(vec![down.clone(), also_down.clone()], &OCI_KINDS), &dests(&[&dest])).await;

    assert_eq!(report.entries.len(), 4);
    assert_eq!(down.manifest_requests.load(Ordering::SeqCst), 1, "not asked again after it failed for good");
    assert_eq!(also_down.manifest_requests.load(Ordering::SeqCst), 1);
    for e in &report.entries {
        assert_eq!(e.outcome, Outcome::Failed);
        assert_eq!(
            e.why().as_deref(),
            Some(
                "no source could provide it: mirror.example/aquasec (DNS lookup failed), \
                 ghcr.example/aquasecurity (DNS lookup failed)"
            )
        );
        assert_eq!(e.help(), Some(&Help::Offline));
    }
}

#[tokio::test]
async fn recheck_finds_a_flipped_byte_that_keeps_the_size_and_repairs_it() {
    let s = set();
    let dest = Recorder::new("mem");
    let mut p = plan(vec![source("upstream", &s)], &[Kind::Checks]);
    sync(&p, &dests(&[&dest])).await;
    let repo = "aquasecurity/trivy-checks";
    let layer = Digest::parse(&s.checks2.layer_digest()).unwrap();
    let mut flipped = s.checks2.layer.clone();
    flipped[10] ^= 0x20;
    dest.inner
        .put_file(&layout::blob_key(repo, &layer), Bytes::from(flipped), layout::ObjectClass::Blob)
        .await
        .unwrap();
    // And the manifest stored by digest is gone.
    dest.inner.delete(&layout::manifest_key(repo, &s.checks1.manifest_digest())).await.unwrap();

    // The size-only health check cannot see a flipped byte (by design)…
    let report = sync(&p, &dests(&[&dest])).await;
    assert_eq!(report.entries[1].outcome, Outcome::Unchanged);
    // …a recheck does, and repairs both.
    p.recheck = true;
    let report = sync(&p, &dests(&[&dest])).await;
    let outcomes: Vec<_> = report.entries.iter().map(|e| e.outcome.clone()).collect();
    assert_eq!(outcomes, [Outcome::Repaired, Outcome::Repaired], "{:?}", report.entries);
    assert_eq!(dest.get(&layout::blob_key(repo, &layer)).await.unwrap(), s.checks2.layer);
    assert_eq!(dest.get(&layout::manifest_key(repo, &s.checks1.manifest_digest())).await.unwrap(), s.checks1.manifest);
    let report = sync(&p, &dests(&[&dest])).await;
    assert!(report.entries.iter().all(|e| e.outcome == Outcome::Unchanged), "{:?}", report.entries);
}

/// Export into a tar bundle, import it again: the same bytes arrive, and a rerun from the
/// same bundle is a no-op.
#[tokio::test]
async fn a_bundle_round_trips_and_a_damaged_blob_fails_only_its_artifact() {
    let s = set();
    let work = tempfile::tempdir().unwrap();
    let tar = work.path().join("bundle.tar");
    let bundle: Arc<dyn Destination> =
        Arc::new(crate::dest::bundle::BundleDestination::open("oci-archive:bundle.tar", &tar, true).unwrap());
    let report = sync(&plan(vec![source("upstream", &s)], &OCI_KINDS), std::slice::from_ref(&bundle)).await;
    assert!(report.success(), "{:?}", outcomes(&report));
    drop(bundle);
    assert!(tar.is_file(), "the tar is renamed into place when complete");

    let import = |path: &std::path::Path| {
        let src: Arc<dyn Source> = Arc::new(crate::source::BundleSource::open(path, true).unwrap());
        let mut p = plan(Vec::new(), &OCI_KINDS);
        p.sources = vec![src];
        p
    };
    let dest = Recorder::new("mem");
    let report = sync(&import(&tar), &dests(&[&dest])).await;
    assert!(report.entries.iter().all(|e| e.outcome == Outcome::Written), "{:?}", outcomes(&report));
    for (repo, tag, fixture) in [("aquasecurity/trivy-db", "2", &s.db), ("aquasecurity/trivy-checks", "2", &s.checks2)]
    {
        assert_eq!(dest.get(&layout::manifest_key(repo, tag)).await.unwrap(), fixture.manifest);
    }
    let again = sync(&import(&tar), &dests(&[&dest])).await;
    assert!(again.entries.iter().all(|e| e.outcome == Outcome::Unchanged), "{:?}", outcomes(&again));

    // One flipped byte in the java DB layer, found through the tar's own index.
    let members = {
        let f = std::fs::File::open(&tar).unwrap();
        let len = f.metadata().unwrap().len();
        crate::bundle::tar::scan(f, len, "t").unwrap()
    };
    let layer = Digest::parse(&s.java.layer_digest()).unwrap();
    let m = members[&crate::bundle::blob_path(&layer)];
    let mut bytes = std::fs::read(&tar).unwrap();
    bytes[(m.offset + m.size / 2) as usize] ^= 1;
    let damaged = work.path().join("damaged.tar");
    std::fs::write(&damaged, bytes).unwrap();
    let fresh = Recorder::new("fresh");
    let report = sync(&import(&damaged), &dests(&[&fresh])).await;
    let java = report.entries.iter().find(|e| e.artifact == "trivy-java-db:1").unwrap();
    assert_eq!(java.outcome, Outcome::Failed);
    assert!(java.why().unwrap_or_default().contains("damaged.tar"), "{:?}", java.error);
    assert!(fresh.get(&layout::manifest_key("aquasecurity/trivy-java-db", "1")).await.is_none());
    assert!(fresh.get(&layout::blob_key("aquasecurity/trivy-java-db", &layer)).await.is_none(), "nothing of it");
    assert!(fresh.get(&layout::manifest_key("aquasecurity/trivy-db", "2")).await.is_some(), "the others land");
}

/// A source whose layer fetches wait until three are in flight at once: a sequential
/// engine never gets past the first.
#[derive(Debug)]
struct Gate {
    inner: Arc<MemorySource>,
    barrier: tokio::sync::Barrier,
}

#[async_trait]
impl Source for Gate {
    fn label(&self) -> &str {
        self.inner.label()
    }
    async fn manifest(
        &self,
        artifact: &OciArtifact,
        reference: &str,
    ) -> crate::Result<Option<crate::source::RawManifest>> {
        self.inner.manifest(artifact, reference).await
    }
    async fn blob(&self, artifact: &OciArtifact, desc: &Descriptor) -> crate::Result<crate::source::RawBlob> {
        // trivy-checks:2 follows :1 (same repository), so it is not held.
        let second_checks = artifact.name == "trivy-checks" && artifact.tag == "2";
        if desc.media_type == artifact.layer_media_type && !second_checks {
            self.barrier.wait().await;
        }
        self.inner.blob(artifact, desc).await
    }
}

#[tokio::test]
async fn three_artifacts_in_flight_into_two_destinations_one_failing() {
    let s = set();
    // trivy-db, trivy-java-db and trivy-checks:1 reach their layer at the same time.
    let gate = Arc::new(Gate { inner: source("upstream", &s), barrier: tokio::sync::Barrier::new(3) });
    let mut p = plan(Vec::new(), &OCI_KINDS);
    p.sources = vec![gate];
    let good = Recorder::new("good");
    let bad = Recorder::new("bad");
    *bad.refuse_blobs.lock().unwrap() = usize::MAX;
    let report = tokio::time::timeout(Duration::from_secs(20), sync(&p, &dests(&[&good, &bad])))
        .await
        .expect("the three layers were not fetched at the same time");

    // The summary keeps the fixed order whatever finished first.
    let want: Vec<(String, String, Outcome)> = ["trivy-db:2", "trivy-java-db:1", "trivy-checks:1", "trivy-checks:2"]
        .iter()
        .flat_map(|a| {
            [(a.to_string(), "good".into(), Outcome::Written), (a.to_string(), "bad".into(), Outcome::Failed)]
        })
        .collect();
    assert_eq!(outcomes(&report)[..8], want[..]);
    // On the good destination each artifact still published blobs, then manifest, then tag.
    let calls = good.calls();
    for (repo, f) in [("aquasecurity/trivy-db", &s.db), ("aquasecurity/trivy-java-db", &s.java)] {
        let at = |c: &Call| calls.iter().position(|x| x == c).unwrap_or_else(|| panic!("{c:?} missing: {calls:?}"));
        let layer = at(&Call::Blob(format!("{repo}@{}", f.layer_digest())));
        let manifest = at(&Call::Manifest(format!("{repo}@{}", f.manifest_digest()), vec![f_tag(repo).into()]));
        assert!(layer < manifest, "{repo}: manifest before its layer: {calls:?}");
    }
    assert!(bad.calls().iter().all(|c| !matches!(c, Call::Manifest(..))), "the failing destination got a manifest");
}

fn f_tag(repo: &str) -> &'static str {
    if repo.ends_with("trivy-db") { "2" } else { "1" }
}

/// The VEX artifact as the VEX Hub source builds it: the fixture repository released at
/// `when` (its index.json `updated_at`, the build time), one tar.gz archive.
struct Vex {
    manifest: Bytes,
    config: Bytes,
    archive: Bytes,
}

fn vex_at(when: &str) -> Vex {
    use crate::vex::artifact::{VEX_MANIFEST_TYPE, VEX_TAR_GZ_TYPE, build_manifest, descriptor};
    let updated_at: jiff::Timestamp = when.parse().unwrap();
    let archive = Bytes::from(fx::vex_repository(&fx::VexOptions { updated_at, ..Default::default() }).tar_gz);
    let location =
        format!("https://github.com/aquasecurity/vexhub/archive/refs/heads/main.tar.gz//{}", fx::VEX_TOP_DIR);
    let config = Bytes::from(fx::vex_manifest(&[&location]));
    let layers = [(descriptor(VEX_TAR_GZ_TYPE, &archive), "main.tar.gz".to_string())];
    let manifest = build_manifest(&descriptor(VEX_MANIFEST_TYPE, &config), &layers, Some(updated_at));
    Vex { manifest, config, archive }
}

fn vex_source(label: &str, vex: &Vex) -> Arc<MemorySource> {
    let src = MemorySource::new(label);
    src.add_raw("vexhub", "latest", vex.manifest.clone(), &[vex.config.clone(), vex.archive.clone()]);
    Arc::new(src)
}

const VEX_REPO: &str = "aquasecurity/vexhub";
const VEX_MANIFEST_KEY: &str = ".well-known/vex-repository.json";

#[tokio::test]
async fn vex_publishes_its_archive_then_the_rewritten_manifest_then_the_tag() {
    let vex = vex_at("2026-11-26T06:00:00Z");
    let src = vex_source("vexhub", &vex);
    let dest = Recorder::new("mem");
    let p = plan(vec![src.clone()], &[Kind::Vex]);
    let report = sync(&p, &dests(&[&dest])).await;
    assert_eq!(outcomes(&report), [("vex".to_string(), "mem".to_string(), Outcome::Written)]);
    assert_eq!(report.entries[0].digest.as_deref(), Some(Digest::of(&vex.manifest).as_str()));
    assert_eq!(report.entries[0].updated_at, Some("2026-11-26T06:00:00Z".parse().unwrap()));

    // The archive byte for byte under its fixed name, and the manifest pointing there.
    assert_eq!(dest.get("main.tar.gz").await.unwrap(), vex.archive);
    let published: serde_json::Value = serde_json::from_slice(&dest.get(VEX_MANIFEST_KEY).await.unwrap()).unwrap();
    assert_eq!(published["versions"][0]["locations"][0]["url"], format!("{MIRROR_URL}/main.tar.gz//vexhub-main"));
    assert_eq!(dest.get(&layout::manifest_key(VEX_REPO, "latest")).await.unwrap(), vex.manifest);
    // Archive, then the repository manifest Trivy caches forever, then the tag that makes
    // the next run call it unchanged.
    let archive_at = dest.written_at("main.tar.gz").await;
    let manifest_at = dest.written_at(VEX_MANIFEST_KEY).await;
    let tag_at = dest.written_at(&layout::manifest_key(VEX_REPO, "latest")).await;
    assert!(archive_at < manifest_at && manifest_at < tag_at, "publish order");
    let status: serde_json::Value =
        serde_json::from_slice(&dest.get(crate::status_file::STATUS_KEY).await.unwrap()).unwrap();
    assert!(status["artifacts"]["vex"].is_object(), "{status}");

    // Unchanged: nothing read from the source beyond the manifest, nothing written, so
    // the files keep their ETags.
    let (blobs, keys) = (src.blob_requests.load(Ordering::SeqCst), dest.keys().await);
    let archive_before = dest.written_at("main.tar.gz").await;
    let again = sync(&p, &dests(&[&dest])).await;
    assert_eq!(outcomes(&again), [("vex".to_string(), "mem".to_string(), Outcome::Unchanged)]);
    assert_eq!(src.blob_requests.load(Ordering::SeqCst), blobs);
    assert_eq!(dest.keys().await, keys);
    assert!(dest.written_at("main.tar.gz").await == archive_before, "the archive is not rewritten");
}

#[tokio::test]
async fn a_vex_archive_cut_or_corrupted_at_the_source_is_retried_or_taken_from_the_next() {
    let vex = vex_at("2026-11-26T06:00:00Z");
    let archive = Digest::of(&vex.archive).to_string();
    // Cut once mid-archive: the transfer is retried and the archive lands whole.
    let cut = vex_source("cut", &vex);
    cut.fault(&archive, Fault::CutAfter(vex.archive.len() / 2), 1);
    let dest = Recorder::new("mem");
    let report = sync(&plan(vec![cut], &[Kind::Vex]), &dests(&[&dest])).await;
    assert_eq!(report.entries[0].outcome, Outcome::Written, "{:?}", report.entries);
    assert_eq!(dest.get("main.tar.gz").await.unwrap(), vex.archive);

    // A flipped byte every time: refused before anything is published, the next source serves.
    let flipped = vex_source("flipped", &vex);
    flipped.fault(&archive, Fault::Flip, usize::MAX);
    let fresh = Recorder::new("fresh");
    let report = sync(&plan(vec![flipped.clone()], &[Kind::Vex]), &dests(&[&fresh])).await;
    assert_eq!(report.entries[0].outcome, Outcome::Failed);
    assert!(fresh.get("main.tar.gz").await.is_none() && fresh.get(VEX_MANIFEST_KEY).await.is_none());
    let report = sync(&plan(vec![flipped, vex_source("good", &vex)], &[Kind::Vex]), &dests(&[&fresh])).await;
    assert_eq!(report.entries[0].source.as_deref(), Some("good"));
    assert_eq!(fresh.get("main.tar.gz").await.unwrap(), vex.archive);
}

#[tokio::test]
async fn lost_vex_blobs_are_repaired_and_lost_files_by_a_recheck() {
    let vex = vex_at("2026-11-26T06:00:00Z");
    let mut p = plan(vec![vex_source("vexhub", &vex)], &[Kind::Vex]);
    let dest = Recorder::new("mem");
    sync(&p, &dests(&[&dest])).await;
    let manifest = dest.get(VEX_MANIFEST_KEY).await.unwrap();

    // The archive's blob lost: repaired by the everyday health check.
    let blob = layout::blob_key(VEX_REPO, &Digest::of(&vex.archive));
    dest.delete(&blob).await;
    let report = sync(&p, &dests(&[&dest])).await;
    assert_eq!(report.entries[0].outcome, Outcome::Repaired, "{:?}", report.entries);
    assert_eq!(dest.get(&blob).await.unwrap(), vex.archive);

    // The published files lost: `--recheck` publishes them again, copying no blob.
    dest.delete(VEX_MANIFEST_KEY).await;
    dest.delete("main.tar.gz").await;
    p.recheck = true;
    let report = sync(&p, &dests(&[&dest])).await;
    assert_eq!(report.entries[0].outcome, Outcome::Repaired, "{:?}", report.entries);
    assert_eq!(report.entries[0].bytes_written, 0, "the blobs were there: none is copied");
    assert_eq!(dest.get(VEX_MANIFEST_KEY).await.unwrap(), manifest);
    assert_eq!(dest.get("main.tar.gz").await.unwrap(), vex.archive);
    let again = sync(&p, &dests(&[&dest])).await;
    assert_eq!(again.entries[0].outcome, Outcome::Unchanged, "{:?}", again.entries);
}

#[tokio::test]
async fn a_plain_sync_publishes_lost_or_moved_vex_files_again() {
    let vex = vex_at("2026-11-26T06:00:00Z");
    let src = vex_source("vexhub", &vex);
    let p = plan(vec![src.clone()], &[Kind::Vex]);
    let store = Arc::new(InMemory::new());
    let dest = Recorder::publishing("mem", store.clone(), MIRROR_URL, "");
    sync(&p, &dests(&[&dest])).await;
    let manifest = dest.get(VEX_MANIFEST_KEY).await.unwrap();
    let blobs = src.blob_requests.load(Ordering::SeqCst);

    // Each file lost behind the publisher's back: repaired by the next plain sync, with
    // no blob copied (they are all there) and nothing read from the source.
    for lost in [VEX_MANIFEST_KEY, "main.tar.gz"] {
        dest.delete(lost).await;
        let report = sync(&p, &dests(&[&dest])).await;
        assert_eq!(report.entries[0].outcome, Outcome::Repaired, "{lost}: {:?}", report.entries);
        assert_eq!(report.entries[0].bytes_written, 0, "{lost}");
        assert_eq!(dest.get(VEX_MANIFEST_KEY).await.unwrap(), manifest, "{lost}");
        assert_eq!(dest.get("main.tar.gz").await.unwrap(), vex.archive, "{lost}");
    }
    assert_eq!(src.blob_requests.load(Ordering::SeqCst), blobs);

    // A changed --base-url, then a changed --vex-prefix: published for the new URL.
    let moved = Recorder::publishing("mem", store.clone(), "https://cdn.example.com/mirror", "");
    let report = sync(&p, &dests(&[&moved])).await;
    assert_eq!(report.entries[0].outcome, Outcome::Repaired, "{:?}", report.entries);
    let published: serde_json::Value = serde_json::from_slice(&moved.get(VEX_MANIFEST_KEY).await.unwrap()).unwrap();
    let url = &published["versions"][0]["locations"][0]["url"];
    assert_eq!(url, "https://cdn.example.com/mirror/main.tar.gz//vexhub-main");
    let prefixed = Recorder::publishing("mem", store, "https://cdn.example.com/mirror", "vex");
    let report = sync(&p, &dests(&[&prefixed])).await;
    assert_eq!(report.entries[0].outcome, Outcome::Repaired, "{:?}", report.entries);
    assert_eq!(prefixed.get("vex/main.tar.gz").await.unwrap(), vex.archive);
    let published = prefixed.get(&format!("vex/{VEX_MANIFEST_KEY}")).await.unwrap();
    assert!(String::from_utf8_lossy(&published).contains("https://cdn.example.com/mirror/vex/main.tar.gz"));

    // Settled: the next run is unchanged again.
    let again = sync(&p, &dests(&[&prefixed])).await;
    assert_eq!(again.entries[0].outcome, Outcome::Unchanged, "{:?}", again.entries);
}

#[tokio::test]
async fn an_older_vex_release_never_replaces_a_newer_one_unless_allowed() {
    let newer = vex_at("2026-11-26T06:00:00Z");
    let older = vex_at("2026-11-20T06:00:00Z");
    let dest = Recorder::new("mem");
    sync(&plan(vec![vex_source("fresh", &newer)], &[Kind::Vex]), &dests(&[&dest])).await;

    let mut p = plan(vec![vex_source("stale", &older)], &[Kind::Vex]);
    let report = sync(&p, &dests(&[&dest])).await;
    assert_eq!(report.entries[0].outcome, Outcome::Failed);
    assert_eq!(report.entries[0].help(), Some(&Help::AllowDowngrade));
    assert_eq!(dest.get("main.tar.gz").await.unwrap(), newer.archive, "the newer archive stays");

    p.allow_downgrade = true;
    let report = sync(&p, &dests(&[&dest])).await;
    assert_eq!(report.entries[0].outcome, Outcome::Written);
    assert_eq!(dest.get("main.tar.gz").await.unwrap(), older.archive);
}

#[tokio::test]
async fn vex_goes_into_a_bundle_as_is_and_from_there_into_trivys_cache() {
    let vex = vex_at("2026-11-26T06:00:00Z");
    let work = tempfile::tempdir().unwrap();
    let layout_dir = work.path().join("layout");
    let bundle: Arc<dyn Destination> =
        Arc::new(crate::dest::bundle::BundleDestination::open("oci:layout", &layout_dir, false).unwrap());
    let report = sync(&plan(vec![vex_source("vexhub", &vex)], &[Kind::Vex]), std::slice::from_ref(&bundle)).await;
    assert!(report.success(), "{:?}", outcomes(&report));
    assert_eq!(bundle.manifest(VEX_REPO, "latest").await.unwrap().unwrap(), vex.manifest, "stored as is");

    let from_bundle: Arc<dyn Source> = Arc::new(crate::source::BundleSource::open(&layout_dir, false).unwrap());
    let mut p = plan(Vec::new(), &[Kind::Vex]);
    p.vex_sources = vec![from_bundle];
    let cache_dir = work.path().join("cache");
    let cache: Arc<dyn Destination> =
        Arc::new(crate::dest::trivy_cache::TrivyCache::open("trivy-cache:cache", &cache_dir, "2").unwrap());
    let report = sync(&p, std::slice::from_ref(&cache)).await;
    assert_eq!(outcomes(&report), [("vex".to_string(), "trivy-cache:cache".to_string(), Outcome::Written)]);
    let repo = cache_dir.join("vex/repositories/default");
    assert!(repo.join("0.1/index.json").is_file(), "the archive's subdir is unpacked");
    assert_eq!(std::fs::read(repo.join("vex-repository.json")).unwrap(), vex.config);
    let again = sync(&p, std::slice::from_ref(&cache)).await;
    assert_eq!(again.entries[0].outcome, Outcome::Unchanged);
}

/// A database registry that denies a repository it does not hold, as ghcr.io answers
/// (401), and holds back its blobs until the VEX artifact was asked of the next source:
/// by then the engine has judged the denial.
#[derive(Debug)]
struct DeniesVex {
    inner: Arc<MemorySource>,
    vex_asked: Arc<tokio::sync::Semaphore>,
}

#[async_trait]
impl Source for DeniesVex {
    fn label(&self) -> &str {
        self.inner.label()
    }
    async fn manifest(
        &self,
        artifact: &OciArtifact,
        reference: &str,
    ) -> crate::Result<Option<crate::source::RawManifest>> {
        if artifact.kind == Kind::Vex {
            let url = format!("https://{}/v2/aquasecurity/vexhub/manifests/latest", self.label());
            let (codes, retry_after, help) = ("UNAUTHORIZED".to_string(), None, None);
            return Err(Error::Http { method: "GET", url, status: 401, codes, retry_after, help });
        }
        self.inner.manifest(artifact, reference).await
    }
    async fn blob(&self, artifact: &OciArtifact, desc: &Descriptor) -> crate::Result<crate::source::RawBlob> {
        drop(self.vex_asked.acquire().await.unwrap());
        self.inner.blob(artifact, desc).await
    }
}

/// The VEX artifact's good source, which lets the databases' blobs go once asked.
#[derive(Debug)]
struct Releases {
    inner: Arc<MemorySource>,
    vex_asked: Arc<tokio::sync::Semaphore>,
}

#[async_trait]
impl Source for Releases {
    fn label(&self) -> &str {
        self.inner.label()
    }
    async fn manifest(
        &self,
        artifact: &OciArtifact,
        reference: &str,
    ) -> crate::Result<Option<crate::source::RawManifest>> {
        self.vex_asked.add_permits(tokio::sync::Semaphore::MAX_PERMITS / 2);
        self.inner.manifest(artifact, reference).await
    }
    async fn blob(&self, artifact: &OciArtifact, desc: &Descriptor) -> crate::Result<crate::source::RawBlob> {
        self.inner.blob(artifact, desc).await
    }
}

#[tokio::test]
async fn a_registry_denying_the_vex_repository_still_serves_the_databases_of_the_run() {
    let s = set();
    let vex = vex_at("2026-11-26T06:00:00Z");
    let vex_asked = Arc::new(tokio::sync::Semaphore::new(0));
    let registry: Arc<dyn Source> =
        Arc::new(DeniesVex { inner: source("ghcr.example", &s), vex_asked: vex_asked.clone() });
    let hub: Arc<dyn Source> = Arc::new(Releases { inner: vex_source("vexhub", &vex), vex_asked });
    let mut p = plan(Vec::new(), &[Kind::Checks, Kind::Vex]);
    p.sources = vec![registry.clone()];
    p.vex_sources = vec![registry, hub];
    p.concurrency = 2;
    let dest = Recorder::new("mem");
    let report = sync(&p, &dests(&[&dest])).await;
    let got: Vec<_> =
        report.entries.iter().map(|e| (e.artifact.as_str(), e.outcome.clone(), e.source.as_deref())).collect();
    assert_eq!(
        got,
        [
            ("trivy-checks:1", Outcome::Written, Some("ghcr.example")),
            ("trivy-checks:2", Outcome::Written, Some("ghcr.example")),
            ("vex", Outcome::Written, Some("vexhub")),
        ]
    );
}

/// A source whose trivy-db layer never arrives: a transfer still in flight at the deadline.
#[derive(Debug)]
struct Hangs(Arc<MemorySource>);

#[async_trait]
impl Source for Hangs {
    fn label(&self) -> &str {
        self.0.label()
    }
    async fn manifest(
        &self,
        artifact: &OciArtifact,
        reference: &str,
    ) -> crate::Result<Option<crate::source::RawManifest>> {
        self.0.manifest(artifact, reference).await
    }
    async fn blob(&self, artifact: &OciArtifact, desc: &Descriptor) -> crate::Result<crate::source::RawBlob> {
        if artifact.kind == Kind::Db && desc.media_type == artifact.layer_media_type {
            std::future::pending::<()>().await;
        }
        self.0.blob(artifact, desc).await
    }
}

#[tokio::test]
async fn at_the_deadline_nothing_starts_the_transfer_in_flight_stops_and_the_run_reports() {
    let s = set();
    let mut p = plan(Vec::new(), &OCI_KINDS);
    p.sources = vec![Arc::new(Hangs(source("upstream", &s))) as Arc<dyn Source>];
    p.concurrency = 1;
    let dest = Recorder::new("mem");
    // The only wait is the deadline under test: the hanging transfer ends there.
    let deadline = tokio::time::Instant::now() + Duration::from_millis(200);
    let report = sync_until(&p, &dests(&[&dest]), Some(deadline)).await;

    let errors: Vec<_> = report.entries.iter().map(|e| (e.outcome.clone(), e.why().unwrap_or_default())).collect();
    assert_eq!(errors.len(), 4, "{errors:?}");
    assert!(errors.iter().all(|(o, _)| *o == Outcome::Failed), "{errors:?}");
    assert!(errors[0].1.contains("stopped at the run's deadline"), "{errors:?}");
    assert!(errors[1..].iter().all(|(_, e)| e.contains("not started")), "{errors:?}");
    assert_eq!(report.hints(), [&Help::AllowMoreTime]);
    assert!(
        dest.get(&layout::manifest_key("aquasecurity/trivy-db", "2")).await.is_none(),
        "no tag of an unfinished copy"
    );
    let status: serde_json::Value =
        serde_json::from_slice(&dest.get(crate::status_file::STATUS_KEY).await.unwrap()).unwrap();
    assert!(status["artifacts"]["trivy-db:2"]["last_error"].is_string(), "the run still reports: {status}");

    // The next run, with time to spare, finishes the job.
    let far = tokio::time::Instant::now() + Duration::from_secs(3600);
    let report = sync_until(&plan(vec![source("upstream", &s)], &OCI_KINDS), &dests(&[&dest]), Some(far)).await;
    assert!(report.entries.iter().all(|e| e.outcome == Outcome::Written), "{:?}", report.entries);
}
