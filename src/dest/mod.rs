//! Destinations: where a sync writes. Two traits at the I/O seam: [`Destination`], the OCI
//! part every destination has (tags, blobs, manifests), and [`Files`], the plain files of
//! a static layout (VEX archives, `status.json`) that only some have; a destination that
//! holds files hands out its [`Files`] through [`Destination::files`]. Implementations:
//! [`object::ObjectDestination`] (the static registry layout in S3, GCS, Azure Blob or a
//! plain directory; OCI part and files), [`registry::RegistryDestination`] (pushes into
//! any OCI registry; OCI part only), [`bundle::BundleDestination`] (an air-gap bundle: an
//! OCI image layout, as a directory or a tar) and [`trivy_cache::TrivyCache`] (Trivy's own
//! cache directory). The sync engine only talks to the traits.
//!
//! Every implementation keeps the same promises:
//! - a blob is committed only if its stream ended cleanly (the stream verifies digest and
//!   size, and reports a mismatch as its last item);
//! - a manifest is stored as the exact bytes given;
//! - a tag is written only after everything it references.

pub mod bundle;
#[cfg(any(test, feature = "conformance"))]
pub mod conformance;
mod durable;
pub mod object;
pub mod registry;
pub mod trivy_cache;

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;

use crate::credentials::Env;
use crate::error::{Error, Result, Setting};
use crate::layout::ObjectClass;
use crate::manifest::CheckedManifest;
use crate::oci::Descriptor;
use crate::source::location::{PathForm, path_form};
use crate::stream::{BlobStream, Upload};

/// A place a sync publishes to.
#[async_trait]
pub trait Destination: Send + Sync + std::fmt::Debug {
    /// How the user named it (`s3://bucket/prefix`), for messages. Never holds secrets.
    fn name(&self) -> &str;

    /// The manifest stored under `reference` (a tag or a digest) in `repo`, as stored.
    async fn manifest(&self, repo: &str, reference: &str) -> Result<Option<Bytes>>;

    /// Read a stored blob back, unverified (`sync --recheck` hashes it). `Ok(None)` if absent.
    async fn read_blob(&self, repo: &str, blob: &Descriptor) -> Result<Option<crate::source::RawBlob>>;

    /// Whether the blob is already there with the right size. A destination may make it so
    /// cheaply first (a registry mounts it from another repository it holds).
    async fn has_blob(&self, repo: &str, blob: &Descriptor) -> Result<bool>;

    /// Store a blob from a verifying stream; commit only on a clean end. A destination that
    /// had to change its upload mode answers [`Upload::Resend`] and gets the blob again.
    async fn put_blob(&self, repo: &str, blob: &Descriptor, body: BlobStream) -> Result<Upload>;

    /// Store the manifest by digest, then point each of `tags` at it (and refresh tag
    /// listings). The first tag is the one Trivy asks for; others are dated snapshots.
    async fn put_manifest(&self, repo: &str, manifest: &CheckedManifest, tags: &[String]) -> Result<()>;

    /// Store a signature manifest (its blobs are stored first, with [`Self::put_blob`]) as
    /// the exact bytes, by digest and under its tag `sha256-<hex>.sig`. Called only where
    /// [`Self::keeps_signatures`] says yes.
    async fn put_signature(&self, repo: &str, signature: &crate::signing::Signature) -> Result<()>;

    /// Called once after a run that wrote something: write the `/v2/` ping and whatever
    /// else the destination's format needs.
    async fn finish(&self) -> Result<()>;

    /// What this destination keeps, which says which questions it can answer: see [`Keeps`].
    fn keeps(&self) -> Keeps {
        Keeps::Oci
    }

    /// The repository `repo` as clients name it (`mirror.example.com/aquasecurity/trivy-db`),
    /// where the destination knows its public address: the identity a signature records.
    fn client_reference(&self, _repo: &str) -> Option<String> {
        None
    }

    /// The plain files of this destination, if it can hold any (a registry cannot).
    fn files(&self) -> Option<&dyn Files> {
        None
    }

    /// Whether this destination takes `artifact` at all (Trivy's cache holds one checks
    /// bundle, not both majors).
    fn carries(&self, _artifact: &crate::artifact::OciArtifact) -> bool {
        true
    }

    /// Whether what this destination publishes beside the OCI part for the version
    /// `manifest` (a static layout's VEX files) is in place and matches its current
    /// settings. The health check asks it when the tag is already at the upstream digest;
    /// `false` makes the engine publish the version again. Default: nothing beside the OCI
    /// part.
    async fn published_current(&self, _repo: &str, _manifest: &CheckedManifest) -> Result<bool> {
        Ok(true)
    }
}

