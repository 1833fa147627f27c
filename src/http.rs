//! The HTTP floor every client in the crate stands on: the registry client, the VEX
//! downloader, `verify` and the cloud-identity exchanges.
//!
//! It owns: building a `reqwest::Client` (user agent, timeouts, redirects, extra CA
//! bundle), bounded body reads, turning a refused status or a transport failure into an
//! [`Error`] with its cause classified ([`Cause`]), the rule for which hosts are local
//! (plain http, like Trivy), and the one [`RetryPolicy`] that every retry loop follows,
//! so that `--retries` means the same thing everywhere.

use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use reqwest::Response;
use reqwest::header::{HeaderMap, RETRY_AFTER};

use crate::error::{Cause, Error, Help, Result, Setting};

/// How hard to try before giving up on one operation.
#[derive(Clone, Debug)]
pub struct RetryPolicy {
    /// Attempts in total (1 = no retry).
    pub attempts: u32,
    /// First backoff; doubles each time.
    pub initial_backoff: Duration,
    /// Longest single wait, including a server's Retry-After.
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy { attempts: 4, initial_backoff: Duration::from_millis(500), max_backoff: Duration::from_secs(30) }
    }
}

impl RetryPolicy {
    /// The wait before attempt `attempt + 1`, honouring the server's Retry-After.
    pub fn backoff(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        let exp = self.initial_backoff.saturating_mul(1u32 << attempt.min(16));
        retry_after.unwrap_or(exp).min(self.max_backoff)
    }

    /// The one decision every retry loop of the crate makes after failed attempt number
    /// `attempt` (from 1) of `what`: wait as [`RetryPolicy::backoff`] says and return `Ok`
    /// to try again, or give up and return the error. A permanent error is returned as it
    /// is; a transient one that outlasted a retry comes back as [`Error::GaveUp`], which is
    /// not transient, so no outer loop tries the same thing again: `--retries` bounds each
    /// request and each transfer once, never multiplied by nesting.
    pub async fn again(&self, what: &str, attempt: u32, err: Error) -> Result<()> {
        if !err.is_transient() {
            return Err(err);
        }
        if attempt >= self.attempts.max(1) {
            return Err(if attempt > 1 { Error::GaveUp { attempts: attempt, last: Box::new(err) } } else { err });
        }
        let wait = self.backoff(attempt - 1, err.retry_after());
        tracing::warn!(what, error = %err, attempt, wait_ms = wait.as_millis() as u64, "retrying");
        tokio::time::sleep(wait).await;
        Ok(())
    }

    /// The same policy allowing one attempt only (a body that cannot be sent twice).
    pub fn once(&self) -> RetryPolicy {
        RetryPolicy { attempts: 1, ..self.clone() }
    }

    /// Run `op` until it succeeds, fails for good, or the attempts are spent, as
    /// [`RetryPolicy::again`] decides.
    pub async fn run<T, F, Fut>(&self, what: &str, mut op: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match op().await {
                Ok(v) => return Ok(v),
                Err(e) => self.again(what, attempt, e).await?,
            }
        }
    }
}

/// Whether Trivy (ggcr) would talk plain http to this host: `localhost:<port>`,
/// `127.0.0.1`, `[::1]` and `*.localhost:<port>`.
pub fn is_local_host(host: &str) -> bool {
    let (name, port) = match host.rsplit_once(':') {
        Some((n, p)) if !n.ends_with(':') && p.bytes().all(|b| b.is_ascii_digit()) => (n, Some(p)),
        _ => (host, None),
    };
    name == "127.0.0.1"
        || name == "[::1]"
        || host == "::1"
        || (port.is_some() && (name == "localhost" || name.ends_with(".localhost")))
}

