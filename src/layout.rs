//! The static registry layout: which object key holds what, and the Content-Type and
//! Cache-Control each object is stored (or, by `serve`, answered) with.
//!
//! ```text
//! <prefix>/v2/index.json                          the /v2/ ping: {}  (object keys cannot end in '/')
//! <prefix>/v2/<repo>/blobs/sha256:<hex>           config and layer blobs, immutable
//! <prefix>/v2/<repo>/manifests/sha256:<hex>       manifest by digest, immutable
//! <prefix>/v2/<repo>/manifests/<tag>              the same bytes under the tag, short TTL
//! <prefix>/v2/<repo>/tags/list                    {"name":…,"tags":[…]}, short TTL
//! <prefix>/[<vex-prefix>/].well-known/vex-repository.json   rewritten VEX manifest, short TTL
//! <prefix>/[<vex-prefix>/]<archive>               VEX archive (main.tar.gz / main.zip), short TTL
//! ```
//!
//! Every serving path (the `serve` command, the nginx CDN stand-in in the tests, the
//! Terraform CDNs) maps a request for `/v2/` to `v2/index.json`. Nothing is ever stored
//! with a Content-Encoding: Go's HTTP client would transparently gunzip a `.tar.gz` blob
//! and Trivy's digest check would then fail (docs/TRIVY.md, "Content-Encoding is fatal").

use crate::oci::Digest;

/// Cache-Control of content-addressed objects: they never change.
pub const IMMUTABLE: &str = "public, max-age=31536000, immutable";
/// Default max-age, in seconds, of mutable objects (tags, tags/list, ping, VEX files).
pub const DEFAULT_TAG_TTL: u32 = 300;
/// Content-Type of blobs.
pub const OCTET_STREAM: &str = "application/octet-stream";
/// Content-Type of JSON documents.
pub const JSON: &str = "application/json";
/// The key (below the prefix) of the `/v2/` ping object.
pub const PING_KEY: &str = "v2/index.json";
/// The body of the ping object.
pub const PING_BODY: &[u8] = b"{}";

/// What an object in the layout is, derived from its key alone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ObjectClass {
    /// `v2/index.json`.
    Ping,
    /// `v2/<repo>/blobs/sha256:<hex>`.
    Blob,
    /// `v2/<repo>/manifests/sha256:<hex>`.
    DigestManifest,
    /// `v2/<repo>/manifests/<tag>`.
    TagManifest,
    /// `v2/<repo>/tags/list`.
    TagsList,
    /// Any other `*.json` (VEX manifest, status.json).
    Json,
    /// A `.tar.gz`/`.tgz` archive.
    Gzip,
    /// A `.zip` archive.
    Zip,
}

impl ObjectClass {
    /// Classify a key relative to the layout root (no prefix, no leading `/`).
    /// Returns `None` for keys the layout never writes.
    pub fn of(rel: &str) -> Option<ObjectClass> {
        if rel == PING_KEY {
            return Some(ObjectClass::Ping);
        }
        if let Some(rest) = rel.strip_prefix("v2/") {
            let (repo_and_kind, last) = rest.rsplit_once('/')?;
            if last == "list" && repo_and_kind.ends_with("/tags") {
                return Some(ObjectClass::TagsList);
            }
            let (_, kind) = repo_and_kind.rsplit_once('/')?;
            return match kind {
                "blobs" if Digest::parse(last).is_ok() => Some(ObjectClass::Blob),
                "manifests" if Digest::parse(last).is_ok() => Some(ObjectClass::DigestManifest),
                "manifests" if crate::oci::validate_tag(last).is_ok() => Some(ObjectClass::TagManifest),
                _ => None,
            };
        }
        if rel.ends_with(".json") {
            Some(ObjectClass::Json)
        } else if rel.ends_with(".tar.gz") || rel.ends_with(".tgz") {
            Some(ObjectClass::Gzip)
        } else if rel.ends_with(".zip") {
            Some(ObjectClass::Zip)
        } else {
            None
        }
    }

    /// The Cache-Control stored with (or served for) this class of object.
    pub fn cache_control(self, tag_ttl: u32) -> String {
        match self {
            ObjectClass::Blob | ObjectClass::DigestManifest => IMMUTABLE.to_string(),
            _ => format!("public, max-age={tag_ttl}"),
        }
    }

    /// The Content-Type for this class. Manifests carry their own media type, which the
    /// caller supplies; `None` here means "use the manifest's".
    pub fn fixed_content_type(self) -> Option<&'static str> {
        match self {
            ObjectClass::DigestManifest | ObjectClass::TagManifest => None,
            ObjectClass::Blob => Some(OCTET_STREAM),
            ObjectClass::Ping | ObjectClass::TagsList | ObjectClass::Json => Some(JSON),
            ObjectClass::Gzip => Some("application/gzip"),
            ObjectClass::Zip => Some("application/zip"),
        }
    }
}

