//! The VEX repository format (vex-repo-spec v0.1 as Trivy reads it): the repository
//! manifest (`vex-repository.json`), its archive locations taken apart the way go-getter
//! does, the archives' contents, and the stable URLs a mirror rewrites them to. These
//! rules sit below both seams: the VEX Hub source ([`crate::source::vexhub`]) checks what
//! it downloads with them, and the destinations that publish VEX for Trivy (the static
//! layout, Trivy's cache) read the VEX artifact ([`artifact`]) back with them.
//!
//! Trivy fetches `<repo-url>/.well-known/vex-repository.json` once and caches it forever
//! (docs/TRIVY.md, "VEX repositories"; Trivy pkg/vex/repo/repo.go), so the rewritten
//! locations must be stable: an archive is always published under the same file name
//! (`main.tar.gz`, `main.zip`), and the manifest is rewritten to
//! `<base-url>/<vex-prefix>/<file>` plus the original `//subdir` and `?archive=` hint. The
//! archive format comes from the URL extension, as go-getter picks it.
//!
//! Before anything is published, every archive is opened as the format its name says,
//! `index.json` must exist at the subdir and parse, and every document location in it
//! must stay inside the tree.

pub mod artifact;

use std::collections::BTreeSet;
use std::io::Read as _;

use jiff::Timestamp;
use serde_json::Value;

use crate::error::{Error, Result, Setting};
use crate::http::is_local_host;

/// VEX Hub's repository manifest upstream.
pub const DEFAULT_VEX_SOURCE: &str = "https://raw.githubusercontent.com/aquasecurity/vexhub/main/vex-repository.json";
/// Largest VEX manifest accepted.
pub const MAX_VEX_MANIFEST: usize = 1024 * 1024;
/// Largest VEX archive accepted (VEX Hub's is ~0.2 MB today).
pub const MAX_VEX_ARCHIVE: usize = 256 * 1024 * 1024;
/// Where the manifest lives under the VEX prefix.
pub const MANIFEST_KEY: &str = ".well-known/vex-repository.json";

/// Which archive format to publish.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ArchiveChoice {
    /// Whatever the upstream manifest names.
    AsUpstream,
    /// The zip form of the same archive (GitHub serves both; Trivy's self-hosting recipe uses main.zip).
    Zip,
    /// The tar.gz form.
    #[value(name = "tar.gz")]
    TarGz,
}

/// Archive formats we can validate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// A gzipped tar.
    TarGz,
    /// A zip.
    Zip,
}

/// Where a static layout publishes VEX for Trivy: the mirror's public base URL (the
/// rewritten locations point there) and the path of the VEX files under the static layout's root.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Publication {
    base_url: String,
    prefix: String,
}

impl Publication {
    /// Validate the base URL (https, or http when allowed; no credentials, query or
    /// fragment) and the prefix (plain path segments).
    pub fn new(base_url: &str, prefix: &str, allow_http: bool) -> Result<Publication> {
        let base_url = check_base_url(base_url, allow_http)?;
        let prefix = prefix.trim_matches('/').to_string();
        if !prefix.is_empty()
            && !prefix.split('/').all(|s| {
                !s.is_empty()
                    && s != "."
                    && s != ".."
                    && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
            })
        {
            return Err(Error::config(Setting::VexPrefix, prefix, "use path segments of letters, digits and - _ ."));
        }
        Ok(Publication { base_url, prefix })
    }

    /// The static layout key of a VEX file (`<vex-prefix>/main.tar.gz`).
    pub fn key(&self, name: &str) -> String {
        if self.prefix.is_empty() { name.to_string() } else { format!("{}/{name}", self.prefix) }
    }

    /// The base URL without its scheme (`mirror.example.com/trivy`): how clients name the
    /// mirror as a registry.
    pub fn host_path(&self) -> &str {
        self.base_url.split_once("://").map_or(self.base_url.as_str(), |(_, rest)| rest)
    }

    /// The public URL of a VEX file.
    pub fn url(&self, name: &str) -> String {
        format!("{}/{}", self.base_url, self.key(name))
    }
}

