//! Command-line definitions (clap) and their translation into the library's validated
//! settings. Every flag has a `TRIVY_MIRROR_*` environment variable, so the same binary
//! is configured the same way in a terminal, a container job and AWS Lambda.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use trivy_mirror::Result;
use trivy_mirror::artifact::Kind;
use trivy_mirror::credentials::{AuthMode, Cloud, Credentials, Env, Secret};
use trivy_mirror::error::Setting;
use trivy_mirror::http::RetryPolicy;
use trivy_mirror::registry::RegistryOptions;
use trivy_mirror::run::SyncConfig;
use trivy_mirror::settings::SyncSettings;
use trivy_mirror::signing::PublicKey;
use trivy_mirror::source::DEFAULT_SOURCES;

/// `sync --help` headings, in the order they are shown.
const SOURCES: &str = "Sources";
const DESTINATIONS: &str = "Destinations";
const CREDENTIALS: &str = "Registry credentials";
const VEX: &str = "VEX";
const SIGNING: &str = "Signatures";
const RETENTION: &str = "Retention";
const TRANSFER: &str = "Transfers";
const OUTPUT: &str = "Output";

/// Serve Trivy's security databases from your own infrastructure.
#[derive(Debug, Parser)]
#[command(name = "trivy-mirror", version, about, long_about = None, max_term_width = 100)]
pub struct Cli {
    /// Log format on stderr.
    #[arg(long, global = true, env = "TRIVY_MIRROR_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text, help_heading = OUTPUT)]
    pub log_format: LogFormat,
    /// More log output (-v: debug, -vv: trace).
    #[arg(short, long, global = true, action = clap::ArgAction::Count, help_heading = OUTPUT)]
    pub verbose: u8,
    /// Only warnings and errors on stderr.
    #[arg(short, long, global = true, help_heading = OUTPUT)]
    pub quiet: bool,
    #[command(subcommand)]
    pub command: Command,
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line (CloudWatch, Cloud Logging, Azure Monitor).
    Json,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Pull the artifacts and publish them into one or more destinations.
    Sync(Box<SyncArgs>),
    /// Serve a local mirror directory as a registry, as a CDN in front of a bucket would.
    Serve(Box<ServeArgs>),
    /// Check a served mirror over HTTP(S) the way Trivy uses it; non-zero exit on any problem.
    Verify(VerifyArgs),
    /// Remove old versions from a static mirror (blobs and manifests no tag still needs).
    Prune(PruneArgs),
    /// Exit 0 if a URL answers 2xx, else 1 with one line: a container health check for
    /// images without curl (`probe http://127.0.0.1:8080/healthz`).
    Probe(ProbeArgs),
}

/// `trivy-mirror probe`.
#[derive(Debug, Args)]
pub struct ProbeArgs {
    /// The URL to GET.
    pub url: String,
    /// Give up after this long.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    pub timeout: std::time::Duration,
}

/// Retention settings, shared by `prune` and `sync --prune`.
#[derive(Debug, Args, Clone)]
pub struct RetentionArgs {
    /// Versions (and dated snapshot tags) kept per repository, newest first.
    #[arg(long, env = "TRIVY_MIRROR_KEEP", default_value_t = 3, help_heading = RETENTION)]
    pub keep: usize,
    /// How long a version must have been superseded (or a blob unreferenced) before it is
    /// removed: longer than the CDN's tag TTL plus the longest client download.
    #[arg(long, env = "TRIVY_MIRROR_GRACE", default_value = "24h", value_parser = humantime::parse_duration, help_heading = RETENTION)]
    pub grace: Duration,
}

impl RetentionArgs {
    /// The library's retention options.
    pub fn options(&self, namespace: &str, dry_run: bool) -> trivy_mirror::prune::PruneOptions {
        trivy_mirror::prune::PruneOptions {
            keep: self.keep.max(1),
            grace: self.grace,
            dry_run,
            namespace: namespace.into(),
        }
    }
}

