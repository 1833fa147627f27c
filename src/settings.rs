//! The sync settings as plain values ([`SyncSettings`]), and their validation into the one
//! [`SyncConfig`] a run needs. Every entry point fills the same type its own way: the CLI
//! from flags, the Lambda handler from the environment ([`SyncSettings::from_env`]) and its
//! payload, `serve --sync-every` from its flags. Every domain rule is applied here, once,
//! in [`SyncSettings::validate`]: the VEX defaults, the base-URL requirement, where VEX
//! comes from, what a source spec names ([`SourceLocation`]), the run's deadline.
//!
//! The variables are the CLI's (`TRIVY_MIRROR_*`); a test of the binary checks that both
//! lists and their defaults agree.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::artifact::Kind;
use crate::credentials::{self, AuthMode, Cloud, Credentials, Env, Secret};
use crate::dest::{DestinationUrl, OpenOptions};
use crate::error::{Error, Result, Setting};
use crate::http::RetryPolicy;
use crate::prune::PruneOptions;
use crate::registry::RegistryOptions;
use crate::run::SyncConfig;
use crate::signing::{PublicKey, SigningKey};
use crate::source::location::SourceLocation;
use crate::source::ranged::RangeOptions;
use crate::source::vexhub::VexHubSource;
use crate::source::{BundleSource, DEFAULT_SOURCES, RegistrySource, Source};
use crate::sync::{Signing, SyncPlan};
use crate::vex::{ArchiveChoice, Publication};

/// Everything a sync can be told, unvalidated. [`Default`] holds the documented defaults.
/// Passwords, tokens and the signing key are [`Secret`]s: `Debug` never shows them.
#[derive(Clone, Debug, PartialEq)]
pub struct SyncSettings {
    /// Where to publish (`--to`), as written.
    pub to: Vec<String>,
    /// Where artifacts come from, tried in order (`--source`), as written.
    pub source: Vec<String>,
    /// What to mirror; empty: the databases, plus VEX where it can be published.
    pub only: Vec<Kind>,
    /// Namespace of the published repositories.
    pub namespace: String,
    /// max-age (seconds) of mutable objects in a static layout.
    pub tag_cache_seconds: u32,
    /// Plain http or unverified TLS to non-local sources.
    pub insecure_source: bool,
    /// Basic credentials for the source registries.
    pub source_username: Option<String>,
    /// The password of `source_username`.
    pub source_password: Option<Secret>,
    /// Extra CA bundle for sources.
    pub source_ca_file: Option<PathBuf>,
    /// Basic credentials for oci:// destinations.
    pub dest_username: Option<String>,
    /// The password of `dest_username`.
    pub dest_password: Option<Secret>,
    /// A bearer token for oci:// destinations, instead of a username.
    pub dest_token: Option<Secret>,
    /// Where oci:// destination credentials come from otherwise.
    pub dest_auth: AuthMode,
    /// Plain http or unverified TLS to non-local oci:// destinations.
    pub insecure_destination: bool,
    /// Extra CA bundle for oci:// destinations.
    pub dest_ca_file: Option<PathBuf>,
    /// Chunked uploads of this size to oci:// destinations from the start.
    pub dest_chunk_size: Option<u64>,
    /// The mirror's public base URL (VEX locations point there).
    pub base_url: Option<String>,
    /// Allow an http:// base URL (local testing).
    pub allow_http_base_url: bool,
    /// Path of the VEX files under the mirror root.
    pub vex_prefix: String,
    /// The upstream VEX repository manifest; `None`: sources holding the VEX artifact, then VEX Hub.
    pub vex_source: Option<String>,
    /// Archive format to publish.
    pub vex_archive: ArchiveChoice,
    /// Prune static destinations after the sync.
    pub prune: bool,
    /// Versions kept per repository by pruning.
    pub keep: usize,
    /// How long something must have been superseded before pruning removes it.
    pub grace: Duration,
    /// Which trivy-checks major a Trivy cache holds (1 or 2).
    pub cache_checks: u8,
    /// Also publish dated snapshot tags.
    pub snapshot_tags: bool,
    /// Allow publishing an older build (a deliberate rollback).
    pub allow_downgrade: bool,
    /// Read back and hash everything published.
    pub recheck: bool,
    /// Retries of a failed request or blob transfer.
    pub retries: u32,
    /// First backoff between retries.
    pub retry_base: Duration,
    /// Artifacts copied at the same time.
    pub concurrency: u32,
    /// Range requests in flight per large blob.
    pub range_parts: u32,
    /// Bytes per range request.
    pub range_size: u64,
    /// Per-request read timeout.
    pub read_timeout: Duration,
    /// Stop starting new work this long after the run starts, and report.
    pub deadline: Option<Duration>,
    /// The private key published manifests are signed with: a PEM file, or the PEM itself.
    pub sign_key: Option<Secret>,
    /// Public keys (PEM files) a source's signature must verify under; empty: none required.
    pub require_signature: Vec<String>,
}