/// Check the mirror's public base URL: https (http only when allowed), no credentials,
/// query or fragment. Returns it without a trailing slash.
fn check_base_url(base_url: &str, allow_http: bool) -> Result<String> {
    let base = url::Url::parse(base_url).map_err(|e| Error::config(Setting::BaseUrl, base_url, e.to_string()))?;
    match base.scheme() {
        "https" => {}
        "http" if allow_http => {}
        "http" => {
            return Err(Error::config(
                Setting::BaseUrl,
                base_url,
                "must be https (Trivy clients fetch from it); plain http is for local testing only, when allowed explicitly",
            ));
        }
        _ => return Err(Error::config(Setting::BaseUrl, base_url, "must be an https:// URL")),
    }
    if base.query().is_some() || base.fragment().is_some() || !base.username().is_empty() || base.password().is_some() {
        return Err(Error::config(Setting::BaseUrl, base_url, "no credentials, query or fragment allowed"));
    }
    Ok(base_url.trim_end_matches('/').to_string())
}

/// Why a URL VEX would be fetched from is refused.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SchemeRefused {
    /// Plain http to a host that is not local, without the insecure setting.
    #[error("plain http is only used for localhost/127.0.0.1, or when the source is allowed to be insecure")]
    PlainHttp,
    /// Neither https nor http.
    #[error("scheme {0:?} is not supported; use https")]
    Unsupported(String),
}

pub(crate) fn check_fetch_scheme(url: &url::Url, insecure: bool) -> std::result::Result<(), SchemeRefused> {
    let local = url.host_str().is_some_and(|h| {
        let with_port = url.port().map(|p| format!("{h}:{p}")).unwrap_or_else(|| h.to_string());
        is_local_host(&with_port) || h == "localhost"
    });
    match url.scheme() {
        "https" => Ok(()),
        "http" if local || insecure => Ok(()),
        "http" => Err(SchemeRefused::PlainHttp),
        other => Err(SchemeRefused::Unsupported(other.to_string())),
    }
}

/// One archive location of the upstream manifest, taken apart the way go-getter does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Location {
    /// What to download.
    pub(crate) fetch: url::Url,
    /// The `//subdir` part, without slashes.
    pub(crate) subdir: String,
    /// The `archive=` query hint, if any.
    pub(crate) archive_hint: Option<String>,
    /// The format, from the hint or the path extension.
    pub(crate) format: Format,
    /// The file name it is published under.
    pub(crate) file: String,
}

/// Split `https://host/path/main.tar.gz//vexhub-main?archive=tar.gz`.
pub(crate) fn parse_location(raw: &str, choice: ArchiveChoice, insecure: bool) -> Result<Location> {
    let refuse = |reason: String| Error::rejected(format!("VEX location {raw:?}"), reason);
    let (scheme, rest) = raw.split_once("://").ok_or_else(|| refuse("not an absolute http(s) URL".into()))?;
    if scheme != "https" && scheme != "http" {
        return Err(refuse(format!("scheme {scheme:?} is not http(s)")));
    }
    let (rest, query) = match rest.split_once('?') {
        Some((r, q)) => (r, Some(q)),
        None => (rest, None),
    };
    let (path_part, subdir) = match rest.split_once("//") {
        Some((p, s)) => (p, s.trim_matches('/').to_string()),
        None => (rest, String::new()),
    };
    if subdir.split('/').any(|s| s == "..") {
        return Err(refuse("the //subdir must not contain '..'".into()));
    }
    let mut archive_hint = None;
    let mut kept = Vec::new();
    for (k, v) in url::form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        match k.as_ref() {
            "archive" => archive_hint = Some(v.to_string()),
            // A fixed checksum would break as soon as the archive changes, and the mirror
            // rewrites the URL anyway.
            "checksum" | "filename" => {}
            _ => kept.push((k.to_string(), v.to_string())),
        }
    }
    let mut fetch = url::Url::parse(&format!("{scheme}://{path_part}")).map_err(|e| refuse(e.to_string()))?;
    if !kept.is_empty() {
        fetch.query_pairs_mut().extend_pairs(kept);
    }
    check_fetch_scheme(&fetch, insecure).map_err(|e| refuse(e.to_string()))?;
    let name = fetch.path_segments().and_then(|mut s| s.next_back()).unwrap_or("").to_string();
    let format = match archive_hint.as_deref() {
        Some("tar.gz" | "tgz") => Format::TarGz,
        Some("zip") => Format::Zip,
        Some(other) => {
            return Err(refuse(format!("archive type {other:?} is not supported (tar.gz, tgz, zip)")));
        }
        None if name.ends_with(".tar.gz") || name.ends_with(".tgz") => Format::TarGz,
        None if name.ends_with(".zip") => Format::Zip,
        None => {
            return Err(refuse("the URL names no archive type (.tar.gz, .tgz, .zip or ?archive=)".into()));
        }
    };
    let stem = name.strip_suffix(".tar.gz").or_else(|| name.strip_suffix(".tgz")).or_else(|| name.strip_suffix(".zip"));
    let stem = stem.filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)));
    let stem = stem.unwrap_or("vex").to_string();
    let (format, fetch) = match (choice, format) {
        (ArchiveChoice::Zip, Format::TarGz) => (Format::Zip, swap_extension(&fetch, &name, &format!("{stem}.zip"))),
        (ArchiveChoice::TarGz, Format::Zip) => {
            (Format::TarGz, swap_extension(&fetch, &name, &format!("{stem}.tar.gz")))
        }
        _ => (format, fetch),
    };
    let file = match format {
        Format::TarGz => format!("{stem}.tar.gz"),
        Format::Zip => format!("{stem}.zip"),
    };
    let archive_hint = if format_matches_hint(format, archive_hint.as_deref()) { archive_hint } else { None };
    Ok(Location { fetch, subdir, archive_hint, format, file })
}

