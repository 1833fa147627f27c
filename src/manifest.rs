//! Shape checks on upstream manifests, done on the exact bytes received.
//!
//! The bytes are parsed only to be checked; what gets stored and pushed is always the
//! original byte string, so digests (and Trivy's checks-bundle digest cache) stay valid.
//! A manifest is refused unless it is an OCI/Docker image manifest with schemaVersion 2,
//! a sha256 config, and exactly one layer of the media type Trivy expects for that
//! artifact, titled `*.tar.gz` with a plain file name.

use bytes::Bytes;
use serde::Deserialize;

use crate::artifact::{Kind, OciArtifact};
use crate::error::{Error, Result};
use crate::oci::{
    DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, Descriptor, Digest, MAX_MANIFEST_BYTES, OCI_INDEX, OCI_MANIFEST,
};

/// Largest blob accepted (the Java DB is ~0.7 GB today; leave room for growth).
pub const MAX_BLOB_BYTES: u64 = 8 * 1024 * 1024 * 1024;

const INDEX_TYPES: [&str; 2] = [OCI_INDEX, DOCKER_MANIFEST_LIST];

/// A manifest that passed the shape checks, with its original bytes.
#[derive(Clone, Debug)]
pub struct CheckedManifest {
    /// Exactly the bytes received from upstream.
    pub raw: Bytes,
    /// sha256 of `raw`.
    pub digest: Digest,
    /// The manifest's media type (from its `mediaType` field, else the Content-Type).
    pub media_type: String,
    /// Which artifact family it belongs to (destinations store VEX their own way).
    pub kind: Kind,
    /// The config descriptor.
    pub config: Descriptor,
    /// The layer (for VEX, the first archive).
    pub layer: Descriptor,
    /// Every layer, in order: the one layer of a database, one per archive for VEX.
    pub layers: Vec<Descriptor>,
    /// The manifest's `org.opencontainers.image.version` annotation (checks bundle major).
    pub version: Option<String>,
    /// The manifest's `org.opencontainers.image.created` annotation, if it is a timestamp.
    pub created: Option<jiff::Timestamp>,
}

