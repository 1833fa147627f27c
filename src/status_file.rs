//! `status.json`: a machine-readable record, at the mirror root, of what the mirror holds
//! and how fresh it is. Written by every sync (short Cache-Control, no secrets), merged
//! with the previous one so artifacts not part of a run keep their history.
//!
//! ```json
//! {"generator":"trivy-mirror 0.1.0","updated":"…","artifacts":{"trivy-db:2":{
//!   "repository":"aquasecurity/trivy-db","source":"mirror.gcr.io/aquasec","digest":"sha256:…",
//!   "size":70123456,"updated_at":"…","next_update":"…","last_checked":"…","last_changed":"…"}}}
//! ```

use std::collections::BTreeMap;

use bytes::Bytes;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::dest::Files;
use crate::error::Result;
use crate::layout::ObjectClass;
use crate::summary::{Entry, Outcome};

/// The key of the status file, at the static layout's root.
pub const STATUS_KEY: &str = "status.json";

/// The whole file.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Status {
    /// Which program wrote it.
    pub generator: String,
    /// When it was last written.
    pub updated: Option<Timestamp>,
    /// Per artifact (`trivy-db:2`, `vex`).
    pub artifacts: BTreeMap<String, ArtifactStatus>,
}

/// One artifact's state at this destination.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ArtifactStatus {
    /// Published repository, for OCI artifacts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub repository: Option<String>,
    /// Where the content came from.
    pub source: Option<String>,
    /// The manifest (or VEX archive) digest served.
    pub digest: Option<String>,
    /// The digest of its signature manifest (tag `sha256-<hex of digest>.sig`), when the
    /// mirror signs or carries signatures.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
    /// Layer or archive size in bytes.
    pub size: Option<u64>,
    /// Upstream build time (databases only).
    pub updated_at: Option<Timestamp>,
    /// When Trivy clients will look for a newer version (databases only).
    pub next_update: Option<Timestamp>,
    /// Last run that confirmed this version is current.
    pub last_checked: Option<Timestamp>,
    /// Last run that published a new version.
    pub last_changed: Option<Timestamp>,
    /// Last run that found this version damaged (blobs missing) and repaired it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_repaired: Option<Timestamp>,
    /// The error of the last failed run, cleared by the next success.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// When the last failure happened.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_failed: Option<Timestamp>,
}

/// Fold a run's entries for one destination into its previous status.
pub fn merge(previous: Status, entries: &[&Entry], now: Timestamp) -> Status {
    let mut status = previous;
    status.generator = concat!("trivy-mirror ", env!("CARGO_PKG_VERSION")).to_string();
    status.updated = Some(now);
    for e in entries {
        let a = status.artifacts.entry(e.artifact.clone()).or_default();
        match e.outcome {
            Outcome::Failed => {
                a.last_error = e.why();
                a.last_failed = Some(now);
            }
            Outcome::Written | Outcome::Unchanged | Outcome::Repaired => {
                if e.outcome == Outcome::Repaired {
                    a.last_repaired = Some(now);
                }
                let changed = e.outcome == Outcome::Written || a.digest.as_deref() != e.digest.as_deref();
                a.repository = e.repository.clone().or(a.repository.take());
                a.source = e.source.clone().or(a.source.take());
                // A new version drops the old one's signature; a signature written or
                // checked this run replaces what was recorded.
                if changed {
                    a.signature = None;
                }
                a.signature = e.signature.clone().or(a.signature.take());
                a.digest = e.digest.clone().or(a.digest.take());
                a.size = e.size.or(a.size);
                // Unchanged runs may not have read the layer; keep what is known.
                a.updated_at = e.updated_at.or(a.updated_at);
                a.next_update = e.next_update.or(a.next_update);
                a.last_checked = Some(now);
                if changed || a.last_changed.is_none() {
                    a.last_changed = Some(now);
                }
                a.last_error = None;
                a.last_failed = None;
            }
        }
    }
    status
}

/// Read, merge and write `status.json` at one destination.
pub async fn update(dest: &dyn Files, entries: &[&Entry], now: Timestamp) -> Result<Status> {
    let previous = match dest.get_file(STATUS_KEY).await? {
        // A status file we cannot read is replaced, not fatal: it is only a report.
        Some(bytes) => serde_json::from_slice(&bytes).unwrap_or_default(),
        None => Status::default(),
    };
    let status = merge(previous, entries, now);
    let mut body = serde_json::to_vec_pretty(&status).expect("status serializes");
    body.push(b'\n');
    dest.put_file(STATUS_KEY, Bytes::from(body), ObjectClass::Json).await?;
    Ok(status)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(outcome: Outcome, digest: &str) -> Entry {
        let mut e = Entry::new("trivy-db:2", "d", outcome);
        e.digest = Some(digest.into());
        e
    }

    #[test]
    fn merge_tracks_checks_changes_and_failures() {
        let t1: Timestamp = "2026-11-26T00:00:00Z".parse().unwrap();
        let t2: Timestamp = "2026-11-26T06:00:00Z".parse().unwrap();
        let t3: Timestamp = "2026-11-26T12:00:00Z".parse().unwrap();
        let mut written = entry(Outcome::Written, "sha256:a");
        written.next_update = Some(t2);
        let s = merge(Status::default(), &[&written], t1);
        let a = &s.artifacts["trivy-db:2"];
        assert_eq!((a.last_checked, a.last_changed, a.next_update), (Some(t1), Some(t1), Some(t2)));

        let s = merge(s, &[&entry(Outcome::Unchanged, "sha256:a")], t2);
        let a = &s.artifacts["trivy-db:2"];
        assert_eq!((a.last_checked, a.last_changed, a.next_update), (Some(t2), Some(t1), Some(t2)));

        let mut failed = entry(Outcome::Failed, "sha256:b");
        failed.error = Some(std::sync::Arc::new(crate::Error::rejected("the upload", "boom")));
        let s = merge(s, &[&failed], t3);
        let a = &s.artifacts["trivy-db:2"];
        assert_eq!(
            (a.digest.as_deref(), a.last_error.as_deref(), a.last_checked),
            (Some("sha256:a"), Some("refused the upload: boom"), Some(t2))
        );
    }
}
