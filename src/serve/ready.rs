//! `/readyz`: is the mirror complete and fresh?
//!
//! What the mirror should hold is what `status.json` (written by every sync) names, or,
//! when `serve --sync-every` runs the sync itself, the artifacts that sync mirrors. An OCI
//! artifact is complete when its tag manifest is there and every blob it names (config
//! and layers) is there with the size the manifest gives; VEX when its manifest is there.
//! It is fresh when its last successful check (`last_checked`) is younger than
//! `--max-age`. The same walk feeds the per-artifact gauges of `/metrics`.

use std::path::Path;
use std::time::Duration;

use jiff::Timestamp;
use serde::Serialize;

use crate::status_file::{ArtifactStatus, STATUS_KEY, Status};

/// One artifact as found on disk.
#[derive(Clone, Debug, Serialize)]
pub struct ArtifactState {
    /// As in the run summary: `trivy-db:2`, `vex`.
    pub name: String,
    /// What is wrong, if anything (missing, incomplete, stale).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
    /// Bytes of the manifest and its blobs.
    pub bytes: u64,
    /// Seconds since the served build was made upstream.
    #[serde(skip)]
    pub build_age: Option<f64>,
    /// Seconds since the last successful check.
    #[serde(skip)]
    pub checked_age: Option<f64>,
}

/// The whole check.
#[derive(Clone, Debug, Serialize)]
pub struct Readiness {
    /// True when every artifact is complete and fresh.
    pub ready: bool,
    /// Why not, when nothing can be said per artifact (no status.json yet).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Per artifact.
    pub artifacts: Vec<ArtifactState>,
}

/// Check `root` now. `expected` names the artifacts that must be there even if
/// status.json does not mention them (the ones an in-process sync mirrors).
pub fn check(root: &Path, expected: &[String], max_age: Duration, now: Timestamp) -> Readiness {
    let status: Option<Status> =
        std::fs::read(root.join(STATUS_KEY)).ok().and_then(|b| serde_json::from_slice(&b).ok());
    let mut names: Vec<String> = expected.to_vec();
    if let Some(s) = &status {
        names.extend(s.artifacts.keys().filter(|k| !expected.contains(k)).cloned());
    }
    if names.is_empty() {
        return Readiness {
            ready: false,
            reason: Some(format!("no {STATUS_KEY}: nothing has been synced into this directory yet")),
            artifacts: Vec::new(),
        };
    }
    let artifacts: Vec<ArtifactState> = names
        .into_iter()
        .map(|name| {
            let a = status.as_ref().and_then(|s| s.artifacts.get(&name));
            artifact(root, name, a, max_age, now)
        })
        .collect();
    Readiness { ready: artifacts.iter().all(|a| a.problem.is_none()), reason: None, artifacts }
}

fn artifact(root: &Path, name: String, a: Option<&ArtifactStatus>, max_age: Duration, now: Timestamp) -> ArtifactState {
    let age = |t: Option<Timestamp>| t.map(|t| now.duration_since(t).as_secs_f64().max(0.0));
    let mut state = ArtifactState { name, problem: None, bytes: 0, build_age: None, checked_age: None };
    let Some(a) = a else {
        state.problem = Some("missing: never synced".into());
        return state;
    };
    state.build_age = age(a.updated_at);
    state.checked_age = age(a.last_checked);
    let complete = match (&a.repository, state.name.rsplit_once(':')) {
        (Some(repo), Some((_, tag))) => oci_complete(root, repo, tag),
        // VEX: its size is recorded; the files live under a prefix status.json does not name.
        _ => Ok(a.size.unwrap_or(0)),
    };
    match complete {
        Ok(bytes) => state.bytes = bytes,
        Err(why) => {
            state.problem = Some(why.to_string());
            return state;
        }
    }
    match state.checked_age {
        None => state.problem = Some("stale: never checked successfully".into()),
        Some(secs) if secs > max_age.as_secs_f64() => {
            let last = a.last_checked.map(|t| t.to_string()).unwrap_or_default();
            state.problem = Some(format!("stale: last checked {last}, {}s ago", secs as u64));
        }
        Some(_) => {}
    }
    state
}

