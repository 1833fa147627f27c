//! What a run did, per artifact and destination: the summary printed at the end, the
//! JSON returned by the Lambda handler, and the exit status.

use std::fmt::Write as _;

use std::sync::Arc;

use serde::{Serialize, Serializer};

use crate::error::{Error, Help};

/// What happened to one artifact at one destination.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The destination already had this exact version; nothing was written.
    Unchanged,
    /// New content was published.
    Written,
    /// The destination already pointed at this version but lacked some of its blobs (lost
    /// behind the publisher's back); they were copied again.
    Repaired,
    /// Publishing failed; the destination keeps serving what it had.
    Failed,
}

/// One line of the summary.
#[derive(Clone, Debug, Serialize)]
pub struct Entry {
    /// `trivy-db:2`, `trivy-checks:1`, `vex`.
    pub artifact: String,
    /// The destination as the user named it.
    pub destination: String,
    /// The source the content came from, if one answered.
    pub source: Option<String>,
    /// Manifest (or archive) digest published or already present.
    pub digest: Option<String>,
    /// What happened.
    pub outcome: Outcome,
    /// Bytes uploaded to this destination in this run.
    pub bytes_written: u64,
    /// Blobs that were already present and skipped.
    pub blobs_skipped: u32,
    /// Wall time spent on this artifact, in seconds.
    pub seconds: f64,
    /// Why it failed, typed: the entry points render it (its hint with their own flag
    /// names); in JSON it is the error's one line.
    #[serde(serialize_with = "one_line")]
    pub error: Option<Arc<Error>>,
    /// The published repository (`aquasecurity/trivy-db`), for OCI artifacts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub repository: Option<String>,
    /// Size of the layer (or VEX archive) in bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// Upstream build time, from the database's metadata.json.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<jiff::Timestamp>,
    /// When clients will look for a newer database, from metadata.json.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_update: Option<jiff::Timestamp>,
    /// The dated snapshot tag published with this version, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub snapshot_tag: Option<String>,
    /// The digest of the signature manifest published with this version (`sha256-<hex>.sig`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
}

/// An entry's error as its one line.
fn one_line<S: Serializer>(error: &Option<Arc<Error>>, out: S) -> Result<S::Ok, S::Error> {
    match error {
        Some(e) => out.collect_str(e),
        None => out.serialize_none(),
    }
}

impl Entry {
    /// Why it failed, in one line.
    pub fn why(&self) -> Option<String> {
        self.error.as_ref().map(|e| e.to_string())
    }

    /// What to do about the failure, if known (rendered by the entry point).
    pub fn help(&self) -> Option<&Help> {
        self.error.as_ref().and_then(|e| e.help())
    }

    /// An entry with only the identifying fields set.
    pub fn new(artifact: &str, destination: &str, outcome: Outcome) -> Entry {
        Entry {
            artifact: artifact.to_string(),
            destination: destination.to_string(),
            source: None,
            digest: None,
            outcome,
            bytes_written: 0,
            blobs_skipped: 0,
            seconds: 0.0,
            error: None,
            repository: None,
            size: None,
            updated_at: None,
            next_update: None,
            snapshot_tag: None,
            signature: None,
        }
    }
}

/// The whole run.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Report {
    /// One entry per artifact and destination.
    pub entries: Vec<Entry>,
}

impl Report {
    /// True if every artifact reached every destination.
    pub fn success(&self) -> bool {
        self.entries.iter().all(|e| e.outcome != Outcome::Failed)
    }

    /// The distinct hints of the failed entries, in order of first appearance.
    pub fn hints(&self) -> Vec<&Help> {
        let mut out: Vec<&Help> = Vec::new();
        for h in self.entries.iter().filter_map(Entry::help) {
            if !out.contains(&h) {
                out.push(h);
            }
        }
        out
    }

    /// The failures in one line, for an error message: `2 of 4 failed: trivy-db:2 → s3://…: why; …`.
    pub fn failures(&self) -> String {
        let failed: Vec<String> = (self.entries.iter().filter(|e| e.outcome == Outcome::Failed))
            .map(|e| format!("{} → {}: {}", e.artifact, e.destination, e.why().unwrap_or_else(|| "failed".into())))
            .collect();
        format!("{} of {} failed: {}", failed.len(), self.entries.len(), failed.join("; "))
    }

    /// Entries that wrote something.
    pub fn written(&self) -> usize {
        self.entries.iter().filter(|e| matches!(e.outcome, Outcome::Written | Outcome::Repaired)).count()
    }

    /// A fixed-width table for humans, then one line per failure, then each distinct hint
    /// once, rendered by `hint`.
    pub fn table(&self, hint: &dyn Fn(&crate::error::Help) -> String) -> String {
        let mut rows = vec![[
            "ARTIFACT".to_string(),
            "DESTINATION".into(),
            "RESULT".into(),
            "DIGEST".into(),
            "BYTES".into(),
            "SECONDS".into(),
        ]];
        for e in &self.entries {
            let result = match e.outcome {
                Outcome::Unchanged => "unchanged",
                Outcome::Written => "written",
                Outcome::Repaired => "repaired",
                Outcome::Failed => "FAILED",
            };
            let digest = e.digest.as_deref().map(|d| d.get(..19).unwrap_or(d)).unwrap_or("-");
            rows.push([
                e.artifact.clone(),
                e.destination.clone(),
                result.into(),
                digest.into(),
                e.bytes_written.to_string(),
                format!("{:.1}", e.seconds),
            ]);
        }
        let widths: Vec<usize> = (0..6).map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0)).collect();
        let mut out = String::new();
        for r in &rows {
            for (i, cell) in r.iter().enumerate() {
                let _ = write!(out, "{cell:<w$}", w = if i + 1 == r.len() { 0 } else { widths[i] + 2 });
            }
            out.push('\n');
        }
        for e in self.entries.iter().filter(|e| e.error.is_some()) {
            let _ = writeln!(out, "error: {} → {}: {}", e.artifact, e.destination, e.why().unwrap_or_default());
        }
        for h in self.hints() {
            let _ = writeln!(out, "hint: {}", hint(h));
        }
        out
    }
}