impl Default for SyncSettings {
    fn default() -> Self {
        SyncSettings {
            to: Vec::new(),
            source: DEFAULT_SOURCES.map(String::from).to_vec(),
            only: Vec::new(),
            namespace: "aquasecurity".into(),
            tag_cache_seconds: crate::layout::DEFAULT_TAG_TTL,
            insecure_source: false,
            source_username: None,
            source_password: None,
            source_ca_file: None,
            dest_username: None,
            dest_password: None,
            dest_token: None,
            dest_auth: AuthMode::Auto,
            insecure_destination: false,
            dest_ca_file: None,
            dest_chunk_size: None,
            base_url: None,
            allow_http_base_url: false,
            vex_prefix: String::new(),
            vex_source: None,
            vex_archive: ArchiveChoice::AsUpstream,
            prune: false,
            keep: 3,
            grace: Duration::from_secs(24 * 3600),
            cache_checks: 2,
            snapshot_tags: false,
            allow_downgrade: false,
            recheck: false,
            retries: 3,
            retry_base: Duration::from_millis(500),
            concurrency: 3,
            range_parts: 6,
            range_size: 2 << 20,
            read_timeout: Duration::from_secs(60),
            deadline: None,
            sign_key: None,
            require_signature: Vec::new(),
        }
    }
}

/// The environment variable of every sync setting, in [`SyncSettings`]' order.
pub const VARIABLES: [&str; 38] = [
    "TRIVY_MIRROR_TO",
    "TRIVY_MIRROR_SOURCE",
    "TRIVY_MIRROR_ONLY",
    "TRIVY_MIRROR_NAMESPACE",
    "TRIVY_MIRROR_TAG_CACHE_SECONDS",
    "TRIVY_MIRROR_INSECURE_SOURCE",
    "TRIVY_MIRROR_SOURCE_USERNAME",
    "TRIVY_MIRROR_SOURCE_PASSWORD",
    "TRIVY_MIRROR_SOURCE_CA_FILE",
    "TRIVY_MIRROR_DEST_USERNAME",
    "TRIVY_MIRROR_DEST_PASSWORD",
    "TRIVY_MIRROR_DEST_TOKEN",
    "TRIVY_MIRROR_DEST_AUTH",
    "TRIVY_MIRROR_INSECURE_DESTINATION",
    "TRIVY_MIRROR_DEST_CA_FILE",
    "TRIVY_MIRROR_DEST_CHUNK_SIZE",
    "TRIVY_MIRROR_BASE_URL",
    "TRIVY_MIRROR_ALLOW_HTTP_BASE_URL",
    "TRIVY_MIRROR_VEX_PREFIX",
    "TRIVY_MIRROR_VEX_SOURCE",
    "TRIVY_MIRROR_VEX_ARCHIVE",
    "TRIVY_MIRROR_PRUNE",
    "TRIVY_MIRROR_KEEP",
    "TRIVY_MIRROR_GRACE",
    "TRIVY_MIRROR_CACHE_CHECKS",
    "TRIVY_MIRROR_SNAPSHOT_TAGS",
    "TRIVY_MIRROR_ALLOW_DOWNGRADE",
    "TRIVY_MIRROR_RECHECK",
    "TRIVY_MIRROR_RETRIES",
    "TRIVY_MIRROR_RETRY_BASE_MS",
    "TRIVY_MIRROR_CONCURRENCY",
    "TRIVY_MIRROR_RANGE_PARTS",
    "TRIVY_MIRROR_RANGE_SIZE",
    "TRIVY_MIRROR_READ_TIMEOUT",
    "TRIVY_MIRROR_DEADLINE",
    "TRIVY_MIRROR_SIGN_KEY",
    "TRIVY_MIRROR_REQUIRE_SIGNATURE",
    "TRIVY_MIRROR_LOG_FORMAT",
];

