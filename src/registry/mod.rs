//! A small OCI distribution client: the calls a mirror needs and nothing else.
//!
//! Pull side: ping, manifest GET with the exact bytes, blob GET as a stream. Push side
//! (see [`push`]): blob HEAD, cross-repository mount, streaming upload (one PUT, chunks
//! after a 413), manifest PUT. Credentials: [`auth`] (flags, docker config, helpers) and
//! [`cloud`] (ECR, GAR, ACR token exchanges). Every request goes through
//! [`Registry::send`], which answers auth challenges (Basic, or a Bearer token from the
//! realm: ghcr.io's anonymous flow) and retries what is worth retrying: connect errors,
//! timeouts, resets, 408/429/5xx, waiting as long as `Retry-After` asks (capped).
//!
//! Scheme: like Trivy (ggcr `name.Registry.Scheme`), `localhost:<port>`, `127.0.0.1`,
//! `[::1]` and `*.localhost` use plain http; everything else https. A local host with a CA
//! bundle, and any host with `insecure` (TLS unverified), is tried over TLS first and
//! reached over http when it does not speak TLS; a refused certificate stays an error.

pub mod auth;
pub mod cloud;
pub mod push;

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderMap, RETRY_AFTER, WWW_AUTHENTICATE};
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use tokio::sync::{Mutex, OnceCell};

use auth::Challenge;
pub use auth::{Credentials, Secret};
pub use cloud::Cloud;

use crate::error::{Error, Result};
use crate::manifest::{DOCKER_MANIFEST, MAX_MANIFEST_BYTES, OCI_MANIFEST};
use crate::reference::Digest;

/// The Accept header for manifest GETs: the same six types Trivy (ggcr) sends, OCI first.
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.manifest.v1+json,\
application/vnd.docker.distribution.manifest.v2+json,\
application/vnd.oci.image.index.v1+json,\
application/vnd.docker.distribution.manifest.list.v2+json";

/// How hard to try before giving up on one request.
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
}

/// Connection settings for one registry host.
#[derive(Clone, Debug, Default)]
pub struct RegistryOptions {
    /// Credentials to answer challenges with.
    pub credentials: Credentials,
    /// Allow plain http and unverified TLS for a non-local host.
    pub insecure: bool,
    /// Extra PEM CA bundle to trust.
    pub ca_file: Option<PathBuf>,
    /// Retry behaviour.
    pub retry: RetryPolicy,
    /// Read timeout: a body that stalls this long fails (and is retried).
    pub read_timeout: Option<Duration>,
    /// Push blobs in `PATCH` chunks of this many bytes from the start (else one PUT, with
    /// chunks only after a 413).
    pub chunk_size: Option<u64>,
}

#[derive(Default)]
struct AuthState {
    challenge: Option<Challenge>,
    tokens: HashMap<String, Secret>,
}

/// A client for one registry host.
pub struct Registry {
    host: String,
    http: reqwest::Client,
    options: RegistryOptions,
    base: OnceCell<String>,
    auth: Mutex<AuthState>,
    /// The credentials in force, once resolved (cloud identities are exchanged on first use,
    /// and again when the registry stops accepting them).
    credentials: Mutex<Option<Credentials>>,
    /// Upload chunk size in bytes; 0 = one streaming PUT per blob (see [`push`]).
    upload_chunk: std::sync::atomic::AtomicU64,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry").field("host", &self.host).finish_non_exhaustive()
    }
}

/// Whether Trivy (ggcr) would talk plain http to this host.
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