/// Settings of one HTTP client.
#[derive(Clone, Debug, Default)]
pub struct ClientOptions<'a> {
    /// Accept any certificate (`--insecure-*`).
    pub insecure: bool,
    /// An extra PEM CA bundle to trust.
    pub ca_file: Option<&'a Path>,
    /// A body that stalls this long fails; 60 s when unset.
    pub read_timeout: Option<Duration>,
    /// A whole request may take no longer than this (identity calls); unbounded when unset.
    pub total_timeout: Option<Duration>,
    /// Follow no redirect (a secret in a form body is never resent elsewhere).
    pub no_redirects: bool,
}

/// Build a client: our user agent, a 15 s connect timeout, at most 10 redirects.
pub fn client(options: &ClientOptions<'_>) -> Result<reqwest::Client> {
    let builder = || -> Result<reqwest::ClientBuilder> {
        let mut b = reqwest::Client::builder()
            .user_agent(concat!("trivy-mirror/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(15))
            .read_timeout(options.read_timeout.unwrap_or(Duration::from_secs(60)))
            .tls_danger_accept_invalid_certs(options.insecure);
        b = b.redirect(if options.no_redirects {
            reqwest::redirect::Policy::none()
        } else {
            reqwest::redirect::Policy::limited(10)
        });
        if let Some(t) = options.total_timeout {
            b = b.timeout(t);
        }
        if let Some(path) = options.ca_file {
            let pem = std::fs::read(path)
                .map_err(|e| Error::Io { context: format!("reading CA bundle {}", path.display()), source: e })?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|e| Error::config(Setting::CaBundle, path.display().to_string(), e.to_string()))?;
            b = b.tls_certs_merge(certs);
        }
        Ok(b)
    };
    let refused = |e: reqwest::Error| Error::config(Setting::HttpClient, "", e.to_string());
    match builder()?.build() {
        Ok(client) => Ok(client),
        // The platform verifier refuses to be built without roots ("builder error"), which
        // would fail plain-http runs too (a minimal container image has no ca-certificates).
        // An empty trust store instead: http works, and https fails per request with a
        // certificate error that `transport_error` explains.
        Err(_) if options.ca_file.is_none() && !options.insecure && no_system_roots() => {
            builder()?.tls_certs_only(Vec::new()).build().map_err(refused)
        }
        Err(e) => Err(refused(e)),
    }
}

/// Whether this machine has no CA certificates at all (no ca-certificates package, and no
/// `SSL_CERT_FILE`/`SSL_CERT_DIR` naming any): looked up once, as the platform verifier
/// looks them up, and only after a failure (the normal path loads the roots once, in
/// reqwest).
pub(crate) fn no_system_roots() -> bool {
    static NONE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *NONE.get_or_init(|| rustls_native_certs::load_native_certs().certs.is_empty())
}

/// Drop the query string from a URL before it goes into an error: registries and token
/// services may put signed or scoped parameters there.
pub fn strip_query(url: &str) -> String {
    match url.find('?') {
        Some(i) => url[..i].to_string(),
        None => url.to_string(),
    }
}

/// The name of a method, for messages.
pub(crate) fn method_name(m: &reqwest::Method) -> &'static str {
    match *m {
        reqwest::Method::GET => "GET",
        reqwest::Method::HEAD => "HEAD",
        reqwest::Method::PUT => "PUT",
        reqwest::Method::POST => "POST",
        reqwest::Method::PATCH => "PATCH",
        reqwest::Method::DELETE => "DELETE",
        _ => "request",
    }
}

/// `Retry-After` in its seconds form (registries do not send HTTP dates).
pub(crate) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    headers.get(RETRY_AFTER)?.to_str().ok()?.trim().parse::<u64>().ok().map(Duration::from_secs)
}