impl CheckedManifest {
    /// The blobs the manifest references, layers first: a layer is the large blob whose
    /// transfer can fail (or be refused), so a bad one leaves nothing behind at all.
    pub fn blobs(&self) -> Vec<&Descriptor> {
        self.layers.iter().chain([&self.config]).collect()
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawManifest {
    schema_version: Option<i64>,
    media_type: Option<String>,
    config: Option<RawDescriptor>,
    layers: Option<Vec<RawDescriptor>>,
    manifests: Option<serde_json::Value>,
    #[serde(default)]
    annotations: std::collections::BTreeMap<String, String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawDescriptor {
    media_type: String,
    digest: String,
    size: i64,
    #[serde(default)]
    annotations: std::collections::BTreeMap<String, String>,
}

/// Check `raw` as the manifest of `artifact`. `content_type` is the Content-Type the
/// registry sent, used when the body has no `mediaType` field.
pub fn check(artifact: &OciArtifact, raw: Bytes, content_type: Option<&str>) -> Result<CheckedManifest> {
    let what = format!("manifest of {artifact}");
    let refuse = |reason: String| Error::rejected(what.clone(), reason);
    if raw.len() > MAX_MANIFEST_BYTES {
        return Err(refuse(format!("{} bytes is over the {MAX_MANIFEST_BYTES}-byte limit", raw.len())));
    }
    // Parse the whole document first: deserializing straight into the struct skips unknown
    // fields without validating them, and a manifest other clients cannot parse must not be
    // published.
    let text = std::str::from_utf8(&raw).map_err(|e| refuse(format!("not UTF-8: {e}")))?;
    if has_lone_surrogate_escape(text) {
        return Err(refuse("a string holds a lone UTF-16 surrogate escape".into()));
    }
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| refuse(format!("not a JSON image manifest: {e}")))?;
    let m: RawManifest =
        serde_json::from_value(value).map_err(|e| refuse(format!("not a JSON image manifest: {e}")))?;
    let media_type = m
        .media_type
        .clone()
        .or_else(|| content_type.map(|c| c.split(';').next().unwrap_or(c).trim().to_string()))
        .unwrap_or_else(|| OCI_MANIFEST.to_string());
    if m.manifests.is_some() || INDEX_TYPES.contains(&media_type.as_str()) {
        return Err(refuse("an index or manifest list was served where an artifact manifest is expected".into()));
    }
    if media_type != OCI_MANIFEST && media_type != DOCKER_MANIFEST {
        return Err(refuse(format!("unsupported manifest media type {media_type:?}")));
    }
    if m.schema_version != Some(2) {
        return Err(refuse(format!("schemaVersion is {:?}, expected 2", m.schema_version)));
    }
    let config = descriptor(m.config.as_ref().ok_or_else(|| refuse("no config descriptor".into()))?, &what)?;
    let raw_layers = m.layers.unwrap_or_default();
    let layers = if artifact.kind == Kind::Vex {
        check_vex(&config, &raw_layers, &what)?
    } else {
        if raw_layers.len() != 1 {
            return Err(refuse(format!("{} layers, Trivy needs exactly one", raw_layers.len())));
        }
        let raw_layer = &raw_layers[0];
        let layer = descriptor(raw_layer, &what)?;
        if layer.media_type != artifact.layer_media_type {
            return Err(refuse(format!(
                "layer media type {:?}, Trivy expects {:?}",
                layer.media_type, artifact.layer_media_type
            )));
        }
        let title = raw_layer
            .annotations
            .get("org.opencontainers.image.title")
            .ok_or_else(|| refuse("the layer has no org.opencontainers.image.title annotation".into()))?;
        check_title(&what, title)?;
        vec![layer]
    };
    let digest = Digest::of(&raw);
    Ok(CheckedManifest {
        version: m.annotations.get("org.opencontainers.image.version").cloned(),
        created: m.annotations.get("org.opencontainers.image.created").and_then(|c| c.parse().ok()),
        raw,
        digest,
        media_type,
        kind: artifact.kind,
        config,
        layer: layers[0].clone(),
        layers,
    })
}

/// The VEX artifact's shape ([`crate::vex::artifact`]): the upstream manifest as config,
/// then one or more archives, each a tar.gz or zip titled with the plain file name it is
/// published under, no name twice.
fn check_vex(config: &Descriptor, raw_layers: &[RawDescriptor], what: &str) -> Result<Vec<Descriptor>> {
    use crate::vex::artifact::{VEX_MANIFEST_TYPE, check_title, format_of};
    let refuse = |reason: String| Error::rejected(what, reason);
    if config.media_type != VEX_MANIFEST_TYPE {
        return Err(refuse(format!("config media type {:?} is not a VEX repository manifest", config.media_type)));
    }
    if raw_layers.is_empty() {
        return Err(refuse("no archive layer".into()));
    }
    // Destinations that publish VEX hold its blobs whole: keep them within the limits the
    // VEX Hub source downloads under.
    if config.size > crate::vex::MAX_VEX_MANIFEST as u64 {
        return Err(refuse(format!("the repository manifest is {} bytes, over the limit", config.size)));
    }
    let mut titles = std::collections::BTreeSet::new();
    let mut layers = Vec::new();
    for raw_layer in raw_layers {
        let layer = descriptor(raw_layer, what)?;
        if layer.size > crate::vex::MAX_VEX_ARCHIVE as u64 {
            return Err(refuse(format!("archive {} is {} bytes, over the limit", layer.digest, layer.size)));
        }
        let format = format_of(&layer.media_type)
            .ok_or_else(|| refuse(format!("layer media type {:?} is not a VEX archive", layer.media_type)))?;
        let title = raw_layer.annotations.get("org.opencontainers.image.title").map(String::as_str).unwrap_or("");
        check_title(format, title)?;
        if !titles.insert(title) {
            return Err(refuse(format!("two archives are titled {title:?}")));
        }
        layers.push(layer);
    }
    Ok(layers)
}

/// Whether a JSON text has a `\uD800`–`\uDFFF` escape that is not part of a valid pair
/// (serde_json accepts those in fields it skips; other JSON parsers refuse them).
fn has_lone_surrogate_escape(text: &str) -> bool {
    let b = text.as_bytes();
    let unit = |i: usize| -> Option<u16> {
        let hex = b.get(i + 2..i + 6)?;
        (b[i] == b'\\' && b[i + 1] == b'u').then(|| u16::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok())?
    };
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' {
            if let Some(u) = unit(i) {
                if (0xD800..0xDC00).contains(&u) {
                    match unit(i + 6) {
                        Some(low) if (0xDC00..0xE000).contains(&low) => i += 12,
                        _ => return true,
                    }
                    continue;
                }
                if (0xDC00..0xE000).contains(&u) {
                    return true;
                }
            }
            i += 2; // skip the escaped character, so `\\u` is not read as an escape
            continue;
        }
        i += 1;
    }
    false
}

