//! The crate's error type: one enum whose variants say what kind of thing failed, so the
//! sync engine can decide between "try again", "try the next source" and "give up".
//!
//! Every message names the object it is about (a URL, a destination, an artifact); what
//! the user can do about it is a separate, typed [`Help`], which the binary renders with
//! its own flag names (the library knows no flags). Messages never carry credentials:
//! URLs in this crate are built without userinfo or query, and tokens and passwords are
//! never formatted. This module depends on nothing else in the crate.

use std::fmt;
use std::time::Duration;

/// Result alias used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong, classified by what a caller can do about it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The run's deadline passed before this artifact was done; it was stopped, or not
    /// started. Tags still point at complete content (they are published last).
    #[error("{}", if *.started { "stopped at the run's deadline, unfinished" } else { "not started: the run's deadline had passed" })]
    Deadline {
        /// Whether the artifact's copy had begun.
        started: bool,
    },

    /// Every source of an artifact failed (or none is configured); one `label (cause)` each.
    #[error("no source could provide it: {}", causes.join(", "))]
    NoSource {
        /// `mirror.gcr.io/aquasec (HTTP 503)`, one per source tried.
        causes: Vec<String>,
        /// What to do, from the sources' errors (unreachable everywhere: offline).
        help: Option<Help>,
    },

    /// A setting (URL, name, file) is unusable. Fix the configuration.
    #[error("invalid {setting} {value:?}: {reason}")]
    Config {
        /// Which setting.
        setting: Setting,
        /// The offending value (never a secret).
        value: String,
        /// Why it is refused, and what is accepted instead.
        reason: String,
    },

    /// Upstream content failed a check (digest, size, shape, name grammar). Nothing built
    /// from it is published.
    #[error("refused {what}: {reason}")]
    Rejected {
        /// What was refused (artifact, blob, manifest, archive).
        what: String,
        /// The check that failed.
        reason: String,
        /// What to do about it, when the fix is on the user's side.
        help: Option<Box<Help>>,
    },

    /// Bytes do not match the descriptor that names them: more or fewer than its size, or
    /// a different sha256. Read from a source, nothing is published; read back from a
    /// destination (`--recheck`), the blob is damaged and is copied again.
    #[error("refused {what}: {reason}")]
    Mismatch {
        /// Whose bytes (a blob, with where it was read).
        what: String,
        /// How they differ.
        reason: String,
    },

    /// Something read whole (a response, a stored file, a credentials file) is larger than
    /// its bound; it is refused rather than held in memory.
    #[error("refused {what}: larger than {limit} bytes")]
    TooLarge {
        /// What was read.
        what: String,
        /// The bound, in bytes.
        limit: u64,
    },

    /// A source does not have what was asked for (a tag, a blob). The next source may.
    #[error("{place} has no {what}")]
    NotFound {
        /// What was asked for (`trivy-db:2`).
        what: String,
        /// Where it was looked for (a source label).
        place: String,
    },

    /// An HTTP server answered with a status we cannot use.
    #[error("{method} {url}: HTTP {status}{}", codes_suffix(.codes))]
    Http {
        /// The request method.
        method: &'static str,
        /// The URL requested (never with credentials or query).
        url: String,
        /// The status code received.
        status: u16,
        /// The registry's error codes and messages (`MANIFEST_UNKNOWN …`), if it sent any.
        codes: String,
        /// The server's Retry-After, if it sent one.
        retry_after: Option<Duration>,
        /// What to do about it.
        help: Option<Box<Help>>,
    },

    /// The request never got an answer: DNS, connect, TLS, timeout, reset mid-body.
    /// Shown with its cause in words; the transport chain (`message`) is logged at debug
    /// level where the error is made.
    #[error("{method} {url}: {}", transport_words(*.cause, .proxy.as_deref(), .message))]
    Transport {
        /// The request method.
        method: &'static str,
        /// The URL requested.
        url: String,
        /// What kind of failure it was.
        cause: Cause,
        /// The transport error and its causes, flattened.
        message: String,
        /// Whether trying again may help (timeouts, resets, refused connections).
        transient: bool,
        /// The proxy (`host:port`) whose connection failed, when the request went through
        /// one (`HTTPS_PROXY`) and the failure was connecting to it.
        proxy: Option<String>,
        /// What to do about it.
        help: Option<Box<Help>>,
    },

    /// A source offers an older version than a destination already serves: replacing it
    /// would roll every scanner behind the mirror back (a freeze attack, or a stale edge).
    #[error("refused to replace {artifact} built {published} with the older build {offered}")]
    Downgrade {
        /// The artifact (`trivy-db:2`).
        artifact: String,
        /// Build time of the published version.
        published: jiff::Timestamp,
        /// Build time of the version offered.
        offered: jiff::Timestamp,
    },

    /// Writing to or reading from a destination store failed.
    #[error("{destination}: {operation} {key}: {source}")]
    Store {
        /// The destination, as the user wrote it (without credentials).
        destination: String,
        /// What we were doing.
        operation: &'static str,
        /// The object key involved.
        key: String,
        /// The object_store error.
        #[source]
        source: Box<object_store::Error>,
    },

    /// `serve` was pointed at a directory that does not exist: nothing was mirrored there.
    #[error("mirror directory {dir} does not exist")]
    NoMirror {
        /// The directory, as given.
        dir: String,
        /// Mirror into it first ([`Help::SyncFirst`]).
        help: Box<Help>,
    },

    /// An artifact's signature is missing or does not verify (`sync --require-signature`,
    /// `verify --key`). Nothing of the artifact is published.
    #[error("{what} at {place}: {problem}")]
    Signature {
        /// The artifact (`trivy-db:2`).
        what: String,
        /// Where it was read (a source label or the mirror URL).
        place: String,
        /// What is wrong with the signature.
        problem: SignatureProblem,
        /// Sign on the connected side, or check where the content came from.
        help: Box<Help>,
    },

    /// A transient failure (timeout, reset, 429, 5xx) that persisted through every attempt
    /// the retry policy allows. Final: no outer retry loop tries it again.
    #[error("{last} (gave up after {attempts} attempts)")]
    GaveUp {
        /// Attempts made.
        attempts: u32,
        /// The last failure.
        last: Box<Error>,
    },

    /// A local file or socket operation failed.
    #[error("{context}: {}", io_words(.source))]
    Io {
        /// What we were doing, and on which path.
        context: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

/// The cause of a transport failure in words. A failed connection to a proxy names the
/// proxy: "connection refused" would blame a registry that was never contacted.
fn transport_words(cause: Cause, proxy: Option<&str>, message: &str) -> String {
    match (cause, proxy) {
        (Cause::Refused, Some(p)) => format!("proxy {p} refused the connection"),
        (Cause::Dns, Some(p)) => format!("the name of proxy {p} does not resolve"),
        (Cause::Dns | Cause::Refused | Cause::Certificate | Cause::Timeout, None) => cause.to_string(),
        (_, _) => message.to_string(),
    }
}

/// An I/O error in words, without the `(os error N)` suffix the OS adds.
pub(crate) fn io_words(err: &std::io::Error) -> String {
    let text = err.to_string();
    let text = match text.find(" (os error") {
        Some(i) => &text[..i],
        None => &text,
    };
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => text.to_string(),
    }
}