fn format_matches_hint(format: Format, hint: Option<&str>) -> bool {
    matches!((format, hint), (Format::TarGz, Some("tar.gz" | "tgz")) | (Format::Zip, Some("zip")))
}

fn swap_extension(url: &url::Url, old_name: &str, new_name: &str) -> url::Url {
    let mut u = url.clone();
    let path = u.path().to_string();
    if let Some(dir) = path.strip_suffix(old_name) {
        u.set_path(&format!("{dir}{new_name}"));
    }
    u
}

/// Check an archive: it opens as `format`, holds `<subdir>/index.json`, which parses and
/// whose document locations stay inside the tree. Returns the index's `updated_at`, the
/// repository's build time, when it has one.
pub(crate) fn validate_archive(bytes: &[u8], format: Format, subdir: &str, what: &str) -> Result<Option<Timestamp>> {
    let refuse = |reason: String| Error::rejected(what.to_string(), reason);
    let index_path = if subdir.is_empty() { "index.json".to_string() } else { format!("{subdir}/index.json") };
    let mut files = BTreeSet::new();
    let mut index = None;
    let normalize = |p: &str| p.trim_start_matches("./").to_string();
    match format {
        Format::TarGz => {
            let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(bytes));
            let entries = archive.entries().map_err(|e| refuse(format!("not a tar.gz archive: {e}")))?;
            for entry in entries {
                let mut entry = entry.map_err(|e| refuse(format!("not a tar.gz archive: {e}")))?;
                let path = entry.path().map_err(|e| refuse(e.to_string()))?.to_string_lossy().to_string();
                let path = normalize(&path);
                if path == index_path {
                    index = Some(read_limited(&mut entry, 64 * 1024 * 1024, what)?);
                }
                files.insert(path);
            }
        }
        Format::Zip => {
            let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes))
                .map_err(|e| refuse(format!("not a zip archive: {e}")))?;
            for i in 0..archive.len() {
                let mut entry = archive.by_index(i).map_err(|e| refuse(format!("not a zip archive: {e}")))?;
                let path = normalize(entry.name());
                if path == index_path {
                    index = Some(read_limited(&mut entry, 64 * 1024 * 1024, what)?);
                }
                files.insert(path);
            }
        }
    }
    let index = index.ok_or_else(|| refuse(format!("no {index_path} in the archive")))?;
    let index: Value = serde_json::from_slice(&index).map_err(|e| refuse(format!("{index_path} is not JSON: {e}")))?;
    let packages = index
        .get("packages")
        .and_then(Value::as_array)
        .ok_or_else(|| refuse(format!("{index_path} has no packages array")))?;
    for p in packages {
        let loc =
            p.get("location").and_then(Value::as_str).ok_or_else(|| refuse("a package has no location".into()))?;
        let in_tree = !loc.starts_with('/')
            && loc.split('/').all(|s| !s.is_empty() && s != ".." && s != ".")
            && loc.bytes().all(|b| b.is_ascii_alphanumeric() || b"_/.-".contains(&b));
        if !in_tree {
            return Err(refuse(format!("document location {loc:?} leaves the repository tree")));
        }
        let full = if subdir.is_empty() { loc.to_string() } else { format!("{subdir}/{loc}") };
        if !files.contains(&full) {
            tracing::warn!(archive = what, location = loc, "index.json names a document the archive lacks");
        }
    }
    Ok(index.get("updated_at").and_then(Value::as_str).and_then(|t| t.parse().ok()))
}