/// Turn a non-success response into [`Error::Http`], with the registry's error codes.
pub async fn status_error(method: &'static str, url: &str, resp: Response) -> Error {
    let status = resp.status().as_u16();
    let retry_after = retry_after(resp.headers());
    let body = read_bounded(resp, 16 * 1024, method, url).await.unwrap_or_default();
    #[derive(serde::Deserialize)]
    struct Errors {
        errors: Vec<ErrorEntry>,
    }
    #[derive(serde::Deserialize)]
    struct ErrorEntry {
        code: String,
        #[serde(default)]
        message: String,
    }
    let codes = match serde_json::from_slice::<Errors>(&body) {
        Ok(e) if !e.errors.is_empty() => {
            let parts: Vec<_> =
                e.errors.iter().map(|e| format!("{} {}", e.code, e.message).trim().to_string()).collect();
            parts.join("; ")
        }
        _ => String::new(),
    };
    let help = match status {
        401 | 403 => Some(Help::CheckCredentials),
        // Go's and nginx's TLS listeners answer a plain-http request with a 400 saying so.
        400 if codes.is_empty() && String::from_utf8_lossy(&body).contains("HTTPS") => Some(Help::ServerSpeaksTls),
        _ => None,
    };
    Error::Http { method, url: strip_query(url), status, codes, retry_after, help: help.map(Box::new) }
}

/// Build an [`Error::Transport`] from a reqwest error: the cause classified, the chain of
/// causes flattened into the message (reqwest's own Display hides the interesting part,
/// e.g. "connection refused").
pub fn transport_error(method: &'static str, url: &str, err: &reqwest::Error) -> Error {
    let mut message = err.to_string();
    let mut chain: Option<&dyn std::error::Error> = std::error::Error::source(err);
    while let Some(c) = chain {
        let text = c.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        chain = c.source();
    }
    let cause = classify(err, &message);
    // A builder or redirect-policy error will not go away by itself; anything on the
    // wire (timeout, reset, truncated body) may. Three failures stay as they are for the
    // length of a run, so retrying them only delays the error: a name that does not
    // resolve, a certificate the client does not trust, and a refused connection to a
    // remote host (a local one may be a service still starting).
    let permanent = match cause {
        Cause::Dns | Cause::Certificate => true,
        Cause::Refused => !url_is_local(url),
        _ => false,
    };
    let transient =
        !permanent && (err.is_timeout() || err.is_connect() || err.is_request() || err.is_body() || err.is_decode());
    // A connection that was never made went to the proxy, if one applies to this URL.
    let proxy = matches!(cause, Cause::Refused | Cause::Dns).then(|| proxy_for(url)).flatten();
    let help = match (&proxy, cause) {
        (Some(proxy), _) => Some(Help::CheckProxy { proxy: proxy.clone() }),
        (None, Cause::Certificate) if no_system_roots() => Some(Help::InstallCaCertificates),
        (None, Cause::Certificate) => Some(Help::TrustCertificate),
        _ => None,
    };
    let url = strip_query(url);
    // The whole chain is for -v; the error itself says the cause in words.
    tracing::debug!(method, url, chain = %message, "request failed");
    Error::Transport { method, url, cause, message, transient, proxy, help: help.map(Box::new) }
}

/// The proxy (`host:port`) a request for `url` goes through, decided from the
/// environment (`HTTPS_PROXY`, `HTTP_PROXY`, `ALL_PROXY`, `NO_PROXY`) by the same matcher
/// reqwest's clients use, so the answer is the one the failed request followed.
fn proxy_for(url: &str) -> Option<String> {
    let uri: ::http::Uri = url.parse().ok()?;
    let intercept = hyper_util::client::proxy::matcher::Matcher::from_system().intercept(&uri)?;
    let proxy = intercept.uri();
    let host = proxy.host()?;
    Some(match proxy.port_u16() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_string(),
    })
}

/// Whether the host of `url` is this machine.
fn url_is_local(url: &str) -> bool {
    url::Url::parse(url).ok().is_some_and(|u| {
        let host = u.host_str().unwrap_or_default();
        is_local_host(&format!("{host}:{}", u.port_or_known_default().unwrap_or(0)))
    })
}