/// Build the reqwest client shared by the registry code and the VEX downloader.
pub(crate) fn http_client(
    insecure: bool,
    ca_file: Option<&PathBuf>,
    read_timeout: Option<Duration>,
) -> Result<reqwest::Client> {
    let mut b = reqwest::Client::builder()
        .user_agent(concat!("trivy-mirror/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(Duration::from_secs(15))
        .read_timeout(read_timeout.unwrap_or(Duration::from_secs(60)))
        .redirect(reqwest::redirect::Policy::limited(10))
        .tls_danger_accept_invalid_certs(insecure);
    if let Some(path) = ca_file {
        let pem = std::fs::read(path)
            .map_err(|e| Error::Io { context: format!("reading CA bundle {}", path.display()), source: e })?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem)
            .map_err(|e| Error::config("CA bundle", path.display().to_string(), e.to_string()))?;
        b = b.tls_certs_merge(certs);
    }
    b.build().map_err(|e| Error::config("HTTP client", "", e.to_string()))
}

impl Registry {
    /// A client for `host` (`ghcr.io`, `127.0.0.1:5000`).
    pub fn new(host: &str, options: RegistryOptions) -> Result<Self> {
        if host.is_empty() || host.contains('/') || host.contains('@') || host.contains(char::is_whitespace) {
            return Err(Error::config("registry host", host, "expected a host name with an optional :port"));
        }
        let http = http_client(options.insecure, options.ca_file.as_ref(), options.read_timeout)?;
        let upload_chunk = options.chunk_size.map_or(0, |c| c.max(push::MIN_CHUNK));
        Ok(Registry {
            host: host.to_string(),
            http,
            options,
            base: OnceCell::new(),
            auth: Mutex::default(),
            credentials: Mutex::default(),
            upload_chunk: upload_chunk.into(),
        })
    }

    /// The host this client talks to.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// `scheme://host`, decided once by pinging `/v2/`.
    async fn base(&self) -> Result<&str> {
        self.base
            .get_or_try_init(|| async {
                let local = is_local_host(&self.host);
                let (https, http) = (format!("https://{}", self.host), format!("http://{}", self.host));
                if local && self.options.ca_file.is_none() && !self.options.insecure {
                    return Ok(http);
                }
                if !local && !self.options.insecure {
                    return Ok(https);
                }
                // A local host with a CA bundle, or --insecure: prefer TLS, fall back to http
                // when the server does not speak TLS (as ggcr's ping tries https, then http).
                // A certificate the client refuses is an answer, not a reason to drop TLS.
                match self.http.get(format!("{https}/v2/")).send().await {
                    Ok(_) => Ok(https),
                    Err(e) if e.is_connect() && !is_certificate_error(&e) => Ok(http),
                    Err(e) => Err(Error::transport("GET", &format!("{https}/v2/"), &e)),
                }
            })
            .await
            .map(String::as_str)
    }

    /// `scheme://host/v2/<path>`.
    pub async fn url(&self, path: &str) -> Result<String> {
        Ok(format!("{}/v2/{path}", self.base().await?))
    }

    /// The credentials in force: the configured ones, with a cloud's exchanged on first use.
    async fn credentials(&self) -> Result<Credentials> {
        let mut cached = self.credentials.lock().await;
        if let Some(c) = &*cached {
            return Ok(c.clone());
        }
        let resolved = match &self.options.credentials {
            Credentials::Cloud(Cloud::Ecr) => cloud::ecr_credentials().await?,
            Credentials::Cloud(Cloud::Gar) => cloud::gar_credentials().await?,
            Credentials::Cloud(Cloud::Acr) => cloud::acr_credentials(self.base().await?, &self.host).await?,
            other => other.clone(),
        };
        *cached = Some(resolved.clone());
        Ok(resolved)
    }

    /// Drop exchanged cloud credentials so that the next request exchanges them again
    /// (metadata-server tokens may have minutes left when handed out). `false` when the
    /// credentials are not exchanged ones.
    async fn forget_cloud_credentials(&self) -> bool {
        if !matches!(self.options.credentials, Credentials::Cloud(_)) {
            return false;
        }
        self.credentials.lock().await.take().is_some()
    }

    /// The Authorization header to send for `scope`, given what the registry asked for.
    async fn authorization(&self, scope: &str) -> Result<Option<String>> {
        let credentials = self.credentials().await?;
        if let Credentials::Bearer(t) = &credentials {
            return Ok(Some(format!("Bearer {}", t.expose())));
        }
        let mut state = self.auth.lock().await;
        match state.challenge.clone() {
            None | Some(Challenge::Basic) => Ok(credentials.basic_header()),
            Some(Challenge::Bearer { realm, service }) => {
                if let Some(t) = state.tokens.get(scope) {
                    return Ok(Some(format!("Bearer {}", t.expose())));
                }
                let token = match self.fetch_token(&realm, service.as_deref(), scope).await {
                    // The token service refused exchanged credentials: they may have
                    // expired since the exchange, so exchange once more.
                    Err(Error::Http { status: 401, .. }) if self.forget_cloud_credentials().await => {
                        self.fetch_token(&realm, service.as_deref(), scope).await?
                    }
                    other => other?,
                };
                let header = format!("Bearer {}", token.expose());
                state.tokens.insert(scope.to_string(), token);
                Ok(Some(header))
            }
        }
    }

    /// GET the token realm for `scope` (space-separated scopes become repeated params).
    async fn fetch_token(&self, realm: &str, service: Option<&str>, scope: &str) -> Result<Secret> {
        let mut url = url::Url::parse(realm)
            .map_err(|e| Error::rejected(format!("token realm {realm:?} from {}", self.host), e.to_string()))?;
        if url.scheme() != "https" && !(url.scheme() == "http" && (self.options.insecure || is_local_host(&self.host)))
        {
            return Err(Error::rejected(
                format!("token realm {realm:?} from {}", self.host),
                "a plain-http token service is only used for local or --insecure registries",
            ));
        }
        {
            let mut q = url.query_pairs_mut();
            if let Some(s) = service {
                q.append_pair("service", s);
            }
            for s in scope.split(' ') {
                q.append_pair("scope", s);
            }
        }
        let mut req = self.http.get(url.clone());
        if let Some(basic) = self.credentials().await?.basic_header() {
            req = req.header(AUTHORIZATION, basic);
        }
        let resp = req.send().await.map_err(|e| Error::transport("GET", url.as_str(), &e))?;
        let status = resp.status();
        if !status.is_success() {
            let detail = if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
                ": the token service refused these credentials; check the username and password".to_string()
            } else {
                String::new()
            };
            return Err(Error::Http {
                method: "GET",
                url: crate::error::strip_query(url.as_str()),
                status: status.as_u16(),
                detail,
                retry_after: retry_after(resp.headers()),
            });
        }
        let body = read_bounded(resp, 64 * 1024, "GET", url.as_str()).await?;
        auth::parse_token(&body).ok_or_else(|| {
            Error::rejected(format!("token answer from {}", crate::error::strip_query(url.as_str())), "no token in it")
        })
    }

    /// Send a request built by `build` (called again for each attempt), answering auth
    /// challenges and retrying transient failures. Returns only 2xx responses (and 404
    /// when `allow_404`); any other status becomes [`Error::Http`].
    pub(crate) async fn send(
        &self,
        method: Method,
        url: &str,
        scope: &str,
        allow_404: bool,
        build: impl Fn(RequestBuilder) -> RequestBuilder,
    ) -> Result<Response> {
        self.send_with(method, url, scope, allow_404, self.options.retry.attempts, true, build).await
    }

    /// Like [`Registry::send`] but a single attempt, for bodies that must not be repeated
    /// once the server may have taken them. A streamed blob can be sent once only
    /// (`resend_on_401` false: authentication must already be settled for `scope`); an
    /// upload chunk in memory is resent after answering a 401 (`resend_on_401` true).
    pub(crate) async fn send_once(
        &self,
        method: Method,
        url: &str,
        scope: &str,
        resend_on_401: bool,
        build: impl Fn(RequestBuilder) -> RequestBuilder,
    ) -> Result<Response> {
        self.send_with(method, url, scope, false, 1, resend_on_401, build).await
    }

    #[allow(clippy::too_many_arguments)]
    async fn send_with(
        &self,
        method: Method,
        url: &str,
        scope: &str,
        allow_404: bool,
        attempts: u32,
        reauthenticate: bool,
        build: impl Fn(RequestBuilder) -> RequestBuilder,
    ) -> Result<Response> {
        let method_name = method_name(&method);
        let policy = &self.options.retry;
        let mut reauthenticated = false;
        let mut attempt = 0;
        loop {
            let mut req = build(self.http.request(method.clone(), url));
            if let Some(value) = self.authorization(scope).await? {
                req = req.header(AUTHORIZATION, value);
            }
            let err = match req.send().await {
                Ok(resp) if resp.status().is_success() => return Ok(resp),
                Ok(resp) if resp.status() == StatusCode::NOT_FOUND && allow_404 => return Ok(resp),
                Ok(resp) if resp.status() == StatusCode::UNAUTHORIZED && !reauthenticated && reauthenticate => {
                    reauthenticated = true;
                    let header = resp.headers().get(WWW_AUTHENTICATE).and_then(|v| v.to_str().ok()).unwrap_or("");
                    let mut state = self.auth.lock().await;
                    let refused_basic = state.challenge == Some(Challenge::Basic);
                    state.challenge = Some(Challenge::parse(header));
                    state.tokens.remove(scope);
                    drop(state);
                    if refused_basic {
                        // Exchanged cloud credentials sent as Basic stopped working: they
                        // expired since the exchange, so exchange them again.
                        self.forget_cloud_credentials().await;
                    }
                    continue;
                }
                Ok(resp) => http_error(method_name, url, resp).await,
                Err(e) => Error::transport(method_name, url, &e),
            };
            attempt += 1;
            if !err.is_transient() || attempt >= attempts {
                return Err(err);
            }
            let wait = policy.backoff(attempt - 1, err.retry_after());
            tracing::warn!(%err, attempt, wait_ms = wait.as_millis() as u64, "retrying");
            tokio::time::sleep(wait).await;
        }
    }

    /// Ping `/v2/` so the scheme and the auth challenge are known before the real work.
    pub async fn ping(&self) -> Result<()> {
        let url = self.url("").await?;
        let resp = self.http.get(&url).send().await.map_err(|e| Error::transport("GET", &url, &e))?;
        match resp.status() {
            s if s.is_success() => Ok(()),
            StatusCode::UNAUTHORIZED => {
                let header = resp.headers().get(WWW_AUTHENTICATE).and_then(|v| v.to_str().ok()).unwrap_or("");
                self.auth.lock().await.challenge = Some(Challenge::parse(header));
                Ok(())
            }
            _ => Err(http_error("GET", &url, resp).await),
        }
    }

    /// GET a manifest by tag or digest: the exact bytes and the Content-Type.
    /// `Ok(None)` when the registry answers 404.
    pub async fn get_manifest(&self, repo: &str, reference: &str) -> Result<Option<(Bytes, Option<String>)>> {
        let url = self.url(&format!("{repo}/manifests/{reference}")).await?;
        let scope = pull_scope(repo);
        let resp = self.send(Method::GET, &url, &scope, true, |r| r.header(ACCEPT, MANIFEST_ACCEPT)).await?;
        if resp.status() == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let content_type = resp.headers().get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_string);
        let body = read_bounded(resp, MAX_MANIFEST_BYTES, "GET", &url).await?;
        Ok(Some((body, content_type)))
    }

    /// GET `/v2/<path>` and return the raw response (any 2xx), for callers that need the
    /// headers (`verify`).
    pub async fn get_raw(&self, path: &str, scope: &str, accept: Option<&str>) -> Result<Response> {
        let url = self.url(path).await?;
        self.send(Method::GET, &url, scope, false, |r| match accept {
            Some(a) => r.header(ACCEPT, a),
            None => r,
        })
        .await
    }

    /// GET a blob. The caller streams `bytes_stream()` through a verifier.
    pub async fn get_blob(&self, repo: &str, digest: &Digest) -> Result<Response> {
        let url = self.url(&format!("{repo}/blobs/{digest}")).await?;
        self.send(Method::GET, &url, &pull_scope(repo), false, |r| r).await
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

/// `repository:<repo>:pull`.
pub(crate) fn pull_scope(repo: &str) -> String {
    format!("repository:{repo}:pull")
}

fn method_name(m: &Method) -> &'static str {
    match *m {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::PUT => "PUT",
        Method::POST => "POST",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        _ => "request",
    }
}

