//! Copying one blob: which destinations lack it, one read of the source fanned out to all
//! of them (plus the best-effort `metadata.json` reader), retries of the transfer under
//! the run's [`RetryPolicy`](crate::http::RetryPolicy), and a second send to a destination
//! that changed its upload mode. Then the manifests, on every destination that has all
//! the blobs.

use std::collections::BTreeSet;
use std::sync::Arc;

use futures_util::future::join_all;

use super::SyncPlan;
use crate::artifact::OciArtifact;
use crate::db_metadata::DbMetadata;
use crate::dest::Destination;
use crate::error::{Error, Result};
use crate::manifest::CheckedManifest;
use crate::oci::Descriptor;
use crate::source::{Source, verified_blob};
use crate::stream::{Upload, fan_out_with};

/// One destination's progress within one artifact.
pub(super) struct Pending {
    pub(super) dest: Arc<dyn Destination>,
    pub(super) bytes: u64,
    pub(super) skipped: u32,
    pub(super) error: Option<Error>,
    /// The tag already pointed at this version but something it needs was missing.
    pub(super) repair: bool,
    /// Blobs to write even though the destination reports them present (they failed
    /// `--recheck`).
    pub(super) force: BTreeSet<crate::oci::Digest>,
    /// The signature published between the manifest and its tags, if the run signs.
    pub(super) signature: Option<crate::signing::Signature>,
}

/// Copy one blob into every pending destination that lacks it, reading the source once.
/// With `inspect`, also read the database's `metadata.json` from the stream.
pub(super) async fn copy_blob(
    plan: &SyncPlan,
    source: &dyn Source,
    artifact: &OciArtifact,
    repo: &str,
    blob: &Descriptor,
    pending: &mut [Pending],
    inspect: bool,
) -> Result<Option<DbMetadata>> {
    let live: Vec<usize> = (0..pending.len()).filter(|&i| pending[i].error.is_none()).collect();
    let (forced, live): (Vec<usize>, Vec<usize>) =
        live.into_iter().partition(|&i| pending[i].force.contains(&blob.digest));
    let present = join_all(live.iter().map(|&i| pending[i].dest.has_blob(repo, blob))).await;
    let mut need = forced;
    for (&i, present) in live.iter().zip(present) {
        match present {
            Ok(true) => pending[i].skipped += 1,
            Ok(false) => need.push(i),
            Err(e) => pending[i].error = Some(e),
        }
    }
    let mut metadata = None;
    // `--retries` counts here too: attempts at the whole transfer from the source.
    let attempts = plan.retry.attempts.max(1);
    let mut attempt = 0;
    // Destinations that already asked for the blob again after changing upload mode: a
    // second such answer for the same blob is an error, not a loop.
    let mut resent = BTreeSet::new();
    while !need.is_empty() {
        attempt += 1;
        // The request itself was already retried by the source's client under the same
        // policy; only a stream that breaks after it started is tried again here.
        let body = verified_blob(source, artifact, blob).await?;
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
            // The source failed (or sent bad bytes): every branch was aborted. A stream
            // that already resumed itself until its attempts were spent arrives as a final
            // `GaveUp`, so this retries only a stream that could not resume.
            plan.retry.again("blob transfer", attempt, e).await?;
            continue;
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
                Err(e) if e.is_transient() && attempt < attempts => {
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

/// Manifest by digest, then the signature (if any), then the tags, on every destination
/// that has all the blobs.
pub(super) async fn publish_manifests(
    repo: &str,
    manifest: &CheckedManifest,
    tags: &[String],
    pending: &mut [Pending],
) {
    let live: Vec<usize> = (0..pending.len()).filter(|&i| pending[i].error.is_none()).collect();
    let results = join_all(live.iter().map(|&i| {
        let p = &pending[i];
        async move {
            let mut bytes = 0;
            if let Some(sig) = &p.signature {
                p.dest.put_manifest(repo, manifest, &[]).await?;
                bytes = super::sign::publish(p.dest.as_ref(), repo, sig).await?;
            }
            p.dest.put_manifest(repo, manifest, tags).await.map(|()| bytes)
        }
    }))
    .await;
    for (&i, r) in live.iter().zip(results) {
        match r {
            Ok(bytes) => pending[i].bytes += bytes,
            Err(e) => pending[i].error = Some(e),
        }
    }
}
