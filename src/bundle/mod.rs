//! The air-gap bundle format: a standard OCI image layout (image-spec `image-layout.md`),
//! as a directory (`oci:DIR`) or as one uncompressed tar of such a directory
//! (`oci-archive:FILE`, the form skopeo and regctl read and write).
//!
//! ```text
//! oci-layout                  {"imageLayoutVersion":"1.0.0"}
//! index.json                  one descriptor per tag, named by org.opencontainers.image.ref.name
//! blobs/sha256/<hex>          manifests (exact upstream bytes), configs, layers
//! ```
//!
//! Each manifest is named in `index.json` by `<repository>:<tag>` as it is published
//! (`aquasecurity/trivy-db:2`), so `skopeo inspect --raw oci-archive:FILE:aquasecurity/trivy-db:2`
//! prints the upstream manifest. VEX Hub travels as one more artifact of the same OCI image layout
//! (`<namespace>/vexhub:latest`, [`crate::vex::artifact`]), stored like the databases.
//!
//! A bundle crosses an untrusted channel, so everything read from one is checked here
//! before use: the index's shape and every ref name against the grammar, every member
//! name of a tar ([`tar`]), and (by the source) every blob's size and digest.

pub mod tar;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::oci::{Descriptor, Digest, OCI_INDEX, validate_repository, validate_tag};

/// The annotation that names a manifest in `index.json`.
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";
/// The OCI image layout marker file and its only content.
pub const LAYOUT_FILE: &str = "oci-layout";
/// `oci-layout`'s content.
pub const LAYOUT_CONTENT: &[u8] = br#"{"imageLayoutVersion":"1.0.0"}"#;
/// The index file.
pub const INDEX_FILE: &str = "index.json";
/// Largest `index.json` read (a real one is a few KiB).
pub const MAX_INDEX_BYTES: usize = 4 * 1024 * 1024;

/// One named manifest of a bundle.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IndexEntry {
    /// Repository as published (`aquasecurity/trivy-db`).
    pub repository: String,
    /// Tag (`2`, `2-20261126T0600Z`).
    pub tag: String,
    /// The manifest's descriptor.
    pub manifest: Descriptor,
}

impl IndexEntry {
    /// The ref name: `repository:tag`.
    pub fn ref_name(&self) -> String {
        format!("{}:{}", self.repository, self.tag)
    }
}

/// Where a blob lives in the layout.
pub fn blob_path(digest: &Digest) -> String {
    format!("blobs/sha256/{}", digest.hex())
}

/// Check a ref name against the image-layout grammar:
/// `component ("/" component)*`, `component ::= alphanum (separator alphanum)*`,
/// `alphanum ::= [A-Za-z0-9]+`, `separator ::= [-._:@+] | "--"`.
pub fn validate_ref_name(name: &str) -> Result<()> {
    // Ref names live in index.json: that is what a bad one makes unusable.
    let refuse = |reason: String| Error::rejected(format!("bundle {INDEX_FILE}"), reason);
    if name.is_empty() || name.len() > 512 {
        return Err(refuse("a ref name is 1 to 512 characters".into()));
    }
    for component in name.split('/') {
        let b = component.as_bytes();
        let mut i = 0;
        loop {
            let start = i;
            while i < b.len() && b[i].is_ascii_alphanumeric() {
                i += 1;
            }
            if i == start {
                return Err(refuse(format!("{name:?} is not a valid ref name (image-layout grammar)")));
            }
            if i == b.len() {
                break;
            }
            if b[i..].starts_with(b"--") {
                i += 2;
            } else if b"-._:@+".contains(&b[i]) {
                i += 1;
            } else {
                return Err(refuse(format!("{name:?} is not a valid ref name (image-layout grammar)")));
            }
        }
    }
    Ok(())
}

#[derive(Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
struct RawIndex {
    schema_version: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    media_type: Option<String>,
    manifests: Vec<RawEntry>,
}

#[derive(Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
struct RawEntry {
    media_type: String,
    digest: String,
    size: i64,
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    annotations: std::collections::BTreeMap<String, String>,
}

