//! Static layout objects on disk as HTTP responses: small objects from memory, blobs streamed
//! from the very file descriptor whose size went into the headers.
//!
//! Consistency while a sync replaces objects: the directory destination writes every
//! object to a temporary name and renames it into place, so an open descriptor keeps
//! reading one complete version, and a path re-resolved later sees the complete new one.
//! The small-object cache is keyed by (length, mtime, inode) of the file the path names
//! *now*; a hit serves the bytes read from exactly that file, a miss reads the file
//! through one descriptor and checks its metadata on that descriptor.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, Method, Response, StatusCode, header};
use bytes::Bytes;
use tokio::io::AsyncReadExt as _;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::http::{FileKey, RangeAnswer};
use crate::layout::{ObjectClass, PING_KEY};
use crate::oci::{Digest, MAX_MANIFEST_BYTES, OCI_MANIFEST};

/// Objects up to this size (manifests, ping, tags/list, VEX manifest, status.json) are
/// kept in memory.
const SMALL: u64 = MAX_MANIFEST_BYTES as u64;
/// Memory for streamed bodies in flight, shared by all connections: every chunk in memory
/// holds its size in permits of this budget ([`FileStream`]), and each stream reads in
/// chunks of the budget divided by the open connections, between [`MIN_CHUNK`] and
/// [`MAX_CHUNK`]. Large reads keep the per-chunk cost of blocking-pool file I/O small
/// next to the copy itself when few clients download; many clients get smaller chunks
/// (measured: 256 connections downloading a 128 MiB blob, peak RSS ~40 MiB).
const BODY_BUDGET: usize = 16 << 20;
/// File reads in flight at once: page-cache copies are CPU-bound, more would only grow
/// the blocking pool (each thread a stack and, with glibc, a share of malloc arenas).
const READS: usize = 16;
const MIN_CHUNK: usize = 32 << 10;
const MAX_CHUNK: usize = 1 << 20;

/// The read size of a streamed body while `connections` are open.
pub fn chunk_size(connections: usize) -> usize {
    (BODY_BUDGET / connections.max(1)).clamp(MIN_CHUNK, MAX_CHUNK)
}
/// Entries beyond this count clear the cache (a mirror has a few dozen small objects;
/// this only bounds memory against clients asking for many manifests by digest).
const MAX_ENTRIES: usize = 4096;

/// A small object, its headers computed once.
#[derive(Debug)]
struct Cached {
    key: FileKey,
    body: Bytes,
    headers: HeaderMap,
}

/// The mirror directory and its in-memory small objects.
#[derive(Debug)]
pub struct Objects {
    root: PathBuf,
    tag_ttl: u32,
    cache: RwLock<HashMap<String, Arc<Cached>>>,
    /// Bytes of streamed bodies that may be in memory at once.
    budget: Arc<Semaphore>,
    /// File reads that may run at once.
    reads: Arc<Semaphore>,
}

/// What a request for a static layout object turned into, for logs and metrics.
#[derive(Debug)]
pub struct Served {
    /// The response.
    pub response: Response<Body>,
    /// Body bytes that will be sent.
    pub bytes: u64,
}

impl Objects {
    /// Serve the canonicalized `root`.
    pub fn new(root: PathBuf, tag_ttl: u32) -> Objects {
        Objects {
            root,
            tag_ttl,
            cache: RwLock::new(HashMap::new()),
            budget: Arc::new(Semaphore::new(BODY_BUDGET)),
            reads: Arc::new(Semaphore::new(READS)),
        }
    }