/// `trivy-mirror prune`.
#[derive(Debug, Args)]
pub struct PruneArgs {
    /// The static mirror(s) to prune: a directory, s3://, gs:// or az:// URL.
    #[arg(long = "to", env = "TRIVY_MIRROR_TO", value_delimiter = ',', required = true, value_name = "DEST")]
    pub to: Vec<String>,
    /// Namespace of the repositories.
    #[arg(long, env = "TRIVY_MIRROR_NAMESPACE", default_value = "aquasecurity")]
    pub namespace: String,
    #[command(flatten)]
    pub retention: RetentionArgs,
    /// Only print what would be removed.
    #[arg(long)]
    pub dry_run: bool,
}

/// `trivy-mirror verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The mirror as Trivy addresses it: https://HOST, http://HOST:PORT or HOST[:PORT].
    pub mirror: String,
    /// Namespace of the repositories.
    #[arg(long, env = "TRIVY_MIRROR_NAMESPACE", default_value = "aquasecurity")]
    pub namespace: String,
    /// What to check: db, java-db, checks, vex. Default: the databases, plus vex with --vex-url.
    #[arg(long, value_delimiter = ',', value_name = "KINDS")]
    pub only: Vec<Kind>,
    /// The VEX repository URL as configured in Trivy's repository.yaml.
    #[arg(long)]
    pub vex_url: Option<String>,
    /// Username for a private mirror.
    #[arg(long, env = "TRIVY_MIRROR_VERIFY_USERNAME", requires = "password")]
    pub username: Option<String>,
    /// Password for a private mirror.
    #[arg(long, env = "TRIVY_MIRROR_VERIFY_PASSWORD", hide_env_values = true, requires = "username")]
    pub password: Option<String>,
    /// Bearer token for a private mirror.
    #[arg(long, env = "TRIVY_MIRROR_VERIFY_TOKEN", hide_env_values = true, conflicts_with = "username")]
    pub token: Option<String>,
    /// Extra CA bundle (PEM).
    #[arg(long)]
    pub cacert: Option<PathBuf>,
    /// Accept plain http or unverified TLS for a non-local host.
    #[arg(long)]
    pub insecure: bool,
    /// Check every tag's cosign signature against this public key (PEM; repeat for key
    /// rotation: any one of them may have signed).
    #[arg(long, value_name = "PUB.pem")]
    pub key: Vec<String>,
    /// Print the findings as JSON (for monitoring).
    #[arg(long)]
    pub json: bool,
}

impl VerifyArgs {
    /// Validate and build the verify settings; returns the registry host too.
    pub fn options(&self) -> Result<(String, trivy_mirror::verify::VerifyOptions)> {
        let (host, http) = trivy_mirror::verify::parse_mirror_url(&self.mirror)?;
        let credentials = match (&self.username, &self.password, &self.token) {
            (Some(u), Some(p), _) => Credentials::Basic { username: u.clone(), password: Secret::new(p.clone()) },
            (_, _, Some(t)) => Credentials::Bearer(Secret::new(t.clone())),
            _ => Credentials::Anonymous,
        };
        let insecure = self.insecure || (http && !trivy_mirror::http::is_local_host(&host));
        let mut only: BTreeSet<Kind> = self.only.iter().copied().collect();
        if only.is_empty() {
            only = [Kind::Db, Kind::JavaDb, Kind::Checks].into();
            if self.vex_url.is_some() {
                only.insert(Kind::Vex);
            }
        }
        let options = trivy_mirror::verify::VerifyOptions {
            registry: RegistryOptions {
                credentials,
                insecure,
                // An http:// URL says no TLS; a CA bundle would make a local host use it.
                ca_file: if http { None } else { self.cacert.clone() },
                retry: RetryPolicy::default(),
                read_timeout: Some(Duration::from_secs(60)),
                chunk_size: None,
            },
            namespace: self.namespace.clone(),
            only,
            vex_url: self.vex_url.clone(),
            now: jiff::Timestamp::now(),
            keys: self.key.iter().map(|k| PublicKey::load(k, Setting::VerifyKey)).collect::<Result<_>>()?,
        };
        Ok((host, options))
    }
}