/// Parse and check `index.json`: schemaVersion 2, every descriptor a sha256 digest with a
/// plausible manifest size, every ref name in the grammar and of the `repository:tag`
/// form, no name twice. Descriptors without a ref name are ignored (other tools add them).
pub fn parse_index(raw: &[u8]) -> Result<Vec<IndexEntry>> {
    let refuse = |reason: String| Error::rejected(format!("bundle {INDEX_FILE}"), reason);
    if raw.len() > MAX_INDEX_BYTES {
        return Err(refuse(format!("{} bytes is over the {MAX_INDEX_BYTES}-byte limit", raw.len())));
    }
    let index: RawIndex = serde_json::from_slice(raw).map_err(|e| refuse(format!("not an OCI image index: {e}")))?;
    if index.schema_version != 2 {
        return Err(refuse(format!("schemaVersion is {}, expected 2", index.schema_version)));
    }
    if index.media_type.as_deref().is_some_and(|m| m != OCI_INDEX) {
        return Err(refuse(format!("mediaType {:?} is not the OCI image index type", index.media_type)));
    }
    let mut entries: Vec<IndexEntry> = Vec::new();
    for m in index.manifests {
        let Some(name) = m.annotations.get(REF_NAME) else { continue };
        validate_ref_name(name)?;
        let (repository, tag) = name
            .rsplit_once(':')
            .filter(|(r, t)| validate_repository(r).is_ok() && validate_tag(t).is_ok())
            .ok_or_else(|| refuse(format!("ref name {name:?} is not REPOSITORY:TAG")))?;
        let digest = Digest::parse(&m.digest).map_err(|e| refuse(format!("{name}: {e}")))?;
        if m.size <= 0 || m.size as usize > crate::oci::MAX_MANIFEST_BYTES {
            return Err(refuse(format!("{name}: manifest size {} is out of range", m.size)));
        }
        if entries.iter().any(|e| e.ref_name() == *name) {
            return Err(refuse(format!("ref name {name:?} appears twice")));
        }
        entries.push(IndexEntry {
            repository: repository.to_string(),
            tag: tag.to_string(),
            manifest: Descriptor { media_type: m.media_type, digest, size: m.size as u64 },
        });
    }
    Ok(entries)
}

/// Render `index.json` for `entries`, sorted by ref name so the file is stable.
pub fn render_index(entries: &[IndexEntry]) -> Bytes {
    let mut sorted: Vec<&IndexEntry> = entries.iter().collect();
    sorted.sort_by_key(|e| e.ref_name());
    let index = RawIndex {
        schema_version: 2,
        media_type: Some(OCI_INDEX.to_string()),
        manifests: sorted
            .into_iter()
            .map(|e| RawEntry {
                media_type: e.manifest.media_type.clone(),
                digest: e.manifest.digest.to_string(),
                size: e.manifest.size as i64,
                annotations: [(REF_NAME.to_string(), e.ref_name())].into(),
            })
            .collect(),
    };
    let mut out = serde_json::to_vec_pretty(&index).expect("an index serializes");
    out.push(b'\n');
    Bytes::from(out)
}

/// The manifest matching `name` (the repository's last component) and `tag`, whatever
/// namespace the bundle was written under. Two different manifests for the same name and
/// tag are ambiguous and refused.
pub fn find<'a>(entries: &'a [IndexEntry], name: &str, tag: &str) -> Result<Option<&'a IndexEntry>> {
    let mut found: Option<&IndexEntry> = None;
    for e in entries {
        let last = e.repository.rsplit('/').next().unwrap_or(&e.repository);
        if last == name && e.tag == tag {
            if let Some(prev) = found
                && prev.manifest.digest != e.manifest.digest
            {
                return Err(Error::rejected(
                    format!("bundle {INDEX_FILE}"),
                    format!("both {} and {} name {name}:{tag}", prev.ref_name(), e.ref_name()),
                ));
            }
            found = Some(e);
        }
    }
    Ok(found)
}

