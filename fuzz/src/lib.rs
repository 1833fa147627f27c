//! Fuzz harnesses for trivy-mirror's parsers of untrusted input.
//!
//! Each `fuzz_targets/<name>.rs` is a one-line libFuzzer entry point that calls the function
//! of the same name here; `tests/regressions.rs` replays the committed corpus and every
//! file under `regressions/<name>/` through the same functions with plain `cargo test`, so a
//! crash found once stays fixed without needing cargo-fuzz.
//!
//! Every harness asserts invariants of the result, not only "no panic":
//! - `manifest`: an accepted manifest is exactly the input bytes, its digest is the sha256
//!   of them (computed here independently), and its shape is what Trivy needs.
//! - `vex_manifest`: the location count matches an independent walk of the JSON, and no
//!   accepted location is fetched over plain http from a non-local host.
//! - `vex_archive`: an accepted archive has `<subdir>/index.json`, and every document
//!   location in it stays inside the tree.
//! - `dest_url`: a parsed prefix or namespace never has empty, `.` or `..` segments, a
//!   bucket name is plain, and an error message never echoes URL userinfo.
//! - `serve_path`: a served key never escapes the mirror root.
//! - `bundle`: the air-gap bundle reader. A tar accepted by `bundle::tar::scan` names only
//!   clean relative paths whose data lies inside the input; an `index.json` accepted by
//!   `bundle::parse_index` has only grammar-valid `repository:tag` names, each once, and
//!   renders back to an index that parses to the same entries.
//! - `reference`: digests round-trip, and tag and repository grammars equal the OCI
//!   distribution spec's (checked against independent implementations).

use std::collections::BTreeSet;
use std::io::{Read as _, Write as _};
use std::path::{Component, Path};

use bytes::Bytes;
use serde_json::Value;
use sha2::{Digest as _, Sha256};
use trivy_mirror::artifact::OCI_ARTIFACTS;
use trivy_mirror::dest::{DestinationUrl, Store};
use trivy_mirror::layout::ObjectClass;
use trivy_mirror::manifest::MAX_BLOB_BYTES;
use trivy_mirror::oci::{DOCKER_MANIFEST, MAX_MANIFEST_BYTES, OCI_MANIFEST};
use trivy_mirror::oci::{Digest, validate_repository, validate_tag};

/// A harness: takes one fuzz input, panics on a crash or a broken invariant.
pub type Harness = fn(&[u8]);

/// Every harness, by target name (the name of its `fuzz_targets/*.rs`, corpus and
/// regressions directory).
pub const TARGETS: &[(&str, Harness)] = &[
    ("manifest", manifest),
    ("vex_manifest", vex_manifest),
    ("vex_archive", vex_archive),
    ("dest_url", dest_url),
    ("serve_path", serve_path),
    ("reference", reference),
    ("bundle", bundle),
    ("signature", signature),
];

/// Content-Types a registry may send with a manifest (selected by bits 2–3 of the first byte).
const CONTENT_TYPES: [Option<&str>; 4] = [
    None,
    Some(OCI_MANIFEST),
    Some("application/vnd.docker.distribution.manifest.v2+json; charset=utf-8"),
    Some("application/vnd.oci.image.index.v1+json"),
];

