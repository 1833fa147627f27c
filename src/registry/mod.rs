//! A small OCI distribution client: the calls a mirror needs and nothing else, knowing
//! nothing of Trivy (it speaks [`crate::oci`]'s vocabulary).
//!
//! Pull side: ping, manifest GET with the exact bytes, blob GET as a stream. Push side
//! (see [`push`]): blob HEAD, cross-repository mount, streaming upload (one PUT, chunks
//! after a 413), manifest PUT. Credentials come from [`crate::credentials`]; cloud ones
//! are exchanged on first use. Every request goes through [`RegistryClient::send`], which
//! answers auth challenges ([`challenge`]: Basic, or a Bearer token from the realm:
//! ghcr.io's anonymous flow) and retries what is worth retrying: connect errors,
//! timeouts, resets, 408/429/5xx, waiting as long as `Retry-After` asks (capped), as the
//! run's [`RetryPolicy`] says.
//!
//! Scheme: like Trivy (ggcr `name.Registry.Scheme`), `localhost:<port>`, `127.0.0.1`,
//! `[::1]` and `*.localhost` use plain http; everything else https. A local host with a CA
//! bundle, and any host with `insecure` (TLS unverified), is tried over TLS first and
//! reached over http when it does not speak TLS; a refused certificate stays an error.

mod challenge;
pub mod push;

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, WWW_AUTHENTICATE};
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use tokio::sync::{Mutex, OnceCell};

use challenge::Challenge;

use crate::credentials::{Cloud, Credentials, Secret, cloud};
use crate::error::{Error, Help, Result, Setting};
use crate::http::{
    ClientOptions, RetryPolicy, is_certificate_error, is_local_host, method_name, read_bounded, retry_after,
    status_error, strip_query, transport_error,
};
use crate::oci::{Digest, MANIFEST_ACCEPT, MAX_MANIFEST_BYTES};

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
pub struct RegistryClient {
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

impl std::fmt::Debug for RegistryClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryClient").field("host", &self.host).finish_non_exhaustive()
    }
}

impl RegistryClient {
    /// A client for `host` (`ghcr.io`, `127.0.0.1:5000`).
    pub fn new(host: &str, options: RegistryOptions) -> Result<Self> {
        if host.is_empty() || host.contains('/') || host.contains('@') || host.contains(char::is_whitespace) {
            return Err(Error::config(Setting::RegistryHost, host, "expected a host name with an optional :port"));
        }
        let http = crate::http::client(&ClientOptions {
            insecure: options.insecure,
            ca_file: options.ca_file.as_deref(),
            read_timeout: options.read_timeout,
            ..ClientOptions::default()
        })?;
        let upload_chunk = options.chunk_size.map_or(0, |c| c.max(push::MIN_CHUNK));
        Ok(RegistryClient {
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

    /// The HTTP client (CA bundle, timeouts), for requests that must go out without the
    /// registry's credentials (ranges of a blob redirected to a CDN).
    pub(crate) fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// The run's retry policy.
    pub(crate) fn retry(&self) -> &RetryPolicy {
        &self.options.retry
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
                    Err(e) => Err(transport_error("GET", &format!("{https}/v2/"), &e)),
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
            Credentials::Cloud(Cloud::Gar) => cloud::gar_credentials(&self.options.retry).await?,
            Credentials::Cloud(Cloud::Acr) => {
                cloud::acr_credentials(self.base().await?, &self.host, &self.options.retry).await?
            }
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
                "a plain-http token service is only used for local registries, or with TLS verification off",
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
        let resp = req.send().await.map_err(|e| transport_error("GET", url.as_str(), &e))?;
        let status = resp.status();
        if !status.is_success() {
            let refused = status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN;
            return Err(Error::Http {
                method: "GET",
                url: strip_query(url.as_str()),
                status: status.as_u16(),
                codes: if refused { "the token service refused these credentials".into() } else { String::new() },
                retry_after: retry_after(resp.headers()),
                help: refused.then(|| Box::new(Help::CheckCredentials)),
            });
        }
        let body = read_bounded(resp, 64 * 1024, "GET", url.as_str()).await?;
        challenge::parse_token(&body).ok_or_else(|| {
            Error::rejected(format!("token answer from {}", strip_query(url.as_str())), "no token in it")
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
        self.send_with(method, url, scope, allow_404, &self.options.retry, true, build).await
    }

    /// Like [`RegistryClient::send`] but a single attempt, for bodies that must not be repeated
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
        self.send_with(method, url, scope, false, &self.options.retry.once(), resend_on_401, build).await
    }

    #[allow(clippy::too_many_arguments)]
    async fn send_with(
        &self,
        method: Method,
        url: &str,
        scope: &str,
        allow_404: bool,
        policy: &RetryPolicy,
        reauthenticate: bool,
        build: impl Fn(RequestBuilder) -> RequestBuilder,
    ) -> Result<Response> {
        let method_name = method_name(&method);
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
                Ok(resp) => status_error(method_name, url, resp).await,
                Err(e) => transport_error(method_name, url, &e),
            };
            attempt += 1;
            policy.again(method_name, attempt, err).await?;
        }
    }

    /// Ping `/v2/` so the scheme and the auth challenge are known before the real work.
    pub async fn ping(&self) -> Result<()> {
        let url = self.url("").await?;
        let resp = self.http.get(&url).send().await.map_err(|e| transport_error("GET", &url, &e))?;
        match resp.status() {
            s if s.is_success() => Ok(()),
            StatusCode::UNAUTHORIZED => {
                let header = resp.headers().get(WWW_AUTHENTICATE).and_then(|v| v.to_str().ok()).unwrap_or("");
                self.auth.lock().await.challenge = Some(Challenge::parse(header));
                Ok(())
            }
            _ => Err(status_error("GET", &url, resp).await),
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

    /// GET the first `len` bytes of a blob with `Range` (following the registry's redirect);
    /// returns the blob URL asked for and the answer, 206 or 200.
    pub(crate) async fn get_blob_head(&self, repo: &str, digest: &Digest, len: u64) -> Result<(String, Response)> {
        let url = self.url(&format!("{repo}/blobs/{digest}")).await?;
        let range = format!("bytes=0-{}", len - 1);
        let resp = self
            .send(Method::GET, &url, &pull_scope(repo), false, |r| r.header(reqwest::header::RANGE, range.as_str()))
            .await?;
        Ok((url, resp))
    }
}

/// `repository:<repo>:pull`.
pub(crate) fn pull_scope(repo: &str) -> String {
    format!("repository:{repo}:pull")
}