fn descriptor(d: &RawDescriptor, what: &str) -> Result<Descriptor> {
    let digest = Digest::parse(&d.digest).map_err(|e| Error::rejected(what, e.to_string()))?;
    if d.size < 0 || d.size as u64 > MAX_BLOB_BYTES {
        return Err(Error::rejected(what, format!("blob {digest} has size {}, outside 0..={MAX_BLOB_BYTES}", d.size)));
    }
    Ok(Descriptor { media_type: d.media_type.clone(), digest, size: d.size as u64 })
}

/// Trivy writes the layer to `<cache>/<title>` and picks the decompressor from the name:
/// the title must be a plain `*.tar.gz` file name, never a path.
fn check_title(what: &str, title: &str) -> Result<()> {
    if !title.ends_with(".tar.gz") {
        return Err(Error::rejected(what, format!("layer title {title:?} does not end in .tar.gz")));
    }
    if title.contains('/') || title.contains('\\') || title.starts_with('.') || title.contains('\0') {
        return Err(Error::rejected(what, format!("layer title {title:?} is not a plain file name")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::artifact::OCI_ARTIFACTS;

    const DB: &OciArtifact = &OCI_ARTIFACTS[0];

    fn manifest(layers: &str) -> Bytes {
        Bytes::from(format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"application/vnd.oci.empty.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2}},"layers":[{layers}]}}"#
        ))
    }

    fn layer(media_type: &str, title: &str, size: i64) -> String {
        format!(
            r#"{{"mediaType":"{media_type}","digest":"sha256:{}","size":{size},"annotations":{{"org.opencontainers.image.title":"{title}"}}}}"#,
            "0".repeat(64)
        )
    }

    #[test]
    fn accepts_the_upstream_shape_and_keeps_bytes() {
        let raw = manifest(&layer(crate::artifact::DB_LAYER, "db.tar.gz", 100));
        let m = check(DB, raw.clone(), None).unwrap();
        assert_eq!(m.raw, raw);
        assert_eq!(m.digest, Digest::of(&raw));
        assert_eq!(m.layer.size, 100);
        assert_eq!(m.config.size, 2);
    }

    #[test]
    fn refuses_bad_shapes() {
        let good = layer(crate::artifact::DB_LAYER, "db.tar.gz", 100);
        let cases = [
            (manifest(""), "0 layers"),
            (manifest(&format!("{good},{good}")), "2 layers"),
            (manifest(&layer(crate::artifact::JAVA_DB_LAYER, "db.tar.gz", 1)), "layer media type"),
            (manifest(&layer(crate::artifact::DB_LAYER, "db.zip", 1)), "does not end in .tar.gz"),
            (manifest(&layer(crate::artifact::DB_LAYER, "../db.tar.gz", 1)), "not a plain file name"),
            (manifest(&layer(crate::artifact::DB_LAYER, "/etc/db.tar.gz", 1)), "not a plain file name"),
            (manifest(&layer(crate::artifact::DB_LAYER, "db.tar.gz", -1)), "outside"),
            (Bytes::from_static(br#"{"schemaVersion":2,"manifests":[]}"#), "index"),
            (Bytes::from_static(b"not json"), "not a JSON"),
            (Bytes::from(vec![b' '; MAX_MANIFEST_BYTES + 1]), "limit"),
        ];
        for (raw, expect) in cases {
            let err = check(DB, raw, None).unwrap_err().to_string();
            assert!(err.contains(expect), "{err:?} should mention {expect:?}");
        }
        let bad_digest = manifest(&good.replace(&"0".repeat(64), "../../../etc/passwd"));
        assert!(check(DB, bad_digest, None).unwrap_err().to_string().contains("sha256"));
        let schema1 = manifest(&good).slice(..).to_vec();
        let schema1 = String::from_utf8(schema1).unwrap().replace("\"schemaVersion\":2", "\"schemaVersion\":1");
        assert!(check(DB, Bytes::from(schema1), None).unwrap_err().to_string().contains("schemaVersion"));
    }
}
#[cfg(test)]
mod vex_shape {
    use super::*;
    use crate::artifact::VEX_ARTIFACT;
    use crate::vex::artifact::{VEX_MANIFEST_TYPE, VEX_TAR_GZ_TYPE, VEX_ZIP_TYPE, build_manifest, descriptor};

    #[test]
    fn the_vex_artifact_is_accepted_with_each_archive_titled_for_its_format() {
        let config = descriptor(VEX_MANIFEST_TYPE, b"{}");
        let layers = [
            (descriptor(VEX_TAR_GZ_TYPE, b"a"), "main.tar.gz".into()),
            (descriptor(VEX_ZIP_TYPE, b"b"), "main.zip".into()),
        ];
        let m = check(&VEX_ARTIFACT, build_manifest(&config, &layers, None), None).unwrap();
        assert_eq!((m.kind, m.layers.len(), m.blobs().len()), (Kind::Vex, 2, 3));
        for (bad, expect) in [
            (build_manifest(&config, &[], None), "no archive layer"),
            (build_manifest(&descriptor("application/json", b"{}"), &layers[..1], None), "config media type"),
            (build_manifest(&config, &[(descriptor(VEX_ZIP_TYPE, b"b"), "main.tar.gz".into())], None), ".zip"),
            (build_manifest(&config, &[(descriptor(VEX_ZIP_TYPE, b"b"), "../x.zip".into())], None), "plain"),
            (build_manifest(&config, &[layers[0].clone(), layers[0].clone()], None), "two archives"),
        ] {
            let err = check(&VEX_ARTIFACT, bad, None).unwrap_err().to_string();
            assert!(err.contains(expect), "{err:?} should mention {expect:?}");
        }
        // A database artifact's shape is not VEX's, and the other way round.
        assert!(check(&crate::artifact::OCI_ARTIFACTS[0], build_manifest(&config, &layers[..1], None), None).is_err());
    }
}

#[cfg(test)]
mod fuzz_regressions {
    #[test]
    fn invalid_text_in_ignored_fields_is_refused() {
        for name in ["ignored-field-lone-surrogate-escape", "ignored-field-not-utf8"] {
            let raw =
                std::fs::read(format!("{}/fuzz/regressions/manifest/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap();
            let a = &crate::artifact::OCI_ARTIFACTS[usize::from(raw[0]) % 4];
            let r = super::check(a, bytes::Bytes::copy_from_slice(&raw[1..]), None);
            assert!(r.is_err(), "{name} accepted");
        }
    }
}
