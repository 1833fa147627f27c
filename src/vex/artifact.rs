//! VEX Hub as an OCI artifact, the one form in which the engine copies it
//! (`<namespace>/vexhub:latest`):
//!
//! ```text
//! config    the upstream vex-repository.json, byte for byte
//! layers    one archive per location, in the order of the manifest's locations,
//!           titled with the file name it is published under (main.tar.gz, main.zip)
//! ```
//!
//! The VEX Hub source builds it ([`build_manifest`]), a bundle or a registry stores it as
//! is, and the destinations that publish VEX for Trivy read it back ([`Release::read`]):
//! which archive is which format, its `//subdir`, and the manifest rewritten to the
//! mirror's URLs ([`Release::rewrite`]).

use bytes::Bytes;
use jiff::Timestamp;
use serde::Deserialize;
use serde_json::Value;

use super::{ArchiveChoice, Format, Publication, location_versions, parse_location, parse_manifest};
use crate::error::{Error, Result};
use crate::oci::{Descriptor, Digest, OCI_MANIFEST};

/// Repository name (below the namespace) of the VEX artifact.
pub const VEX_NAME: &str = "vexhub";
/// Tag of the VEX artifact.
pub const VEX_TAG: &str = "latest";
/// `artifactType` of the VEX artifact.
pub const VEX_ARTIFACT_TYPE: &str = "application/vnd.trivy-mirror.vex-repository.v1";
/// Media type of its config: the upstream `vex-repository.json`.
pub const VEX_MANIFEST_TYPE: &str = "application/vnd.trivy-mirror.vex-repository.manifest.v1+json";
/// Media type of an archive layer in tar.gz form.
pub const VEX_TAR_GZ_TYPE: &str = "application/vnd.trivy-mirror.vex-repository.archive.v1.tar+gzip";
/// Media type of an archive layer in zip form.
pub const VEX_ZIP_TYPE: &str = "application/vnd.trivy-mirror.vex-repository.archive.v1.zip";

/// The layer media type of an archive format.
pub fn layer_type(format: Format) -> &'static str {
    match format {
        Format::TarGz => VEX_TAR_GZ_TYPE,
        Format::Zip => VEX_ZIP_TYPE,
    }
}

/// The archive format of a layer media type, if it is one of the VEX archive types.
pub fn format_of(media_type: &str) -> Option<Format> {
    match media_type {
        VEX_TAR_GZ_TYPE => Some(Format::TarGz),
        VEX_ZIP_TYPE => Some(Format::Zip),
        _ => None,
    }
}

/// A layer's title becomes a key of the static layout and a URL Trivy caches forever:
/// a plain file name with the extension go-getter reads the format from.
pub fn check_title(format: Format, title: &str) -> Result<()> {
    let ext = match format {
        Format::TarGz => ".tar.gz",
        Format::Zip => ".zip",
    };
    let refuse = |reason: String| Error::rejected(format!("VEX archive title {title:?}"), reason);
    let stem = title.strip_suffix(ext).ok_or_else(|| refuse(format!("does not end in {ext}")))?;
    let plain = !stem.is_empty()
        && !stem.starts_with('.')
        && stem.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
    if plain { Ok(()) } else { Err(refuse("not a plain file name".into())) }
}

/// Build the VEX artifact's manifest: config = the upstream repository manifest, one
/// layer per archive with its published file name, and `created` = the repository's
/// `updated_at` when known (the build time the engine's rollback check compares). Nothing
/// else varies: the same content gives the same digest, so an unchanged VEX Hub rewrites
/// nothing.
pub fn build_manifest(config: &Descriptor, layers: &[(Descriptor, String)], created: Option<Timestamp>) -> Bytes {
    let layer = |d: &Descriptor, title: &str| {
        serde_json::json!({
            "mediaType": d.media_type, "digest": d.digest.as_str(), "size": d.size,
            "annotations": {"org.opencontainers.image.title": title},
        })
    };
    let mut doc = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": VEX_ARTIFACT_TYPE,
        "config": {"mediaType": config.media_type, "digest": config.digest.as_str(), "size": config.size},
        "layers": layers.iter().map(|(d, t)| layer(d, t)).collect::<Vec<_>>(),
    });
    if let Some(t) = created {
        doc["annotations"] = serde_json::json!({"org.opencontainers.image.created": t.to_string()});
    }
    Bytes::from(serde_json::to_vec(&doc).expect("a manifest serializes"))
}