/// [`validate_archive`] on the blocking pool: opening an archive inflates all of it.
pub(crate) async fn validate_archive_off_runtime(
    bytes: bytes::Bytes,
    format: Format,
    subdir: String,
    what: String,
) -> Result<Option<Timestamp>> {
    tokio::task::spawn_blocking(move || validate_archive(&bytes, format, &subdir, &what))
        .await
        .map_err(|e| Error::rejected("VEX archive", e.to_string()))?
}

/// `index.json` of the archive `what`, refused above `limit` bytes.
fn read_limited(r: &mut impl std::io::Read, limit: u64, what: &str) -> Result<Vec<u8>> {
    let mut buf = Vec::new();
    r.take(limit + 1).read_to_end(&mut buf).map_err(|e| Error::rejected(what, e.to_string()))?;
    if buf.len() as u64 > limit { Err(Error::rejected(what, "index.json is too large")) } else { Ok(buf) }
}

/// Check an upstream VEX repository manifest as a sync would: its shape and every
/// location URL. Returns the number of locations. (Public for fuzzing and tools.)
pub fn check_manifest(raw: &[u8]) -> Result<usize> {
    let (_, locations) = parse_manifest(raw, "input")?;
    for l in &locations {
        parse_location(l, ArchiveChoice::AsUpstream, false)?;
    }
    Ok(locations.len())
}

/// Check an archive as a sync would before publishing it: `zip` selects the format,
/// `subdir` is the location's `//subdir`. (Public for fuzzing and tools.)
pub fn check_archive(bytes: &[u8], zip: bool, subdir: &str) -> Result<()> {
    validate_archive(bytes, if zip { Format::Zip } else { Format::TarGz }, subdir, "archive").map(drop)
}

/// Check the manifest's shape and collect its locations, in order.
pub(crate) fn parse_manifest(raw: &[u8], source: &str) -> Result<(Value, Vec<String>)> {
    let refuse = |reason: String| Error::rejected(format!("VEX manifest {source}"), reason);
    let doc: Value = serde_json::from_slice(raw).map_err(|e| refuse(format!("not JSON: {e}")))?;
    for field in ["name", "description"] {
        if !doc.get(field).is_some_and(Value::is_string) {
            return Err(refuse(format!("missing string field {field:?}")));
        }
    }
    let versions = doc
        .get("versions")
        .and_then(Value::as_array)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| refuse("versions must be a non-empty array".into()))?;
    let mut locations = Vec::new();
    for v in versions {
        let spec = v.get("spec_version").and_then(Value::as_str).unwrap_or("");
        let (major, minor) = spec.split_once('.').unwrap_or(("", ""));
        if major.is_empty() || minor.is_empty() || !(major.bytes().chain(minor.bytes()).all(|b| b.is_ascii_digit())) {
            return Err(refuse(format!("spec_version {spec:?} is not MAJOR.MINOR")));
        }
        let interval = v.get("update_interval").and_then(Value::as_str).unwrap_or("");
        if humantime::parse_duration(interval).is_err() {
            return Err(refuse(format!("update_interval {interval:?} is not a duration such as 24h")));
        }
        let locs = v
            .get("locations")
            .and_then(Value::as_array)
            .filter(|l| !l.is_empty())
            .ok_or_else(|| refuse("each version needs a non-empty locations array".into()))?;
        for l in locs {
            let url = l.get("url").and_then(Value::as_str).ok_or_else(|| refuse("a location has no url".into()))?;
            locations.push(url.to_string());
        }
    }
    Ok((doc, locations))
}