fn codes_suffix(codes: &str) -> String {
    if codes.is_empty() { String::new() } else { format!(": {codes}") }
}

/// The settings a [`Error::Config`] can be about. The binary maps each to its flag or
/// environment variable; the library names the object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Setting {
    /// An upstream registry namespace.
    Source,
    /// A place to publish to.
    Destination,
    /// The published namespace.
    Namespace,
    /// A tag name.
    Tag,
    /// An artifact kind (`db`, `java-db`, …).
    ArtifactKind,
    /// A registry host name.
    RegistryHost,
    /// The URL of a served mirror (`verify`).
    MirrorUrl,
    /// The upstream VEX repository manifest URL.
    VexSource,
    /// The mirror's public base URL (VEX locations point there).
    BaseUrl,
    /// The path of the VEX files under the mirror root.
    VexPrefix,
    /// A PEM CA bundle.
    CaBundle,
    /// The HTTP client settings.
    HttpClient,
    /// Docker's `config.json`.
    DockerConfig,
    /// A docker credential helper.
    CredentialHelper,
    /// A cloud identity endpoint or its environment variables.
    CloudIdentity,
    /// `serve`'s TLS certificate chain (PEM).
    TlsCertificate,
    /// `serve`'s TLS private key (PEM).
    TlsKey,
    /// `serve`'s htpasswd file.
    Htpasswd,
    /// The private key a sync signs with.
    SignKey,
    /// A public key signatures are required to verify under (`sync`).
    RequiredKey,
    /// A public key `verify` checks signatures with.
    VerifyKey,
    /// The environment variable of a setting, read without flags (the Lambda handler).
    Variable(&'static str),
}