/// The descriptor of a blob given whole.
pub fn descriptor(media_type: &str, bytes: &[u8]) -> Descriptor {
    Descriptor { media_type: media_type.to_string(), digest: Digest::of(bytes), size: bytes.len() as u64 }
}

/// One archive of a VEX artifact, as a destination publishes it.
#[derive(Clone, Debug)]
pub struct Archive {
    /// The layer holding it.
    pub layer: Descriptor,
    /// The file name it is published under (the layer's title).
    pub file: String,
    /// Its format (from the layer's media type).
    pub format: Format,
    /// The location's `//subdir`, where `index.json` is.
    pub subdir: String,
    /// The location's `archive=` hint, kept in the rewritten URL.
    archive_hint: Option<String>,
    /// The `spec_version` of the manifest version the location belongs to.
    pub spec_version: String,
}

/// A VEX artifact read back: the upstream manifest and its archives, in location order.
#[derive(Clone, Debug)]
pub struct Release {
    doc: Value,
    /// The archives, one per location.
    pub archives: Vec<Archive>,
}

#[derive(Deserialize)]
struct RawManifest {
    #[serde(default)]
    layers: Vec<RawLayer>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawLayer {
    media_type: String,
    digest: String,
    size: u64,
    #[serde(default)]
    annotations: std::collections::BTreeMap<String, String>,
}

/// The title and size of each layer of a stored VEX artifact manifest (nothing if it
/// does not parse): the files a destination published for it.
pub fn titles(manifest: &[u8]) -> Vec<(String, u64)> {
    let layers = serde_json::from_slice::<RawManifest>(manifest).map(|m| m.layers).unwrap_or_default();
    layers
        .into_iter()
        .map(|l| (l.annotations.get("org.opencontainers.image.title").cloned().unwrap_or_default(), l.size))
        .collect()
}

impl Release {
    /// Read the artifact's manifest (already shape-checked) and its config (the upstream
    /// `vex-repository.json`): one layer per location, each taken apart as stored.
    pub fn read(manifest: &[u8], config: &[u8]) -> Result<Release> {
        let refuse = |reason: String| Error::rejected("VEX artifact", reason);
        let m: RawManifest = serde_json::from_slice(manifest).map_err(|e| refuse(format!("not a manifest: {e}")))?;
        let (doc, locations) = parse_manifest(config, "in the VEX artifact")?;
        if m.layers.len() != locations.len() {
            return Err(refuse(format!("{} archives for {} locations", m.layers.len(), locations.len())));
        }
        let specs = location_versions(&doc);
        let mut archives = Vec::new();
        for ((layer, raw_loc), spec_version) in m.layers.into_iter().zip(&locations).zip(specs) {
            let format =
                format_of(&layer.media_type).ok_or_else(|| refuse(format!("layer type {:?}", layer.media_type)))?;
            let file = layer.annotations.get("org.opencontainers.image.title").cloned().unwrap_or_default();
            check_title(format, &file)?;
            // Nothing is fetched: the location only names the subdir and the hint, in the
            // format the source chose.
            let choice = match format {
                Format::TarGz => ArchiveChoice::TarGz,
                Format::Zip => ArchiveChoice::Zip,
            };
            let loc = parse_location(raw_loc, choice, true)?;
            let digest = Digest::parse(&layer.digest)?;
            archives.push(Archive {
                layer: Descriptor { media_type: layer.media_type, digest, size: layer.size },
                file,
                format,
                subdir: loc.subdir,
                archive_hint: loc.archive_hint,
                spec_version,
            });
        }
        Ok(Release { doc, archives })
    }