/// `manifest::check`. Input: one selector byte (bits 0–1: which of `OCI_ARTIFACTS`, bits
/// 2–3: the Content-Type sent), then the manifest body.
pub fn manifest(data: &[u8]) {
    let Some((&sel, raw)) = data.split_first() else { return };
    let artifact = &OCI_ARTIFACTS[usize::from(sel) % OCI_ARTIFACTS.len()];
    let content_type = CONTENT_TYPES[usize::from(sel >> 2) % CONTENT_TYPES.len()];
    let m = match trivy_mirror::manifest::check(artifact, Bytes::copy_from_slice(raw), content_type) {
        Ok(m) => m,
        Err(e) => {
            let _ = e.to_string();
            return;
        }
    };
    // The bytes are kept exactly, and the digest is theirs.
    assert_eq!(&m.raw[..], raw, "stored bytes differ from the bytes received");
    assert_eq!(m.digest.as_str(), format!("sha256:{}", hex::encode(Sha256::digest(raw))), "digest is not sha256(raw)");
    assert!(raw.len() <= MAX_MANIFEST_BYTES);
    // Only image manifests, only the layer Trivy wants, only sane blobs.
    assert!(m.media_type == OCI_MANIFEST || m.media_type == DOCKER_MANIFEST, "accepted media type {:?}", m.media_type);
    assert_eq!(m.layer.media_type, artifact.layer_media_type);
    for d in m.blobs() {
        assert!(d.size <= MAX_BLOB_BYTES);
        assert_eq!(Digest::parse(d.digest.as_str()).expect("descriptor digest re-parses"), d.digest);
    }
    // An independent reading of the JSON agrees. JSON exchanged between systems is UTF-8
    // (RFC 8259 §8.1), with valid escapes, in the fields the library ignores too.
    let text = std::str::from_utf8(raw).unwrap_or_else(|e| panic!("accepted a manifest that is not UTF-8: {e}"));
    let v: Value = serde_json::from_str(text).unwrap_or_else(|e| panic!("accepted a manifest that is not JSON: {e}"));
    assert_eq!(v["schemaVersion"], 2, "accepted schemaVersion {}", v["schemaVersion"]);
    assert!(v.get("manifests").is_none_or(Value::is_null), "accepted an index");
    if let Some(mt) = v.get("mediaType").and_then(Value::as_str) {
        assert_eq!(mt, m.media_type, "media type is not the body's mediaType");
    }
    let layers = v["layers"].as_array().expect("accepted manifest has a layers array");
    assert_eq!(layers.len(), 1, "Trivy needs exactly one layer");
    assert_eq!(layers[0]["digest"].as_str(), Some(m.layer.digest.as_str()));
    assert_eq!(layers[0]["size"].as_u64(), Some(m.layer.size));
    assert_eq!(v["config"]["digest"].as_str(), Some(m.config.digest.as_str()));
    let title = layers[0]["annotations"]["org.opencontainers.image.title"].as_str().expect("layer has a title");
    assert!(title.ends_with(".tar.gz"), "title {title:?}");
    let mut parts = Path::new(title).components();
    assert!(
        matches!((parts.next(), parts.next()), (Some(Component::Normal(_)), None)) && !title.contains(['\\', '\0']),
        "title {title:?} is not a plain file name"
    );
    assert!(!title.starts_with('.'), "title {title:?} is hidden");
    assert_eq!(m.version.as_deref(), v["annotations"]["org.opencontainers.image.version"].as_str());
}

/// `vex::check_manifest` on the raw bytes of a `vex-repository.json`.
pub fn vex_manifest(data: &[u8]) {
    let n = match trivy_mirror::vex::check_manifest(data) {
        Ok(n) => n,
        Err(e) => {
            let _ = e.to_string();
            return;
        }
    };
    let v: Value = serde_json::from_slice(data).expect("an accepted VEX manifest is JSON");
    assert!(v["name"].is_string() && v["description"].is_string());
    let versions = v["versions"].as_array().expect("versions is an array");
    assert!(!versions.is_empty());
    let mut urls = Vec::new();
    for version in versions {
        let locations = version["locations"].as_array().expect("locations is an array");
        assert!(!locations.is_empty());
        urls.extend(locations.iter().map(|l| l["url"].as_str().expect("location url is a string")));
    }
    assert_eq!(n, urls.len(), "location count");
    for raw in urls {
        // What gets fetched is the part before any `?query` and `//subdir` (go-getter).
        let (scheme, rest) = raw.split_once("://").expect("accepted location is absolute");
        let rest = rest.split('?').next().unwrap_or("");
        let path_part = rest.split("//").next().unwrap_or("");
        let fetch = url::Url::parse(&format!("{scheme}://{path_part}")).expect("accepted location parses");
        match fetch.scheme() {
            "https" => {}
            "http" => {
                let host = fetch.host_str().unwrap_or("");
                assert!(
                    matches!(host, "127.0.0.1" | "[::1]" | "localhost") || host.ends_with(".localhost"),
                    "{raw:?} would be fetched over plain http from {host:?}"
                );
            }
            other => panic!("{raw:?} would be fetched over {other}"),
        }
        if let Some((_, subdir)) = rest.split_once("//") {
            assert!(!subdir.split('/').any(|s| s == ".."), "{raw:?} has a '..' subdir");
        }
    }
}

/// `//subdir`s tried by `vex_archive` (bits 2–3 of the selector byte).
const SUBDIRS: [&str; 4] = ["", "vexhub-main", "vexhub-main/sub", "a"];