/// Parse `Retry-After` in its seconds form (registries do not send HTTP dates).
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    headers.get(RETRY_AFTER)?.to_str().ok()?.trim().parse::<u64>().ok().map(Duration::from_secs)
}

/// Turn a non-success response into [`Error::Http`], with the registry's error codes.
pub(crate) async fn http_error(method: &'static str, url: &str, resp: Response) -> Error {
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
    let mut detail = match serde_json::from_slice::<Errors>(&body) {
        Ok(e) if !e.errors.is_empty() => {
            let parts: Vec<_> =
                e.errors.iter().map(|e| format!("{} {}", e.code, e.message).trim().to_string()).collect();
            format!(": {}", parts.join("; "))
        }
        _ => String::new(),
    };
    if status == 401 || status == 403 {
        detail.push_str(" (check the registry credentials)");
    }
    // Go's and nginx's TLS listeners answer a plain-http request with a 400 saying so.
    if status == 400 && detail.is_empty() && String::from_utf8_lossy(&body).contains("HTTPS") {
        detail.push_str(
            ": the server speaks TLS; trust its CA with --dest-ca-file / --source-ca-file, or use \
             --insecure-destination / --insecure-source",
        );
    }
    Error::Http { method, url: crate::error::strip_query(url), status, detail, retry_after }
}

/// Read a whole response body, refusing more than `limit` bytes.
pub(crate) async fn read_bounded(mut resp: Response, limit: usize, method: &'static str, url: &str) -> Result<Bytes> {
    if resp.content_length().is_some_and(|n| n > limit as u64) {
        return Err(Error::rejected(
            format!("response from {}", crate::error::strip_query(url)),
            format!("larger than {limit} bytes"),
        ));
    }
    let mut buf = bytes::BytesMut::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| Error::transport(method, url, &e))? {
        if buf.len() + chunk.len() > limit {
            return Err(Error::rejected(
                format!("response from {}", crate::error::strip_query(url)),
                format!("larger than {limit} bytes"),
            ));
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.freeze())
}

/// Whether a Content-Type names a manifest type this mirror copies.
pub fn is_manifest_type(ct: &str) -> bool {
    let ct = ct.split(';').next().unwrap_or(ct).trim();
    ct == OCI_MANIFEST || ct == DOCKER_MANIFEST
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
}