    /// The repository manifest Trivy is given: the upstream one with every location
    /// pointing at the mirror (`<base>/<prefix>/<file>[//subdir][?archive=hint]`).
    pub fn rewrite(&self, publication: &Publication) -> Bytes {
        let mut doc = self.doc.clone();
        let mut next = self.archives.iter().map(|a| {
            let mut url = publication.url(&a.file);
            if !a.subdir.is_empty() {
                url.push_str("//");
                url.push_str(&a.subdir);
            }
            if let Some(hint) = &a.archive_hint {
                url.push_str("?archive=");
                url.push_str(hint);
            }
            url
        });
        for v in doc.get_mut("versions").and_then(Value::as_array_mut).into_iter().flatten() {
            for l in v.get_mut("locations").and_then(Value::as_array_mut).into_iter().flatten() {
                if let Some(url) = next.next() {
                    l["url"] = Value::String(url);
                }
            }
        }
        let mut manifest = serde_json::to_vec_pretty(&doc).expect("JSON value serializes");
        manifest.push(b'\n');
        Bytes::from(manifest)
    }
}

/// Whether a published repository manifest points its locations, in order, at `files`
/// under `publication`, as [`Release::rewrite`] wrote them (a subdir or archive hint may
/// follow each file's URL). A changed base URL or prefix, or a foreign manifest, is not.
pub fn points_at(published: &[u8], files: &[&str], publication: &Publication) -> bool {
    let Ok(doc) = serde_json::from_slice::<Value>(published) else {
        return false;
    };
    let locations = doc.get("versions").and_then(Value::as_array).into_iter().flatten();
    let urls: Vec<&str> = locations
        .flat_map(|v| v.get("locations").and_then(Value::as_array).into_iter().flatten())
        .map(|l| l.get("url").and_then(Value::as_str).unwrap_or_default())
        .collect();
    urls.len() == files.len()
        && urls.iter().zip(files).all(|(url, file)| {
            url.strip_prefix(publication.url(file).as_str())
                .is_some_and(|rest| rest.is_empty() || rest.starts_with("//") || rest.starts_with('?'))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_artifact_reads_back_and_rewrites_to_the_mirror() {
        let config = br#"{"name":"n","description":"d","versions":[{"spec_version":"0.1","locations":[{"url":"https://github.com/a/b/archive/refs/heads/main.tar.gz//vexhub-main"}],"update_interval":"24h"}]}"#;
        let layer = descriptor(VEX_ZIP_TYPE, b"zip bytes");
        let created = "2026-01-01T00:00:00Z".parse().ok();
        let raw = build_manifest(&descriptor(VEX_MANIFEST_TYPE, config), &[(layer, "main.zip".into())], created);
        assert_eq!(
            raw,
            build_manifest(
                &descriptor(VEX_MANIFEST_TYPE, config),
                &[(descriptor(VEX_ZIP_TYPE, b"zip bytes"), "main.zip".into())],
                created
            ),
            "deterministic"
        );
        let release = Release::read(&raw, config).unwrap();
        let a = &release.archives[0];
        assert_eq!(
            (a.file.as_str(), a.format, a.subdir.as_str(), a.spec_version.as_str()),
            ("main.zip", Format::Zip, "vexhub-main", "0.1")
        );
        let published = Publication::new("https://m.example.com/", "vex", false).unwrap();
        let doc: Value = serde_json::from_slice(&release.rewrite(&published)).unwrap();
        assert_eq!(doc["versions"][0]["locations"][0]["url"], "https://m.example.com/vex/main.zip//vexhub-main");

        // What the health check compares: the same publication, not a moved one.
        let rewritten = release.rewrite(&published);
        assert!(points_at(&rewritten, &["main.zip"], &published));
        for moved in
            [("https://m.example.com/sub", "vex"), ("https://m.example.com", ""), ("https://n.example.com", "vex")]
        {
            let moved = Publication::new(moved.0, moved.1, false).unwrap();
            assert!(!points_at(&rewritten, &["main.zip"], &moved), "{moved:?}");
        }
        assert!(!points_at(&rewritten, &["other.zip"], &published));
        assert!(!points_at(&rewritten, &[], &published));
        assert!(!points_at(config, &["main.zip"], &published), "the upstream manifest points elsewhere");
    }

    #[test]
    fn titles_are_plain_names_of_their_format() {
        assert!(check_title(Format::TarGz, "main.tar.gz").is_ok());
        assert!(check_title(Format::Zip, "2-main.zip").is_ok());
        for bad in ["main.zip", "../main.tar.gz", ".tar.gz", "a/b.tar.gz", "main .tar.gz"] {
            assert!(check_title(Format::TarGz, bad).is_err(), "{bad}");
        }
    }
}