/// `vex::check_archive`. Input: one selector byte (bit 0: zip, else tar.gz; bit 1 with
/// tar: the rest is a plain tar that is gzipped here, so mutations reach the tar and JSON
/// parsers instead of dying in gzip's CRC; bits 2–3: the subdir), then the archive.
pub fn vex_archive(data: &[u8]) {
    let Some((&sel, body)) = data.split_first() else { return };
    let zip = sel & 1 == 1;
    let gzip_here = !zip && sel & 2 == 2;
    let subdir = SUBDIRS[usize::from(sel >> 2) % SUBDIRS.len()];
    let archive = if gzip_here {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(body).expect("gzip into memory");
        gz.finish().expect("gzip into memory")
    } else {
        body.to_vec()
    };
    if let Err(e) = trivy_mirror::vex::check_archive(&archive, zip, subdir) {
        let _ = e.to_string();
        return;
    }
    if !gzip_here {
        return;
    }
    // Accepted: an independent walk finds index.json, and its locations stay in the tree.
    let index_path = if subdir.is_empty() { "index.json".to_string() } else { format!("{subdir}/index.json") };
    let mut index = None;
    let mut names = BTreeSet::new();
    let mut tar = tar::Archive::new(body);
    for entry in tar.entries().expect("accepted tar has entries") {
        let mut entry = entry.expect("accepted tar entry reads");
        let path = entry.path().expect("accepted tar path").to_string_lossy().into_owned();
        let path = path.trim_start_matches("./").to_string();
        if path == index_path {
            let mut buf = Vec::new();
            entry.read_to_end(&mut buf).expect("accepted index.json reads");
            index = Some(buf);
        }
        names.insert(path);
    }
    let index = index.unwrap_or_else(|| panic!("accepted an archive without {index_path} (entries {names:?})"));
    let index: Value = serde_json::from_slice(&index).expect("accepted index.json is JSON");
    for p in index["packages"].as_array().expect("accepted index.json has packages") {
        let loc = p["location"].as_str().expect("accepted package has a location");
        let mut escaped = false;
        let mut depth = 0i64;
        for c in Path::new(loc).components() {
            match c {
                Component::Normal(_) => depth += 1,
                Component::CurDir => {}
                Component::ParentDir => {
                    depth -= 1;
                    escaped |= depth < 0;
                }
                Component::RootDir | Component::Prefix(_) => escaped = true,
            }
        }
        assert!(!escaped && !loc.contains(['\\', '\0']), "accepted location {loc:?} leaves the tree");
    }
}

/// `DestinationUrl::parse` and `verify::parse_mirror_url` on the same string.
pub fn dest_url(data: &[u8]) {
    let Ok(s) = std::str::from_utf8(data) else { return };
    let prefix_ok = |p: &str| {
        p.is_empty()
            || (!p.starts_with('/')
                && !p.ends_with('/')
                && !p.contains("//")
                && !p.contains(['?', '#'])
                && p.split('/').all(|seg| !seg.is_empty() && seg != "." && seg != ".."))
    };
    let bucket_ok = |b: &str| !b.is_empty() && b.bytes().all(|c| c.is_ascii_alphanumeric() || b"-._".contains(&c));
    match DestinationUrl::parse(s) {
        Ok(
            DestinationUrl::Store(Store::Directory(p))
            | DestinationUrl::OciLayout(p)
            | DestinationUrl::OciArchive(p)
            | DestinationUrl::TrivyCache(p),
        ) => assert!(!p.as_os_str().is_empty(), "empty local path from {s:?}"),
        Ok(DestinationUrl::Store(
            Store::S3 { bucket, prefix } | Store::Gcs { bucket, prefix } | Store::Azure { container: bucket, prefix },
        )) => {
            assert!(bucket_ok(&bucket), "bucket {bucket:?} from {s:?}");
            assert!(prefix_ok(&prefix), "prefix {prefix:?} from {s:?}");
        }
        Ok(DestinationUrl::Registry { host, namespace }) => {
            assert!(!host.is_empty() && !host.contains(['/', '@']), "host {host:?} from {s:?}");
            assert_requests_reach(&host, s);
            assert!(prefix_ok(&namespace), "namespace {namespace:?} from {s:?}");
            assert!(namespace.is_empty() || validate_repository(&namespace).is_ok());
        }
        Err(e) => {
            // Userinfo (`scheme://user:secret@bucket`) is never echoed back.
            let msg = e.to_string();
            if let Some((scheme, rest)) = s.split_once("://") {
                let authority = rest.split('/').next().unwrap_or("");
                if let Some((userinfo, _)) = authority.rsplit_once('@') {
                    // The message is `invalid destination {value:?}: …`; the value must not
                    // start with `scheme://userinfo@` (the path may repeat it: that is not
                    // the authority and is shown as given).
                    let leak = format!("{:?}", format!("{scheme}://{userinfo}@"));
                    let leak = &leak[..leak.len() - 1];
                    let value = msg.strip_prefix("invalid destination ").unwrap_or(&msg);
                    assert!(
                        userinfo.bytes().all(|b| b == b'*') || !value.starts_with(leak),
                        "error echoes userinfo {userinfo:?}: {msg}"
                    );
                }
            }
        }
    }
    if let Some((_, rest)) = s.split_once("://")
        && rest.split('/').next().unwrap_or("").contains('@')
    {
        assert!(DestinationUrl::parse(s).is_err(), "accepted credentials in {s:?}");
    }
    if let Ok((host, _http)) = trivy_mirror::verify::parse_mirror_url(s) {
        assert!(!host.is_empty() && !host.contains(['/', '@']), "mirror host {host:?} from {s:?}");
        assert_requests_reach(&host, s);
    }
}