/// What is wrong with a signature.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SignatureProblem {
    /// There is no `sha256-<hex>.sig` tag for the manifest.
    Missing,
    /// It does not verify under any of the keys given.
    WrongKey,
    /// It verifies, but for another manifest digest.
    OtherDigest {
        /// The digest the payload names.
        signed: String,
    },
    /// It is not a cosign signature (why).
    Malformed(String),
}

impl fmt::Display for SignatureProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SignatureProblem::Missing => f.write_str("no signature"),
            SignatureProblem::WrongKey => f.write_str("signature not valid for any of the keys given"),
            SignatureProblem::OtherDigest { signed } => write!(f, "the signature is for another manifest ({signed})"),
            SignatureProblem::Malformed(why) => write!(f, "malformed signature: {why}"),
        }
    }
}

impl fmt::Display for Setting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Setting::Source => "source",
            Setting::Destination => "destination",
            Setting::Namespace => "namespace",
            Setting::Tag => "tag",
            Setting::ArtifactKind => "artifact kind",
            Setting::RegistryHost => "registry host",
            Setting::MirrorUrl => "mirror URL",
            Setting::VexSource => "VEX source URL",
            Setting::BaseUrl => "mirror base URL",
            Setting::VexPrefix => "VEX prefix",
            Setting::CaBundle => "CA bundle",
            Setting::HttpClient => "HTTP client",
            Setting::DockerConfig => "docker config",
            Setting::CredentialHelper => "credential helper",
            Setting::CloudIdentity => "cloud identity",
            Setting::TlsCertificate => "TLS certificate file",
            Setting::TlsKey => "TLS key file",
            Setting::Htpasswd => "htpasswd file",
            Setting::SignKey => "signing key",
            Setting::RequiredKey | Setting::VerifyKey => "public key",
            Setting::Variable(name) => name,
        })
    }
}

/// Why a request got no answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cause {
    /// The host name did not resolve.
    Dns,
    /// Nothing listens on the port.
    Refused,
    /// The server's certificate was not trusted.
    Certificate,
    /// Connecting or reading took too long.
    Timeout,
    /// The connection broke mid-request or mid-body.
    Reset,
    /// Anything else.
    Other,
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Cause::Dns => "DNS lookup failed",
            Cause::Refused => "connection refused",
            Cause::Certificate => "certificate not trusted",
            Cause::Timeout => "timed out",
            Cause::Reset => "connection reset",
            Cause::Other => "request failed",
        })
    }
}