/// What a destination keeps. The engine and the conformance routine ask, rather than
/// have a destination give answers it cannot know.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Keeps {
    /// OCI content: every blob by digest (and reads it back), manifests under any tag,
    /// signatures. A static layout, a registry, a bundle.
    Oci,
    /// The unpacked data of each artifact (Trivy's cache): one version per artifact under
    /// its own tag only (no dated tags, no signatures), no config blobs (reported present:
    /// none is needed), layers unpacked while they stream and visible once their manifest
    /// is published, nothing to read back (`--recheck` rewrites every layer). Anything
    /// else is refused.
    Unpacked,
}

/// Plain files of a static layout, beside the registry paths: VEX archives and manifest,
/// `status.json`.
#[async_trait]
pub trait Files: Send + Sync {
    /// Read a file (`rel_key` is relative to the static layout's root). `Ok(None)` if absent.
    async fn get_file(&self, rel_key: &str) -> Result<Option<Bytes>>;

    /// Write a file with the headers of its class.
    async fn put_file(&self, rel_key: &str, body: Bytes, class: ObjectClass) -> Result<()>;
}

/// A parsed `--to` value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DestinationUrl {
    /// A static layout in a directory or an object store.
    Store(Store),
    /// `oci:DIR`: an OCI image layout directory (an air-gap bundle).
    OciLayout(PathBuf),
    /// `oci-archive:FILE`: a tar of an OCI image layout.
    OciArchive(PathBuf),
    /// `trivy-cache:DIR`: Trivy's own cache directory (`--cache-dir`).
    TrivyCache(PathBuf),
    /// `oci://host[/namespace]`.
    Registry {
        /// Registry host with optional port.
        host: String,
        /// Repository namespace under which artifacts are pushed.
        namespace: String,
    },
}

/// Where a static layout is kept ([`object::ObjectDestination`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Store {
    /// A plain directory (`/srv/mirror`, `file:///srv/mirror`).
    Directory(PathBuf),
    /// `s3://bucket[/prefix]`.
    S3 {
        /// Bucket name.
        bucket: String,
        /// Key prefix, without slashes at the ends.
        prefix: String,
    },
    /// `gs://bucket[/prefix]`.
    Gcs {
        /// Bucket name.
        bucket: String,
        /// Key prefix.
        prefix: String,
    },
    /// `az://container[/prefix]`.
    Azure {
        /// Container name (the account comes from AZURE_STORAGE_ACCOUNT_NAME).
        container: String,
        /// Key prefix.
        prefix: String,
    },
}

impl DestinationUrl {
    /// Parse a destination as written on the command line.
    pub fn parse(s: &str) -> Result<Self> {
        let bad = |reason: &str| Error::config(Setting::Destination, redact_userinfo(s), reason);
        let Some((scheme, rest)) = s.split_once("://") else {
            if s.is_empty() {
                return Err(bad("empty"));
            }
            if let Some((kind, path)) = path_form(s) {
                if path.is_empty() {
                    return Err(bad(&format!("the path is missing; expected {SCHEMES}")));
                }
                let path = PathBuf::from(path);
                return Ok(match kind {
                    PathForm::OciLayout => DestinationUrl::OciLayout(path),
                    PathForm::OciArchive => DestinationUrl::OciArchive(path),
                    PathForm::TrivyCache => DestinationUrl::TrivyCache(path),
                });
            }
            // `s3:/bucket` or `gs:bucket` is a mistyped URL, not a directory to create in
            // the working directory.
            if let Some((scheme, _)) = s.split_once(':')
                && looks_like_scheme(scheme)
            {
                return Err(bad(&format!(
                    "{scheme}: looks like a mistyped URL; expected {SCHEMES}, or a directory (write a local path \
                     with a colon as ./{s} or file:///…)"
                )));
            }
            return Ok(DestinationUrl::Store(Store::Directory(PathBuf::from(s))));
        };
        if scheme == "file" {
            let path = rest.strip_prefix("localhost").unwrap_or(rest);
            if !path.starts_with('/') {
                return Err(bad("file:// URLs need an absolute path, e.g. file:///srv/mirror"));
            }
            return Ok(DestinationUrl::Store(Store::Directory(PathBuf::from(path))));
        }
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        if authority.contains('@') {
            return Err(bad("credentials do not belong in the URL; use the provider's environment variables"));
        }
        if authority.is_empty() {
            return Err(bad("missing bucket, container or registry host"));
        }
        if path.contains('?') || path.contains('#') || authority.contains('?') {
            return Err(bad("query strings and fragments are not supported"));
        }
        let prefix = path.trim_matches('/').to_string();
        if prefix.split('/').any(|seg| seg == ".." || seg == ".") || prefix.contains("//") {
            return Err(bad("the prefix must not contain empty, '.' or '..' segments"));
        }
        let bucket_ok = authority.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'));
        match scheme {
            "s3" | "s3a" if bucket_ok => Ok(DestinationUrl::Store(Store::S3 { bucket: authority.into(), prefix })),
            "gs" | "gcs" if bucket_ok => Ok(DestinationUrl::Store(Store::Gcs { bucket: authority.into(), prefix })),
            "az" | "azure" if bucket_ok => {
                Ok(DestinationUrl::Store(Store::Azure { container: authority.into(), prefix }))
            }
            "oci" => {
                if !authority.bytes().all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b)) {
                    return Err(bad("the registry must be a host name with an optional :port"));
                }
                if !prefix.is_empty() {
                    crate::oci::validate_repository(&prefix)
                        .map_err(|_| bad("the namespace must be lowercase letters, digits and . _ - separated by /"))?;
                }
                Ok(DestinationUrl::Registry { host: authority.into(), namespace: prefix })
            }
            "s3" | "s3a" | "gs" | "gcs" | "az" | "azure" => Err(bad("invalid bucket or container name")),
            _ => Err(bad(&format!("unknown scheme {scheme}://; expected {SCHEMES}, or a directory"))),
        }
    }
}