    /// The mirror root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Answer GET or HEAD for the static layout key `rel` (already checked by `key_for_path`).
    pub async fn serve(&self, method: &Method, rel: &str, req: &HeaderMap, chunk: usize) -> Served {
        let Some(class) = ObjectClass::of(rel) else { return not_found(None) };
        // Fast path: the small object cached under this key is still the very file the path
        // names (same device, inode, size and mtime, by one lstat). It lay inside the root
        // when it was cached, so the dozen lstat calls of canonicalize are not needed again.
        if let Ok(meta) = std::fs::symlink_metadata(self.root.join(rel))
            && meta.is_file()
            && let Some(c) = self.cached(rel, FileKey::of(&meta))
        {
            return answer(method, req, &c.key, c.headers.clone(), Source::Memory(c.body.clone()));
        }
        // Resolve symlinks and make sure the file is still inside the root. Local stat
        // calls take microseconds; they run inline rather than on the blocking pool.
        let Ok(real) = std::fs::canonicalize(self.root.join(rel)) else { return not_found(Some(rel)) };
        if !real.starts_with(&self.root) {
            return not_found(Some(rel));
        }
        let Ok(meta) = std::fs::metadata(&real) else { return not_found(Some(rel)) };
        if !meta.is_file() {
            return not_found(Some(rel));
        }
        let small = class.fixed_content_type().is_none() || (meta.len() <= SMALL && is_small_class(class));
        if small {
            return match self.small(rel, class, &real, FileKey::of(&meta)).await {
                Some(c) => answer(method, req, &c.key, c.headers.clone(), Source::Memory(c.body.clone())),
                None => not_found(Some(rel)),
            };
        }
        // Stream: open, then take the size from the descriptor, not the path.
        let Ok(file) = std::fs::File::open(&real) else { return not_found(Some(rel)) };
        let Ok(meta) = file.metadata() else { return not_found(Some(rel)) };
        let key = FileKey::of(&meta);
        let mut headers = HeaderMap::new();
        if class == ObjectClass::Blob
            && let Some(name) = rel.rsplit('/').next()
        {
            insert(&mut headers, "docker-content-digest", name);
        }
        insert(&mut headers, header::CONTENT_TYPE.as_str(), class.fixed_content_type().unwrap_or(OCI_MANIFEST));
        self.common_headers(&mut headers, class);
        let stream = FileStream { file: Arc::new(file), chunk, budget: self.budget.clone(), reads: self.reads.clone() };
        answer(method, req, &key, headers, Source::File(stream))
    }

    fn common_headers(&self, headers: &mut HeaderMap, class: ObjectClass) {
        insert(headers, header::CACHE_CONTROL.as_str(), &class.cache_control(self.tag_ttl));
        insert(headers, "docker-distribution-api-version", "registry/2.0");
        insert(headers, header::ACCEPT_RANGES.as_str(), "bytes");
    }

    /// The cached object for `rel`, if it was read from the file `now` describes.
    fn cached(&self, rel: &str, now: FileKey) -> Option<Arc<Cached>> {
        self.cache.read().expect("cache lock").get(rel).filter(|c| c.key == now).cloned()
    }

    /// The cached object for `rel` if it still is the file on disk, else read it again.
    async fn small(&self, rel: &str, class: ObjectClass, real: &Path, now: FileKey) -> Option<Arc<Cached>> {
        if let Some(c) = self.cached(rel, now) {
            return Some(c);
        }
        let mut file = tokio::fs::File::open(real).await.ok()?;
        let key = FileKey::of(&file.metadata().await.ok()?);
        if key.len > SMALL {
            return None;
        }
        let mut bytes = Vec::with_capacity(key.len as usize);
        file.read_to_end(&mut bytes).await.ok()?;
        if bytes.len() as u64 != key.len {
            return None;
        }
        let mut headers = HeaderMap::new();
        let content_type = match class.fixed_content_type() {
            Some(ct) => ct.to_string(),
            None => {
                // A manifest: its mediaType is its Content-Type (a directory cannot store
                // headers); its digest is cheap to add.
                insert(&mut headers, "docker-content-digest", Digest::of(&bytes).as_str());
                serde_json::from_slice::<serde_json::Value>(&bytes)
                    .ok()
                    .and_then(|v| v.get("mediaType").and_then(|m| m.as_str()).map(str::to_string))
                    .unwrap_or_else(|| OCI_MANIFEST.to_string())
            }
        };
        insert(&mut headers, header::CONTENT_TYPE.as_str(), &content_type);
        self.common_headers(&mut headers, class);
        validators(&mut headers, &key);
        let cached = Arc::new(Cached { key, body: Bytes::from(bytes), headers });
        let mut cache = self.cache.write().expect("cache lock");
        if cache.len() >= MAX_ENTRIES {
            cache.clear();
        }
        cache.insert(rel.to_string(), cached.clone());
        Some(cached)
    }
}

