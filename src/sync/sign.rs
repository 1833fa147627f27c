//! Signatures in the engine: check a source's signature before anything of the artifact
//! is copied (`--require-signature`), make or carry the signature each destination gets,
//! and find out whether a destination already holds a valid one, so that a rerun with
//! nothing new writes nothing (ECDSA signatures differ each time they are made).

use std::sync::Arc;

use bytes::Bytes;
use futures_util::StreamExt as _;
use jiff::Timestamp;

use super::SyncPlan;
use crate::artifact::OciArtifact;
use crate::dest::Destination;
use crate::error::{Error, Result, SignatureProblem};
use crate::manifest::CheckedManifest;
use crate::oci::{Descriptor, Digest};
use crate::signing::{self, MAX_PAYLOAD_BYTES, Provenance, PublicKey, Signature, SigningKey};
use crate::source::{RawBlob, Source};
use crate::stream::Upload;

/// What a run does about signatures.
#[derive(Clone, Debug, Default)]
pub struct Signing {
    /// Sign every manifest published (`--sign-key`).
    pub key: Option<Arc<SigningKey>>,
    /// Take an artifact from a source only if its signature verifies under one of these
    /// (`--require-signature`); the signature then travels on to the destinations.
    pub require: Vec<PublicKey>,
}

/// What a destination should hold beside the manifest.
#[derive(Clone, Debug)]
pub(super) enum Wanted {
    /// A signature by this run's key (made per destination: the identity differs).
    Ours(Arc<SigningKey>),
    /// The source's signature, byte for byte.
    Carried(Signature),
}

impl Wanted {
    /// What the plan asks for, given the source's checked signature.
    pub(super) fn of(plan: &SyncPlan, carried: Option<Signature>) -> Option<Wanted> {
        match (&plan.signing.key, carried) {
            (Some(key), _) => Some(Wanted::Ours(key.clone())),
            (None, Some(sig)) => Some(Wanted::Carried(sig)),
            (None, None) => None,
        }
    }

    /// The signature to publish at `dest` (a KMS key signs remotely, and can fail).
    pub(super) async fn make(
        &self,
        dest: &dyn Destination,
        repo: &str,
        signed: &Digest,
        source: &str,
    ) -> Result<Signature> {
        match self {
            Wanted::Ours(key) => {
                let reference = dest.client_reference(repo).unwrap_or_else(|| repo.to_string());
                let provenance = Provenance { source: source.to_string(), fetched: Timestamp::now() };
                signing::sign(key, signed, &reference, &provenance).await
            }
            Wanted::Carried(sig) => Ok(sig.clone()),
        }
    }
}

/// The source's signature of `manifest`, checked as cosign checks it against `keys`: the
/// exact bytes, to carry on. A missing or invalid signature is an error naming the
/// artifact and the source, and the engine tries the next source.
pub(super) async fn checked_source_signature(
    source: &dyn Source,
    artifact: &OciArtifact,
    manifest: &CheckedManifest,
    keys: &[PublicKey],
) -> Result<Signature> {
    let tag = signing::signature_tag(&manifest.digest);
    let refuse = |p: SignatureProblem| Error::signature(artifact.label(), source.label(), p);
    let Some(raw) = source.manifest(artifact, &tag).await? else { return Err(refuse(SignatureProblem::Missing)) };
    let parsed = signing::parse(&raw.raw).map_err(refuse)?;
    let mut blobs = Vec::new();
    let mut verdict = Err(SignatureProblem::WrongKey);
    for layer in &parsed.layers {
        let payload = read_small(source.blob(artifact, &layer.payload).await?, &layer.payload).await?;
        let Some(payload) = payload else {
            return Err(refuse(SignatureProblem::Malformed("a payload does not match its digest".into())));
        };
        if verdict.is_err() {
            verdict = signing::check(layer, &payload, &manifest.digest, keys).map(|_| ());
        }
        blobs.push((layer.payload.clone(), payload));
    }
    verdict.map_err(refuse)?;
    let config = read_small(source.blob(artifact, &parsed.config).await?, &parsed.config).await?;
    let config =
        config.ok_or_else(|| refuse(SignatureProblem::Malformed("the config does not match its digest".into())))?;
    blobs.push((parsed.config, config));
    Ok(Signature { tag, digest: Digest::of(&raw.raw), manifest: raw.raw, blobs })
}

/// Read a small blob whole; `None` if it is larger than a payload may be or does not hash
/// to its descriptor.
async fn read_small(mut body: RawBlob, desc: &Descriptor) -> Result<Option<Bytes>> {
    if desc.size > MAX_PAYLOAD_BYTES {
        return Ok(None);
    }
    let mut out = Vec::with_capacity(desc.size as usize);
    while let Some(chunk) = body.next().await {
        out.extend_from_slice(&chunk?);
        if out.len() as u64 > desc.size {
            return Ok(None);
        }
    }
    Ok((out.len() as u64 == desc.size && Digest::of(&out) == desc.digest).then(|| Bytes::from(out)))
}

/// Whether `dest` already holds what `wanted` asks for beside `signed`: a signature by the
/// run's key that verifies for this digest, or exactly the carried signature; and the
/// blobs it needs. Costs one manifest read, one payload read and one presence check.
pub(super) async fn holds(dest: &dyn Destination, repo: &str, signed: &Digest, wanted: &Wanted) -> Result<bool> {
    let tag = signing::signature_tag(signed);
    let Some(raw) = dest.manifest(repo, &tag).await? else { return Ok(false) };
    let Ok(parsed) = signing::parse(&raw) else { return Ok(false) };
    match wanted {
        Wanted::Carried(sig) => {
            if Digest::of(&raw) != sig.digest {
                return Ok(false);
            }
            for (desc, _) in &sig.blobs {
                if !dest.has_blob(repo, desc).await? {
                    return Ok(false);
                }
            }
            Ok(true)
        }
        Wanted::Ours(key) => {
            let keys = std::slice::from_ref(key.public().await?);
            for layer in &parsed.layers {
                let Some(body) = dest.read_blob(repo, &layer.payload).await? else { continue };
                let Some(payload) = read_small(body, &layer.payload).await? else { continue };
                if signing::check(layer, &payload, signed, keys).is_ok() {
                    return dest.has_blob(repo, &parsed.config).await;
                }
            }
            Ok(false)
        }
    }
}

/// Publish `sig` at `dest`: its blobs (those missing), then the signature manifest under
/// its tag. Returns the bytes written.
pub(super) async fn publish(dest: &dyn Destination, repo: &str, sig: &Signature) -> Result<u64> {
    let mut written = 0;
    for (desc, bytes) in &sig.blobs {
        if dest.has_blob(repo, desc).await? {
            continue;
        }
        // A destination that switches upload mode asks once more; the bytes are at hand.
        for _ in 0..2 {
            let body = futures_util::stream::iter([Ok::<_, Error>(bytes.clone())]);
            let what = format!("signature blob {} for {}", desc.digest, dest.name());
            match dest.put_blob(repo, desc, crate::stream::verify(body, desc.clone(), what)).await? {
                Upload::Stored(n) => {
                    written += n;
                    break;
                }
                Upload::Resend { .. } => continue,
            }
        }
    }
    dest.put_signature(repo, sig).await?;
    Ok(written + sig.manifest.len() as u64)
}