/// What keeps a published version from being complete, as `/readyz` words it.
#[derive(Debug, thiserror::Error)]
enum Incomplete {
    #[error("missing: manifest {0}")]
    NoManifest(String),
    #[error("incomplete: manifest {0} is not JSON")]
    NotJson(String),
    #[error("incomplete: manifest {0} has a descriptor without digest or size")]
    Descriptor(String),
    #[error("incomplete: blob {digest} has {has} of {size} bytes")]
    Short { digest: String, has: u64, size: u64 },
    #[error("missing: blob {0}")]
    NoBlob(String),
}

/// Tag → manifest → every blob with its size; the total bytes, or what is missing.
fn oci_complete(root: &Path, repo: &str, tag: &str) -> Result<u64, Incomplete> {
    let base = root.join("v2").join(repo);
    let manifest = std::fs::read(base.join("manifests").join(tag)).map_err(|_| Incomplete::NoManifest(tag.into()))?;
    let value: serde_json::Value = serde_json::from_slice(&manifest).map_err(|_| Incomplete::NotJson(tag.into()))?;
    let mut total = manifest.len() as u64;
    let descriptors = value.get("config").into_iter().chain(value["layers"].as_array().into_iter().flatten());
    for d in descriptors {
        let (Some(digest), Some(size)) = (d["digest"].as_str(), d["size"].as_u64()) else {
            return Err(Incomplete::Descriptor(tag.into()));
        };
        match std::fs::metadata(base.join("blobs").join(digest)) {
            Ok(m) if m.len() == size => total += size,
            Ok(m) => return Err(Incomplete::Short { digest: digest.into(), has: m.len(), size }),
            Err(_) => return Err(Incomplete::NoBlob(digest.into())),
        }
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_then_complete_then_stale_or_broken() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let now: Timestamp = "2026-12-01T12:00:00Z".parse().unwrap();
        let day = Duration::from_secs(86400);
        let r = check(root, &[], day, now);
        assert!(!r.ready && r.reason.is_some());

        let blob = b"layer";
        let digest = crate::oci::Digest::of(blob);
        let repo = root.join("v2/aquasecurity/trivy-db");
        std::fs::create_dir_all(repo.join("manifests")).unwrap();
        std::fs::create_dir_all(repo.join("blobs")).unwrap();
        let manifest = format!(r#"{{"layers":[{{"digest":"{digest}","size":5}}]}}"#);
        std::fs::write(repo.join("manifests/2"), &manifest).unwrap();
        std::fs::write(repo.join(format!("blobs/{digest}")), blob).unwrap();
        let status = r#"{"generator":"t","updated":null,"artifacts":{"trivy-db:2":{"repository":"aquasecurity/trivy-db",
            "source":null,"digest":null,"size":5,"updated_at":"2026-12-01T00:00:00Z","next_update":null,
            "last_checked":"2026-12-01T11:00:00Z","last_changed":null}}}"#;
        std::fs::write(root.join(STATUS_KEY), status).unwrap();
        let r = check(root, &[], day, now);
        assert!(r.ready, "{r:?}");
        assert_eq!(r.artifacts[0].bytes, manifest.len() as u64 + 5);
        assert_eq!(r.artifacts[0].build_age, Some(43200.0));

        let r = check(root, &["trivy-java-db:1".into()], day, now);
        assert!(!r.ready);
        assert_eq!(r.artifacts[0].problem.as_deref(), Some("missing: never synced"));

        let r = check(root, &[], Duration::from_secs(60), now);
        assert!(r.artifacts[0].problem.as_deref().unwrap().starts_with("stale"), "{r:?}");

        std::fs::write(repo.join(format!("blobs/{digest}")), b"lay").unwrap();
        let r = check(root, &[], day, now);
        assert!(r.artifacts[0].problem.as_deref().unwrap().contains("3 of 5 bytes"), "{r:?}");
    }
}
