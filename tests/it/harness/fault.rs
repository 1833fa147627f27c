//! A fault-injecting HTTP proxy: the one hand-written server in the tests, for faults no
//! real server produces on demand. It forwards to a real upstream (a registry) and, for
//! the requests a rule matches, answers an error status (optionally with Retry-After),
//! resets the connection mid-body, truncates the body, stalls, or corrupts a byte.
//! It counts every request it sees.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::StreamExt as _;

/// What to do to a matched request.
#[derive(Clone, Debug)]
pub enum Action {
    /// Answer this status without forwarding; `Some(n)` adds `Retry-After: n`.
    Status(u16, Option<u32>),
    /// Forward, then cut the connection after this many body bytes.
    Reset(usize),
    /// Forward, then end the body early (after this many bytes) with the original length.
    Truncate(usize),
    /// Forward, but wait this long before the body starts.
    Stall(Duration),
    /// Forward with one byte of the body flipped.
    Corrupt,
    /// Forward at a limited rate: pause this long per 64 KiB of body (a slow link).
    Slow(Duration),
    /// Forward, but answer a `Content-Range` that does not match the request.
    WrongRange,
}

/// Apply `action` to the `nth` (1-based) request whose method and path match.
#[derive(Clone, Debug)]
pub struct Rule {
    /// HTTP method, or "" for any.
    pub method: &'static str,
    /// A substring the path must contain ("" for any).
    pub path: String,
    /// Which matching occurrences to fault (1-based), e.g. `vec![1]` for the first only.
    pub occurrences: Vec<usize>,
    /// What to do.
    pub action: Action,
}

struct Shared {
    upstream: String,
    public: String,
    rules: Mutex<Vec<(Rule, usize)>>,
    requests: AtomicUsize,
    /// Body bytes sent to clients for blob GETs.
    blob_bytes: Arc<AtomicU64>,
    log: Mutex<Vec<String>>,
    client: reqwest::Client,
}

/// A running proxy (stopped when dropped, with its runtime).
pub struct FaultProxy {
    /// `127.0.0.1:PORT`.
    pub addr: String,
    shared: Arc<Shared>,
    _runtime: tokio::runtime::Runtime,
}

impl FaultProxy {
    /// Proxy to `upstream` (`127.0.0.1:PORT`) applying `rules`.
    pub fn start(upstream: &str, rules: Vec<Rule>) -> FaultProxy {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let shared = Arc::new(Shared {
            upstream: upstream.to_string(),
            public: addr.clone(),
            rules: Mutex::new(rules.into_iter().map(|r| (r, 0)).collect()),
            requests: AtomicUsize::new(0),
            blob_bytes: Arc::default(),
            log: Mutex::default(),
            client: reqwest::Client::builder().no_proxy().redirect(reqwest::redirect::Policy::none()).build().unwrap(),
        });
        let app = axum::Router::new().fallback(handle).with_state(shared.clone());
        runtime.spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FaultProxy { addr, shared, _runtime: runtime }
    }

    /// Requests seen so far.
    pub fn requests(&self) -> usize {
        self.shared.requests.load(Ordering::SeqCst)
    }

    /// Body bytes sent to clients in answers to blob GETs (whole or ranged).
    pub fn blob_bytes(&self) -> u64 {
        self.shared.blob_bytes.load(Ordering::SeqCst)
    }

    /// `METHOD path -> outcome` for every request seen.
    pub fn log(&self) -> Vec<String> {
        self.shared.log.lock().unwrap().clone()
    }
}