/// Requests to an accepted registry host go to `https://{host}/v2/…`: that URL must reach
/// `host` itself, not a host named by a prefix of it (`a#b` would send them to `a`,
/// `a\b` and `a?b` likewise). Whitespace is refused later by `Registry::new`, and a host
/// that does not parse as a URL fails loudly, so neither can misdirect a request.
fn assert_requests_reach(host: &str, input: &str) {
    if host.contains(char::is_whitespace) {
        return;
    }
    if let Ok(u) = url::Url::parse(&format!("https://{host}/v2/")) {
        assert!(
            u.path() == "/v2/" && u.query().is_none() && u.fragment().is_none() && u.username().is_empty(),
            "host {host:?} from {input:?}: requests would go to {u}, i.e. to {:?}",
            u.host_str()
        );
    }
}

/// `serve::key_for_path` on a request path (tried as given and with a leading `/`).
pub fn serve_path(data: &[u8]) {
    let Ok(s) = std::str::from_utf8(data) else { return };
    for path in [s.to_string(), format!("/{s}")] {
        let Some(key) = trivy_mirror::serve::key_for_path(&path) else { continue };
        assert!(!key.starts_with('/'), "{path:?} maps to absolute key {key:?}");
        assert!(
            key.split('/').all(|seg| !seg.is_empty() && seg != "." && seg != ".."),
            "{path:?} maps to key {key:?} with an empty, '.' or '..' segment"
        );
        assert!(!key.contains(['\\', '\0']), "{path:?} maps to key {key:?}");
        assert!(
            Path::new(&key).components().all(|c| matches!(c, Component::Normal(_))),
            "{path:?} maps to key {key:?} that is not a plain relative path"
        );
        assert!(ObjectClass::of(&key).is_some(), "{path:?} maps to key {key:?} the layout never writes");
    }
}

/// `serve::http::range` on any `Range` header, for objects of several lengths: a partial
/// answer is a non-empty range inside the object; a suffix range ends at the last byte.
pub fn serve_range(data: &[u8]) {
    use trivy_mirror::serve::http::{FileKey, RangeAnswer, range};
    let Ok(s) = std::str::from_utf8(data) else { return };
    let key = FileKey { len: 1000, mtime: std::time::UNIX_EPOCH, ino: 1, dev: 1 };
    for len in [0u64, 1, 1000, u64::MAX] {
        if let RangeAnswer::Partial { start, end } = range(Some(s), None, &key, len) {
            assert!(start <= end && end < len, "{s:?} on {len} bytes: {start}-{end}");
            if s.trim().trim_start_matches(|c: char| c.is_ascii_alphabetic()).trim().starts_with("=-") {
                assert_eq!(end, len - 1, "{s:?}: a suffix range must end at the last byte");
            }
        }
    }
}

