//! What the engine checks at a destination before it writes there:
//! - **health**: a tag already at the upstream digest still needs every blob its manifest
//!   references, present with the descriptor's size (one HEAD or metadata read per blob);
//!   damage done behind the publisher's back (a truncated restore, a lifecycle rule) is
//!   then repaired by the normal copy instead of being reported `unchanged` forever; the
//!   destination's own files of the version (a static layout's VEX files) must be in place
//!   and match its settings too, so a lost file or a changed `--base-url` is published again;
//! - **no downgrade**: a source offering an older build than the one published is refused
//!   (a stale edge of mirror.gcr.io, trivy-db#517, or an old tag replayed by a compromised
//!   source would otherwise roll every scanner behind the mirror back). Build times come
//!   from the manifests' `org.opencontainers.image.created`, else from the `updated_at`
//!   that `status.json` recorded from the layer's `metadata.json`;
//! - **recheck** (`sync --recheck`): every published blob and the manifest are read back
//!   and hashed, for damage that keeps the size (a flipped byte), which the health check
//!   cannot see.

use std::collections::BTreeSet;
use std::sync::Mutex;

use futures_util::StreamExt as _;
use futures_util::future::join_all;
use jiff::Timestamp;

use crate::artifact::OciArtifact;
use crate::dest::Destination;
use crate::error::{Error, Result};
use crate::manifest::CheckedManifest;
use crate::oci::Digest;
use crate::stream::verify;

/// Blobs found present at a destination earlier in this run: the health check asks once
/// per blob and run (trivy-checks :1 and :2 share their config in one repository), which
/// keeps an unchanged rerun at a handful of requests. The engine never deletes, so what
/// was there stays there for the run.
#[derive(Default)]
pub(super) struct Seen(Mutex<BTreeSet<(String, String, Digest)>>);

impl Seen {
    fn key(dest: &dyn Destination, repo: &str, blob: &Digest) -> (String, String, Digest) {
        (dest.name().to_string(), repo.to_string(), blob.clone())
    }
}

/// What the everyday health check found at a destination whose tag is current.
#[derive(Debug)]
pub(super) struct Health {
    /// Blobs absent or of another size.
    pub(super) missing: usize,
    /// Whether what the destination publishes beside the OCI part (a static layout's VEX
    /// files) is in place and matches its settings.
    pub(super) published: bool,
}

impl Health {
    pub(super) fn is_intact(&self) -> bool {
        self.missing == 0 && self.published
    }
}

/// The everyday health check: every blob present with its size, and the destination's
/// own files of the version current ([`Destination::published_current`]).
pub(super) async fn health(
    dest: &dyn Destination,
    repo: &str,
    manifest: &CheckedManifest,
    seen: &Seen,
) -> Result<Health> {
    let missing = missing_blobs(dest, repo, manifest, seen).await?;
    let published = dest.published_current(repo, manifest).await?;
    Ok(Health { missing, published })
}

/// How many of `manifest`'s blobs `dest` lacks (absent, or of another size).
async fn missing_blobs(dest: &dyn Destination, repo: &str, manifest: &CheckedManifest, seen: &Seen) -> Result<usize> {
    let known =
        |b: &&crate::oci::Descriptor| seen.0.lock().expect("not poisoned").contains(&Seen::key(dest, repo, &b.digest));
    let ask: Vec<_> = manifest.blobs().into_iter().filter(|b| !known(b)).collect();
    let present = join_all(ask.iter().map(|b| dest.has_blob(repo, b))).await;
    let mut missing = 0;
    for (blob, p) in ask.into_iter().zip(present) {
        if p? {
            seen.0.lock().expect("not poisoned").insert(Seen::key(dest, repo, &blob.digest));
        } else {
            missing += 1;
        }
    }
    Ok(missing)
}

/// What `sync --recheck` found wrong with a version a destination's tag points at.
#[derive(Debug, Default)]
pub(super) struct Damage {
    /// Blobs absent, of the wrong size, or not hashing to their digest: copied again.
    pub(super) blobs: BTreeSet<Digest>,
    /// The manifest stored by digest is absent or not the exact bytes: written again.
    pub(super) manifest: bool,
    /// The destination's own files of the version are lost or stale: published again.
    pub(super) files: bool,
}