/// The references of a manifest: its config and layers. Used to collect garbage in a
/// bundle directory and by Trivy's cache to find a recorded layer.
pub fn manifest_blobs(raw: &[u8]) -> Result<(Descriptor, Vec<Descriptor>)> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct M {
        config: RawEntry,
        #[serde(default)]
        layers: Vec<RawEntry>,
    }
    let refuse = |reason: String| Error::rejected("bundle manifest", reason);
    let m: M = serde_json::from_slice(raw).map_err(|e| refuse(format!("not an image manifest: {e}")))?;
    let desc = |r: &RawEntry| -> Result<Descriptor> {
        let size = u64::try_from(r.size).map_err(|_| refuse(format!("negative size {}", r.size)))?;
        Ok(Descriptor { media_type: r.media_type.clone(), digest: Digest::parse(&r.digest)?, size })
    };
    Ok((desc(&m.config)?, m.layers.iter().map(desc).collect::<Result<_>>()?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oci::OCI_MANIFEST;

    fn entry(repo: &str, tag: &str, raw: &[u8]) -> IndexEntry {
        IndexEntry {
            repository: repo.into(),
            tag: tag.into(),
            manifest: Descriptor { media_type: OCI_MANIFEST.into(), digest: Digest::of(raw), size: raw.len() as u64 },
        }
    }

    #[test]
    fn ref_names_follow_the_layout_grammar() {
        for ok in ["aquasecurity/trivy-db:2", "a/b--c:2-20261126T0600Z", "x@y+z", "trivy-checks:1"] {
            validate_ref_name(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        for bad in ["", "/a", "a/", "a//b", "a:-2", "../x", "a b", "a/../b", "a:", "ü", "a---b"] {
            assert!(validate_ref_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn an_index_round_trips_and_is_found_under_any_namespace() {
        let entries = vec![entry("aquasecurity/trivy-db", "2", b"m1"), entry("corp/mirror/trivy-java-db", "1", b"m2")];
        let raw = render_index(&entries);
        let parsed = parse_index(&raw).unwrap();
        assert_eq!(parsed.len(), 2);
        assert!(parsed.contains(&entries[0]) && parsed.contains(&entries[1]));
        assert_eq!(find(&parsed, "trivy-java-db", "1").unwrap().unwrap().repository, "corp/mirror/trivy-java-db");
        assert!(find(&parsed, "trivy-db", "1").unwrap().is_none());
        let ambiguous = [entry("a/trivy-db", "2", b"x"), entry("b/trivy-db", "2", b"y")];
        assert!(find(&ambiguous, "trivy-db", "2").is_err());
    }

    #[test]
    fn hostile_indexes_are_refused() {
        let d = Digest::of(b"m");
        let with = |name: &str, digest: &str, size: i64| {
            format!(
                r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"{OCI_MANIFEST}","digest":"{digest}","size":{size},
                "annotations":{{"{REF_NAME}":"{name}"}}}}]}}"#
            )
        };
        for bad in [
            with("../../etc:2", d.as_str(), 1),
            with("aquasecurity/trivy-db", d.as_str(), 1),
            with("Aqua/trivy-db:2", d.as_str(), 1),
            with("a/trivy-db:2", "sha256:../../x", 1),
            with("a/trivy-db:2", d.as_str(), 0),
            with("a/trivy-db:2", d.as_str(), 1 << 40),
            r#"{"schemaVersion":1,"manifests":[]}"#.into(),
            "[]".into(),
        ] {
            assert!(parse_index(bad.as_bytes()).is_err(), "{bad}");
        }
        let twice = format!(
            r#"{{"schemaVersion":2,"manifests":[{0},{0}]}}"#,
            format!(r#"{{"mediaType":"m","digest":"{d}","size":1,"annotations":{{"{REF_NAME}":"a/b:1"}}}}"#)
        );
        assert!(parse_index(twice.as_bytes()).unwrap_err().to_string().contains("twice"));
    }
}
