//! The copy engine: for each artifact, find a source that serves a valid manifest, work
//! out which destinations lack it, stream each missing blob once from the source into
//! all of them, then publish the manifest by digest and the tag.
//!
//! Order is what keeps readers safe: blobs, then manifest by digest, then the tag, then
//! tags/list, then (once per run) the `/v2/` ping. A run killed at any point leaves the
//! previous tag pointing at complete content. A destination whose tag already resolves
//! to the upstream digest costs one small GET and nothing else.
//!
//! Sources are tried in order; any failure on the source side (unreachable, 404, 429,
//! 5xx, corrupt content) moves on to the next. A failure on one destination does not
//! stop the others.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::future::join_all;

use crate::artifact::{Kind, OCI_ARTIFACTS, OciArtifact};
use crate::dest::Destination;
use crate::error::{Error, Result};
use crate::manifest::{CheckedManifest, Descriptor};
use crate::report::{Entry, Outcome, Report};
use crate::source::Source;
use crate::stream::fan_out;

/// Attempts at one blob transfer before the source is given up on.
const BLOB_ATTEMPTS: u32 = 3;

/// What to mirror, from where, under which names.
#[derive(Debug)]
pub struct SyncPlan {
    /// Upstream namespaces, tried in order.
    pub sources: Vec<Source>,
    /// Published namespace (`aquasecurity` → `aquasecurity/trivy-db`).
    pub namespace: String,
    /// Which kinds to mirror.
    pub only: BTreeSet<Kind>,
    /// VEX mirroring settings, when VEX is selected.
    pub vex: Option<crate::vex::VexPlan>,
}

impl SyncPlan {
    /// The published repository of an artifact.
    pub fn repository(&self, artifact: &OciArtifact) -> String {
        if self.namespace.is_empty() {
            artifact.name.to_string()
        } else {
            format!("{}/{}", self.namespace, artifact.name)
        }
    }
}

/// Run a whole sync into every destination.
pub async fn sync(plan: &SyncPlan, destinations: &[Arc<dyn Destination>]) -> Report {
    let mut report = Report::default();
    for artifact in OCI_ARTIFACTS.iter().filter(|a| plan.only.contains(&a.kind)) {
        report
            .entries
            .extend(sync_artifact(plan, artifact, destinations).await);
    }
    if plan.only.contains(&Kind::Vex)
        && let Some(vex) = &plan.vex
    {
        report
            .entries
            .extend(crate::vex::sync(vex, destinations).await);
    }
    for dest in destinations {
        let wrote = report
            .entries
            .iter()
            .any(|e| e.destination == dest.name() && e.outcome == Outcome::Written);
        if wrote && let Err(e) = dest.finish().await {
            report.entries.push(failed(
                "/v2/ ping",
                dest.name(),
                None,
                Instant::now(),
                e.to_string(),
            ));
        }
    }
    report
}

fn failed(
    artifact: &str,
    destination: &str,
    source: Option<&str>,
    start: Instant,
    error: String,
) -> Entry {
    tracing::error!(artifact, destination, %error, "failed");
    Entry {
        artifact: artifact.to_string(),
        destination: destination.to_string(),
        source: source.map(str::to_string),
        digest: None,
        outcome: Outcome::Failed,
        bytes_written: 0,
        blobs_skipped: 0,
        seconds: start.elapsed().as_secs_f64(),
        error: Some(error),
    }
}

/// Mirror one artifact into every destination.
async fn sync_artifact(
    plan: &SyncPlan,
    artifact: &OciArtifact,
    dests: &[Arc<dyn Destination>],
) -> Vec<Entry> {
    let start = Instant::now();
    let label = artifact.label();
    let mut source_errors = Vec::new();
    for source in &plan.sources {
        match try_source(plan, artifact, source, dests, start).await {
            Ok(entries) => return entries,
            Err(e) => {
                tracing::warn!(artifact = %label, source = source.label(), error = %e, "source failed, trying the next");
                source_errors.push(format!("{}: {e}", source.label()));
            }
        }
    }
    let why = if source_errors.is_empty() {
        "no source configured".to_string()
    } else {
        source_errors.join("; ")
    };
    dests
        .iter()
        .map(|d| {
            failed(
                &label,
                d.name(),
                None,
                start,
                format!("no source could provide it: {why}"),
            )
        })
        .collect()
}

/// Per-destination progress within one artifact.
struct Pending {
    dest: Arc<dyn Destination>,
    bytes: u64,
    skipped: u32,
    error: Option<String>,
}