/// `trivy-mirror sync`.
#[derive(Debug, Args, Clone)]
pub struct SyncArgs {
    /// Where to publish: a directory, file:///path, s3://bucket[/prefix], gs://bucket[/prefix],
    /// az://container[/prefix], oci://registry[/namespace]; an air-gap bundle oci:DIR or
    /// oci-archive:FILE; or trivy-cache:DIR, Trivy's own cache (--cache-dir). Repeat (or
    /// comma-separate) for several.
    #[arg(long = "to", env = "TRIVY_MIRROR_TO", value_delimiter = ',', required = true, value_name = "DEST", help_heading = DESTINATIONS)]
    pub to: Vec<String>,

    /// Upstream REGISTRY/NAMESPACE, or an air-gap bundle oci:DIR or oci-archive:FILE (read
    /// with no network at all; VEX comes from the bundle too), tried in order.
    #[arg(long = "source", env = "TRIVY_MIRROR_SOURCE", value_delimiter = ',', value_name = "SOURCE",
          default_values_t = DEFAULT_SOURCES.map(String::from), help_heading = SOURCES)]
    pub source: Vec<String>,

    /// What to mirror: db, java-db, checks, vex (comma-separated). Default: the three
    /// databases, plus vex when --base-url is set or a bundle or Trivy cache is written.
    #[arg(long, env = "TRIVY_MIRROR_ONLY", value_delimiter = ',', value_name = "KINDS", help_heading = SOURCES)]
    pub only: Vec<Kind>,

    /// Namespace of the published repositories (NAMESPACE/trivy-db, …).
    #[arg(long, env = "TRIVY_MIRROR_NAMESPACE", default_value = "aquasecurity", help_heading = DESTINATIONS)]
    pub namespace: String,

    /// max-age (seconds) of mutable objects: tags, tags/list, the /v2/ ping, VEX files.
    #[arg(long, env = "TRIVY_MIRROR_TAG_CACHE_SECONDS", default_value_t = trivy_mirror::layout::DEFAULT_TAG_TTL, help_heading = DESTINATIONS)]
    pub tag_cache_seconds: u32,

    /// Allow plain http or unverified TLS to sources other than localhost/127.0.0.1.
    #[arg(long, env = "TRIVY_MIRROR_INSECURE_SOURCE", help_heading = SOURCES)]
    pub insecure_source: bool,

    /// Username for the source registries (else docker config.json, else anonymous).
    #[arg(long, env = "TRIVY_MIRROR_SOURCE_USERNAME", requires = "source_password", help_heading = SOURCES)]
    pub source_username: Option<String>,

    /// Password or token for the source registries.
    #[arg(long, env = "TRIVY_MIRROR_SOURCE_PASSWORD", hide_env_values = true, requires = "source_username", help_heading = SOURCES)]
    pub source_password: Option<String>,

    /// Extra CA bundle (PEM) trusted for sources.
    #[arg(long, env = "TRIVY_MIRROR_SOURCE_CA_FILE", help_heading = SOURCES)]
    pub source_ca_file: Option<PathBuf>,

    /// Username for oci:// destinations (else docker config.json / credential helpers).
    #[arg(long, env = "TRIVY_MIRROR_DEST_USERNAME", requires = "dest_password", help_heading = CREDENTIALS)]
    pub dest_username: Option<String>,

    /// Password for oci:// destinations.
    #[arg(long, env = "TRIVY_MIRROR_DEST_PASSWORD", hide_env_values = true, requires = "dest_username", help_heading = CREDENTIALS)]
    pub dest_password: Option<String>,

    /// Bearer token for oci:// destinations (instead of username/password).
    #[arg(long, env = "TRIVY_MIRROR_DEST_TOKEN", hide_env_values = true, conflicts_with = "dest_username", help_heading = CREDENTIALS)]
    pub dest_token: Option<String>,

    /// How oci:// destinations authenticate: auto (flags; docker config.json, but for ECR,
    /// Artifact Registry and ACR hosts only a credHelpers entry, else the cloud identity),
    /// docker, ecr (`ecr` feature), gar (Google application default credentials) or acr
    /// (Entra ID exchange).
    #[arg(long, env = "TRIVY_MIRROR_DEST_AUTH", value_enum, default_value_t = DestAuth::Auto, help_heading = CREDENTIALS)]
    pub dest_auth: DestAuth,

    /// Allow plain http or unverified TLS to oci:// destinations other than localhost.
    #[arg(long, env = "TRIVY_MIRROR_INSECURE_DESTINATION", help_heading = DESTINATIONS)]
    pub insecure_destination: bool,

    /// Extra CA bundle (PEM) trusted for oci:// destinations.
    #[arg(long, env = "TRIVY_MIRROR_DEST_CA_FILE", help_heading = DESTINATIONS)]
    pub dest_ca_file: Option<PathBuf>,

    /// Push blobs to oci:// destinations in chunks of this size (e.g. 4MiB) instead of one
    /// request each. Without it, chunks are used only after a 413 (a proxy's body limit).
    #[arg(long, env = "TRIVY_MIRROR_DEST_CHUNK_SIZE", value_parser = trivy_mirror::settings::parse_size, help_heading = DESTINATIONS)]
    pub dest_chunk_size: Option<u64>,

    /// Public base URL of the mirror (https://trivy-mirror.example.com); VEX locations point here.
    #[arg(long, env = "TRIVY_MIRROR_BASE_URL", help_heading = VEX)]
    pub base_url: Option<String>,

    /// Allow an http:// base URL (local testing only).
    #[arg(long, env = "TRIVY_MIRROR_ALLOW_HTTP_BASE_URL", help_heading = VEX)]
    pub allow_http_base_url: bool,

    /// Path under the mirror root for the VEX files (default: the root).
    #[arg(long, env = "TRIVY_MIRROR_VEX_PREFIX", default_value = "", help_heading = VEX)]
    pub vex_prefix: String,

    /// URL of the upstream VEX repository manifest. Without it VEX comes from a --source
    /// that holds the VEX artifact (a bundle, or a registry another mirror pushed it to),
    /// else from VEX Hub (https://raw.githubusercontent.com/aquasecurity/vexhub/main/vex-repository.json).
    #[arg(long, env = "TRIVY_MIRROR_VEX_SOURCE", help_heading = VEX)]
    pub vex_source: Option<String>,

    /// Archive format to publish: as-upstream, zip or tar.gz.
    #[arg(long, env = "TRIVY_MIRROR_VEX_ARCHIVE", value_enum, default_value_t = trivy_mirror::vex::ArchiveChoice::AsUpstream, help_heading = VEX)]
    pub vex_archive: trivy_mirror::vex::ArchiveChoice,

    /// After publishing, prune old versions from static destinations (see `prune`).
    #[arg(long, env = "TRIVY_MIRROR_PRUNE", help_heading = RETENTION)]
    pub prune: bool,

    #[command(flatten)]
    pub retention: RetentionArgs,

    /// Which trivy-checks bundle a trivy-cache: destination holds: 2 for Trivy 0.69 and
    /// later, 1 for older clients.
    #[arg(long, env = "TRIVY_MIRROR_CACHE_CHECKS", default_value = "2", value_parser = ["1", "2"], help_heading = DESTINATIONS)]
    pub cache_checks: String,

    /// Also publish each new version under a dated, immutable tag such as 2-20261126T0600Z.
    #[arg(long, env = "TRIVY_MIRROR_SNAPSHOT_TAGS", help_heading = DESTINATIONS)]
    pub snapshot_tags: bool,

    /// Publish a version built before the one a destination serves (a deliberate
    /// rollback). Without it an older build is refused and the newer one stays.
    #[arg(long, env = "TRIVY_MIRROR_ALLOW_DOWNGRADE", help_heading = DESTINATIONS)]
    pub allow_downgrade: bool,

    /// Also read back and hash every published blob and manifest, and repair whatever does
    /// not hash to its digest (costs one full read of the mirror; e.g. weekly). Without
    /// it, each run checks that every blob is present with the right size.
    #[arg(long, env = "TRIVY_MIRROR_RECHECK", help_heading = DESTINATIONS)]
    pub recheck: bool,

    /// Retries of a failed request or blob transfer (429, 5xx, timeouts, resets).
    #[arg(long, env = "TRIVY_MIRROR_RETRIES", default_value_t = 3, help_heading = TRANSFER)]
    pub retries: u32,

    /// First backoff between retries, in milliseconds; doubles each time (a server's
    /// Retry-After wins).
    #[arg(long, env = "TRIVY_MIRROR_RETRY_BASE_MS", default_value_t = 500, help_heading = TRANSFER)]
    pub retry_base_ms: u64,

    /// Artifacts copied at the same time.
    #[arg(long, env = "TRIVY_MIRROR_CONCURRENCY", default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=16), help_heading = TRANSFER)]
    pub concurrency: u32,

    /// Range requests in flight for large blobs from a registry source, used where one
    /// connection is slow: the registry redirects to a CDN, or its own first part came below
    /// 32 MiB/s (1: one stream per blob). Memory per source: this many parts of --range-size.
    #[arg(long, env = "TRIVY_MIRROR_RANGE_PARTS", default_value_t = 6, value_parser = clap::value_parser!(u32).range(1..=32), help_heading = TRANSFER)]
    pub range_parts: u32,

    /// Bytes per range request (e.g. 4MiB); blobs under two parts take one plain GET.
    #[arg(long, env = "TRIVY_MIRROR_RANGE_SIZE", default_value = "2MiB", value_parser = trivy_mirror::settings::parse_size, help_heading = TRANSFER)]
    pub range_size: u64,

    /// Per-request read timeout in seconds (a stalled body fails and is retried).
    #[arg(long, env = "TRIVY_MIRROR_READ_TIMEOUT", default_value_t = 60, help_heading = TRANSFER)]
    pub read_timeout: u64,

    /// Sign every manifest published, in cosign's format (a sha256-<digest>.sig tag beside
    /// it), with this ECDSA P-256 private key: a PEM file (PKCS#8, SEC1, or cosign's with
    /// COSIGN_PASSWORD), in the environment variable the PEM itself, or
    /// awskms:///alias/NAME (builds with `kms`).
    #[arg(long, env = "TRIVY_MIRROR_SIGN_KEY", value_name = "KEY", hide_env_values = true, help_heading = SIGNING)]
    pub sign_key: Option<String>,

    /// Take an artifact from a source only if it carries a cosign signature that verifies
    /// under this public key (PEM; repeat for key rotation). Anything else is refused and
    /// the previous version stays served; the signature is published with the artifact.
    #[arg(long, env = "TRIVY_MIRROR_REQUIRE_SIGNATURE", value_name = "PUB.pem", value_delimiter = ',', help_heading = SIGNING)]
    pub require_signature: Vec<String>,

    /// Stop after this long (e.g. 14m): no artifact starts later, one in flight is stopped
    /// (tags still point at complete content), and the run reports which did not finish.
    /// For a job with a hard time limit; the next run continues where this one stopped.
    #[arg(long, env = "TRIVY_MIRROR_DEADLINE", value_parser = humantime::parse_duration, value_name = "DURATION", help_heading = TRANSFER)]
    pub deadline: Option<Duration>,
}