/// The variable of the setting a key names (`to`, `base_url`, `base-url`, …), if any.
pub fn variable_for(key: &str) -> Option<&'static str> {
    let wanted = format!("TRIVY_MIRROR_{}", key.trim().replace('-', "_").to_ascii_uppercase());
    VARIABLES.iter().copied().find(|v| *v == wanted)
}

/// Reads typed values from environment variables; an empty value counts as unset.
struct Vars<'a>(Env<'a>);

impl Vars<'_> {
    fn text(&self, name: &str) -> Option<String> {
        (self.0)(name).filter(|v| !v.is_empty())
    }

    fn list(&self, name: &str) -> Option<Vec<String>> {
        self.text(name).map(|v| v.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect())
    }

    /// Unset, empty, `0`, `false`, `no`, `off`, `n`, `f`: false; anything else true.
    fn flag(&self, name: &str) -> bool {
        self.text(name).is_some_and(|v| !["0", "false", "no", "off", "n", "f"].contains(&v.to_lowercase().as_str()))
    }

    fn parsed<T, E: std::fmt::Display>(
        &self,
        name: &'static str,
        parse: impl Fn(&str) -> std::result::Result<T, E>,
    ) -> Result<Option<T>> {
        self.text(name)
            .map(|v| {
                let refuse = |reason: E| Error::config(Setting::Variable(name), v.as_str(), reason.to_string());
                parse(v.trim()).map_err(refuse)
            })
            .transpose()
    }

    fn number<T>(&self, name: &'static str, range: std::ops::RangeInclusive<T>) -> Result<Option<T>>
    where
        T: std::str::FromStr + PartialOrd + std::fmt::Display,
    {
        self.parsed(name, |v| match v.parse::<T>() {
            Ok(n) if range.contains(&n) => Ok(n),
            _ => Err(format!("expected a number from {} to {}", range.start(), range.end())),
        })
    }

    fn duration(&self, name: &'static str) -> Result<Option<Duration>> {
        self.parsed(name, |v| humantime::parse_duration(v).map_err(|e| format!("{e}; e.g. 90s, 15m, 6h")))
    }
}

