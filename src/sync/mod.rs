//! The copy engine: for each artifact, find a source that serves a valid manifest, work
//! out which destinations lack it, stream each missing blob once from the source into
//! all of them, then publish the manifest by digest and the tag.
//!
//! Order is what keeps readers safe: blobs, then manifest by digest, then the tag, then
//! tags/list, then (once per run) the `/v2/` ping and `status.json`. A run killed at any
//! point leaves the previous tag pointing at complete content. A destination whose tag
//! already resolves to the upstream digest costs one small GET plus one HEAD per blob
//! and run (the health check of [`guard`]; a static layout's VEX files add one GET and a
//! HEAD per archive), and is repaired if a blob or such a file went missing.
//!
//! Up to [`SyncPlan::concurrency`] artifacts are copied at the same time; each keeps its
//! own order, and the report lists them in the fixed order of [`ARTIFACTS`]. VEX Hub is
//! one of them (`<namespace>/vexhub:latest`, from [`SyncPlan::vex_sources`]); how a
//! destination stores it is the destination's business.
//!
//! Sources are tried in order; any failure on the source side (unreachable, 404, 429,
//! 5xx, corrupt content, an older build than the one published) moves on to the next.
//! A source whose host cannot be reached, refuses its certificate or the credentials is
//! not asked again in the same run. A failure on one destination does not stop the
//! others; transient failures are retried as the run's retry policy says.
//!
//! With signing ([`Signing`]) a destination gets, beside each manifest, a cosign signature:
//! blobs, manifest by digest, signature, then the tag, so that no client sees a tag whose
//! signature is missing. A destination whose version is current but whose signature is
//! missing, or made by another key, gets only the signature (reported as repaired).
//!
//! Files: [`copy`] moves one blob; [`guard`] holds the health and downgrade checks;
//! [`sign`] checks, makes and carries signatures.

mod copy;
mod guard;
mod sign;

pub use sign::Signing;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use futures_util::StreamExt as _;
use futures_util::future::join_all;
use jiff::Timestamp;

use crate::artifact::{ARTIFACTS, Kind, OciArtifact};
use crate::dest::Destination;
use crate::error::{Error, Help, Result};
use crate::oci::{Digest, join_repository};
use crate::source::{Source, checked_manifest};
use crate::summary::{Entry, Outcome, Report};
use copy::{Pending, copy_blob, publish_manifests};

/// What to mirror, from where, under which names.
#[derive(Debug)]
pub struct SyncPlan {
    /// Where artifacts come from, tried in order.
    pub sources: Vec<Arc<dyn Source>>,
    /// Published namespace (`aquasecurity` → `aquasecurity/trivy-db`).
    pub namespace: String,
    /// Which kinds to mirror.
    pub only: BTreeSet<Kind>,
    /// Where VEX comes from, tried in order: VEX Hub over HTTP
    /// ([`crate::source::vexhub::VexHubSource`]), or sources that hold the VEX artifact.
    pub vex_sources: Vec<Arc<dyn Source>>,
    /// Also publish each new version under a dated, immutable tag (`2-20261126T0600Z`).
    pub snapshot_tags: bool,
    /// Replace a published version with an older build (a deliberate rollback).
    pub allow_downgrade: bool,
    /// Read back and hash every published blob and manifest, and repair what does not
    /// hash to its digest (`sync --recheck`), instead of the size-only health check.
    pub recheck: bool,
    /// Backoff between attempts at a whole blob transfer.
    pub retry: crate::http::RetryPolicy,
    /// Artifacts copied at the same time (each keeps its own publish order).
    pub concurrency: usize,
    /// Where transfer progress goes.
    pub progress: Arc<dyn crate::progress::Progress>,
    /// Signing what is published, and requiring signatures of what is read.
    pub signing: Signing,
}

impl SyncPlan {
    /// The published repository of an artifact.
    pub fn repository(&self, artifact: &OciArtifact) -> String {
        join_repository(&self.namespace, artifact.name)
    }

    /// The sources to try for an artifact, in order.
    pub fn sources_for(&self, artifact: &OciArtifact) -> &[Arc<dyn Source>] {
        match artifact.kind {
            Kind::Vex => &self.vex_sources,
            _ => &self.sources,
        }
    }
}

/// The dated tag of a version: `<tag>-YYYYMMDDTHHMMZ` of its build time.
pub fn snapshot_tag(tag: &str, at: Timestamp) -> String {
    format!("{tag}-{}", at.strftime("%Y%m%dT%H%MZ"))
}

