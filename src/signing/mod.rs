//! Signatures in cosign's format: what `sync --sign-key` publishes beside every manifest,
//! and what `verify --key` and `sync --require-signature` check.
//!
//! The format is cosign's signature specification (sigstore/cosign
//! `specs/SIGNATURE_SPEC.md`, docs/SIGNING.md here): for a manifest with digest
//! `sha256:<hex>`, an OCI image manifest tagged `sha256-<hex>.sig` in the same repository.
//! Each of its layers is a simple-signing payload (media type
//! `application/vnd.dev.cosign.simplesigning.v1+json`, format of containers/image
//! `docs/containers-signature.5.md`) whose `critical.image.docker-manifest-digest` is the
//! signed digest; the layer's annotation `dev.cosignproject.cosign/signature` holds the
//! base64 ASN.1 DER ECDSA P-256/SHA-256 signature of the payload bytes. The config is the
//! small image config cosign writes (rootfs diff_ids = the payload digests).
//!
//! This module builds and checks those bytes; where they are read and written is the
//! engine's business (`sync/sign.rs`) and `verify`'s.

mod encrypted;
mod key;
#[cfg(feature = "kms")]
mod kms;

use base64::Engine as _;
use bytes::Bytes;
use jiff::Timestamp;
use serde::Deserialize;
use serde_json::json;

use crate::error::{Result, SignatureProblem};
use crate::oci::{Descriptor, Digest, OCI_MANIFEST};
#[cfg(test)]
pub(crate) use key::tests::{OTHER_KEY, TEST_KEY};
pub use key::{PublicKey, SigningKey};

/// Media type of a simple-signing payload layer.
pub const SIMPLE_SIGNING: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
/// The layer annotation holding the base64 signature.
pub const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";
/// `critical.type` of a cosign container image signature.
const SIGNATURE_TYPE: &str = "cosign container image signature";
/// Media type of the signature manifest's config.
const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// Largest payload read back (cosign's are a few hundred bytes).
pub const MAX_PAYLOAD_BYTES: u64 = 64 * 1024;

/// The tag of the signature of `digest`: `sha256-<hex>.sig`.
pub fn signature_tag(digest: &Digest) -> String {
    format!("sha256-{}.sig", digest.hex())
}

/// Whether `tag` names a signature (retention and listings treat these apart).
pub fn is_signature_tag(tag: &str) -> bool {
    tag.strip_prefix("sha256-")
        .and_then(|t| t.strip_suffix(".sig"))
        .is_some_and(|hex| hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// The digest a signature tag is for.
pub fn signed_digest(tag: &str) -> Option<Digest> {
    if !is_signature_tag(tag) {
        return None;
    }
    Digest::parse(&format!("sha256:{}", &tag[7..71])).ok()
}

/// What a signature records besides the digest (cosign's `optional` claims): where the
/// mirror got the content and when.
#[derive(Clone, Debug)]
pub struct Provenance {
    /// The source it came from (`mirror.gcr.io/aquasec`).
    pub source: String,
    /// When this run fetched it.
    pub fetched: Timestamp,
}

/// A signature manifest with its two blobs, ready to publish or as found.
#[derive(Clone, Debug)]
pub struct Signature {
    /// `sha256-<hex>.sig`.
    pub tag: String,
    /// The signature manifest, exact bytes.
    pub manifest: Bytes,
    /// Its digest.
    pub digest: Digest,
    /// Its blobs (payloads, then the config), with their bytes.
    pub blobs: Vec<(Descriptor, Bytes)>,
}

impl Signature {
    /// The signature manifest's media type.
    pub const MEDIA_TYPE: &'static str = OCI_MANIFEST;
}

/// Sign `signed` as `reference` (the repository as clients name it). The payload's
/// `critical` part is what cosign checks; `optional` records the provenance.
pub async fn sign(key: &SigningKey, signed: &Digest, reference: &str, provenance: &Provenance) -> Result<Signature> {
    let payload = json!({
        "critical": {
            "identity": {"docker-reference": reference},
            "image": {"docker-manifest-digest": signed.as_str()},
            "type": SIGNATURE_TYPE,
        },
        "optional": {
            "source": provenance.source,
            "source-digest": signed.as_str(),
            "fetched": provenance.fetched.to_string(),
            "generator": concat!("trivy-mirror ", env!("CARGO_PKG_VERSION")),
            "signer": key.public().await?.id,
        },
    });
    let payload = Bytes::from(serde_json::to_vec(&payload).expect("JSON"));
    let signature = base64::engine::general_purpose::STANDARD.encode(key.sign(&payload).await?);
    let payload_desc = descriptor(SIMPLE_SIGNING, &payload);
    // The image config cosign writes for a signature: empty but for the diff_ids.
    let config = json!({
        "architecture": "", "os": "", "created": "0001-01-01T00:00:00Z",
        "config": {},
        "rootfs": {"type": "layers", "diff_ids": [payload_desc.digest.as_str()]},
        "history": [{"created": "0001-01-01T00:00:00Z"}],
    });
    let config = Bytes::from(serde_json::to_vec(&config).expect("JSON"));
    let config_desc = descriptor(OCI_CONFIG, &config);
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "size": config_desc.size, "digest": config_desc.digest.as_str()},
        "layers": [{
            "mediaType": SIMPLE_SIGNING, "size": payload_desc.size, "digest": payload_desc.digest.as_str(),
            "annotations": {SIGNATURE_ANNOTATION: signature},
        }],
    });
    let manifest = Bytes::from(serde_json::to_vec(&manifest).expect("JSON"));
    Ok(Signature {
        tag: signature_tag(signed),
        digest: Digest::of(&manifest),
        manifest,
        blobs: vec![(payload_desc, payload), (config_desc, config)],
    })
}

