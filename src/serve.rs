//! `trivy-mirror serve DIR`: serve a local mirror exactly as a CDN in front of a bucket
//! would, so a directory sync is a working registry for Trivy.
//!
//! - `GET /v2/` answers the ping object `v2/index.json` (200).
//! - Manifests are served with their own `mediaType` as Content-Type (a directory cannot
//!   store headers, so it is read from the file), blobs as `application/octet-stream`,
//!   JSON and archives by extension; Cache-Control is what the publisher would have
//!   stored ([`ObjectClass::cache_control`]).
//! - GET and HEAD only; HEAD carries the real Content-Length. No Content-Encoding, ever.
//! - Only keys the layout writes are served: anything else, and any path that would
//!   leave the directory (`..`, symlinks out), is a 404. A missing blob or manifest
//!   answers `BLOB_UNKNOWN`, the one 404 code Trivy treats as a reason to try its next
//!   repository (`shouldTryOtherRepo` in Trivy's pkg/oci/artifact.go; `MANIFEST_UNKNOWN`
//!   would stop it at the mirror). The Terraform CDNs answer every 404 with the same code.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use tokio::io::AsyncReadExt as _;

use crate::error::{Error, Result};
use crate::layout::{ObjectClass, PING_KEY};
use crate::oci::Digest;
use crate::oci::{MAX_MANIFEST_BYTES, OCI_MANIFEST};

#[derive(Debug)]
struct ServeState {
    root: PathBuf,
    tag_ttl: u32,
}

/// Serve `root` on `listener` until ctrl-c or SIGTERM.
pub async fn serve(root: &Path, listener: tokio::net::TcpListener, tag_ttl: u32) -> Result<()> {
    let root = open_root(root)?;
    let app = router(root, tag_ttl);
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown_signal())
        .await
        .map_err(|e| Error::Io { context: "serving".into(), source: e })
}

/// The mirror directory, resolved: checked before anything is announced, so a wrong path
/// fails with one line and the hint to sync into it first.
pub fn open_root(dir: &Path) -> Result<PathBuf> {
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

/// Bind `addr`, with an error that says which address could not be used.
pub async fn bind(addr: SocketAddr) -> Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| Error::Io { context: format!("listening on {addr}"), source: e })
}

/// The axum router serving a canonicalized mirror root.
pub fn router(root: PathBuf, tag_ttl: u32) -> axum::Router {
    axum::Router::new().fallback(handle).with_state(Arc::new(ServeState { root, tag_ttl }))
}

