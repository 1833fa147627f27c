//! The OCI vocabulary, with nothing Trivy-specific: manifest media types, content
//! descriptors, and the names that come from upstream or from the user and end up in URLs
//! and object keys (digests, tags, repository names). Each name is validated against the
//! OCI distribution grammar before it is used, because a digest like `sha256:../../x` or a
//! tag with a `/` would otherwise become a path outside the destination. The registry client
//! and the destinations on disk or in an object store use this module; the Trivy rules live in [`crate::manifest`].

use std::fmt;

use sha2::{Digest as _, Sha256};

use crate::error::{Error, Result, Setting};

/// The OCI image manifest type.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// The Docker schema 2 manifest type (older pushes).
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// The OCI image index type.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// The Docker manifest list type.
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";

/// The Accept header for manifest GETs: the types Trivy (ggcr) sends, OCI first.
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.manifest.v1+json,\
application/vnd.docker.distribution.manifest.v2+json,\
application/vnd.oci.image.index.v1+json,\
application/vnd.docker.distribution.manifest.list.v2+json";

/// Largest manifest accepted. Real ones are under 1 KiB; registries cap at 4 MiB.
pub const MAX_MANIFEST_BYTES: usize = 4 * 1024 * 1024;

/// A content descriptor (config or layer) after validation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Descriptor {
    /// Its media type.
    pub media_type: String,
    /// Its digest.
    pub digest: Digest,
    /// Its size in bytes.
    pub size: u64,
}

/// A `sha256:<64 lowercase hex>` content digest. The only algorithm Trivy's artifacts use
/// and the only one this mirror accepts.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest(String);

impl Digest {
    /// Parse and validate a digest string.
    pub fn parse(s: &str) -> Result<Self> {
        let hex = s
            .strip_prefix("sha256:")
            .ok_or_else(|| Error::rejected(format!("digest {s:?}"), "only sha256 digests are accepted"))?;
        if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
            return Err(Error::rejected(
                format!("digest {s:?}"),
                "expected sha256: followed by 64 lowercase hex digits",
            ));
        }
        Ok(Digest(s.to_string()))
    }

    /// The digest of some bytes.
    pub fn of(bytes: &[u8]) -> Self {
        Digest::from_hasher(Sha256::new_with_prefix(bytes))
    }

    /// Finish a running hash into a digest.
    pub fn from_hasher(hasher: Sha256) -> Self {
        Digest(format!("sha256:{}", hex::encode(hasher.finalize())))
    }

    /// The full `sha256:<hex>` form.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The hex part.
    pub fn hex(&self) -> &str {
        &self.0[7..]
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({})", self.0)
    }
}

/// Validate a tag: `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}` (OCI distribution spec).
pub fn validate_tag(tag: &str) -> Result<()> {
    let ok = !tag.is_empty()
        && tag.len() <= 128
        && tag.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_')
        && tag.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if ok { Ok(()) } else { Err(Error::config(Setting::Tag, tag, "tags are [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")) }
}

/// `namespace/name`, or `name` alone when the namespace is empty: how every published and
/// upstream repository name is formed (`aquasecurity` + `trivy-db`).
pub fn join_repository(namespace: &str, name: &str) -> String {
    if namespace.is_empty() { name.to_string() } else { format!("{namespace}/{name}") }
}

/// Validate a repository path such as `aquasecurity/trivy-db` against the OCI
/// distribution grammar: components `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*` separated by `/`.
pub fn validate_repository(repo: &str) -> Result<()> {
    fn component_ok(c: &str) -> bool {
        let b = c.as_bytes();
        let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
        let mut i = 0;
        loop {
            // A run of [a-z0-9]+ …
            let start = i;
            while i < b.len() && alnum(b[i]) {
                i += 1;
            }
            if i == start {
                return false;
            }
            if i == b.len() {
                return true;
            }
            // … then one separator: '.', '_', '__' or '-'+.
            match b[i] {
                b'.' => i += 1,
                b'_' if b.get(i + 1) == Some(&b'_') => i += 2,
                b'_' => i += 1,
                b'-' => {
                    while i < b.len() && b[i] == b'-' {
                        i += 1;
                    }
                }
                _ => return false,
            }
        }
    }
    if !repo.is_empty() && repo.len() <= 255 && repo.split('/').all(component_ok) {
        Ok(())
    } else {
        Err(Error::config(
            Setting::Namespace,
            repo,
            "use lowercase letters, digits and . _ - separated by /, e.g. aquasecurity/trivy-db",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_are_strict() {
        let good = format!("sha256:{}", "ab".repeat(32));
        assert_eq!(Digest::parse(&good).unwrap().hex(), "ab".repeat(32));
        for bad in [
            "sha512:00".to_string(),
            format!("sha256:{}", "AB".repeat(32)),
            format!("sha256:{}/..", "ab".repeat(31)),
            "sha256:../../etc/passwd".to_string(),
            format!("sha256:{}", "ab".repeat(33)),
            String::new(),
        ] {
            assert!(Digest::parse(&bad).is_err(), "{bad} accepted");
        }
        assert_eq!(
            Digest::of(b"{}").as_str(),
            "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
        );
    }

    #[test]
    fn tags_follow_the_oci_grammar() {
        for good in ["2", "1", "latest", "2-20261126T0600Z", "v1.2.3", "_x"] {
            validate_tag(good).unwrap();
        }
        for bad in ["", "-x", ".x", "a/b", "a:b", "..", &"x".repeat(129)] {
            assert!(validate_tag(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn repositories_follow_the_oci_grammar() {
        for good in ["aquasecurity/trivy-db", "a/b/c", "my.org/x_y"] {
            validate_repository(good).unwrap();
        }
        for good in ["a__b", "a--b", "a-b.c_d"] {
            validate_repository(good).unwrap();
        }
        for bad in ["", "Aqua/x", "a//b", "../x", "a/../b", "/a", "a/", "a/-b", "trivy_-db", "v-.3", "a___b", "a._b"] {
            assert!(validate_repository(bad).is_err(), "{bad} accepted");
        }
    }
}