async fn handle(State(shared): State<Arc<Shared>>, req: Request) -> Response {
    shared.requests.fetch_add(1, Ordering::SeqCst);
    let method = req.method().as_str().to_string();
    let path_and_query = req.uri().path_and_query().map(|p| p.as_str().to_string()).unwrap_or_default();
    let action = {
        let mut rules = shared.rules.lock().unwrap();
        let mut hit = None;
        for (rule, seen) in rules.iter_mut() {
            if (rule.method.is_empty() || rule.method == method) && path_and_query.contains(&rule.path) {
                *seen += 1;
                if rule.occurrences.contains(seen) && hit.is_none() {
                    hit = Some(rule.action.clone());
                }
            }
        }
        hit
    };
    let range = req.headers().get("range").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    shared.log.lock().unwrap().push(format!("{method} {path_and_query} [{range}] -> {action:?}"));
    let is_blob = method == "GET" && path_and_query.contains("/blobs/sha256:");
    if let Some(Action::Status(code, retry_after)) = &action {
        let mut resp =
            (StatusCode::from_u16(*code).unwrap(), r#"{"errors":[{"code":"UNAVAILABLE","message":"injected"}]}"#)
                .into_response();
        if let Some(n) = retry_after {
            resp.headers_mut().insert("retry-after", HeaderValue::from_str(&n.to_string()).unwrap());
        }
        return resp;
    }

    let url = format!("http://{}{path_and_query}", shared.upstream);
    let mut builder = shared.client.request(req.method().clone(), &url);
    for (k, v) in req.headers() {
        if k != "host" {
            builder = builder.header(k, v);
        }
    }
    let body = req.into_body().into_data_stream();
    let upstream = match builder.body(reqwest::Body::wrap_stream(body)).send().await {
        Ok(r) => r,
        Err(e) => return (StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
    };
    let mut out = Response::builder().status(upstream.status().as_u16());
    for (k, v) in upstream.headers() {
        if k == "location" {
            let rewritten = v.to_str().unwrap_or("").replace(&shared.upstream, &shared.public);
            out = out.header(k, rewritten);
        } else if k == "content-range" && matches!(action, Some(Action::WrongRange)) {
            out = out.header(k, "bytes 1-2/3");
        } else {
            out = out.header(k, v);
        }
    }
    let counter = shared.blob_bytes.clone();
    let stream = upstream.bytes_stream().inspect(move |c| {
        if let (true, Ok(c)) = (is_blob, c) {
            counter.fetch_add(c.len() as u64, Ordering::SeqCst);
        }
    });
    let body = match action {
        None | Some(Action::WrongRange) => Body::from_stream(stream),
        Some(Action::Stall(d)) => {
            tokio::time::sleep(d).await;
            Body::from_stream(stream)
        }
        Some(Action::Slow(d)) => Body::from_stream(stream.then(move |chunk| async move {
            let units = chunk.as_ref().map(|c| c.len().div_ceil(64 * 1024)).unwrap_or(1) as u32;
            tokio::time::sleep(d * units).await;
            chunk
        })),
        Some(Action::Corrupt) => {
            let mut first = true;
            Body::from_stream(stream.map(move |chunk| {
                chunk.map(|c| {
                    if first && !c.is_empty() {
                        first = false;
                        let mut v = c.to_vec();
                        v[0] ^= 0xff;
                        Bytes::from(v)
                    } else {
                        c
                    }
                })
            }))
        }
        Some(Action::Reset(n) | Action::Truncate(n)) => {
            let reset = matches!(action, Some(Action::Reset(_)));
            let mut sent = 0usize;
            Body::from_stream(stream.scan((), move |_, chunk| {
                let item = match chunk {
                    Ok(_) if sent >= n => {
                        if reset {
                            Some(Err(std::io::Error::new(std::io::ErrorKind::ConnectionReset, "injected reset")))
                        } else {
                            None
                        }
                    }
                    Ok(c) => {
                        let take = (n - sent).min(c.len());
                        sent += take;
                        Some(Ok(c.slice(..take)))
                    }
                    Err(e) => Some(Err(std::io::Error::other(e))),
                };
                futures_util::future::ready(item.map(|i| i.map_err(|e| e.to_string())))
            }))
        }
        Some(Action::Status(..)) => unreachable!(),
    };
    out.body(body).unwrap()
}

/// A hand-written registry that serves exactly the bytes a test gives it: the only way
/// to present hostile content (path-traversal digests, lying sizes, 5 MiB manifests) that
/// a real registry would refuse to store. `/v2/` answers 200; unknown paths 404.
pub struct HostileRegistry {
    /// `127.0.0.1:PORT`.
    pub addr: String,
    _runtime: tokio::runtime::Runtime,
}

impl HostileRegistry {
    /// Serve `routes`: (path, Content-Type, body).
    pub fn start(routes: Vec<(String, String, Vec<u8>)>) -> HostileRegistry {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let routes = Arc::new(routes);
        let app = axum::Router::new().fallback(move |req: Request| {
            let routes = routes.clone();
            async move {
                let path = req.uri().path().to_string();
                if path == "/v2/" {
                    return (StatusCode::OK, "{}").into_response();
                }
                match routes.iter().find(|(p, _, _)| *p == path) {
                    Some((_, ct, body)) => {
                        ([(axum::http::header::CONTENT_TYPE, ct.clone())], body.clone()).into_response()
                    }
                    None => (StatusCode::NOT_FOUND, r#"{"errors":[{"code":"NOT_FOUND"}]}"#).into_response(),
                }
            }
        });
        runtime.spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        HostileRegistry { addr, _runtime: runtime }
    }
}