fn descriptor(media_type: &str, body: &[u8]) -> Descriptor {
    Descriptor { media_type: media_type.to_string(), digest: Digest::of(body), size: body.len() as u64 }
}

/// One signed layer of a signature manifest, as found.
#[derive(Clone, Debug)]
pub struct SignedLayer {
    /// The payload blob.
    pub payload: Descriptor,
    /// The signature of the payload (DER), decoded from the annotation.
    pub signature: Vec<u8>,
}

/// The parts of a signature manifest: its signed layers and its config.
#[derive(Clone, Debug)]
pub struct Parsed {
    /// Signed layers (cosign allows several signatures in one manifest).
    pub layers: Vec<SignedLayer>,
    /// The config blob.
    pub config: Descriptor,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawManifest {
    config: RawDescriptor,
    #[serde(default)]
    layers: Vec<RawDescriptor>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawDescriptor {
    media_type: String,
    digest: String,
    size: u64,
    #[serde(default)]
    annotations: std::collections::BTreeMap<String, String>,
}

impl RawDescriptor {
    fn checked(self) -> Result<Descriptor, SignatureProblem> {
        let digest = Digest::parse(&self.digest).map_err(|_| malformed("a descriptor's digest is not sha256"))?;
        Ok(Descriptor { media_type: self.media_type, digest, size: self.size })
    }
}

fn malformed(why: &str) -> SignatureProblem {
    SignatureProblem::Malformed(why.to_string())
}

/// Parse a signature manifest: every simple-signing layer with a decodable signature.
pub fn parse(raw: &[u8]) -> Result<Parsed, SignatureProblem> {
    let m: RawManifest = serde_json::from_slice(raw).map_err(|_| malformed("the manifest is not an OCI manifest"))?;
    let mut layers = Vec::new();
    for l in m.layers {
        if l.media_type != SIMPLE_SIGNING {
            continue;
        }
        let Some(sig) = l.annotations.get(SIGNATURE_ANNOTATION) else { continue };
        let signature = base64::engine::general_purpose::STANDARD
            .decode(sig.trim())
            .map_err(|_| malformed("the signature annotation is not base64"))?;
        let payload = l.checked()?;
        if payload.size > MAX_PAYLOAD_BYTES {
            return Err(malformed("the payload is larger than 64 KiB"));
        }
        layers.push(SignedLayer { payload, signature });
    }
    if layers.is_empty() {
        return Err(malformed("no signed simple-signing layer"));
    }
    Ok(Parsed { layers, config: m.config.checked()? })
}

#[derive(Deserialize)]
struct Payload {
    critical: Critical,
}

#[derive(Deserialize)]
struct Critical {
    image: Image,
    #[serde(rename = "type")]
    kind: String,
}

#[derive(Deserialize)]
struct Image {
    // Go's JSON decoder, which cosign uses, matches keys case-insensitively; the
    // specification's example writes `Docker-manifest-digest`.
    #[serde(rename = "docker-manifest-digest", alias = "Docker-manifest-digest")]
    digest: String,
}

/// Check one signed layer as cosign does: the payload bytes hash to the layer's digest,
/// the signature verifies under one of `keys`, the payload names `signed`. Returns the key
/// that verified. `payload` is the blob as read (unverified).
pub fn check<'k>(
    layer: &SignedLayer,
    payload: &[u8],
    signed: &Digest,
    keys: &'k [PublicKey],
) -> Result<&'k PublicKey, SignatureProblem> {
    if Digest::of(payload) != layer.payload.digest || payload.len() as u64 != layer.payload.size {
        return Err(malformed("the payload does not match its digest"));
    }
    let key = keys.iter().find(|k| k.verifies(payload, &layer.signature)).ok_or(SignatureProblem::WrongKey)?;
    let p: Payload =
        serde_json::from_slice(payload).map_err(|_| malformed("the payload is not simple-signing JSON"))?;
    if p.critical.kind != SIGNATURE_TYPE {
        return Err(malformed("the payload's critical.type is not a cosign container image signature"));
    }
    if p.critical.image.digest != signed.as_str() {
        return Err(SignatureProblem::OtherDigest { signed: p.critical.image.digest });
    }
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> SigningKey {
        SigningKey::from_pem(TEST_KEY.as_bytes(), "test", None).unwrap()
    }