/// What the user can do about an error. Its `Display` is flag-free; the binary renders
/// the same advice with its flag names.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Help {
    /// A private CA signed the server's certificate: trust the CA, or skip verification.
    TrustCertificate,
    /// The server speaks TLS but was reached over plain http.
    ServerSpeaksTls,
    /// The server refused the credentials.
    CheckCredentials,
    /// Harbor before 2.0 fails to store zero-length blobs (aquasecurity/trivy#4112).
    ZeroLengthBlob,
    /// The registry refused Trivy's artifact media types (Quay, old Harbor).
    AllowMediaTypes {
        /// The config media type to allow.
        config: String,
        /// The layer media type to allow.
        layer: String,
    },
    /// The registry does not take chunked uploads.
    NoChunkedUploads,
    /// An Azure Container Registry refused the Entra ID token.
    GrantAcrPush,
    /// No source host could be reached at all: no network, or no DNS.
    Offline,
    /// A downgrade was refused; allowing it rolls the mirror back on purpose.
    AllowDowngrade,
    /// The proxy the environment names could not be reached.
    CheckProxy {
        /// The proxy, `host:port`.
        proxy: String,
    },
    /// Nothing answered at the mirror's address.
    NothingListens,
    /// A mirror directory has to be written by `sync` before it can be served.
    SyncFirst {
        /// The directory.
        dir: String,
    },
    /// HTTPS needs CA certificates, and the machine has none.
    InstallCaCertificates,
    /// A signature was missing or invalid where one is required.
    CheckSignature,
    /// The run's deadline passed with work left.
    AllowMoreTime,
}

impl fmt::Display for Help {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Help::TrustCertificate => f.write_str("a private CA? trust its certificate, or skip TLS verification"),
            Help::ServerSpeaksTls => f.write_str("the server speaks TLS; trust its CA, or skip TLS verification"),
            Help::CheckCredentials => f.write_str("check the registry credentials"),
            Help::ZeroLengthBlob => f.write_str(
                "the registry failed to store a zero-length blob, as Harbor before 2.0 does \
                 (aquasecurity/trivy#4112): upgrade the registry, or mirror into another one",
            ),
            Help::AllowMediaTypes { config, layer } => write!(
                f,
                "the registry refused the manifest: allow the artifact media types {config} and {layer} — Quay \
                 needs FEATURE_GENERAL_OCI_SUPPORT and ALLOWED_OCI_ARTIFACT_TYPES, Harbor ≥ 2.0 accepts them"
            ),
            Help::AllowDowngrade => f.write_str(
                "the destination keeps serving the newer build; a source serving the older one is stale or \
                 replaying an old tag. To roll back on purpose, allow the downgrade",
            ),
            Help::Offline => f.write_str(
                "no source host could be reached: this machine looks offline, or cannot resolve names (check DNS \
                 and HTTPS_PROXY); to mirror from a registry inside your network, name it as the source",
            ),
            Help::GrantAcrPush => {
                f.write_str("the registry refused the Entra ID token; grant the identity AcrPush on the registry")
            }
            Help::NoChunkedUploads => f.write_str(
                "the registry does not support chunked uploads: send blobs in one request, or lift the \
                 proxy's body limit",
            ),
            Help::CheckProxy { proxy } => write!(
                f,
                "the proxy {proxy} named in HTTPS_PROXY/HTTP_PROXY could not be reached: start it, correct the \
                 variable, or list the host in NO_PROXY"
            ),
            Help::NothingListens => f.write_str(
                "nothing answers at that address: check the host and port, and that the mirror is being served",
            ),
            Help::SyncFirst { dir } => write!(f, "nothing has been mirrored into {dir} yet: sync into it first"),
            Help::CheckSignature => f.write_str(
                "the content was not signed by a key you trust: sign it where it is mirrored from upstream, \
                 and check that this copy comes from that mirror; nothing of it was published",
            ),
            Help::InstallCaCertificates => f.write_str(
                "this machine has no CA certificates: install the ca-certificates package, or point SSL_CERT_FILE \
                 at a PEM bundle",
            ),
            Help::AllowMoreTime => f.write_str(
                "the run's deadline passed with work left; the next run continues where this one stopped. Allow \
                 more time, or split the run by artifact kind",
            ),
        }
    }
}

