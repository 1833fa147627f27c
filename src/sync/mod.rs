//! The copy engine: for each artifact, find a source that serves a valid manifest, work
//! out which destinations lack it, stream each missing blob once from the source into
//! all of them, then publish the manifest by digest and the tag.
//!
//! Order is what keeps readers safe: blobs, then manifest by digest, then the tag, then
//! tags/list, then (once per run) the `/v2/` ping and `status.json`. A run killed at any
//! point leaves the previous tag pointing at complete content. A destination whose tag
//! already resolves to the upstream digest costs one small GET (plus the run's single
//! `status.json` update).
//!
//! Sources are tried in order; any failure on the source side (unreachable, 404, 429,
//! 5xx, corrupt content) moves on to the next. A failure on one destination does not
//! stop the others; transient upload failures are retried.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Instant;

use futures_util::future::join_all;
use jiff::Timestamp;

use crate::artifact::{Kind, OCI_ARTIFACTS, OciArtifact};
use crate::db_metadata::DbMetadata;
use crate::dest::Destination;
use crate::error::{Error, Help, Result};
use crate::manifest::CheckedManifest;
use crate::oci::{Descriptor, join_repository};
use crate::source::{Source, checked_manifest, verified_blob};
use crate::stream::{Upload, fan_out_with};
use crate::summary::{Entry, Outcome, Report};

/// Attempts at one blob transfer before the source is given up on.
const BLOB_ATTEMPTS: u32 = 3;

/// What to mirror, from where, under which names.
#[derive(Debug)]
pub struct SyncPlan {
    /// Where artifacts come from, tried in order.
    pub sources: Vec<Arc<dyn Source>>,
    /// Published namespace (`aquasecurity` → `aquasecurity/trivy-db`).
    pub namespace: String,
    /// Which kinds to mirror.
    pub only: BTreeSet<Kind>,
    /// VEX mirroring settings, when VEX is selected.
    pub vex: Option<crate::vex::VexPlan>,
    /// Also publish each new version under a dated, immutable tag (`2-20261126T0600Z`).
    pub snapshot_tags: bool,
    /// Backoff between attempts at a whole blob transfer.
    pub retry: crate::http::RetryPolicy,
    /// Where transfer progress goes.
    pub progress: Arc<dyn crate::progress::Progress>,
}

impl SyncPlan {
    /// The published repository of an artifact.
    pub fn repository(&self, artifact: &OciArtifact) -> String {
        join_repository(&self.namespace, artifact.name)
    }
}

/// The dated tag of a version: `<tag>-YYYYMMDDTHHMMZ` of its build time.
pub fn snapshot_tag(tag: &str, at: Timestamp) -> String {
    format!("{tag}-{}", at.strftime("%Y%m%dT%H%MZ"))
}

/// Run a whole sync into every destination.
pub async fn sync(plan: &SyncPlan, destinations: &[Arc<dyn Destination>]) -> Report {
    let mut report = Report::default();
    for artifact in OCI_ARTIFACTS.iter().filter(|a| plan.only.contains(&a.kind)) {
        report.entries.extend(sync_artifact(plan, artifact, destinations).await);
    }
    if plan.only.contains(&Kind::Vex)
        && let Some(vex) = &plan.vex
    {
        report.entries.extend(crate::vex::sync(vex, destinations).await);
    }
    let now = Timestamp::now();
    for dest in destinations {
        let mine: Vec<&Entry> = report.entries.iter().filter(|e| e.destination == dest.name()).collect();
        let mut extra = Vec::new();
        if mine.iter().any(|e| e.outcome == Outcome::Written)
            && let Err(e) = dest.finish().await
        {
            extra.push(failed("/v2/ ping", dest.name(), Instant::now(), &e));
        }
        if let Some(files) = dest.files()
            && let Err(e) = crate::status_file::update(files, &mine, now).await
        {
            extra.push(failed("status.json", dest.name(), Instant::now(), &e));
        }
        report.entries.extend(extra);
    }
    report
}

fn failed(artifact: &str, destination: &str, start: Instant, error: &Error) -> Entry {
    failed_with(artifact, destination, start, error.to_string(), error.help().cloned())
}

fn failed_with(artifact: &str, destination: &str, start: Instant, error: String, help: Option<Help>) -> Entry {
    tracing::error!(artifact, destination, %error, "failed");
    let mut e = Entry::new(artifact, destination, Outcome::Failed);
    e.seconds = start.elapsed().as_secs_f64();
    e.error = Some(error);
    e.help = help;
    e
}