/// The OCI distribution grammar of a repository name, at most 255 bytes, as the spec writes
/// it: a regular expression, so that the oracle shares nothing with the library's
/// hand-written matcher.
pub fn spec_repository(s: &str) -> bool {
    static GRAMMAR: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
        regex::Regex::new(r"^[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*$")
            .expect("the spec's grammar is a valid regex")
    });
    s.len() <= 255 && GRAMMAR.is_match(s)
}

/// The OCI tag grammar `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`, written independently.
pub fn spec_tag(s: &str) -> bool {
    let word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut chars = s.chars();
    chars.next().is_some_and(word) && s.chars().count() <= 128 && chars.all(|c| word(c) || c == '.' || c == '-')
}

/// `sha256:` and 64 lowercase hex digits, written independently.
pub fn spec_digest(s: &str) -> bool {
    s.strip_prefix("sha256:").is_some_and(|h| h.len() == 64 && h.chars().all(|c| matches!(c, '0'..='9' | 'a'..='f')))
}

/// `Digest::parse`, `validate_tag` and `validate_repository`, each checked against the spec.
pub fn reference(data: &[u8]) {
    let d = Digest::of(data);
    assert_eq!(Digest::parse(d.as_str()).expect("Digest::of parses"), d);
    let Ok(s) = std::str::from_utf8(data) else { return };
    match Digest::parse(s) {
        Ok(d) => {
            assert!(spec_digest(s), "accepted digest {s:?}");
            assert_eq!(d.as_str(), s);
            assert_eq!(format!("sha256:{}", d.hex()), s);
            assert_eq!(Digest::parse(&d.to_string()).expect("digest round-trips"), d);
        }
        Err(_) => assert!(!spec_digest(s), "refused digest {s:?}"),
    }
    assert_eq!(validate_tag(s).is_ok(), spec_tag(s), "tag {s:?}: library and OCI grammar disagree");
    assert_eq!(
        validate_repository(s).is_ok(),
        spec_repository(s),
        "repository {s:?}: library and OCI grammar disagree"
    );
}

/// The bundle reader. Input: one selector byte (even: a tar, odd: an `index.json`), then
/// the bytes.
pub fn bundle(data: &[u8]) {
    use trivy_mirror::bundle;
    let Some((&sel, raw)) = data.split_first() else { return };
    if sel % 2 == 0 {
        let Ok(members) = bundle::tar::scan(std::io::Cursor::new(raw), raw.len() as u64, "fuzz") else { return };
        for (name, m) in &members {
            assert!(!name.starts_with('/') && !name.is_empty(), "member name {name:?}");
            assert!(Path::new(name).components().all(|c| matches!(c, Component::Normal(_))), "member name {name:?}");
            assert!(m.offset + m.size <= raw.len() as u64, "{name}: data outside the input");
        }
        return;
    }
    let Ok(entries) = bundle::parse_index(raw) else { return };
    let mut seen = BTreeSet::new();
    for e in &entries {
        assert!(bundle::validate_ref_name(&e.ref_name()).is_ok(), "ref {:?}", e.ref_name());
        assert!(validate_repository(&e.repository).is_ok() && validate_tag(&e.tag).is_ok(), "{:?}", e.ref_name());
        assert!(seen.insert(e.ref_name()), "{:?} twice", e.ref_name());
    }
    let again = bundle::parse_index(&bundle::render_index(&entries)).expect("a rendered index parses");
    assert_eq!(again.len(), entries.len());
    assert!(entries.iter().all(|e| again.contains(e)), "the index does not round-trip");
}

/// A cosign signature manifest as a mirror source or `verify` reads it: `signing::parse`,
/// then `signing::check` of every layer with the input itself as the payload, and the
/// input as a public-key PEM. Nothing may panic; an accepted signature needs a real key.
pub fn signature(data: &[u8]) {
    use trivy_mirror::signing;
    let _ = signing::PublicKey::from_pem(data, "fuzz", trivy_mirror::error::Setting::VerifyKey);
    let Ok(parsed) = signing::parse(data) else { return };
    assert!(!parsed.layers.is_empty(), "a parsed signature has a signed layer");
    let digest = trivy_mirror::oci::Digest::of(data);
    for layer in &parsed.layers {
        assert!(layer.payload.size <= signing::MAX_PAYLOAD_BYTES);
        assert!(signing::check(layer, data, &digest, &[]).is_err(), "no key verifies nothing");
    }
}
