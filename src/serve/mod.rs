//! `trivy-mirror serve DIR`: serve a local mirror exactly as a CDN in front of a bucket
//! would, so a directory sync is a working registry for Trivy, and run it as a service.
//!
//! - `GET /v2/` answers the ping object `v2/index.json` (200).
//! - Manifests are served with their own `mediaType` as Content-Type (a directory cannot
//!   store headers, so it is read from the file), blobs as `application/octet-stream`,
//!   JSON and archives by extension; Cache-Control is what the publisher would have
//!   stored ([`ObjectClass::cache_control`](crate::layout::ObjectClass::cache_control)).
//! - GET and HEAD only; HEAD carries the real Content-Length. No Content-Encoding, ever.
//!   ETag, Last-Modified, `304`, one `Range` → `206` ([`http`]).
//! - Only keys the static layout writes are served: anything else, and any path that would
//!   leave the directory (`..`, symlinks out), is a 404 ([`objects`]).
//! - `/healthz`, `/readyz` ([`ready`]), `/metrics` ([`metrics`]), Basic authentication
//!   ([`auth`]), TLS ([`tls`]), one access-log line per request.
//!
//! Connections are accepted here rather than by `axum::serve`, which offers no bound on
//! request headers, header read time or connection count: hyper-util's builder with
//! hyper's own limits — request heads above 16 KiB answer 431, a head not complete within
//! `--header-timeout` (30 s) closes the connection (hyper's `header_read_timeout`, which
//! runs from the moment a head is awaited, so it also closes idle keep-alive connections)
//! — and a semaphore of `--max-connections` permits taken before `accept`, so excess
//! clients wait in the kernel backlog instead of costing memory. The protocol is chosen
//! up front: HTTP/2 when TLS negotiated `h2` by ALPN, else HTTP/1.1. (hyper-util's
//! auto-detection would first wait for a preface with no time limit at all, and plaintext
//! HTTP/2 "prior knowledge" is used by no registry client.)

pub mod auth;
pub mod http;
pub mod metrics;
pub mod objects;
pub mod ready;
pub mod schedule;
pub mod tls;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::request::Parts;
use axum::http::{Method, Request, Response, StatusCode, header};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};

use crate::error::{Error, Result};
use crate::layout::ObjectClass;
use metrics::{Metrics, Route};
pub use objects::key_for_path;
use objects::{Objects, Served, insert, json};

/// Largest request head (request line and headers) accepted; above it hyper answers 431.
const MAX_HEAD: usize = 16 * 1024;
/// Longest request path accepted; above it 414.
const MAX_PATH: usize = 4096;
/// How long in-flight responses may take to finish after SIGTERM.
const DRAIN: Duration = Duration::from_secs(30);

/// How to serve, beyond the directory and the listener.
#[derive(Debug)]
pub struct ServeOptions {
    /// max-age (seconds) announced for mutable objects.
    pub tag_ttl: u32,
    /// Open client connections at most (further clients wait in the listen backlog).
    pub max_connections: usize,
    /// `/readyz` answers 503 once an artifact's last successful check is older.
    pub max_age: Duration,
    /// PEM certificate chain and key.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// Apache htpasswd file with bcrypt entries.
    pub htpasswd: Option<PathBuf>,
    /// A separate, unauthenticated listener for `/metrics`.
    pub metrics_listener: Option<TcpListener>,
    /// How long a client may take to send a complete request head (or a TLS handshake).
    pub header_timeout: Duration,
    /// One log line per request.
    pub access_log: bool,
    /// Artifacts `/readyz` requires even before status.json names them.
    pub expected: Vec<String>,
    /// Sync into the directory in this process, on a schedule.
    pub sync: Option<schedule::Schedule>,
}

impl ServeOptions {
    /// Defaults: no TLS, no auth, 1024 connections, max-age 24 h, access log on.
    pub fn new(tag_ttl: u32) -> ServeOptions {
        ServeOptions {
            tag_ttl,
            max_connections: 1024,
            max_age: Duration::from_secs(24 * 3600),
            tls: None,
            htpasswd: None,
            metrics_listener: None,
            header_timeout: Duration::from_secs(30),
            access_log: true,
            expected: Vec::new(),
            sync: None,
        }
    }
}