fn is_small_class(class: ObjectClass) -> bool {
    matches!(class, ObjectClass::Ping | ObjectClass::TagsList | ObjectClass::Json)
}

enum Source {
    Memory(Bytes),
    File(FileStream),
}

/// Validators, conditionals and ranges around a body source.
fn answer(method: &Method, req: &HeaderMap, key: &FileKey, mut headers: HeaderMap, source: Source) -> Served {
    let get = |name: header::HeaderName| req.get(name).and_then(|v| v.to_str().ok());
    if !headers.contains_key(header::ETAG) {
        validators(&mut headers, key);
    }
    if super::http::not_modified(get(header::IF_NONE_MATCH), get(header::IF_MODIFIED_SINCE), key) {
        // RFC 9110 §15.4.5: a 304 carries the validators and Cache-Control, no body headers.
        headers.remove(header::CONTENT_TYPE);
        headers.remove("docker-content-digest");
        return respond(StatusCode::NOT_MODIFIED, headers, 0, None);
    }
    let len = key.len;
    let ranged = if method == Method::GET {
        super::http::range(get(header::RANGE), get(header::IF_RANGE), key, len)
    } else {
        RangeAnswer::Full
    };
    let (status, start, count) = match ranged {
        RangeAnswer::Full => (StatusCode::OK, 0, len),
        RangeAnswer::Partial { start, end } => {
            insert(&mut headers, header::CONTENT_RANGE.as_str(), &format!("bytes {start}-{end}/{len}"));
            (StatusCode::PARTIAL_CONTENT, start, end - start + 1)
        }
        RangeAnswer::Unsatisfiable => {
            insert(&mut headers, header::CONTENT_RANGE.as_str(), &format!("bytes */{len}"));
            headers.remove("docker-content-digest");
            return respond(StatusCode::RANGE_NOT_SATISFIABLE, headers, 0, Some(Body::empty()));
        }
    };
    if method == Method::HEAD {
        return respond(status, headers, count, None);
    }
    let body = match source {
        Source::Memory(b) => Body::from(b.slice(start as usize..(start + count) as usize)),
        Source::File(f) => f.body(start, count),
    };
    respond(status, headers, count, Some(body))
}

/// ETag and Last-Modified of `key` (computed once per cached small object).
fn validators(headers: &mut HeaderMap, key: &FileKey) {
    insert(headers, header::ETAG.as_str(), &key.etag());
    insert(headers, header::LAST_MODIFIED.as_str(), &key.last_modified());
}

/// A file streamed as a body: `chunk`-sized positioned reads (`pread`, so the descriptor
/// needs no seek and every read is of the version opened) on the blocking pool, each into
/// one buffer that goes to hyper as it is (tokio's `fs::File` would copy through a second
/// buffer of its own). Every buffer holds permits of the shared `budget` until hyper has
/// written and dropped it, which bounds the memory of all bodies in flight, whatever the
/// number of connections or how slowly they read.
struct FileStream {
    file: Arc<std::fs::File>,
    chunk: usize,
    budget: Arc<Semaphore>,
    reads: Arc<Semaphore>,
}

/// A chunk and the budget it holds.
struct Chunk {
    buf: Vec<u8>,
    _permit: OwnedSemaphorePermit,
}

impl AsRef<[u8]> for Chunk {
    fn as_ref(&self) -> &[u8] {
        &self.buf
    }
}

impl FileStream {
    fn body(self, start: u64, count: u64) -> Body {
        let FileStream { file, chunk, budget, reads } = self;
        let stream = futures_util::stream::try_unfold((start, start + count), move |(pos, end)| {
            let (file, budget, reads) = (file.clone(), budget.clone(), reads.clone());
            async move {
                if pos >= end {
                    return Ok(None);
                }
                let want = chunk.min(usize::try_from(end - pos).unwrap_or(usize::MAX));
                let permit = budget.acquire_many_owned(want as u32).await.map_err(std::io::Error::other)?;
                let reading = reads.acquire_owned().await.map_err(std::io::Error::other)?;
                let buf = tokio::task::spawn_blocking(move || read_exact_at(&file, want, pos))
                    .await
                    .map_err(std::io::Error::other)??;
                drop(reading);
                let bytes = Bytes::from_owner(Chunk { buf, _permit: permit });
                Ok::<_, std::io::Error>(Some((bytes, (pos + want as u64, end))))
            }
        });
        Body::from_stream(stream)
    }
}