/// Where oci:// destination credentials come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DestAuth {
    /// Flags, else docker config.json (for a cloud registry host: its credHelpers entry, else
    /// the cloud identity).
    Auto,
    /// docker config.json (auths, credHelpers, credsStore).
    Docker,
    /// Amazon ECR GetAuthorizationToken with the environment's AWS credentials.
    Ecr,
    /// Google application default credentials (key file, gcloud login, metadata server).
    Gar,
    /// A Microsoft Entra ID token (secret, workload or managed identity) exchanged at the ACR.
    Acr,
}

/// `trivy-mirror serve`. With `--sync-every` it also takes every `sync` flag that applies
/// to a directory; `--to` is implied (DIR) and hidden.
#[derive(Debug, Args)]
#[command(mut_arg("to", |a| a.required(false).hide(true)))]
pub struct ServeArgs {
    /// The mirror directory written by `sync --to DIR`.
    #[arg(env = "TRIVY_MIRROR_SERVE_DIR")]
    pub dir: PathBuf,
    /// Address to listen on.
    #[arg(long, env = "TRIVY_MIRROR_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Open client connections at most; further clients wait until one closes.
    #[arg(long, env = "TRIVY_MIRROR_MAX_CONNECTIONS", default_value_t = 1024, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub max_connections: u32,
    /// Close a connection that has not sent a complete request head (or TLS handshake)
    /// within this time; idle keep-alive connections too.
    #[arg(long, env = "TRIVY_MIRROR_HEADER_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration)]
    pub header_timeout: Duration,
    /// /readyz answers 503 once an artifact's last successful check is older than this.
    #[arg(long, env = "TRIVY_MIRROR_MAX_AGE", default_value = "24h", value_parser = humantime::parse_duration)]
    pub max_age: Duration,
    /// Serve HTTPS with this PEM certificate chain (reloaded when the file changes).
    #[arg(long, env = "TRIVY_MIRROR_TLS_CERT", requires = "tls_key", value_name = "FILE")]
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert (RSA or ECDSA).
    #[arg(long, env = "TRIVY_MIRROR_TLS_KEY", requires = "tls_cert", value_name = "FILE")]
    pub tls_key: Option<PathBuf>,
    /// Require HTTP Basic credentials from this Apache htpasswd file (bcrypt entries,
    /// `htpasswd -B`; reloaded when it changes). /healthz and /readyz stay open.
    #[arg(long, env = "TRIVY_MIRROR_HTPASSWD", value_name = "FILE")]
    pub htpasswd: Option<PathBuf>,
    /// Serve /metrics on this separate address, without authentication, instead of
    /// behind the main listener's authentication.
    #[arg(long, env = "TRIVY_MIRROR_METRICS_LISTEN", value_name = "ADDR")]
    pub metrics_listen: Option<SocketAddr>,
    /// Sync into DIR in this process: once at start, then every DURATION (±10 %), e.g. 6h.
    /// A failed run keeps the previous version served.
    #[arg(long, env = "TRIVY_MIRROR_SYNC_EVERY", value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub sync_every: Option<Duration>,
    /// The sync flags (used with --sync-every; --tag-cache-seconds applies to serving too).
    #[command(flatten)]
    pub sync: SyncArgs,
}