impl SyncSettings {
    /// The settings as `trivy-mirror sync` reads them from `TRIVY_MIRROR_*` variables
    /// alone (no flags): what the Lambda handler runs with. `var` reads one variable.
    pub fn from_env(var: Env<'_>) -> Result<SyncSettings> {
        let v = Vars(var);
        let d = SyncSettings::default();
        let to = v.list("TRIVY_MIRROR_TO").unwrap_or_default();
        if to.is_empty() {
            let reason = "is not set: name where to publish (a directory, s3://, gs://, az:// or oci:// URL)";
            return Err(Error::config(Setting::Variable("TRIVY_MIRROR_TO"), "", reason));
        }
        let kinds = |list: &str| {
            let names = list.split(',').map(str::trim).filter(|k| !k.is_empty());
            names.map(str::parse::<Kind>).collect::<Result<Vec<_>>>()
        };
        Ok(SyncSettings {
            to,
            source: v.list("TRIVY_MIRROR_SOURCE").unwrap_or(d.source),
            only: v.parsed("TRIVY_MIRROR_ONLY", kinds)?.unwrap_or_default(),
            namespace: v.text("TRIVY_MIRROR_NAMESPACE").unwrap_or(d.namespace),
            tag_cache_seconds: v.number("TRIVY_MIRROR_TAG_CACHE_SECONDS", 0..=u32::MAX)?.unwrap_or(d.tag_cache_seconds),
            insecure_source: v.flag("TRIVY_MIRROR_INSECURE_SOURCE"),
            source_username: v.text("TRIVY_MIRROR_SOURCE_USERNAME"),
            source_password: v.text("TRIVY_MIRROR_SOURCE_PASSWORD").map(Secret::new),
            source_ca_file: v.text("TRIVY_MIRROR_SOURCE_CA_FILE").map(PathBuf::from),
            dest_username: v.text("TRIVY_MIRROR_DEST_USERNAME"),
            dest_password: v.text("TRIVY_MIRROR_DEST_PASSWORD").map(Secret::new),
            dest_token: v.text("TRIVY_MIRROR_DEST_TOKEN").map(Secret::new),
            dest_auth: v.parsed("TRIVY_MIRROR_DEST_AUTH", parse_auth_mode)?.unwrap_or(d.dest_auth),
            insecure_destination: v.flag("TRIVY_MIRROR_INSECURE_DESTINATION"),
            dest_ca_file: v.text("TRIVY_MIRROR_DEST_CA_FILE").map(PathBuf::from),
            dest_chunk_size: v.parsed("TRIVY_MIRROR_DEST_CHUNK_SIZE", parse_size)?,
            base_url: v.text("TRIVY_MIRROR_BASE_URL"),
            allow_http_base_url: v.flag("TRIVY_MIRROR_ALLOW_HTTP_BASE_URL"),
            vex_prefix: v.text("TRIVY_MIRROR_VEX_PREFIX").unwrap_or_default(),
            vex_source: v.text("TRIVY_MIRROR_VEX_SOURCE"),
            vex_archive: v
                .parsed("TRIVY_MIRROR_VEX_ARCHIVE", |a| clap::ValueEnum::from_str(a, true))?
                .unwrap_or(d.vex_archive),
            prune: v.flag("TRIVY_MIRROR_PRUNE"),
            keep: v.number("TRIVY_MIRROR_KEEP", 0..=usize::MAX)?.unwrap_or(d.keep),
            grace: v.duration("TRIVY_MIRROR_GRACE")?.unwrap_or(d.grace),
            cache_checks: v.number("TRIVY_MIRROR_CACHE_CHECKS", 1..=2)?.unwrap_or(d.cache_checks),
            snapshot_tags: v.flag("TRIVY_MIRROR_SNAPSHOT_TAGS"),
            allow_downgrade: v.flag("TRIVY_MIRROR_ALLOW_DOWNGRADE"),
            recheck: v.flag("TRIVY_MIRROR_RECHECK"),
            retries: v.number("TRIVY_MIRROR_RETRIES", 0..=u32::MAX)?.unwrap_or(d.retries),
            retry_base: v
                .number("TRIVY_MIRROR_RETRY_BASE_MS", 0..=u64::MAX)?
                .map(Duration::from_millis)
                .unwrap_or(d.retry_base),
            concurrency: v.number("TRIVY_MIRROR_CONCURRENCY", 1..=16)?.unwrap_or(d.concurrency),
            range_parts: v.number("TRIVY_MIRROR_RANGE_PARTS", 1..=32)?.unwrap_or(d.range_parts),
            range_size: v.parsed("TRIVY_MIRROR_RANGE_SIZE", parse_size)?.unwrap_or(d.range_size),
            read_timeout: v
                .number("TRIVY_MIRROR_READ_TIMEOUT", 0..=u64::MAX)?
                .map(Duration::from_secs)
                .unwrap_or(d.read_timeout),
            deadline: v.duration("TRIVY_MIRROR_DEADLINE")?,
            sign_key: v.text("TRIVY_MIRROR_SIGN_KEY").map(Secret::new),
            require_signature: v.list("TRIVY_MIRROR_REQUIRE_SIGNATURE").unwrap_or_default(),
        })
    }