/// Everything a request handler needs.
#[derive(Debug)]
pub struct Server {
    objects: Objects,
    auth: Option<auth::Auth>,
    /// The metrics, for an in-process sync to count its runs.
    pub metrics: Metrics,
    max_age: Duration,
    expected: Vec<String>,
    metrics_elsewhere: bool,
    access_log: bool,
}

/// Which listener a connection came in on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Listener {
    Main,
    Metrics,
}

/// The mirror directory, resolved: checked before anything is announced, so a wrong path
/// fails with one line and the hint to sync into it first.
fn open_root(dir: &Path) -> Result<std::path::PathBuf> {
    let context = || format!("opening mirror directory {}", dir.display());
    let root = dir.canonicalize().map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => Error::no_mirror(dir),
        _ => Error::Io { context: context(), source: e },
    })?;
    if !root.is_dir() {
        let source = std::io::Error::new(std::io::ErrorKind::NotADirectory, "not a directory");
        return Err(Error::Io { context: context(), source });
    }
    Ok(root)
}

/// Check the settings (the directory, TLS files, htpasswd) and build the shared server
/// state: everything that can fail does so here, before the caller announces the server
/// and hands it to [`run`].
pub fn prepare(root: &Path, options: &ServeOptions) -> Result<(Arc<Server>, Option<tokio_rustls::TlsAcceptor>)> {
    let root = open_root(root)?;
    let tls = match &options.tls {
        Some((cert, key)) => Some(tokio_rustls::TlsAcceptor::from(tls::server_config(cert, key)?)),
        None => None,
    };
    let auth = options.htpasswd.as_deref().map(auth::Auth::load).transpose()?;
    let mut expected = options.expected.clone();
    if let Some(s) = &options.sync {
        expected.extend(s.artifacts().into_iter().filter(|a| !options.expected.contains(a)));
    }
    let server = Arc::new(Server {
        objects: Objects::new(root, options.tag_ttl),
        auth,
        metrics: Metrics::new(),
        max_age: options.max_age,
        expected,
        metrics_elsewhere: options.metrics_listener.is_some(),
        access_log: options.access_log,
    });
    Ok((server, tls))
}