/// Run a whole sync into every destination.
pub async fn sync(plan: &SyncPlan, destinations: &[Arc<dyn Destination>]) -> Report {
    sync_until(plan, destinations, None).await
}

/// [`sync`], stopping at `deadline`: no artifact starts after it, one in flight is
/// dropped there (what it had not published stays unpublished; tags go last, so they
/// still point at complete content), and the report says so per artifact. The `/v2/`
/// ping and `status.json` are still written, so the run ends with a clean report.
pub async fn sync_until(
    plan: &SyncPlan,
    destinations: &[Arc<dyn Destination>],
    deadline: Option<tokio::time::Instant>,
) -> Report {
    let mut report = Report::default();
    let condemned = Condemned::default();
    let seen = guard::Seen::default();
    // Artifacts in parallel, bounded; `buffered` yields them in order, so the summary order
    // does not depend on which finished first. Artifacts of one repository (trivy-checks
    // :1 and :2) go one after the other: they share blobs and the tag listing.
    let mut groups: Vec<Vec<&OciArtifact>> = Vec::new();
    for artifact in ARTIFACTS.iter().filter(|a| plan.only.contains(&a.kind)) {
        match groups.iter_mut().find(|g| g[0].name == artifact.name) {
            Some(g) => g.push(artifact),
            None => groups.push(vec![artifact]),
        }
    }
    let runs = futures_util::stream::iter(groups).map(|group| {
        let (condemned, seen) = (&condemned, &seen);
        async move {
            let mut entries = Vec::new();
            for artifact in group {
                let carriers: Vec<_> = destinations.iter().filter(|d| d.carries(artifact)).cloned().collect();
                if carriers.is_empty() {
                    continue;
                }
                let run = sync_artifact(plan, artifact, &carriers, condemned, seen);
                let Some(at) = deadline else {
                    entries.extend(run.await);
                    continue;
                };
                let start = Instant::now();
                let started = tokio::time::Instant::now() < at;
                let done = if started { tokio::time::timeout_at(at, run).await.ok() } else { None };
                entries.extend(done.unwrap_or_else(|| {
                    let e = Arc::new(Error::Deadline { started });
                    let why = |d: &Arc<dyn Destination>| failed_with(&artifact.label(), d.name(), start, e.clone());
                    carriers.iter().map(why).collect()
                }));
            }
            entries
        }
    });
    let done: Vec<Vec<Entry>> = runs.buffered(plan.concurrency.max(1)).collect().await;
    // Artifacts no source could provide are logged here, in the report's order, not as
    // they fail (concurrent artifacts fail in any order).
    for e in done.iter().flatten().filter(|e| e.outcome == Outcome::Failed && e.source.is_none()) {
        let (artifact, destination) = (e.artifact.as_str(), e.destination.as_str());
        tracing::error!(artifact, destination, error = %e.why().unwrap_or_default(), "failed");
    }
    report.entries.extend(done.into_iter().flatten());
    let now = Timestamp::now();
    for dest in destinations {
        let mine: Vec<&Entry> = report.entries.iter().filter(|e| e.destination == dest.name()).collect();
        let mut extra = Vec::new();
        if mine.iter().any(|e| matches!(e.outcome, Outcome::Written | Outcome::Repaired))
            && let Err(e) = dest.finish().await
        {
            extra.push(failed("/v2/ ping", dest.name(), Instant::now(), e));
        }
        if let Some(files) = dest.files()
            && let Err(e) = crate::status_file::update(files, &mine, now).await
        {
            extra.push(failed("status.json", dest.name(), Instant::now(), e));
        }
        report.entries.extend(extra);
    }
    report
}

fn failed(artifact: &str, destination: &str, start: Instant, error: Error) -> Entry {
    tracing::error!(artifact, destination, %error, "failed");
    failed_with(artifact, destination, start, Arc::new(error))
}

fn failed_with(artifact: &str, destination: &str, start: Instant, error: Arc<Error>) -> Entry {
    let mut e = Entry::new(artifact, destination, Outcome::Failed);
    e.seconds = start.elapsed().as_secs_f64();
    e.error = Some(error);
    e
}

/// Sources whose host failed in a way that will not change during the run (unreachable,
/// untrusted certificate, refused credentials), with why: not asked again.
#[derive(Default)]
struct Condemned(Mutex<BTreeMap<String, Error>>);