    /// The retry policy of every request and transfer of the run.
    pub fn retry_policy(&self) -> RetryPolicy {
        RetryPolicy {
            attempts: self.retries.saturating_add(1),
            initial_backoff: self.retry_base,
            ..RetryPolicy::default()
        }
    }

    /// Retention as `sync --prune` applies it.
    pub fn retention(&self, dry_run: bool) -> PruneOptions {
        PruneOptions { keep: self.keep.max(1), grace: self.grace, dry_run, namespace: self.namespace.clone() }
    }

    /// `only`, or its default: the three databases, plus VEX when a base URL is set or a
    /// bundle or Trivy cache is written (where VEX needs no public URL), and the bundle
    /// read from, if any, carries it.
    fn kinds(&self, bundles: &[Arc<BundleSource>], urls: &[DestinationUrl]) -> BTreeSet<Kind> {
        if !self.only.is_empty() {
            return self.only.iter().copied().collect();
        }
        let mut k: BTreeSet<Kind> = [Kind::Db, Kind::JavaDb, Kind::Checks].into();
        let local_output = urls.iter().any(|u| {
            matches!(u, DestinationUrl::OciLayout(_) | DestinationUrl::OciArchive(_) | DestinationUrl::TrivyCache(_))
        });
        let bundle_has_vex = bundles.first().is_none_or(|b| {
            crate::bundle::find(b.entries(), crate::vex::artifact::VEX_NAME, crate::vex::artifact::VEX_TAG)
                .is_ok_and(|e| e.is_some())
        });
        if (self.base_url.is_some() || local_output) && bundle_has_vex {
            k.insert(Kind::Vex);
        }
        k
    }