/// The `spec_version` of each location, in order.
pub(crate) fn location_versions(doc: &Value) -> Vec<String> {
    let versions = doc.get("versions").and_then(Value::as_array).into_iter().flatten();
    versions
        .flat_map(|v| {
            let spec = v.get("spec_version").and_then(Value::as_str).unwrap_or_default().to_string();
            let n = v.get("locations").and_then(Value::as_array).map_or(0, Vec::len);
            std::iter::repeat_n(spec, n)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::tar_gz;

    #[test]
    fn locations_are_taken_apart_like_go_getter() {
        let l = parse_location(
            "https://github.com/aquasecurity/vexhub/archive/refs/heads/main.tar.gz//vexhub-main",
            ArchiveChoice::AsUpstream,
            false,
        )
        .unwrap();
        assert_eq!(l.fetch.as_str(), "https://github.com/aquasecurity/vexhub/archive/refs/heads/main.tar.gz");
        assert_eq!((l.subdir.as_str(), l.file.as_str(), l.format), ("vexhub-main", "main.tar.gz", Format::TarGz));

        let z = parse_location(
            "https://github.com/aquasecurity/vexhub/archive/refs/heads/main.tar.gz//vexhub-main",
            ArchiveChoice::Zip,
            false,
        )
        .unwrap();
        assert_eq!(z.fetch.as_str(), "https://github.com/aquasecurity/vexhub/archive/refs/heads/main.zip");
        assert_eq!((z.file.as_str(), z.format), ("main.zip", Format::Zip));

        let h = parse_location("https://x.example/dl?id=7&archive=zip", ArchiveChoice::AsUpstream, false).unwrap();
        assert_eq!((h.format, h.archive_hint.as_deref()), (Format::Zip, Some("zip")));
        assert_eq!(h.fetch.as_str(), "https://x.example/dl?id=7");
    }

    #[test]
    fn hostile_locations_are_refused() {
        for bad in [
            "main.tar.gz",
            "/main.tar.gz",
            "file:///etc/passwd.tar.gz",
            "ftp://x/main.tar.gz",
            "s3::https://x/main.tar.gz",
            "http://example.com/main.tar.gz",
            "https://x/main",
            "https://x/main.tar.gz//../../etc",
            "https://x/main.rar?archive=rar",
        ] {
            assert!(parse_location(bad, ArchiveChoice::AsUpstream, false).is_err(), "{bad}");
        }
        assert!(parse_location("http://127.0.0.1:8080/main.tar.gz", ArchiveChoice::AsUpstream, false).is_ok());
    }

    #[test]
    fn manifests_need_their_fields() {
        let good = br#"{"name":"n","description":"d","versions":[{"spec_version":"0.1","locations":[{"url":"https://x/a.tar.gz"}],"update_interval":"24h"}]}"#;
        assert_eq!(parse_manifest(good, "s").unwrap().1, ["https://x/a.tar.gz"]);
        for bad in [
            &br#"{"description":"d","versions":[]}"#[..],
            br#"{"name":"n","description":"d","versions":[]}"#,
            br#"{"name":"n","description":"d","versions":[{"spec_version":"x","locations":[{"url":"u"}],"update_interval":"24h"}]}"#,
            br#"{"name":"n","description":"d","versions":[{"spec_version":"0.1","locations":[],"update_interval":"24h"}]}"#,
            br#"{"name":"n","description":"d","versions":[{"spec_version":"0.1","locations":[{"url":"u"}],"update_interval":"soon"}]}"#,
            b"[]",
        ] {
            assert!(parse_manifest(bad, "s").is_err(), "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn archives_are_checked_before_publishing() {
        let index =
            br#"{"updated_at":"2026-01-01T00:00:00Z","packages":[{"id":"pkg:pypi/requests","location":"pkg/a.json"}]}"#;
        let good = tar_gz(&[("vexhub-main/index.json", index), ("vexhub-main/pkg/a.json", b"{}")]);
        validate_archive(&good, Format::TarGz, "vexhub-main", "a").unwrap();
        let err = validate_archive(&good, Format::TarGz, "", "a").unwrap_err().to_string();
        assert!(err.contains("no index.json"), "{err}");
        assert!(validate_archive(&good, Format::Zip, "vexhub-main", "a").is_err());
        assert!(validate_archive(b"garbage", Format::TarGz, "", "a").is_err());
        let escape = br#"{"updated_at":"x","packages":[{"id":"p","location":"../../etc/passwd.json"}]}"#;
        let bad = tar_gz(&[("index.json", escape)]);
        let err = validate_archive(&bad, Format::TarGz, "", "a").unwrap_err().to_string();
        assert!(err.contains("leaves the repository tree"), "{err}");
    }
}