async fn shutdown_signal() {
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

/// Map a request path to a layout key, refusing anything that could escape the root.
pub fn key_for_path(path: &str) -> Option<String> {
    if path == "/v2/" || path == "/v2" {
        return Some(PING_KEY.to_string());
    }
    let decoded = percent_encoding::percent_decode_str(path).decode_utf8().ok()?;
    let rel = decoded.strip_prefix('/')?;
    let safe = rel.split('/').all(|seg| !seg.is_empty() && seg != "." && seg != ".." && !seg.contains(['\\', '\0']));
    (safe && ObjectClass::of(rel).is_some()).then(|| rel.to_string())
}

fn not_found(rel: Option<&str>) -> Response {
    let code = match rel.and_then(ObjectClass::of) {
        Some(ObjectClass::Blob | ObjectClass::TagManifest | ObjectClass::DigestManifest) => "BLOB_UNKNOWN",
        _ => "NOT_FOUND",
    };
    let body = format!(r#"{{"errors":[{{"code":"{code}","message":"not found"}}]}}"#);
    (StatusCode::NOT_FOUND, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

async fn handle(State(state): State<Arc<ServeState>>, method: Method, uri: Uri) -> Response {
    if method != Method::GET && method != Method::HEAD {
        return (StatusCode::METHOD_NOT_ALLOWED, [(header::ALLOW, "GET, HEAD")]).into_response();
    }
    let Some(rel) = key_for_path(uri.path()) else {
        return not_found(None);
    };
    let class = ObjectClass::of(&rel).expect("checked by key_for_path");
    let path = state.root.join(&rel);
    // Resolve symlinks and make sure the file is still inside the root.
    let Ok(real) = tokio::fs::canonicalize(&path).await else {
        return not_found(Some(&rel));
    };
    if !real.starts_with(&state.root) {
        return not_found(Some(&rel));
    }
    let Ok(file) = tokio::fs::File::open(&real).await else {
        return not_found(Some(&rel));
    };
    let Ok(meta) = file.metadata().await else {
        return not_found(Some(&rel));
    };
    if !meta.is_file() {
        return not_found(Some(&rel));
    }
    let len = meta.len();

    let mut headers = HeaderMap::new();
    let mut small_body = None;
    let content_type = match class.fixed_content_type() {
        Some(ct) => ct.to_string(),
        None => {
            // A manifest: its mediaType is its Content-Type; its digest is cheap to add.
            if len > MAX_MANIFEST_BYTES as u64 {
                return not_found(Some(&rel));
            }
            let mut bytes = Vec::with_capacity(len as usize);
            let mut f = file;
            if f.read_to_end(&mut bytes).await.is_err() {
                return not_found(Some(&rel));
            }
            let media_type = serde_json::from_slice::<serde_json::Value>(&bytes)
                .ok()
                .and_then(|v| v.get("mediaType").and_then(|m| m.as_str()).map(str::to_string))
                .unwrap_or_else(|| OCI_MANIFEST.to_string());
            insert(&mut headers, "docker-content-digest", Digest::of(&bytes).as_str());
            small_body = Some(bytes);
            media_type
        }
    };
    if class == ObjectClass::Blob
        && let Some(name) = rel.rsplit('/').next()
    {
        insert(&mut headers, "docker-content-digest", name);
    }
    insert(&mut headers, header::CONTENT_TYPE.as_str(), &content_type);
    insert(&mut headers, header::CACHE_CONTROL.as_str(), &class.cache_control(state.tag_ttl));
    insert(&mut headers, header::CONTENT_LENGTH.as_str(), &len.to_string());
    insert(&mut headers, header::ETAG.as_str(), &etag(&meta, len));
    insert(&mut headers, "docker-distribution-api-version", "registry/2.0");

    if method == Method::HEAD {
        return (StatusCode::OK, headers).into_response();
    }
    let body = match small_body {
        Some(bytes) => Body::from(bytes),
        None => match tokio::fs::File::open(&real).await {
            Ok(f) => Body::from_stream(tokio_util::io::ReaderStream::with_capacity(f, 256 * 1024)),
            Err(_) => return not_found(Some(&rel)),
        },
    };
    (StatusCode::OK, headers, body).into_response()
}

fn insert(headers: &mut HeaderMap, name: &str, value: &str) {
    if let (Ok(n), Ok(v)) = (header::HeaderName::try_from(name), HeaderValue::from_str(value)) {
        headers.insert(n, v);
    }
}

/// An nginx-style ETag (mtime and size): stable while the file is not rewritten, which
/// the publisher never does for unchanged content.
fn etag(meta: &std::fs::Metadata, len: u64) -> String {
    let mtime = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_secs())
        .unwrap_or(0);
    format!("\"{mtime:x}-{len:x}\"")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_map_to_layout_keys_and_never_escape() {
        let d = Digest::of(b"x");
        assert_eq!(key_for_path("/v2/").as_deref(), Some("v2/index.json"));
        assert_eq!(key_for_path("/v2").as_deref(), Some("v2/index.json"));
        assert_eq!(
            key_for_path(&format!("/v2/aquasecurity/trivy-db/blobs/{d}")).as_deref(),
            Some(format!("v2/aquasecurity/trivy-db/blobs/{d}").as_str())
        );
        assert_eq!(
            key_for_path(&format!("/v2/a/b/blobs/sha256%3A{}", d.hex())).as_deref(),
            Some(format!("v2/a/b/blobs/{d}").as_str())
        );
        assert_eq!(key_for_path("/v2/a/manifests/2").as_deref(), Some("v2/a/manifests/2"));
        assert_eq!(
            key_for_path("/.well-known/vex-repository.json").as_deref(),
            Some(".well-known/vex-repository.json")
        );
        for bad in [
            "/../etc/passwd",
            "/v2/../../etc/passwd.json",
            "/v2/a/%2e%2e/%2e%2e/x.json",
            "/x/..%2f..%2fsecret.json",
            "/etc/passwd",
            "//x.json",
            "/v2/a/blobs/sha256:zz",
            "/a\\b.json",
        ] {
            assert_eq!(key_for_path(bad), None, "{bad}");
        }
    }
}