    /// Validate every setting, resolve credentials and open every source and destination:
    /// the one configuration a run needs. `env` reads environment variables (docker
    /// config, credential helpers, an S3 endpoint).
    pub fn validate(&self, env: Env<'_>) -> Result<SyncConfig> {
        let read_timeout = Some(self.read_timeout.max(Duration::from_secs(1)));
        if !self.namespace.is_empty() {
            crate::oci::validate_repository(&self.namespace)?;
        }
        let basic = |u: &Option<String>, p: &Option<Secret>| match (u, p) {
            (Some(u), Some(p)) => Some(Credentials::Basic { username: u.clone(), password: p.clone() }),
            _ => None,
        };
        // Destinations are parsed first (a mistyped one is the error to report, and their
        // kinds decide the VEX defaults) and opened last, so a refused setting creates nothing.
        if self.to.is_empty() {
            return Err(Error::config(Setting::Destination, "", "name at least one place to publish"));
        }
        let urls = self.to.iter().map(|u| DestinationUrl::parse(u)).collect::<Result<Vec<_>>>()?;
        let locations = self.source.iter().map(|s| SourceLocation::parse(s)).collect::<Result<Vec<_>>>()?;
        let source_credentials = basic(&self.source_username, &self.source_password);
        let mut sources: Vec<Arc<dyn Source>> = Vec::new();
        let mut bundles = Vec::new();
        for location in locations {
            let (path, archive) = match location {
                SourceLocation::OciLayout(path) => (path, false),
                SourceLocation::OciArchive(path) => (path, true),
                SourceLocation::Registry { spec, host } => {
                    let options = RegistryOptions {
                        credentials: credentials::resolve(&host, source_credentials.clone(), AuthMode::Docker, env)?,
                        insecure: self.insecure_source,
                        ca_file: self.source_ca_file.clone(),
                        retry: self.retry_policy(),
                        read_timeout,
                        chunk_size: None,
                    };
                    let ranges = RangeOptions {
                        parts: self.range_parts.max(1) as usize,
                        part_size: self.range_size.max(64 * 1024),
                    };
                    sources.push(Arc::new(RegistrySource::parse(&spec, options)?.with_ranges(ranges)));
                    continue;
                }
            };
            let bundle = Arc::new(BundleSource::open(Path::new(&path), archive)?);
            bundles.push(bundle.clone());
            sources.push(bundle);
        }
        let only = self.kinds(&bundles, &urls);
        let (vex_sources, vex_publication) = self.vex(&only, &urls, &sources, !bundles.is_empty(), read_timeout)?;
        let plan = SyncPlan {
            sources,
            namespace: self.namespace.clone(),
            only,
            vex_sources,
            snapshot_tags: self.snapshot_tags,
            allow_downgrade: self.allow_downgrade,
            recheck: self.recheck,
            retry: self.retry_policy(),
            concurrency: self.concurrency.max(1) as usize,
            progress: Arc::new(crate::progress::Silent),
            signing: self.signing(env)?,
        };

        let dest_credentials = match &self.dest_token {
            Some(t) => Some(Credentials::Bearer(t.clone())),
            None => basic(&self.dest_username, &self.dest_password),
        };
        let mut targets = Vec::new();
        for (url, parsed) in self.to.iter().zip(&urls) {
            let mut registry = RegistryOptions {
                credentials: Credentials::Anonymous,
                insecure: self.insecure_destination,
                ca_file: self.dest_ca_file.clone(),
                retry: self.retry_policy(),
                read_timeout,
                chunk_size: self.dest_chunk_size,
            };
            if let DestinationUrl::Registry { host, .. } = parsed {
                registry.credentials = credentials::resolve(host, dest_credentials.clone(), self.dest_auth, env)?;
            }
            let cache_checks_tag = if self.cache_checks == 1 { "1" } else { "2" };
            let vex = vex_publication.clone();
            let options = OpenOptions { tag_ttl: self.tag_cache_seconds, registry, cache_checks_tag, vex };
            targets.push(crate::dest::open(url, options, env)?);
        }
        let prune = self.prune.then(|| self.retention(false));
        Ok(SyncConfig { plan, targets, prune, deadline: self.deadline })
    }

    /// The key to sign with and the keys a source's signatures must verify under.
    fn signing(&self, env: Env<'_>) -> Result<Signing> {
        // A cosign-encrypted key opens with the password cosign itself reads.
        let password = env("COSIGN_PASSWORD");
        let load = |spec: &str| SigningKey::load(spec, password.as_deref());
        let key = self.sign_key.as_ref().map(|k| load(k.expose())).transpose()?.map(Arc::new);
        let require =
            self.require_signature.iter().map(|p| PublicKey::load(p, Setting::RequiredKey)).collect::<Result<_>>()?;
        Ok(Signing { key, require })
    }

    /// Where VEX comes from and where a static layout publishes it, when VEX is mirrored.
    fn vex(
        &self,
        only: &BTreeSet<Kind>,
        urls: &[DestinationUrl],
        sources: &[Arc<dyn Source>],
        reads_bundle: bool,
        read_timeout: Option<Duration>,
    ) -> Result<VexPlan> {
        if !only.contains(&Kind::Vex) {
            return Ok((Vec::new(), None));
        }
        let static_output = urls.iter().any(|u| matches!(u, DestinationUrl::Store(_)));
        if static_output && self.base_url.is_none() {
            return Err(Error::config(
                Setting::BaseUrl,
                "",
                "mirroring VEX to a static mirror needs the mirror's public URL, because the rewritten manifest \
                 points Trivy there; or leave vex out of --only",
            ));
        }
        let publication = self
            .base_url
            .as_deref()
            .map(|b| Publication::new(b, &self.vex_prefix, self.allow_http_base_url))
            .transpose()?;
        // Without a VEX source, sources named in the settings that hold the VEX artifact
        // come first; VEX Hub follows unless a bundle is read (an air gap has no network).
        // The default upstream registries carry no VEX artifact.
        let mut vex_sources = Vec::new();
        let named_sources = self.source != DEFAULT_SOURCES.map(String::from);
        if self.vex_source.is_none() && named_sources {
            vex_sources.extend(sources.iter().cloned());
        }
        if self.vex_source.is_some() || !reads_bundle {
            let url = self.vex_source.as_deref().unwrap_or(crate::vex::DEFAULT_VEX_SOURCE);
            let ca_file = self.source_ca_file.clone();
            let retry = self.retry_policy();
            let hub = VexHubSource::new(url, self.vex_archive, self.insecure_source, ca_file, read_timeout, retry)?;
            vex_sources.push(Arc::new(hub) as Arc<dyn Source>);
        }
        Ok((vex_sources, publication))
    }
}