impl Error {
    /// Whether repeating the same operation may succeed: rate limits, server errors,
    /// timeouts and connection resets. Used for retries and for trying the next source.
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Http { status, .. } => {
                matches!(status, 408 | 429 | 499 | 500 | 502 | 503 | 504 | 522)
            }
            Error::Transport { transient, .. } => *transient,
            Error::Store { source, .. } => matches!(**source, object_store::Error::Generic { .. }),
            _ => false,
        }
    }

    /// Whether the failure says the host cannot be reached at all: its name does not
    /// resolve, or a remote host refuses connections.
    pub fn is_unreachable(&self) -> bool {
        matches!(self, Error::Transport { cause: Cause::Dns, .. })
            || matches!(self, Error::Transport { cause: Cause::Refused, transient: false, .. })
    }

    /// Whether the host that answered this way will answer the same for every other
    /// request of the run: unreachable, an untrusted certificate, or refused credentials.
    /// The engine then stops asking that source.
    pub fn condemns_host(&self) -> bool {
        self.is_unreachable()
            || matches!(self, Error::Transport { cause: Cause::Certificate, .. })
            || matches!(self, Error::Http { status: 401 | 403, .. })
    }

    /// The cause in a few words, for the one-line summary of a source that failed.
    pub fn brief(&self) -> String {
        match self {
            Error::Transport { cause, proxy: Some(p), .. } => transport_words(*cause, Some(p), ""),
            Error::Transport { cause, .. } => cause.to_string(),
            Error::Http { status, codes, .. } if codes.is_empty() => format!("HTTP {status}"),
            Error::Http { status, codes, .. } => {
                let first = codes.split(';').next().unwrap_or_default();
                format!("HTTP {status} {}", first.split_whitespace().next().unwrap_or_default())
            }
            Error::NotFound { what, .. } => format!("no {what}"),
            Error::Rejected { reason, .. } | Error::Mismatch { reason, .. } => format!("refused: {reason}"),
            Error::TooLarge { limit, .. } => format!("refused: larger than {limit} bytes"),
            Error::Downgrade { published, offered, .. } => {
                format!("offers the older build {offered}, {published} is published")
            }
            Error::Signature { problem, .. } => problem.to_string(),
            Error::GaveUp { attempts, last } => format!("{} after {attempts} attempts", last.brief()),
            other => other.to_string(),
        }
    }

    /// The delay the server asked for, if any.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Error::Http { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// What the user can do about it, if the library knows.
    pub fn help(&self) -> Option<&Help> {
        match self {
            Error::Http { help, .. } | Error::Transport { help, .. } | Error::Rejected { help, .. } => help.as_deref(),
            Error::NoMirror { help, .. } | Error::Signature { help, .. } => Some(help),
            Error::NoSource { help, .. } => help.as_ref(),
            Error::GaveUp { last, .. } => last.help(),
            Error::Downgrade { .. } => {
                static ALLOW: Help = Help::AllowDowngrade;
                Some(&ALLOW)
            }
            Error::Deadline { .. } => {
                static MORE_TIME: Help = Help::AllowMoreTime;
                Some(&MORE_TIME)
            }
            _ => None,
        }
    }

    /// The same error with `help` attached (where the variant carries help).
    pub fn with_help(mut self, new: Help) -> Self {
        if let Error::Http { help, .. } | Error::Transport { help, .. } | Error::Rejected { help, .. } = &mut self {
            *help = Some(Box::new(new));
        }
        self
    }

    /// Shorthand for [`Error::Rejected`] without help.
    pub(crate) fn rejected(what: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::Rejected { what: what.into(), reason: reason.into(), help: None }
    }

    /// A signature problem of `what` at `place`, with the hint to check the signing side.
    pub fn signature(what: impl Into<String>, place: impl Into<String>, problem: SignatureProblem) -> Self {
        Error::Signature { what: what.into(), place: place.into(), problem, help: Box::new(Help::CheckSignature) }
    }

    /// A mirror directory that does not exist, with the hint to sync into it first.
    pub fn no_mirror(dir: &std::path::Path) -> Self {
        let dir = dir.display().to_string();
        Error::NoMirror { help: Box::new(Help::SyncFirst { dir: dir.clone() }), dir }
    }

    /// Shorthand for [`Error::Config`].
    pub(crate) fn config(setting: Setting, value: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::Config { setting, value: value.into(), reason: reason.into() }
    }
}