/// Accept on `listener` (and the metrics listener) until `shutdown` completes, then stop
/// accepting and give open connections up to 30 s to finish their responses.
pub async fn run(
    server: Arc<Server>,
    listener: TcpListener,
    mut options: ServeOptions,
    tls: Option<tokio_rustls::TlsAcceptor>,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<()> {
    if let Ok(addr) = listener.local_addr()
        && tls.is_none()
        && !addr.ip().is_loopback()
    {
        tracing::warn!(
            "serving plain HTTP on {addr}, a non-loopback address: credentials and data travel unencrypted; \
             give a certificate to serve HTTPS"
        );
    }
    let (stop_tx, stop_rx) = watch::channel(false);
    let max = options.max_connections.clamp(1, Semaphore::MAX_PERMITS);
    let limit = Arc::new(Semaphore::new(max));
    let mut loops = tokio::task::JoinSet::new();
    let builders = Builders::new(options.header_timeout);
    let main = Accept { tls, limit: limit.clone(), builders: builders.clone(), which: Listener::Main };
    loops.spawn(accept_loop(listener, server.clone(), main, stop_rx.clone()));
    if let Some(metrics) = options.metrics_listener.take() {
        // Slots of its own: a scrape must get in when clients fill the main listener.
        let accept = Accept { tls: None, limit: Arc::new(Semaphore::new(16)), builders, which: Listener::Metrics };
        loops.spawn(accept_loop(metrics, server.clone(), accept, stop_rx.clone()));
    }
    if let Some(s) = options.sync.take() {
        loops.spawn(schedule::run(s, server, stop_rx));
    }
    shutdown.await;
    tracing::info!("shutting down: no new connections; open ones have {}s to finish", DRAIN.as_secs());
    let _ = stop_tx.send(true);
    while loops.join_next().await.is_some() {}
    // Every connection holds a permit: all of them back means every connection ended.
    if tokio::time::timeout(DRAIN, limit.acquire_many(max as u32)).await.is_err() {
        tracing::warn!("connections still open after {}s; closing them", DRAIN.as_secs());
    }
    Ok(())
}

/// Bind `addr`, with an error that says which address could not be used.
pub async fn bind(addr: SocketAddr) -> Result<TcpListener> {
    TcpListener::bind(addr).await.map_err(|e| Error::Io { context: format!("listening on {addr}"), source: e })
}

/// Resolves on ctrl-c or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("signal handler");
        tokio::select! { _ = ctrl_c => {}, _ = term.recv() => {} }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

type Builder = hyper_util::server::conn::auto::Builder<TokioExecutor>;

/// One connection builder per protocol, sharing the limits.
#[derive(Clone)]
struct Builders {
    h1: Arc<Builder>,
    h2: Arc<Builder>,
    header_timeout: Duration,
}

impl Builders {
    fn new(header_timeout: Duration) -> Builders {
        let mut b = Builder::new(TokioExecutor::new());
        b.http1().max_buf_size(MAX_HEAD).timer(TokioTimer::new()).header_read_timeout(header_timeout);
        b.http2()
            .timer(TokioTimer::new())
            .max_header_list_size(MAX_HEAD as u32)
            .max_concurrent_streams(128)
            // Pings find peers that vanished without closing the connection.
            .keep_alive_interval(Duration::from_secs(60))
            .keep_alive_timeout(Duration::from_secs(20));
        Builders { h1: Arc::new(b.clone().http1_only()), h2: Arc::new(b.http2_only()), header_timeout }
    }
}

/// How one listener's connections are taken.
struct Accept {
    tls: Option<tokio_rustls::TlsAcceptor>,
    limit: Arc<Semaphore>,
    builders: Builders,
    which: Listener,
}

async fn accept_loop(listener: TcpListener, server: Arc<Server>, accept: Accept, mut stop: watch::Receiver<bool>) {
    let Accept { tls, limit, builders, which } = accept;
    loop {
        let permit = tokio::select! {
            p = limit.clone().acquire_owned() => p.expect("the semaphore is never closed"),
            _ = stop.changed() => return,
        };
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!("accepting a connection: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = stop.changed() => return,
        };
        let _ = stream.set_nodelay(true);
        let (server, builders, tls, stop) = (server.clone(), builders.clone(), tls.clone(), stop.clone());
        tokio::spawn(async move {
            server.metrics.connections.inc();
            match tls {
                Some(acceptor) => match tokio::time::timeout(builders.header_timeout, acceptor.accept(stream)).await {
                    Ok(Ok(s)) => {
                        let h2 = s.get_ref().1.alpn_protocol() == Some(b"h2");
                        let builder = if h2 { &builders.h2 } else { &builders.h1 };
                        connection(builder, TokioIo::new(s), server.clone(), peer, stop, which).await
                    }
                    Ok(Err(e)) => tracing::debug!(client = %peer, "TLS handshake failed: {e}"),
                    Err(_) => tracing::debug!(client = %peer, "TLS handshake timed out"),
                },
                None => connection(&builders.h1, TokioIo::new(stream), server.clone(), peer, stop, which).await,
            }
            server.metrics.connections.dec();
            drop(permit);
        });
    }
}

/// Serve one connection; on shutdown, finish the response in flight and close.
async fn connection<I>(
    builder: &Builder,
    io: I,
    server: Arc<Server>,
    peer: SocketAddr,
    mut stop: watch::Receiver<bool>,
    which: Listener,
) where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |req| {
        let server = server.clone();
        async move { Ok::<_, Infallible>(server.handle(req, peer, which).await) }
    });
    let conn = builder.serve_connection(io, service);
    tokio::pin!(conn);
    tokio::select! {
        r = conn.as_mut() => {
            if let Err(e) = r {
                tracing::debug!(client = %peer, "connection ended: {e}");
            }
            return;
        }
        _ = stop.changed() => conn.as_mut().graceful_shutdown(),
    }
    let _ = conn.await;
}

impl Server {
    async fn handle(&self, req: Request<Incoming>, peer: SocketAddr, which: Listener) -> Response<Body> {
        let started = Instant::now();
        // GET and HEAD only: the request body is never read.
        let (req, _body) = req.into_parts();
        let (route, served, user) = self.route(&req, peer, which).await;
        let status = served.response.status().as_u16();
        let seconds = started.elapsed().as_secs_f64();
        self.metrics.request(route, status, served.bytes, seconds);
        if self.access_log {
            // The path without the query; never the Authorization header.
            tracing::info!(
                target: "trivy_mirror::access",
                method = %req.method,
                path = %req.uri.path(),
                status,
                bytes = served.bytes,
                duration_ms = (seconds * 1000.0 * 1000.0).round() / 1000.0,
                client = %peer.ip(),
                user = user.as_deref().unwrap_or("-"),
                "request"
            );
        }
        served.response
    }