fn classify(err: &reqwest::Error, chain: &str) -> Cause {
    let text = chain.to_ascii_lowercase();
    if text.contains("certificate") {
        Cause::Certificate
    } else if err.is_timeout() {
        Cause::Timeout
    } else if text.contains("dns error") || text.contains("failed to lookup address") {
        Cause::Dns
    } else if text.contains("connection refused") {
        Cause::Refused
    } else if text.contains("reset") || text.contains("broken pipe") || err.is_body() {
        Cause::Reset
    } else {
        Cause::Other
    }
}

/// Whether a request failed because the server's certificate was refused.
pub(crate) fn is_certificate_error(err: &reqwest::Error) -> bool {
    let mut cause: Option<&dyn std::error::Error> = Some(err);
    while let Some(c) = cause {
        if c.to_string().contains("certificate") {
            return true;
        }
        cause = c.source();
    }
    false
}

/// Read a whole response body, refusing more than `limit` bytes.
pub async fn read_bounded(mut resp: Response, limit: usize, method: &'static str, url: &str) -> Result<Bytes> {
    let too_large = || Error::TooLarge { what: format!("response from {}", strip_query(url)), limit: limit as u64 };
    if resp.content_length().is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    let mut buf = bytes::BytesMut::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| transport_error(method, url, &e))? {
        if buf.len() + chunk.len() > limit {
            return Err(too_large());
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_hosts_use_http_like_trivy() {
        for h in ["localhost:5000", "127.0.0.1", "127.0.0.1:5000", "[::1]:5000", "reg.localhost:80"] {
            assert!(is_local_host(h), "{h}");
        }
        for h in ["localhost", "ghcr.io", "mirror.gcr.io", "10.0.0.1:5000", "127.0.0.1.nip.io"] {
            assert!(!is_local_host(h), "{h}");
        }
    }

    #[test]
    fn backoff_doubles_and_honours_retry_after_with_a_cap() {
        let p = RetryPolicy::default();
        assert_eq!(p.backoff(0, None), Duration::from_millis(500));
        assert_eq!(p.backoff(2, None), Duration::from_secs(2));
        assert_eq!(p.backoff(0, Some(Duration::from_secs(7))), Duration::from_secs(7));
        assert_eq!(p.backoff(0, Some(Duration::from_secs(3600))), p.max_backoff);
        assert_eq!(p.backoff(40, None), p.max_backoff);
    }

    #[tokio::test]
    async fn the_retry_loop_stops_at_the_attempt_count_and_on_permanent_errors() {
        let policy = RetryPolicy { attempts: 3, initial_backoff: Duration::ZERO, max_backoff: Duration::ZERO };
        let calls = std::sync::atomic::AtomicU32::new(0);
        let transient = || Error::Transport {
            method: "GET",
            url: "http://x".into(),
            cause: Cause::Reset,
            message: "reset".into(),
            transient: true,
            proxy: None,
            help: None,
        };
        let r: Result<()> = policy
            .run("x", || async {
                calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                Err(transient())
            })
            .await;
        let err = r.unwrap_err();
        assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 3);
        // Spent, it is final: an outer loop under the same policy does not multiply it.
        assert!(matches!(err, Error::GaveUp { attempts: 3, .. }) && !err.is_transient(), "{err:?}");
        assert!(err.to_string().ends_with("(gave up after 3 attempts)"), "{err}");
        calls.store(0, std::sync::atomic::Ordering::SeqCst);
        let nested: Result<()> = policy
            .run("outer", || async {
                policy
                    .run("inner", || async {
                        calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        Err(transient())
                    })
                    .await
            })
            .await;
        assert!(nested.is_err());
        assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 3, "3 attempts, not 3 × 3");
        // With one attempt allowed there was no retry to give up on: the error is as it was.
        let once = policy.once().run("x", || async { Err::<(), _>(transient()) }).await.unwrap_err();
        assert!(once.is_transient(), "{once:?}");

        calls.store(0, std::sync::atomic::Ordering::SeqCst);
        let r: Result<()> = policy
            .run("x", || async {
                calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                Err(Error::rejected("x", "bad"))
            })
            .await;
        assert!(r.is_err());
        assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 1, "a permanent error is not retried");
    }
}