/// Where VEX comes from, and where a static layout publishes it.
type VexPlan = (Vec<Arc<dyn Source>>, Option<Publication>);

/// Why a size was refused, in words.
#[derive(Debug, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct BadSize(String);

/// `1048576`, `512KiB`, `4MiB`, `1GiB` (also KB/MB/GB, read as binary units); at least
/// the smallest upload chunk.
pub fn parse_size(s: &str) -> std::result::Result<u64, BadSize> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (digits, unit) = s.split_at(split);
    let n: u64 = digits.parse().map_err(|_| BadSize(format!("{s:?} is not a size such as 4MiB")))?;
    let factor: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        other => return Err(BadSize(format!("unknown unit {other:?}: use KiB, MiB or GiB"))),
    };
    let size = n.checked_mul(factor).ok_or_else(|| BadSize(format!("{s:?} is too large")))?;
    if size < crate::registry::push::MIN_CHUNK {
        return Err(BadSize(format!("chunks are at least 64KiB, got {s:?}")));
    }
    Ok(size)
}

/// A value outside a variable's fixed choices.
#[derive(Debug, thiserror::Error)]
#[error("expected one of {0}")]
pub struct NotAChoice(&'static str);

/// `auto`, `docker`, `ecr`, `gar`, `acr`.
fn parse_auth_mode(s: &str) -> std::result::Result<AuthMode, NotAChoice> {
    Ok(match s.to_ascii_lowercase().as_str() {
        "auto" => AuthMode::Auto,
        "docker" => AuthMode::Docker,
        "ecr" => AuthMode::Cloud(Cloud::Ecr),
        "gar" => AuthMode::Cloud(Cloud::Gar),
        "acr" => AuthMode::Cloud(Cloud::Acr),
        _ => return Err(NotAChoice("auto, docker, ecr, gar, acr")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(vars: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |name| vars.iter().find(|(k, _)| *k == name).map(|(_, v)| v.to_string())
    }

    #[test]
    fn sizes_take_binary_units_and_refuse_tiny_chunks() {
        assert_eq!(parse_size("4MiB"), Ok(4 << 20));
        assert_eq!(parse_size("512k"), Ok(512 << 10));
        assert_eq!(parse_size("1048576"), Ok(1 << 20));
        assert_eq!(parse_size(" 1 GiB "), Ok(1 << 30));
        assert!(parse_size("1KiB").unwrap_err().0.contains("at least 64KiB"));
        assert!(parse_size("4PB").unwrap_err().0.contains("unknown unit"));
        assert!(parse_size("MiB").unwrap_err().0.contains("not a size"));
        assert!(parse_size("99999999999999999999GiB").is_err());
    }

    #[test]
    fn the_environment_fills_the_settings_and_names_the_variable_it_refuses() {
        let s = SyncSettings::from_env(&env(&[
            ("TRIVY_MIRROR_TO", "s3://b/m, /srv/m"),
            ("TRIVY_MIRROR_ONLY", "db,vex"),
            ("TRIVY_MIRROR_RECHECK", "true"),
            ("TRIVY_MIRROR_SNAPSHOT_TAGS", "false"),
            ("TRIVY_MIRROR_DEST_AUTH", "ecr"),
            ("TRIVY_MIRROR_RANGE_SIZE", "4MiB"),
            ("TRIVY_MIRROR_DEADLINE", "14m"),
            ("TRIVY_MIRROR_NAMESPACE", ""),
        ]))
        .unwrap();
        assert_eq!(s.to, ["s3://b/m", "/srv/m"]);
        assert_eq!(s.only, [Kind::Db, Kind::Vex]);
        assert!(s.recheck && !s.snapshot_tags);
        assert_eq!(s.dest_auth, AuthMode::Cloud(Cloud::Ecr));
        assert_eq!((s.range_size, s.deadline), (4 << 20, Some(Duration::from_secs(14 * 60))));
        assert_eq!(s.namespace, "aquasecurity", "an empty variable is unset");

        let missing = SyncSettings::from_env(&env(&[])).unwrap_err().to_string();
        assert!(missing.contains("TRIVY_MIRROR_TO"), "{missing}");
        for (vars, name) in [
            (&[("TRIVY_MIRROR_TO", "d"), ("TRIVY_MIRROR_ONLY", "nope")][..], "TRIVY_MIRROR_ONLY"),
            (&[("TRIVY_MIRROR_TO", "d"), ("TRIVY_MIRROR_CONCURRENCY", "99")][..], "TRIVY_MIRROR_CONCURRENCY"),
            (&[("TRIVY_MIRROR_TO", "d"), ("TRIVY_MIRROR_DEADLINE", "soon")][..], "TRIVY_MIRROR_DEADLINE"),
        ] {
            let vars: &'static [(&str, &str)] = Box::leak(vars.to_vec().into_boxed_slice());
            let err = SyncSettings::from_env(&env(vars)).unwrap_err().to_string();
            assert!(err.contains(name), "{err}");
        }
    }

    #[test]
    fn secrets_in_the_settings_never_print() {
        let s = SyncSettings::from_env(&env(&[
            ("TRIVY_MIRROR_TO", "/srv/m"),
            ("TRIVY_MIRROR_DEST_PASSWORD", "pw-one"),
            ("TRIVY_MIRROR_SOURCE_PASSWORD", "pw-two"),
            ("TRIVY_MIRROR_DEST_TOKEN", "tok-three"),
            ("TRIVY_MIRROR_SIGN_KEY", "-----BEGIN PRIVATE KEY-----\nkey-four"),
        ]))
        .unwrap();
        let shown = format!("{s:?}");
        for secret in ["pw-one", "pw-two", "tok-three", "key-four"] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
        assert_eq!(s.dest_password.as_ref().map(Secret::expose), Some("pw-one"));
    }

    #[test]
    fn payload_keys_name_their_variable() {
        assert_eq!(variable_for("base_url"), Some("TRIVY_MIRROR_BASE_URL"));
        assert_eq!(variable_for("base-url"), Some("TRIVY_MIRROR_BASE_URL"));
        assert_eq!(variable_for("to"), Some("TRIVY_MIRROR_TO"));
        assert_eq!(variable_for("note"), None);
    }

    #[test]
    fn vex_on_a_static_mirror_needs_the_base_url() {
        let dir = tempfile::tempdir().unwrap();
        let settings = SyncSettings {
            to: vec![dir.path().join("m").display().to_string()],
            only: vec![Kind::Vex],
            ..SyncSettings::default()
        };
        let err = settings.validate(&|_| None).unwrap_err();
        assert!(matches!(err, Error::Config { setting: Setting::BaseUrl, .. }), "{err}");
        assert!(!dir.path().join("m").exists(), "a refused setting creates nothing");
        let cache = SyncSettings { source: vec!["trivy-cache:/c".into()], ..settings };
        let err = cache.validate(&|_| None).unwrap_err().to_string();
        assert!(err.contains("destination only"), "{err}");
    }
}