    async fn route(&self, req: &Parts, peer: SocketAddr, which: Listener) -> (Route, Served, Option<String>) {
        let path = req.uri.path();
        if which == Listener::Metrics {
            return match path {
                "/metrics" => (Route::other, self.metrics_response(), None),
                _ => (Route::other, objects::not_found(None), None),
            };
        }
        match path {
            "/healthz" => return (Route::other, text(StatusCode::OK, "ok\n"), None),
            "/readyz" => return (Route::other, self.readyz(), None),
            _ => {}
        }
        let method = &req.method;
        if method != Method::GET && method != Method::HEAD {
            let mut s = text(StatusCode::METHOD_NOT_ALLOWED, "");
            insert(s.response.headers_mut(), header::ALLOW.as_str(), "GET, HEAD");
            return (Route::other, s, None);
        }
        if path.len() > MAX_PATH {
            return (Route::other, text(StatusCode::URI_TOO_LONG, "request path too long\n"), None);
        }
        let key = key_for_path(path);
        let route = route_of(key.as_deref());
        let mut user = None;
        if let Some(auth) = &self.auth {
            let authorization = req.headers.get(header::AUTHORIZATION).map(|v| v.as_bytes());
            match auth.check(authorization, peer.ip()).await {
                auth::Verdict::Allowed(u) => user = Some(u),
                auth::Verdict::Challenge => return (route, unauthorized(), None),
                auth::Verdict::Limited(secs) => {
                    let mut s = json(
                        StatusCode::TOO_MANY_REQUESTS,
                        r#"{"errors":[{"code":"TOOMANYREQUESTS","message":"too many failed logins"}]}"#.into(),
                    );
                    insert(s.response.headers_mut(), header::RETRY_AFTER.as_str(), &secs.to_string());
                    return (route, s, None);
                }
            }
        }
        if path == "/metrics" && !self.metrics_elsewhere {
            return (Route::other, self.metrics_response(), user);
        }
        let served = match key {
            Some(rel) => {
                let chunk = objects::chunk_size(usize::try_from(self.metrics.connections.get()).unwrap_or(1));
                self.objects.serve(method, &rel, &req.headers, chunk).await
            }
            None => objects::not_found(None),
        };
        (route, served, user)
    }

    fn readiness(&self) -> ready::Readiness {
        ready::check(self.objects.root(), &self.expected, self.max_age, jiff::Timestamp::now())
    }

    fn readyz(&self) -> Served {
        let r = self.readiness();
        let status = if r.ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
        json(status, serde_json::to_string(&r).expect("readiness serializes"))
    }

    fn metrics_response(&self) -> Served {
        let body = self.metrics.render(&self.readiness());
        let mut s = text(StatusCode::OK, &body);
        insert(s.response.headers_mut(), header::CONTENT_TYPE.as_str(), metrics::CONTENT_TYPE);
        s
    }
}

fn route_of(key: Option<&str>) -> Route {
    match key.and_then(|k| ObjectClass::of(k).map(|c| (k, c))) {
        Some((_, ObjectClass::Ping)) => Route::ping,
        Some((_, ObjectClass::Blob)) => Route::blob,
        Some((_, ObjectClass::TagManifest | ObjectClass::DigestManifest | ObjectClass::TagsList)) => Route::manifest,
        Some((k, _)) if k == crate::status_file::STATUS_KEY => Route::other,
        Some(_) => Route::vex,
        None => Route::other,
    }
}

fn text(status: StatusCode, body: &str) -> Served {
    let mut s = json(status, body.to_string());
    insert(s.response.headers_mut(), header::CONTENT_TYPE.as_str(), "text/plain; charset=utf-8");
    s
}

/// The Basic challenge Trivy's registry client and VEX downloader answer with credentials.
fn unauthorized() -> Served {
    let mut s = json(
        StatusCode::UNAUTHORIZED,
        r#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}"#.into(),
    );
    insert(s.response.headers_mut(), header::WWW_AUTHENTICATE.as_str(), r#"Basic realm="trivy-mirror""#);
    s
}