impl ServeArgs {
    /// The server settings (listeners are bound by the caller).
    pub fn options(&self, access_log: bool) -> Result<trivy_mirror::serve::ServeOptions> {
        let mut o = trivy_mirror::serve::ServeOptions::new(self.sync.tag_cache_seconds);
        o.max_connections = self.max_connections as usize;
        o.max_age = self.max_age;
        o.header_timeout = self.header_timeout;
        o.tls = self.tls_cert.clone().zip(self.tls_key.clone());
        o.htpasswd = self.htpasswd.clone();
        o.access_log = access_log;
        if let Some(every) = self.sync_every {
            let mut sync = self.sync.settings();
            sync.to = vec![self.dir.display().to_string()];
            let config = sync.validate(&trivy_mirror::credentials::process_env)?;
            o.sync = Some(trivy_mirror::serve::schedule::Schedule { every, config });
        }
        Ok(o)
    }
}

impl SyncArgs {
    /// The flags as the library's settings: no rule is applied here.
    pub fn settings(&self) -> SyncSettings {
        SyncSettings {
            to: self.to.clone(),
            source: self.source.clone(),
            only: self.only.clone(),
            namespace: self.namespace.clone(),
            tag_cache_seconds: self.tag_cache_seconds,
            insecure_source: self.insecure_source,
            source_username: self.source_username.clone(),
            source_password: self.source_password.clone().map(Secret::new),
            source_ca_file: self.source_ca_file.clone(),
            dest_username: self.dest_username.clone(),
            dest_password: self.dest_password.clone().map(Secret::new),
            dest_token: self.dest_token.clone().map(Secret::new),
            dest_auth: self.dest_auth.mode(),
            insecure_destination: self.insecure_destination,
            dest_ca_file: self.dest_ca_file.clone(),
            dest_chunk_size: self.dest_chunk_size,
            base_url: self.base_url.clone(),
            allow_http_base_url: self.allow_http_base_url,
            vex_prefix: self.vex_prefix.clone(),
            vex_source: self.vex_source.clone(),
            vex_archive: self.vex_archive,
            prune: self.prune,
            keep: self.retention.keep,
            grace: self.retention.grace,
            cache_checks: if self.cache_checks == "1" { 1 } else { 2 },
            snapshot_tags: self.snapshot_tags,
            allow_downgrade: self.allow_downgrade,
            recheck: self.recheck,
            retries: self.retries,
            retry_base: Duration::from_millis(self.retry_base_ms),
            concurrency: self.concurrency,
            range_parts: self.range_parts,
            range_size: self.range_size,
            read_timeout: Duration::from_secs(self.read_timeout),
            deadline: self.deadline,
            sign_key: self.sign_key.clone().map(Secret::new),
            require_signature: self.require_signature.clone(),
        }
    }