/// Mirror one artifact into every destination.
async fn sync_artifact(
    plan: &SyncPlan,
    artifact: &OciArtifact,
    dests: &[Arc<dyn Destination>],
    condemned: &Condemned,
    seen: &guard::Seen,
) -> Vec<Entry> {
    let start = Instant::now();
    let label = artifact.label();
    // One `label (cause)` per source, the long form at debug level only.
    let mut causes = Vec::new();
    let mut help = None;
    let mut unreachable = true;
    let sources = plan.sources_for(artifact);
    for (n, source) in sources.iter().enumerate() {
        let known = condemned
            .0
            .lock()
            .expect("not poisoned")
            .get(source.label())
            .map(|e| (e.brief(), e.is_unreachable(), e.help().cloned()));
        if let Some((brief, was_unreachable, known_help)) = known {
            causes.push(format!("{} ({brief})", source.label()));
            unreachable &= was_unreachable;
            help = help.or(known_help);
            continue;
        }
        let last = n + 1 == sources.len();
        match try_source(plan, artifact, source.as_ref(), dests, start, last, seen).await {
            Ok(entries) => return entries,
            Err(e) => {
                tracing::debug!(artifact = %label, source = source.label(), error = %e, "source failed, trying the next");
                causes.push(format!("{} ({})", source.label(), e.brief()));
                unreachable &= e.is_unreachable();
                help = help.or_else(|| e.help().cloned());
                // A registry may deny a repository it does not hold (ghcr.io answers 401 or
                // 403): VEX is optional on a database source, so that says nothing of the host.
                let denied = matches!(e, Error::Http { status: 401 | 403, .. });
                if e.condemns_host() && !(artifact.kind == Kind::Vex && denied) {
                    condemned.0.lock().expect("not poisoned").insert(source.label().to_string(), e);
                }
            }
        }
    }
    if causes.is_empty() {
        causes.push("no source configured".into());
        unreachable = false;
    }
    // Unreachable through a dead proxy: the proxy is what to fix, not the network.
    let help = match help {
        Some(h @ Help::CheckProxy { .. }) => Some(h),
        _ if unreachable => Some(Help::Offline),
        other => other,
    };
    let why = Arc::new(Error::NoSource { causes, help });
    dests.iter().map(|d| failed_with(&label, d.name(), start, why.clone())).collect()
}

