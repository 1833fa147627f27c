//! HTTP semantics of `serve` as pure functions: validators (ETag, Last-Modified),
//! conditional requests (RFC 9110 §13) and byte ranges (RFC 9110 §14).
//!
//! The choices follow what nginx does for static files, since that is the server a mirror
//! is compared with: one range answers 206, several ranges answer the whole object (nginx
//! would send multipart/byteranges, which no registry client reads; the issue asks for
//! 200), a range that starts past the end answers 416, and a malformed `Range` header is
//! ignored (RFC 9110 §14.2: "a server MAY ignore the Range header field").

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// What a file on disk looks like now; two equal keys mean the same bytes (the publisher
/// replaces files by rename, so a new version is a new inode and a new mtime).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileKey {
    /// Size in bytes.
    pub len: u64,
    /// Modification time.
    pub mtime: SystemTime,
    /// Inode (0 where the platform has none).
    pub ino: u64,
    /// Device of the inode (0 where the platform has none).
    pub dev: u64,
}

impl FileKey {
    /// The key of a file's metadata.
    pub fn of(meta: &std::fs::Metadata) -> FileKey {
        #[cfg(unix)]
        let (ino, dev) = (std::os::unix::fs::MetadataExt::ino(meta), std::os::unix::fs::MetadataExt::dev(meta));
        #[cfg(not(unix))]
        let (ino, dev) = (0, 0);
        FileKey { len: meta.len(), mtime: meta.modified().unwrap_or(UNIX_EPOCH), ino, dev }
    }

    /// Modification time in whole seconds since the epoch (HTTP dates have no fraction).
    pub fn mtime_secs(&self) -> u64 {
        self.mtime.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
    }

    /// An nginx-style ETag (mtime and size in hex): stable while the file is not rewritten,
    /// which the publisher never does for unchanged content.
    pub fn etag(&self) -> String {
        format!("\"{:x}-{:x}\"", self.mtime_secs(), self.len)
    }

    /// The `Last-Modified` value.
    pub fn last_modified(&self) -> String {
        httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(self.mtime_secs()))
    }
}

/// Does an `If-None-Match` list match `etag`? Weak comparison (RFC 9110 §13.1.2): a `W/`
/// prefix on either side is ignored; `*` matches any existing object.
pub fn if_none_match(header: &str, etag: &str) -> bool {
    let bare = |t: &str| t.trim().trim_start_matches("W/").to_string();
    let ours = bare(etag);
    header.split(',').any(|t| t.trim() == "*" || bare(t) == ours)
}

/// Should a GET or HEAD answer `304 Not Modified`? `If-None-Match`, when present, decides
/// alone (RFC 9110 §13.2.2 step 3); otherwise `If-Modified-Since` is compared with the
/// modification time in whole seconds. An unparsable date is ignored.
pub fn not_modified(if_none_match_header: Option<&str>, if_modified_since: Option<&str>, key: &FileKey) -> bool {
    if let Some(inm) = if_none_match_header {
        return if_none_match(inm, &key.etag());
    }
    let Some(since) = if_modified_since.and_then(|s| httpdate::parse_http_date(s.trim()).ok()) else {
        return false;
    };
    let since = since.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    key.mtime_secs() <= since
}

/// What a `Range` header asks of an object of a given length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RangeAnswer {
    /// No range (absent, malformed, several ranges, or an `If-Range` that no longer
    /// matches): the whole object, 200.
    Full,
    /// One satisfiable range, `start..=end`: 206 with `Content-Range`.
    Partial {
        /// First byte.
        start: u64,
        /// Last byte (inclusive).
        end: u64,
    },
    /// One range starting past the end: 416 with `Content-Range: bytes */len`.
    Unsatisfiable,
}