    fn provenance() -> Provenance {
        Provenance { source: "mirror.gcr.io/aquasec".into(), fetched: "2026-12-07T06:00:00Z".parse().unwrap() }
    }

    #[tokio::test]
    async fn a_signature_checks_and_names_its_digest() {
        let digest = Digest::of(b"manifest");
        let sig = sign(&key(), &digest, "mirror.example.com/aquasecurity/trivy-db", &provenance()).await.unwrap();
        assert_eq!(sig.tag, format!("sha256-{}.sig", digest.hex()));
        assert_eq!(signed_digest(&sig.tag), Some(digest.clone()));
        let parsed = parse(&sig.manifest).unwrap();
        assert_eq!(parsed.layers.len(), 1);
        assert_eq!(parsed.config, sig.blobs[1].0);
        let payload = &sig.blobs[0].1;
        let keys = [key().public().await.unwrap().clone()];
        assert!(check(&parsed.layers[0], payload, &digest, &keys).is_ok());
        // Another digest, a flipped signature byte, a changed payload, no matching key.
        let other = Digest::of(b"other");
        assert!(matches!(check(&parsed.layers[0], payload, &other, &keys), Err(SignatureProblem::OtherDigest { .. })));
        let mut flipped = parsed.layers[0].clone();
        let last = flipped.signature.len() - 1;
        flipped.signature[last] ^= 1;
        assert!(matches!(check(&flipped, payload, &digest, &keys), Err(SignatureProblem::WrongKey)));
        assert!(matches!(check(&parsed.layers[0], b"x", &digest, &keys), Err(SignatureProblem::Malformed(_))));
        assert!(matches!(check(&parsed.layers[0], payload, &digest, &[]), Err(SignatureProblem::WrongKey)));
    }

    #[test]
    fn signature_tags_are_recognised() {
        let d = Digest::of(b"x");
        assert!(is_signature_tag(&signature_tag(&d)));
        for t in ["2", "2-20261126T0600Z", "sha256-abc.sig", "latest"] {
            assert!(!is_signature_tag(t), "{t}");
        }
        crate::oci::validate_tag(&signature_tag(&d)).unwrap();
    }
}