/// Try one source. `Err` means the source failed and the next should be tried;
/// destination failures are reported in the entries instead.
async fn try_source(
    plan: &SyncPlan,
    artifact: &OciArtifact,
    source: &Source,
    dests: &[Arc<dyn Destination>],
    start: Instant,
) -> Result<Vec<Entry>> {
    let label = artifact.label();
    let manifest = source.manifest(artifact).await?;
    let repo = plan.repository(artifact);
    let entry =
        |dest: &str, outcome: Outcome, bytes: u64, skipped: u32, error: Option<String>| Entry {
            artifact: label.clone(),
            destination: dest.to_string(),
            source: Some(source.label().to_string()),
            digest: Some(manifest.digest.to_string()),
            outcome,
            bytes_written: bytes,
            blobs_skipped: skipped,
            seconds: start.elapsed().as_secs_f64(),
            error,
        };

    let mut entries = Vec::new();
    let mut pending = Vec::new();
    let current = join_all(dests.iter().map(|d| d.tag_digest(&repo, artifact.tag))).await;
    for (dest, current) in dests.iter().zip(current) {
        match current {
            Ok(Some(d)) if d == manifest.digest => {
                tracing::info!(artifact = %label, destination = dest.name(), digest = %d, "unchanged");
                entries.push(entry(dest.name(), Outcome::Unchanged, 0, 0, None));
            }
            Ok(_) => pending.push(Pending {
                dest: dest.clone(),
                bytes: 0,
                skipped: 0,
                error: None,
            }),
            Err(e) => entries.push(failed(
                &label,
                dest.name(),
                Some(source.label()),
                start,
                e.to_string(),
            )),
        }
    }
    if pending.is_empty() {
        return Ok(entries);
    }

    for blob in manifest.blobs() {
        copy_blob(source, artifact, &repo, blob, &mut pending).await?;
    }
    publish_manifests(&repo, &manifest, artifact.tag, &mut pending).await;
    for p in pending {
        let outcome = if p.error.is_some() {
            Outcome::Failed
        } else {
            Outcome::Written
        };
        if let Some(e) = &p.error {
            tracing::error!(artifact = %label, destination = p.dest.name(), error = %e, "failed");
        } else {
            tracing::info!(artifact = %label, destination = p.dest.name(), digest = %manifest.digest, bytes = p.bytes, "published");
        }
        entries.push(entry(p.dest.name(), outcome, p.bytes, p.skipped, p.error));
    }
    Ok(entries)
}

/// Copy one blob into every pending destination that lacks it, reading the source once.
async fn copy_blob(
    source: &Source,
    artifact: &OciArtifact,
    repo: &str,
    blob: &Descriptor,
    pending: &mut [Pending],
) -> Result<()> {
    let live: Vec<usize> = (0..pending.len())
        .filter(|&i| pending[i].error.is_none())
        .collect();
    let present = join_all(live.iter().map(|&i| pending[i].dest.has_blob(repo, blob))).await;
    let mut need = Vec::new();
    for (&i, present) in live.iter().zip(present) {
        match present {
            Ok(true) => pending[i].skipped += 1,
            Ok(false) => need.push(i),
            Err(e) => pending[i].error = Some(e.to_string()),
        }
    }
    let mut attempt = 0;
    while !need.is_empty() {
        attempt += 1;
        let body = match source.blob(artifact, blob).await {
            Ok(b) => b,
            Err(e) if e.is_transient() && attempt < BLOB_ATTEMPTS => {
                backoff(attempt, &e).await;
                continue;
            }
            Err(e) => return Err(e),
        };
        let (branches, driver) = fan_out(body, need.len());
        let uploads = need
            .iter()
            .zip(branches)
            .map(|(&i, branch)| pending[i].dest.put_blob(repo, blob, branch));
        let (results, pulled) = tokio::join!(join_all(uploads), driver);
        if let Err(e) = pulled {
            // The source failed (or sent bad bytes): every branch was aborted.
            if e.is_transient() && attempt < BLOB_ATTEMPTS {
                backoff(attempt, &e).await;
                continue;
            }
            return Err(e);
        }
        // The source was fine; retry only the destinations that failed transiently.
        let mut retry = Vec::new();
        let mut last = None;
        for (&i, r) in need.iter().zip(results) {
            match r {
                Ok(n) => pending[i].bytes += n,
                Err(e) if e.is_transient() && attempt < BLOB_ATTEMPTS => {
                    tracing::warn!(destination = pending[i].dest.name(), error = %e, "upload failed, retrying");
                    retry.push(i);
                    last = Some(e);
                }
                Err(e) => pending[i].error = Some(e.to_string()),
            }
        }
        if let Some(e) = last {
            backoff(attempt, &e).await;
        }
        need = retry;
    }
    Ok(())
}

async fn backoff(attempt: u32, err: &Error) {
    let wait = err
        .retry_after()
        .unwrap_or(Duration::from_millis(500) * 2u32.pow(attempt))
        .min(Duration::from_secs(30));
    tracing::warn!(error = %err, attempt, wait_ms = wait.as_millis() as u64, "blob transfer failed, retrying");
    tokio::time::sleep(wait).await;
}

/// Manifest by digest, then the tag, on every destination that has all the blobs.
async fn publish_manifests(
    repo: &str,
    manifest: &CheckedManifest,
    tag: &str,
    pending: &mut [Pending],
) {
    let live: Vec<usize> = (0..pending.len())
        .filter(|&i| pending[i].error.is_none())
        .collect();
    let results = join_all(
        live.iter()
            .map(|&i| pending[i].dest.put_manifest(repo, manifest, tag)),
    )
    .await;
    for (&i, r) in live.iter().zip(results) {
        if let Err(e) = r {
            pending[i].error = Some(e.to_string());
        }
    }
}