/// Mirror one artifact into every destination.
async fn sync_artifact(plan: &SyncPlan, artifact: &OciArtifact, dests: &[Arc<dyn Destination>]) -> Vec<Entry> {
    let start = Instant::now();
    let label = artifact.label();
    let mut source_errors = Vec::new();
    let mut help = None;
    for source in &plan.sources {
        match try_source(plan, artifact, source.as_ref(), dests, start).await {
            Ok(entries) => return entries,
            Err(e) => {
                tracing::warn!(artifact = %label, source = source.label(), error = %e, "source failed, trying the next");
                source_errors.push(format!("{}: {e}", source.label()));
                help = help.or_else(|| e.help().cloned());
            }
        }
    }
    let why = if source_errors.is_empty() { "no source configured".to_string() } else { source_errors.join("; ") };
    let why = format!("no source could provide it: {why}");
    dests.iter().map(|d| failed_with(&label, d.name(), start, why.clone(), help.clone())).collect()
}

/// Per-destination progress within one artifact.
struct Pending {
    dest: Arc<dyn Destination>,
    bytes: u64,
    skipped: u32,
    error: Option<Error>,
}

/// Try one source. `Err` means the source failed and the next should be tried;
/// destination failures are reported in the entries instead.
async fn try_source(
    plan: &SyncPlan,
    artifact: &OciArtifact,
    source: &dyn Source,
    dests: &[Arc<dyn Destination>],
    start: Instant,
) -> Result<Vec<Entry>> {
    let label = artifact.label();
    let manifest = checked_manifest(source, artifact).await?;
    let repo = plan.repository(artifact);
    let entry = |dest: &str, outcome: Outcome| {
        let mut e = Entry::new(&label, dest, outcome);
        e.source = Some(source.label().to_string());
        e.digest = Some(manifest.digest.to_string());
        e.repository = Some(repo.clone());
        e.size = Some(manifest.layer.size);
        e.seconds = start.elapsed().as_secs_f64();
        e
    };

    let mut entries = Vec::new();
    let mut pending = Vec::new();
    let current = join_all(dests.iter().map(|d| d.tag_digest(&repo, artifact.tag))).await;
    for (dest, current) in dests.iter().zip(current) {
        match current {
            Ok(Some(d)) if d == manifest.digest => {
                tracing::info!(artifact = %label, destination = dest.name(), digest = %d, "unchanged");
                entries.push(entry(dest.name(), Outcome::Unchanged));
            }
            Ok(_) => pending.push(Pending { dest: dest.clone(), bytes: 0, skipped: 0, error: None }),
            Err(e) => {
                let mut f = entry(dest.name(), Outcome::Failed);
                f.error = Some(e.to_string());
                f.help = e.help().cloned();
                entries.push(f);
            }
        }
    }
    if pending.is_empty() {
        return Ok(entries);
    }

    // Read the database's metadata.json while its layer streams past (status, snapshots),
    // best effort: the reader inflates the layer and is cut off rather than allowed to
    // slow the copy, in which case the manifest's `created` annotation stands in.
    let inspect = matches!(artifact.kind, Kind::Db | Kind::JavaDb);
    let mut metadata = None;
    for blob in manifest.blobs() {
        let m =
            copy_blob(plan, source, artifact, &repo, blob, &mut pending, inspect && blob == &manifest.layer).await?;
        metadata = metadata.or(m);
    }
    let mut tags = vec![artifact.tag.to_string()];
    let snapshot = plan.snapshot_tags.then(|| {
        let at = metadata.as_ref().and_then(|m| m.updated_at).or(manifest.created).unwrap_or_else(Timestamp::now);
        snapshot_tag(artifact.tag, at)
    });
    tags.extend(snapshot.clone());
    publish_manifests(&repo, &manifest, &tags, &mut pending).await;
    for p in pending {
        let mut e = entry(p.dest.name(), if p.error.is_some() { Outcome::Failed } else { Outcome::Written });
        if let Some(err) = &p.error {
            tracing::error!(artifact = %label, destination = p.dest.name(), error = %err, "failed");
        } else {
            tracing::info!(artifact = %label, destination = p.dest.name(), digest = %manifest.digest, bytes = p.bytes, "published");
            e.snapshot_tag = snapshot.clone();
        }
        e.bytes_written = p.bytes;
        e.blobs_skipped = p.skipped;
        e.help = p.error.as_ref().and_then(|e| e.help().cloned());
        e.error = p.error.map(|e| e.to_string());
        e.updated_at = metadata.as_ref().and_then(|m| m.updated_at).or(manifest.created);
        e.next_update = metadata.as_ref().and_then(|m| m.next_update);
        entries.push(e);
    }
    Ok(entries)
}