/// Try one source. `Err` means the source failed and the next should be tried;
/// destination failures are reported in the entries instead. `last` says no source is
/// left to try after this one.
async fn try_source(
    plan: &SyncPlan,
    artifact: &OciArtifact,
    source: &dyn Source,
    dests: &[Arc<dyn Destination>],
    start: Instant,
    last: bool,
    seen: &guard::Seen,
) -> Result<Vec<Entry>> {
    let label = artifact.label();
    let manifest = checked_manifest(source, artifact).await?;
    // A required signature is checked before anything is copied: nothing of an artifact
    // that fails it is published anywhere.
    let carried = if plan.signing.require.is_empty() {
        None
    } else {
        Some(sign::checked_source_signature(source, artifact, &manifest, &plan.signing.require).await?)
    };
    let wanted = sign::Wanted::of(plan, carried);
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
    let fail = |dest: &str, err: Error| {
        let mut f = entry(dest, Outcome::Failed);
        f.error = Some(Arc::new(err));
        f
    };

    let mut entries = Vec::new();
    let mut unchanged = Vec::new();
    let mut pending = Vec::new();
    let wanted_at = |dest: &dyn Destination| wanted.as_ref().filter(|_| dest.keeps() == crate::dest::Keeps::Oci);
    let current = join_all(dests.iter().map(|d| d.manifest(&repo, artifact.tag))).await;
    let mut downgrades = Vec::new();
    for (dest, current) in dests.iter().zip(current) {
        let new = |repair, force| Pending {
            dest: dest.clone(),
            bytes: 0,
            skipped: 0,
            error: None,
            repair,
            force,
            signature: None,
        };
        let current_version = current.map(|c| c.map(|raw| (Digest::of(&raw) == manifest.digest, raw)));
        match current_version {
            Ok(Some((true, _))) if plan.recheck => match guard::recheck(dest.as_ref(), &repo, &manifest).await {
                Ok(damage) if damage.is_empty() => unchanged.push(dest.clone()),
                Ok(damage) => {
                    tracing::warn!(artifact = %label, destination = dest.name(), blobs = damage.blobs.len(), manifest = damage.manifest, files = damage.files, "damage found; repairing");
                    pending.push(new(true, damage.blobs));
                }
                Err(e) => entries.push(fail(dest.name(), e)),
            },
            Ok(Some((true, _))) => match guard::health(dest.as_ref(), &repo, &manifest, seen).await {
                Ok(health) if health.is_intact() => unchanged.push(dest.clone()),
                Ok(health) => {
                    let (missing, files_current) = (health.missing, health.published);
                    tracing::warn!(artifact = %label, destination = dest.name(), missing, files_current, "damage found; repairing");
                    pending.push(new(true, BTreeSet::new()));
                }
                Err(e) => entries.push(fail(dest.name(), e)),
            },
            Ok(Some((false, raw))) if !plan.allow_downgrade => {
                let published = guard::published_build_time(dest.as_ref(), artifact, &raw).await;
                match guard::check_not_older(artifact, published, manifest.created) {
                    Ok(()) => pending.push(new(false, BTreeSet::new())),
                    Err(e) => downgrades.push((dest.clone(), e)),
                }
            }
            Ok(_) => pending.push(new(false, BTreeSet::new())),
            Err(e) => entries.push(fail(dest.name(), e)),
        }
    }
    if !downgrades.is_empty() && !last {
        // A stale source must not block a fresh one behind it: try the next source first.
        return Err(downgrades.swap_remove(0).1);
    }
    for (dest, e) in downgrades {
        tracing::error!(artifact = %label, destination = dest.name(), error = %e, "refused");
        entries.push(fail(dest.name(), e));
    }
    // Current versions: only the signature may be missing (a new key, or lost).
    let checked = join_all(unchanged.iter().map(|dest| async {
        let Some(wanted) = wanted_at(dest.as_ref()) else { return Ok(None) };
        if sign::holds(dest.as_ref(), &repo, &manifest.digest, wanted).await? {
            return Ok(Some(None));
        }
        let sig = wanted.make(dest.as_ref(), &repo, &manifest.digest, source.label()).await?;
        let bytes = sign::publish(dest.as_ref(), &repo, &sig).await?;
        Ok::<_, Error>(Some(Some((sig.digest, bytes))))
    }))
    .await;
    for (dest, result) in unchanged.iter().zip(checked) {
        let name = dest.name();
        match result {
            Ok(None | Some(None)) => {
                let what = if plan.recheck { "unchanged (rechecked)" } else { "unchanged" };
                tracing::info!(artifact = %label, destination = name, digest = %manifest.digest, "{what}");
                entries.push(entry(name, Outcome::Unchanged));
            }
            Ok(Some(Some((signature, bytes)))) => {
                tracing::info!(artifact = %label, destination = name, %signature, "signature written");
                let mut e = entry(name, Outcome::Repaired);
                e.bytes_written = bytes;
                e.signature = Some(signature.to_string());
                entries.push(e);
            }
            Err(e) => entries.push(fail(name, e)),
        }
    }
    if pending.is_empty() {
        return Ok(entries);
    }
    for p in &mut pending {
        let Some(wanted) = wanted_at(p.dest.as_ref()) else { continue };
        match wanted.make(p.dest.as_ref(), &repo, &manifest.digest, source.label()).await {
            Ok(sig) => p.signature = Some(sig),
            Err(e) => p.error = Some(e),
        }
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
    // A repair restores a version already published, with its dated tag if it got one.
    let snapshot = (plan.snapshot_tags && pending.iter().any(|p| !p.repair)).then(|| {
        let at = metadata.as_ref().and_then(|m| m.updated_at).or(manifest.created).unwrap_or_else(Timestamp::now);
        snapshot_tag(artifact.tag, at)
    });
    tags.extend(snapshot.clone());
    publish_manifests(&repo, &manifest, &tags, &mut pending).await;
    for p in pending {
        let done = if p.repair { Outcome::Repaired } else { Outcome::Written };
        let mut e = entry(p.dest.name(), if p.error.is_some() { Outcome::Failed } else { done });
        if let Some(err) = &p.error {
            tracing::error!(artifact = %label, destination = p.dest.name(), error = %err, "failed");
        } else {
            let what = if p.repair { "repaired" } else { "published" };
            tracing::info!(artifact = %label, destination = p.dest.name(), digest = %manifest.digest, bytes = p.bytes, "{what}");
            e.snapshot_tag = snapshot.clone();
            e.signature = p.signature.as_ref().map(|s| s.digest.to_string());
        }
        e.bytes_written = p.bytes;
        e.blobs_skipped = p.skipped;
        e.error = p.error.map(Arc::new);
        e.updated_at = metadata.as_ref().and_then(|m| m.updated_at).or(manifest.created);
        e.next_update = metadata.as_ref().and_then(|m| m.next_update);
        entries.push(e);
    }
    Ok(entries)
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod sign_tests;

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