/// `len` bytes at `pos`, or an error if the file is shorter (it never is: the file under
/// an open descriptor does not change, the publisher replaces files by rename).
fn read_exact_at(file: &std::fs::File, len: usize, pos: u64) -> std::io::Result<Vec<u8>> {
    #[cfg(unix)]
    use std::os::unix::fs::FileExt as _;
    let mut buf = vec![0u8; len];
    let mut filled = 0;
    while filled < len {
        #[cfg(unix)]
        let n = file.read_at(&mut buf[filled..], pos + filled as u64)?;
        #[cfg(windows)]
        let n = std::os::windows::fs::FileExt::seek_read(file, &mut buf[filled..], pos + filled as u64)?;
        if n == 0 {
            return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "the file ended before its size"));
        }
        filled += n;
    }
    Ok(buf)
}

/// A response whose Content-Length is `len` (for HEAD and 304 the length GET would send).
fn respond(status: StatusCode, mut headers: HeaderMap, len: u64, body: Option<Body>) -> Served {
    if status != StatusCode::NOT_MODIFIED {
        insert(&mut headers, header::CONTENT_LENGTH.as_str(), &len.to_string());
    }
    let sent = if body.is_some() { len } else { 0 };
    let mut response = Response::new(body.unwrap_or_else(Body::empty));
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    Served { response, bytes: sent }
}

/// The 404 of the static layout: `BLOB_UNKNOWN` for manifests and blobs, the one 404 code Trivy
/// treats as a reason to try its next repository (`shouldTryOtherRepo` in Trivy's
/// pkg/oci/artifact.go; `MANIFEST_UNKNOWN` would stop it at the mirror).
pub fn not_found(rel: Option<&str>) -> Served {
    let code = match rel.and_then(ObjectClass::of) {
        Some(ObjectClass::Blob | ObjectClass::TagManifest | ObjectClass::DigestManifest) => "BLOB_UNKNOWN",
        _ => "NOT_FOUND",
    };
    json(StatusCode::NOT_FOUND, format!(r#"{{"errors":[{{"code":"{code}","message":"not found"}}]}}"#))
}

/// A small JSON answer.
pub fn json(status: StatusCode, body: String) -> Served {
    let mut headers = HeaderMap::new();
    insert(&mut headers, header::CONTENT_TYPE.as_str(), "application/json");
    insert(&mut headers, header::CACHE_CONTROL.as_str(), "no-store");
    let len = body.len() as u64;
    respond(status, headers, len, Some(Body::from(body)))
}

/// Map a request path to a static layout key, refusing anything that could escape the root.
pub fn key_for_path(path: &str) -> Option<String> {
    if path == "/v2/" || path == "/v2" {
        return Some(PING_KEY.to_string());
    }
    let decoded = percent_encoding::percent_decode_str(path).decode_utf8().ok()?;
    let rel = decoded.strip_prefix('/')?;
    let safe = rel.split('/').all(|seg| !seg.is_empty() && seg != "." && seg != ".." && !seg.contains(['\\', '\0']));
    (safe && ObjectClass::of(rel).is_some()).then(|| rel.to_string())
}

/// Insert a header, skipping values that are not valid header text.
pub fn insert(headers: &mut HeaderMap, name: &str, value: &str) {
    if let (Ok(n), Ok(v)) = (header::HeaderName::try_from(name), HeaderValue::from_str(value)) {
        headers.insert(n, v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_shrink_with_connections_within_bounds() {
        assert_eq!(chunk_size(0), MAX_CHUNK);
        assert_eq!(chunk_size(1), MAX_CHUNK);
        assert_eq!(chunk_size(64), 256 << 10);
        assert_eq!(chunk_size(10_000), MIN_CHUNK);
        assert!(chunk_size(256) * 256 <= BODY_BUDGET);
    }

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