/// The destination URL forms, for messages.
const SCHEMES: &str = "file:///path, s3://bucket[/prefix], gs://bucket[/prefix], az://container[/prefix], \
                       oci://registry[/namespace], oci:DIR, oci-archive:FILE or trivy-cache:DIR";

/// Whether `word` (what comes before the first `:`) reads as a URL scheme: letters first,
/// then letters, digits, `+`, `-`, `.` (RFC 3986), and no path separator.
fn looks_like_scheme(word: &str) -> bool {
    let mut chars = word.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
}

/// `s3://user:pass@bucket/x` → `s3://***@bucket/x`, so a mistaken URL never echoes a secret.
fn redact_userinfo(s: &str) -> String {
    match s.split_once("://") {
        Some((scheme, rest)) => {
            let end = rest.find('/').unwrap_or(rest.len());
            match rest[..end].rfind('@') {
                Some(at) => format!("{scheme}://***@{}", &rest[at + 1..]),
                None => s.to_string(),
            }
        }
        None => s.to_string(),
    }
}

/// An opened destination: what the engine writes to, and for a static layout also what
/// retention prunes.
#[derive(Clone, Debug)]
pub enum Target {
    /// A static layout in an object store or a directory.
    StaticLayout(Arc<object::ObjectDestination>),
    /// An OCI registry.
    Registry(Arc<registry::RegistryDestination>),
    /// An air-gap bundle (an OCI image layout, as a directory or a tar): not pruned.
    Bundle(Arc<bundle::BundleDestination>),
    /// Trivy's cache directory: not pruned.
    TrivyCache(Arc<trivy_cache::TrivyCache>),
}

impl Target {
    /// The destination the engine writes to.
    pub fn destination(&self) -> Arc<dyn Destination> {
        match self {
            Target::StaticLayout(d) => d.clone(),
            Target::Registry(d) => d.clone(),
            Target::Bundle(d) => d.clone(),
            Target::TrivyCache(d) => d.clone(),
        }
    }

    /// The static layout, for retention (a registry has its own garbage collection).
    pub fn static_layout(&self) -> Option<&object::ObjectDestination> {
        match self {
            Target::StaticLayout(d) => Some(d),
            Target::Registry(_) | Target::Bundle(_) | Target::TrivyCache(_) => None,
        }
    }
}

/// Open a static layout destination (retention works on these only). `env` reads the
/// environment variables the store's settings come from.
pub fn open_static_layout(url: &str, tag_ttl: u32, env: Env<'_>) -> Result<object::ObjectDestination> {
    match DestinationUrl::parse(url)? {
        DestinationUrl::Store(store) => object::ObjectDestination::open(url, store, tag_ttl, env),
        DestinationUrl::OciLayout(_) | DestinationUrl::OciArchive(_) | DestinationUrl::TrivyCache(_) => {
            Err(Error::config(Setting::Destination, url, "retention applies to static mirrors"))
        }
        DestinationUrl::Registry { .. } => Err(Error::config(
            Setting::Destination,
            url,
            "retention applies to static mirrors; a registry has its own garbage collection",
        )),
    }
}