/// Evaluate `Range` (and `If-Range`) for an object of `len` bytes with validator `key`.
///
/// Parsing never allocates per range and stops at the first comma, so a header with a
/// thousand ranges costs no more than one.
pub fn range(range: Option<&str>, if_range: Option<&str>, key: &FileKey, len: u64) -> RangeAnswer {
    let Some(spec) = range else { return RangeAnswer::Full };
    // If-Range (RFC 9110 §13.1.5): the range applies only to the version the client has;
    // an HTTP date must match exactly, an entity tag strongly.
    if let Some(cond) = if_range.map(str::trim) {
        let matches = if cond.starts_with('"') {
            cond == key.etag()
        } else {
            httpdate::parse_http_date(cond).is_ok_and(|t| t == UNIX_EPOCH + Duration::from_secs(key.mtime_secs()))
        };
        if !matches {
            return RangeAnswer::Full;
        }
    }
    let spec = spec.trim();
    let Some((unit, set)) = spec.split_once('=') else { return RangeAnswer::Full };
    if !unit.trim().eq_ignore_ascii_case("bytes") || set.contains(',') {
        return RangeAnswer::Full;
    }
    let Some((first, last)) = set.trim().split_once('-') else { return RangeAnswer::Full };
    let (first, last) = (first.trim(), last.trim());
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    match (first.is_empty(), last.is_empty()) {
        // `-N`: the last N bytes.
        (true, false) => {
            if !digits(last) {
                return RangeAnswer::Full;
            }
            // An overflowing suffix is "more than the whole object": all of it.
            let n = last.parse::<u64>().unwrap_or(u64::MAX);
            if n == 0 || len == 0 {
                return RangeAnswer::Unsatisfiable;
            }
            RangeAnswer::Partial { start: len - n.min(len), end: len - 1 }
        }
        // `A-` or `A-B`.
        (false, _) => {
            if !digits(first) || (!last.is_empty() && !digits(last)) {
                return RangeAnswer::Full;
            }
            // A first byte too large for u64 is certainly past the end.
            let Ok(start) = first.parse::<u64>() else { return RangeAnswer::Unsatisfiable };
            let end = if last.is_empty() { u64::MAX } else { last.parse::<u64>().unwrap_or(u64::MAX) };
            if end < start {
                // Reversed: syntactically invalid (RFC 9110 §14.1.1), so ignored.
                return RangeAnswer::Full;
            }
            if start >= len {
                return RangeAnswer::Unsatisfiable;
            }
            RangeAnswer::Partial { start, end: end.min(len - 1) }
        }
        (true, true) => RangeAnswer::Full,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> FileKey {
        FileKey { len: 100, mtime: UNIX_EPOCH + Duration::from_secs(1_700_000_000), ino: 7, dev: 1 }
    }

    #[test]
    fn validators_look_like_nginx() {
        let k = key();
        assert_eq!(k.etag(), "\"6553f100-64\"");
        assert_eq!(k.last_modified(), "Tue, 14 Nov 2023 22:13:20 GMT");
    }

    #[test]
    fn conditional_requests() {
        let k = key();
        let etag = k.etag();
        assert!(not_modified(Some(&etag), None, &k));
        assert!(not_modified(Some(&format!("W/{etag}")), None, &k));
        assert!(not_modified(Some(&format!("\"x\", {etag}")), None, &k));
        assert!(not_modified(Some("*"), None, &k));
        assert!(!not_modified(Some("\"other\""), None, &k));
        // If-None-Match decides alone, even with a matching date.
        assert!(!not_modified(Some("\"other\""), Some(&k.last_modified()), &k));
        assert!(not_modified(None, Some(&k.last_modified()), &k));
        assert!(not_modified(None, Some("Wed, 15 Nov 2023 00:00:00 GMT"), &k));
        assert!(!not_modified(None, Some("Mon, 13 Nov 2023 00:00:00 GMT"), &k));
        assert!(!not_modified(None, Some("yesterday"), &k));
        assert!(!not_modified(None, None, &k));
    }

    #[test]
    fn ranges() {
        let k = key();
        let r = |h: &str| range(Some(h), None, &k, 100);
        let p = |start, end| RangeAnswer::Partial { start, end };
        assert_eq!(range(None, None, &k, 100), RangeAnswer::Full);
        assert_eq!(r("bytes=0-9"), p(0, 9));
        assert_eq!(r("bytes=90-"), p(90, 99));
        assert_eq!(r("bytes=90-1000"), p(90, 99));
        assert_eq!(r("bytes=-10"), p(90, 99));
        assert_eq!(r("bytes=-1000"), p(0, 99));
        assert_eq!(r("BYTES = 5-5"), p(5, 5));
        assert_eq!(r("bytes=100-"), RangeAnswer::Unsatisfiable);
        assert_eq!(r("bytes=-0"), RangeAnswer::Unsatisfiable);
        assert_eq!(r("bytes=99999999999999999999999-"), RangeAnswer::Unsatisfiable);
        assert_eq!(r("bytes=0-99999999999999999999999"), p(0, 99));
        assert_eq!(r("bytes=-99999999999999999999999"), p(0, 99));
        // Several ranges: the whole object, never multipart.
        assert_eq!(r("bytes=0-1,5-6"), RangeAnswer::Full);
        let thousand = format!("bytes={}", vec!["0-0"; 1000].join(","));
        assert_eq!(r(&thousand), RangeAnswer::Full);
        // Malformed, negative, reversed, other units: ignored.
        for bad in ["bytes=9-5", "bytes=-5-10", "bytes=--5", "bytes=a-b", "bytes=-", "items=0-5", "0-5", "bytes=+1-2"] {
            assert_eq!(r(bad), RangeAnswer::Full, "{bad}");
        }
        assert_eq!(range(Some("bytes=0-"), None, &k, 0), RangeAnswer::Unsatisfiable);
        // If-Range: only for the version the client holds.
        assert_eq!(range(Some("bytes=0-9"), Some(&k.etag()), &k, 100), p(0, 9));
        assert_eq!(range(Some("bytes=0-9"), Some(&k.last_modified()), &k, 100), p(0, 9));
        assert_eq!(range(Some("bytes=0-9"), Some("\"old\""), &k, 100), RangeAnswer::Full);
    }
}