/// Copy one blob into every pending destination that lacks it, reading the source once.
/// With `inspect`, also read the database's `metadata.json` from the stream.
async fn copy_blob(
    plan: &SyncPlan,
    source: &dyn Source,
    artifact: &OciArtifact,
    repo: &str,
    blob: &Descriptor,
    pending: &mut [Pending],
    inspect: bool,
) -> Result<Option<DbMetadata>> {
    let live: Vec<usize> = (0..pending.len()).filter(|&i| pending[i].error.is_none()).collect();
    let present = join_all(live.iter().map(|&i| pending[i].dest.has_blob(repo, blob))).await;
    let mut need = Vec::new();
    for (&i, present) in live.iter().zip(present) {
        match present {
            Ok(true) => pending[i].skipped += 1,
            Ok(false) => need.push(i),
            Err(e) => pending[i].error = Some(e),
        }
    }
    let mut metadata = None;
    let mut attempt = 0;
    // Destinations that already asked for the blob again after changing upload mode: a
    // second such answer for the same blob is an error, not a loop.
    let mut resent = BTreeSet::new();
    while !need.is_empty() {
        attempt += 1;
        let body = match verified_blob(source, artifact, blob).await {
            Ok(b) => b,
            Err(e) if e.is_transient() && attempt < BLOB_ATTEMPTS => {
                backoff(&plan.retry, attempt, &e).await;
                continue;
            }
            Err(e) => return Err(e),
        };
        let label = format!("{artifact} {}", &blob.digest.hex()[..12]);
        let body = crate::progress::track(body, plan.progress.start(&label, blob.size));
        let inspectors = usize::from(inspect);
        let (mut branches, driver) = fan_out_with(body, need.len() + inspectors, inspectors);
        let inspector = if inspect { branches.pop() } else { None };
        let uploads = need.iter().zip(branches).map(|(&i, branch)| pending[i].dest.put_blob(repo, blob, branch));
        let inspected = async {
            match inspector {
                Some(b) => crate::db_metadata::metadata_from_stream(b).await,
                None => None,
            }
        };
        let (results, pulled, found) = tokio::join!(join_all(uploads), driver, inspected);
        if let Err(e) = pulled {
            // The source failed (or sent bad bytes): every branch was aborted.
            if e.is_transient() && attempt < BLOB_ATTEMPTS {
                backoff(&plan.retry, attempt, &e).await;
                continue;
            }
            return Err(e);
        }
        metadata = metadata.or(found);
        // The source was fine; send again only to the destinations that failed transiently
        // or changed their upload mode.
        let mut retry = Vec::new();
        let mut last = None;
        for (&i, r) in need.iter().zip(results) {
            match r {
                Ok(Upload::Stored(n)) => pending[i].bytes += n,
                Ok(Upload::Resend { reason }) if resent.insert(i) => {
                    tracing::info!(destination = pending[i].dest.name(), %reason, "sending the blob again");
                    retry.push(i);
                }
                Ok(Upload::Resend { reason }) => {
                    let what = format!("upload of blob {} to {}", blob.digest, pending[i].dest.name());
                    pending[i].error = Some(Error::rejected(what, format!("asked for it twice: {reason}")))
                }
                Err(e) if e.is_transient() && attempt < BLOB_ATTEMPTS => {
                    tracing::warn!(destination = pending[i].dest.name(), error = %e, "upload failed, retrying");
                    retry.push(i);
                    last = Some(e);
                }
                Err(e) => pending[i].error = Some(e),
            }
        }
        match last {
            Some(e) => backoff(&plan.retry, attempt, &e).await,
            // A round in which destinations only switched upload mode is not a failed attempt.
            None => attempt -= 1,
        }
        need = retry;
    }
    Ok(metadata)
}

async fn backoff(policy: &crate::http::RetryPolicy, attempt: u32, err: &Error) {
    let wait = policy.backoff(attempt - 1, err.retry_after());
    tracing::warn!(error = %err, attempt, wait_ms = wait.as_millis() as u64, "transfer failed, retrying");
    tokio::time::sleep(wait).await;
}

/// Manifest by digest, then the tags, on every destination that has all the blobs.
async fn publish_manifests(repo: &str, manifest: &CheckedManifest, tags: &[String], pending: &mut [Pending]) {
    let live: Vec<usize> = (0..pending.len()).filter(|&i| pending[i].error.is_none()).collect();
    let results = join_all(live.iter().map(|&i| pending[i].dest.put_manifest(repo, manifest, tags))).await;
    for (&i, r) in live.iter().zip(results) {
        if let Err(e) = r {
            pending[i].error = Some(e);
        }
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn snapshot_tags_are_valid_and_sortable() {
        let t = snapshot_tag("2", "2026-11-26T06:00:59Z".parse().unwrap());
        assert_eq!(t, "2-20261126T0600Z");
        crate::oci::validate_tag(&t).unwrap();
        let later = snapshot_tag("2", "2026-11-26T12:00:00Z".parse().unwrap());
        assert!(later > t);
    }
}