impl Damage {
    pub(super) fn is_empty(&self) -> bool {
        self.blobs.is_empty() && !self.manifest && !self.files
    }
}

/// Read back and hash every blob of `manifest` at `dest`, and the manifest stored by
/// digest, streaming (memory stays at one chunk per blob in flight).
pub(super) async fn recheck(dest: &dyn Destination, repo: &str, manifest: &CheckedManifest) -> Result<Damage> {
    let mut damage = Damage::default();
    for blob in manifest.blobs() {
        let intact = match dest.read_blob(repo, blob).await? {
            None => false,
            Some(body) => {
                let mut stream =
                    verify(body, blob.clone(), format!("published blob {} in {}", blob.digest, dest.name()));
                let mut ok = true;
                while let Some(chunk) = stream.next().await {
                    if let Err(e) = chunk {
                        match e {
                            Error::Mismatch { .. } => {
                                tracing::warn!(destination = dest.name(), error = %e, "damaged blob");
                                ok = false;
                                break;
                            }
                            other => return Err(other),
                        }
                    }
                }
                ok
            }
        };
        if !intact {
            damage.blobs.insert(blob.digest.clone());
        }
    }
    let stored = dest.manifest(repo, manifest.digest.as_str()).await?;
    damage.manifest = stored.as_ref() != Some(&manifest.raw);
    damage.files = !dest.published_current(repo, manifest).await?;
    Ok(damage)
}

/// The `org.opencontainers.image.created` annotation of stored manifest bytes.
fn created(raw: &[u8]) -> Option<Timestamp> {
    let doc: serde_json::Value = serde_json::from_slice(raw).ok()?;
    doc.get("annotations")?.get("org.opencontainers.image.created")?.as_str()?.parse().ok()
}

/// When the version `published` (the bytes the destination's tag holds) was built.
pub(super) async fn published_build_time(
    dest: &dyn Destination,
    artifact: &OciArtifact,
    published: &[u8],
) -> Option<Timestamp> {
    if let Some(t) = created(published) {
        return Some(t);
    }
    let status = dest.files()?.get_file(crate::status_file::STATUS_KEY).await.ok()??;
    let status: crate::status_file::Status = serde_json::from_slice(&status).ok()?;
    let known = status.artifacts.get(&artifact.label())?;
    (known.digest.as_deref() == Some(Digest::of(published).as_str())).then_some(known.updated_at).flatten()
}

/// Refuse `offered` when it was built before `published`. Unknown times allow the update:
/// without them nothing can be compared, and a mirror must still follow upstream.
pub(super) fn check_not_older(
    artifact: &OciArtifact,
    published: Option<Timestamp>,
    offered: Option<Timestamp>,
) -> Result<()> {
    match (published, offered) {
        (Some(published), Some(offered)) if offered < published => {
            Err(Error::Downgrade { artifact: artifact.label(), published, offered })
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_older_build_is_a_downgrade() {
        let a = &crate::artifact::OCI_ARTIFACTS[0];
        let t = |s: &str| Some(s.parse::<Timestamp>().unwrap());
        let err = check_not_older(a, t("2026-11-26T06:00:00Z"), t("2026-11-25T06:00:00Z")).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("2026-11-26T06:00:00Z") && text.contains("2026-11-25T06:00:00Z"), "{text}");
        assert!(text.contains("trivy-db:2"), "{text}");
        assert_eq!(err.help(), Some(&crate::error::Help::AllowDowngrade));
        assert!(check_not_older(a, t("2026-11-26T06:00:00Z"), t("2026-11-26T06:00:00Z")).is_ok());
        assert!(check_not_older(a, t("2026-11-25T06:00:00Z"), t("2026-11-26T06:00:00Z")).is_ok());
        assert!(check_not_older(a, None, t("2026-11-26T06:00:00Z")).is_ok());
        assert!(check_not_older(a, t("2026-11-26T06:00:00Z"), None).is_ok());
    }

    #[test]
    fn the_build_time_is_the_created_annotation() {
        let raw = br#"{"schemaVersion":2,"annotations":{"org.opencontainers.image.created":"2026-01-01T00:00:00Z"}}"#;
        assert_eq!(created(raw), Some("2026-01-01T00:00:00Z".parse().unwrap()));
        assert_eq!(created(br#"{"schemaVersion":2}"#), None);
        assert_eq!(created(b"not json"), None);
    }
}
