//! The crate's error type: one enum whose variants say what kind of thing failed, so the
//! sync engine can decide between "try again", "try the next source" and "give up".
//!
//! Every message names the object it is about (a URL, a destination, an artifact) and,
//! where the user can act, what to do. Messages never carry credentials: URLs in this
//! crate are built without userinfo, and tokens and passwords are never formatted.

use std::time::Duration;

/// Result alias used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong, classified by what a caller can do about it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A setting (flag, environment variable, URL) is unusable. Fix the configuration.
    #[error("invalid {what} {value:?}: {reason}")]
    Config {
        /// Which setting.
        what: &'static str,
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
    },

    /// An HTTP server answered with a status we cannot use.
    #[error("{method} {url}: HTTP {status}{detail}")]
    Http {
        /// The request method.
        method: &'static str,
        /// The URL requested (never with credentials).
        url: String,
        /// The status code received.
        status: u16,
        /// Registry error codes or a hint, prefixed with ": " when present.
        detail: String,
        /// The server's Retry-After, if it sent one.
        retry_after: Option<Duration>,
    },

    /// The request never got an answer: DNS, connect, TLS, timeout, reset mid-body.
    #[error("{method} {url}: {message}")]
    Transport {
        /// The request method.
        method: &'static str,
        /// The URL requested.
        url: String,
        /// The transport error and its causes, flattened.
        message: String,
        /// Whether trying again may help (timeouts, resets, refused connections).
        transient: bool,
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

    /// A source does not have what was asked for (a tag, a blob). The next source may.
    #[error("{place} has no {what}")]
    NotFound {
        /// What was asked for (`trivy-db:2`).
        what: String,
        /// Where it was looked for (a source label).
        place: String,
    },

    /// A local file or socket operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What we were doing, and on which path.
        context: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
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

    /// The delay the server asked for, if any.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Error::Http { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// Shorthand for [`Error::Rejected`].
    pub(crate) fn rejected(what: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::Rejected { what: what.into(), reason: reason.into() }
    }

    /// Shorthand for [`Error::Config`].
    pub(crate) fn config(what: &'static str, value: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::Config { what, value: value.into(), reason: reason.into() }
    }

    /// Build a [`Error::Transport`] from a reqwest error, flattening its cause chain
    /// (reqwest's own Display hides the interesting part, e.g. "connection refused").
    pub(crate) fn transport(method: &'static str, url: &str, err: &reqwest::Error) -> Self {
        let mut message = err.to_string();
        let mut cause = std::error::Error::source(err);
        while let Some(c) = cause {
            let text = c.to_string();
            if !message.contains(&text) {
                message.push_str(": ");
                message.push_str(&text);
            }
            cause = c.source();
        }
        // A builder or redirect-policy error will not go away by itself; anything on the
        // wire (connect, timeout, reset, truncated body) may.
        let mut transient =
            err.is_timeout() || err.is_connect() || err.is_request() || err.is_body() || err.is_decode();
        if crate::registry::is_certificate_error(err) {
            // A certificate the client does not trust stays untrusted on the next attempt.
            transient = false;
            message.push_str(
                " (a private CA? trust it with --dest-ca-file / --source-ca-file, or --insecure-destination / \
                 --insecure-source)",
            );
        }
        Error::Transport { method, url: strip_query(url), message, transient }
    }
}

/// Drop the query string from a URL before it goes into an error: registries and token
/// services may put signed or scoped parameters there.
pub(crate) fn strip_query(url: &str) -> String {
    match url.find('?') {
        Some(i) => url[..i].to_string(),
        None => url.to_string(),
    }
}