    /// Validate every setting, resolve credentials and open every destination: the one
    /// configuration a run needs. `env` reads environment variables (docker config,
    /// credential helpers).
    pub fn config(&self, env: Env<'_>) -> Result<SyncConfig> {
        self.settings().validate(env)
    }
}

impl DestAuth {
    fn mode(self) -> AuthMode {
        match self {
            DestAuth::Auto => AuthMode::Auto,
            DestAuth::Docker => AuthMode::Docker,
            DestAuth::Ecr => AuthMode::Cloud(Cloud::Ecr),
            DestAuth::Gar => AuthMode::Cloud(Cloud::Gar),
            DestAuth::Acr => AuthMode::Cloud(Cloud::Acr),
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory as _;

    use super::*;

    #[test]
    fn the_library_settings_know_every_variable_and_default_of_sync() {
        let cli = Cli::command();
        let sync = cli.find_subcommand("sync").expect("sync");
        let flags: BTreeSet<String> = (cli.get_arguments().chain(sync.get_arguments()))
            .filter_map(|a| a.get_env().map(|e| e.to_string_lossy().into_owned()))
            .collect();
        let library: BTreeSet<String> = trivy_mirror::settings::VARIABLES.iter().map(|v| v.to_string()).collect();
        assert_eq!(flags, library, "the Lambda handler reads the library's list");

        let parsed = Cli::try_parse_from(["trivy-mirror", "sync", "--to", "d"]).unwrap();
        let Command::Sync(args) = parsed.command else { panic!("sync") };
        let expected = SyncSettings { to: vec!["d".into()], ..SyncSettings::default() };
        assert_eq!(args.settings(), expected, "the flags' defaults are the library's");
    }
}