/// Object keys under a destination's prefix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layout {
    prefix: String,
}

impl Layout {
    /// A layout rooted at `prefix` (slashes at either end are ignored; empty for the root).
    pub fn new(prefix: &str) -> Self {
        Layout { prefix: prefix.trim_matches('/').to_string() }
    }

    /// The prefix, without slashes.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Join a root-relative key onto the prefix.
    pub fn key(&self, rel: &str) -> String {
        if self.prefix.is_empty() { rel.to_string() } else { format!("{}/{rel}", self.prefix) }
    }

    /// The key relative to the root, if `key` lies under the prefix.
    pub fn relative<'k>(&self, key: &'k str) -> Option<&'k str> {
        if self.prefix.is_empty() { Some(key) } else { key.strip_prefix(self.prefix.as_str())?.strip_prefix('/') }
    }
}

/// `v2/<repo>/blobs/<digest>`.
pub fn blob_key(repo: &str, digest: &Digest) -> String {
    format!("v2/{repo}/blobs/{digest}")
}

/// `v2/<repo>/manifests/<digest-or-tag>`.
pub fn manifest_key(repo: &str, reference: &str) -> String {
    format!("v2/{repo}/manifests/{reference}")
}

/// `v2/<repo>/manifests/` — the listing prefix for a repository's tags.
pub fn manifests_dir(repo: &str) -> String {
    format!("v2/{repo}/manifests")
}

/// `v2/<repo>/tags/list`.
pub fn tags_list_key(repo: &str) -> String {
    format!("v2/{repo}/tags/list")
}

/// The body of `tags/list`, as a registry would answer it (tags sorted).
pub fn tags_list_body(repo: &str, tags: &[String]) -> Vec<u8> {
    let mut tags = tags.to_vec();
    tags.sort();
    tags.dedup();
    serde_json::to_vec(&serde_json::json!({ "name": repo, "tags": tags })).expect("JSON of strings")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest() -> Digest {
        Digest::of(b"x")
    }

    #[test]
    fn keys_honour_the_prefix() {
        let root = Layout::new("");
        let pre = Layout::new("/mirror/");
        assert_eq!(root.key(PING_KEY), "v2/index.json");
        assert_eq!(pre.key(PING_KEY), "mirror/v2/index.json");
        assert_eq!(pre.relative("mirror/v2/index.json"), Some("v2/index.json"));
        assert_eq!(pre.relative("mirrorx/v2/index.json"), None);
        assert_eq!(
            pre.key(&blob_key("aquasecurity/trivy-db", &digest())),
            format!("mirror/v2/aquasecurity/trivy-db/blobs/{}", digest())
        );
    }

    #[test]
    fn classes_and_headers() {
        let d = digest();
        let cases = [
            (PING_KEY.to_string(), ObjectClass::Ping, Some(JSON), false),
            (blob_key("a/b", &d), ObjectClass::Blob, Some(OCTET_STREAM), true),
            (manifest_key("a/b", d.as_str()), ObjectClass::DigestManifest, None, true),
            (manifest_key("a/b", "2"), ObjectClass::TagManifest, None, false),
            (tags_list_key("a/b"), ObjectClass::TagsList, Some(JSON), false),
            (".well-known/vex-repository.json".into(), ObjectClass::Json, Some(JSON), false),
            ("vex/main.tar.gz".into(), ObjectClass::Gzip, Some("application/gzip"), false),
            ("main.zip".into(), ObjectClass::Zip, Some("application/zip"), false),
        ];
        for (key, class, ct, immutable) in cases {
            assert_eq!(ObjectClass::of(&key), Some(class), "{key}");
            assert_eq!(class.fixed_content_type(), ct, "{key}");
            assert_eq!(class.cache_control(300) == IMMUTABLE, immutable, "{key}");
        }
        assert_eq!(ObjectClass::TagManifest.cache_control(60), "public, max-age=60");
        for junk in ["v2/a/blobs/sha256:zz", "v2/a/manifests/a:b", "v2/", "etc/passwd", "v2/a/other/x"] {
            assert_eq!(ObjectClass::of(junk), None, "{junk}");
        }
    }

    #[test]
    fn tags_list_is_sorted_and_deduplicated() {
        let body = tags_list_body("aquasecurity/trivy-checks", &["2".into(), "1".into(), "2".into()]);
        assert_eq!(body, br#"{"name":"aquasecurity/trivy-checks","tags":["1","2"]}"#);
    }
}