/// How destinations are opened.
#[derive(Clone, Debug)]
pub struct OpenOptions {
    /// max-age of mutable objects in a static layout.
    pub tag_ttl: u32,
    /// The settings (credentials included) used if the URL names a registry.
    pub registry: crate::registry::RegistryOptions,
    /// Which trivy-checks tag a `trivy-cache:` destination holds (`2` for Trivy ≥ 0.69).
    pub cache_checks_tag: &'static str,
    /// Where a static layout publishes VEX for Trivy (needed only when VEX is mirrored).
    pub vex: Option<crate::vex::Publication>,
}

/// Open a destination. `env` reads the environment variables a store's settings come from.
pub fn open(url: &str, options: OpenOptions, env: Env<'_>) -> Result<Target> {
    Ok(match DestinationUrl::parse(url)? {
        DestinationUrl::Store(store) => {
            let layout = object::ObjectDestination::open(url, store, options.tag_ttl, env)?;
            Target::StaticLayout(Arc::new(layout.with_vex(options.vex)))
        }
        DestinationUrl::Registry { host, namespace } => {
            Target::Registry(Arc::new(registry::RegistryDestination::new(url, &host, &namespace, options.registry)?))
        }
        DestinationUrl::OciLayout(path) => {
            Target::Bundle(Arc::new(bundle::BundleDestination::open(url, &path, false)?))
        }
        DestinationUrl::OciArchive(path) => {
            Target::Bundle(Arc::new(bundle::BundleDestination::open(url, &path, true)?))
        }
        DestinationUrl::TrivyCache(path) => {
            Target::TrivyCache(Arc::new(trivy_cache::TrivyCache::open(url, &path, options.cache_checks_tag)?))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destination_urls() {
        use DestinationUrl::{OciArchive, OciLayout, Registry, TrivyCache};
        use Store::{Azure, Directory, Gcs, S3};
        let store = DestinationUrl::Store;
        assert_eq!(DestinationUrl::parse("./mirror").unwrap(), store(Directory("./mirror".into())));
        assert_eq!(DestinationUrl::parse("./a:b").unwrap(), store(Directory("./a:b".into())));
        assert_eq!(DestinationUrl::parse("/srv/a:b").unwrap(), store(Directory("/srv/a:b".into())));
        assert_eq!(DestinationUrl::parse("mirror").unwrap(), store(Directory("mirror".into())));
        assert_eq!(DestinationUrl::parse("file:///srv/m").unwrap(), store(Directory("/srv/m".into())));
        assert_eq!(DestinationUrl::parse("oci:/b/dir").unwrap(), OciLayout("/b/dir".into()));
        assert_eq!(DestinationUrl::parse("oci-archive:b.tar").unwrap(), OciArchive("b.tar".into()));
        assert_eq!(DestinationUrl::parse("trivy-cache:/srv/c").unwrap(), TrivyCache("/srv/c".into()));
        assert_eq!(DestinationUrl::parse("s3://b").unwrap(), store(S3 { bucket: "b".into(), prefix: "".into() }));
        assert_eq!(
            DestinationUrl::parse("s3://b/mirror/").unwrap(),
            store(S3 { bucket: "b".into(), prefix: "mirror".into() })
        );
        assert_eq!(
            DestinationUrl::parse("gs://b/x/y").unwrap(),
            store(Gcs { bucket: "b".into(), prefix: "x/y".into() })
        );
        assert_eq!(DestinationUrl::parse("az://c").unwrap(), store(Azure { container: "c".into(), prefix: "".into() }));
        assert_eq!(
            DestinationUrl::parse("oci://127.0.0.1:5000/mirror").unwrap(),
            Registry { host: "127.0.0.1:5000".into(), namespace: "mirror".into() }
        );
        for bad in [
            "",
            "ftp://x",
            "s3://",
            "s3://key:secret@bucket",
            "s3://b/../x",
            "s3://b/a//b",
            "s3://b/x?versionId=1",
            "file://relative",
            "s3://bad bucket",
            "oci://reg/UPPER",
            "s3:/mybucket",
            "gs:b",
            "trivy-cache:",
            "oci:",
            "trivy-cache://srv/cache",
            "foo://x",
        ] {
            let err = DestinationUrl::parse(bad).unwrap_err().to_string();
            assert!(!err.contains("secret"), "{err}");
        }
    }
}
