//! `serve --htpasswd FILE`: HTTP Basic authentication against Apache htpasswd bcrypt
//! entries (`htpasswd -B`), the scheme Trivy's registry client (`--username/--password`,
//! go-containerregistry's basic transport) and its VEX downloader (`repository.yaml`
//! `username`/`password`) both send.
//!
//! bcrypt is slow by design (tens of milliseconds at cost 10), so a password verified once
//! is remembered as the SHA-256 of the password under its user and later requests compare
//! that digest in constant time; the memory is dropped whenever the file changes. Unknown
//! users are checked against a dummy hash of the same cost so that the answer takes as
//! long as for a wrong password. Unverified attempts are rate-limited per client address.
//! Neither the password nor the Authorization header is ever logged.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, RwLock};
use std::time::{Duration, Instant};

use base64::Engine as _;
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

use super::http::FileKey;
use crate::error::{Error, Result, Setting};

/// Failed attempts allowed per client address within [`WINDOW`] before 429.
const BURST: u32 = 10;
/// The window over which failures are counted.
const WINDOW: Duration = Duration::from_secs(60);
/// How often the file is checked for changes.
const RESTAT: Duration = Duration::from_secs(1);

/// The outcome of checking a request's credentials.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Valid credentials for this user.
    Allowed(String),
    /// Missing or wrong credentials: 401 with the Basic challenge.
    Challenge,
    /// Too many failures from this address: 429, retry after this many seconds.
    Limited(u64),
}

#[derive(Debug)]
struct Users {
    key: Option<FileKey>,
    hashes: HashMap<String, String>,
    /// A hash of the same cost for unknown users.
    dummy: String,
    /// user → SHA-256 of the password bcrypt accepted.
    verified: HashMap<String, [u8; 32]>,
}

/// The htpasswd file, its verified-credential memory and the failure counts.
#[derive(Debug)]
pub struct Auth {
    path: PathBuf,
    users: RwLock<Users>,
    /// When the file was last looked at, in milliseconds since `started` (an atomic: this
    /// is read on every request, from every worker thread).
    last_stat: AtomicU64,
    started: Instant,
    failures: Mutex<HashMap<IpAddr, (u32, Instant)>>,
}

impl Auth {
    /// Load `path`, refusing any entry that is not bcrypt.
    pub fn load(path: &Path) -> Result<Auth> {
        let users = read(path)?;
        Ok(Auth {
            path: path.to_path_buf(),
            users: RwLock::new(users),
            last_stat: AtomicU64::new(0),
            started: Instant::now(),
            failures: Mutex::new(HashMap::new()),
        })
    }

    /// Check an `Authorization` header value from `client`.
    pub async fn check(&self, authorization: Option<&[u8]>, client: IpAddr) -> Verdict {
        self.reload_if_changed();
        let Some((user, password)) = authorization.and_then(parse_basic) else {
            // No credentials at all is the normal first step of a client: not a failure.
            if authorization.is_none() {
                return Verdict::Challenge;
            }
            return self.fail(client);
        };
        let digest: [u8; 32] = Sha256::digest(password.as_bytes()).into();
        let cached = {
            let users = self.users.read().expect("users lock");
            users.verified.get(&user).is_some_and(|d| bool::from(d.ct_eq(&digest)))
        };
        if cached {
            return Verdict::Allowed(user);
        }
        if let Some(wait) = self.limited(client) {
            return Verdict::Limited(wait);
        }
        let (hash, known) = {
            let users = self.users.read().expect("users lock");
            match users.hashes.get(&user) {
                Some(h) => (h.clone(), true),
                None => (users.dummy.clone(), false),
            }
        };
        let ok = tokio::task::spawn_blocking(move || bcrypt::verify(password, &hash).unwrap_or(false))
            .await
            .unwrap_or(false);
        if ok && known {
            self.users.write().expect("users lock").verified.insert(user.clone(), digest);
            return Verdict::Allowed(user);
        }
        self.fail(client)
    }

    fn fail(&self, client: IpAddr) -> Verdict {
        let mut failures = self.failures.lock().expect("failures lock");
        let now = Instant::now();
        if failures.len() > 10_000 {
            failures.retain(|_, (_, since)| now.duration_since(*since) < WINDOW);
        }
        let entry = failures.entry(client).or_insert((0, now));
        if now.duration_since(entry.1) >= WINDOW {
            *entry = (0, now);
        }
        entry.0 += 1;
        Verdict::Challenge
    }

    /// Seconds to wait if `client` used up its failures in the current window.
    fn limited(&self, client: IpAddr) -> Option<u64> {
        let failures = self.failures.lock().expect("failures lock");
        let (count, since) = failures.get(&client)?;
        let elapsed = since.elapsed();
        (*count >= BURST && elapsed < WINDOW).then(|| (WINDOW - elapsed).as_secs().max(1))
    }

    /// Re-read the file when it changed (checked at most once a second). A file that
    /// became unreadable or invalid keeps the previous users, with a warning.
    fn reload_if_changed(&self) {
        let now_ms = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let last = self.last_stat.load(Ordering::Relaxed);
        // One thread per second wins the exchange and looks at the file.
        if now_ms.saturating_sub(last) < RESTAT.as_millis() as u64
            || self.last_stat.compare_exchange(last, now_ms, Ordering::Relaxed, Ordering::Relaxed).is_err()
        {
            return;
        }
        let now = std::fs::metadata(&self.path).ok().map(|m| FileKey::of(&m));
        if now == self.users.read().expect("users lock").key {
            return;
        }
        match read(&self.path) {
            Ok(users) => {
                tracing::info!(file = %self.path.display(), users = users.hashes.len(), "htpasswd file reloaded");
                *self.users.write().expect("users lock") = users;
            }
            Err(e) => tracing::warn!("keeping the previous users: {e}"),
        }
    }
}

/// `Basic base64(user:password)` → (user, password); None for anything else.
fn parse_basic(value: &[u8]) -> Option<(String, String)> {
    let value = std::str::from_utf8(value).ok()?.trim();
    let (scheme, token) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD.decode(token.trim()).ok()?;
    let (user, password) = std::str::from_utf8(&decoded).ok()?.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

fn read(path: &Path) -> Result<Users> {
    let bad = |reason: String| Error::config(Setting::Htpasswd, path.display().to_string(), reason);
    let meta = std::fs::metadata(path).map_err(|e| bad(format!("cannot be read: {e}")))?;
    let text = std::fs::read_to_string(path).map_err(|e| bad(format!("cannot be read: {e}")))?;
    let hashes = parse(&text).map_err(|e| bad(e.to_string()))?;
    // The dummy hash has the cost of the real ones, so unknown users take as long.
    let cost = hashes.values().next().and_then(|h| h.get(4..6)).and_then(|c| c.parse().ok()).unwrap_or(10);
    let dummy = bcrypt::hash("trivy-mirror: no such user", cost).map_err(|e| bad(e.to_string()))?;
    Ok(Users { key: Some(FileKey::of(&meta)), hashes, dummy, verified: HashMap::new() })
}

/// Parse htpasswd text: `user:hash` lines, `#` comments and blank lines ignored.
/// Why an htpasswd file is refused.
#[derive(Debug, thiserror::Error)]
enum Refused {
    /// A line without a colon.
    #[error("line {0} is not user:hash")]
    NotUserHash(usize),
    /// A hash other than bcrypt.
    #[error("line {line} (user {user:?}) has {kind} hash; only bcrypt entries are accepted (htpasswd -B)")]
    NotBcrypt {
        /// The line number.
        line: usize,
        /// Whose entry.
        user: String,
        /// What kind of hash it is.
        kind: &'static str,
    },
    /// No entry at all.
    #[error("has no users")]
    Empty,
}

fn parse(text: &str) -> std::result::Result<HashMap<String, String>, Refused> {
    let mut users = HashMap::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let n = i + 1;
        let Some((user, hash)) = line.split_once(':') else {
            return Err(Refused::NotUserHash(n));
        };
        let kind = if ["$2y$", "$2b$", "$2a$"].iter().any(|p| hash.starts_with(p)) && hash.len() == 60 {
            None
        } else if hash.starts_with("$apr1$") {
            Some("an MD5 ($apr1$)")
        } else if hash.starts_with("{SHA}") {
            Some("a SHA-1 ({SHA})")
        } else if hash.starts_with('$') {
            Some("a crypt(3)")
        } else {
            Some("a plain-text or DES crypt")
        };
        if let Some(kind) = kind {
            return Err(Refused::NotBcrypt { line: n, user: user.to_string(), kind });
        }
        users.insert(user.to_string(), hash.to_string());
    }
    if users.is_empty() {
        return Err(Refused::Empty);
    }
    Ok(users)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_bcrypt_entries_are_accepted() {
        let bcrypt = bcrypt::hash("pw", 4).unwrap();
        assert_eq!(parse(&format!("# users\n\nalice:{bcrypt}\n")).unwrap()["alice"], bcrypt);
        for (line, kind) in [
            ("bob:$apr1$abc$def", "MD5"),
            ("bob:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=", "SHA-1"),
            ("bob:$6$salt$hash", "crypt"),
            ("bob:secret", "plain-text"),
        ] {
            let err = parse(&format!("alice:{bcrypt}\n{line}\n")).unwrap_err().to_string();
            assert!(err.contains("line 2") && err.contains(kind) && !err.contains("secret"), "{err}");
        }
        assert!(parse("# nobody\n").is_err());
    }

    #[test]
    fn basic_headers() {
        assert_eq!(parse_basic(b"Basic YWxpY2U6cDpw"), Some(("alice".into(), "p:p".into())));
        assert_eq!(parse_basic(b"basic YWxpY2U6cDpw"), Some(("alice".into(), "p:p".into())));
        for bad in [&b"Basic !!!"[..], b"Bearer YWxpY2U6cDpw", b"Basic YWxpY2U=", b"Basic", b"\xff"] {
            assert_eq!(parse_basic(bad), None);
        }
    }

    #[tokio::test]
    async fn verified_credentials_are_remembered_and_failures_limited() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("htpasswd");
        std::fs::write(&file, format!("alice:{}\n", bcrypt::hash("right", 4).unwrap())).unwrap();
        let auth = Auth::load(&file).unwrap();
        let basic = |u: &str, p: &str| {
            format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"))).into_bytes()
        };
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        assert_eq!(auth.check(None, ip).await, Verdict::Challenge);
        assert_eq!(auth.check(Some(&basic("alice", "right")), ip).await, Verdict::Allowed("alice".into()));
        for _ in 0..BURST {
            assert_eq!(auth.check(Some(&basic("alice", "wrong")), ip).await, Verdict::Challenge);
        }
        assert!(matches!(auth.check(Some(&basic("mallory", "x")), ip).await, Verdict::Limited(s) if s > 0));
        // A remembered credential still works from that address; another address is not limited.
        assert_eq!(auth.check(Some(&basic("alice", "right")), ip).await, Verdict::Allowed("alice".into()));
        let other: IpAddr = "192.0.2.2".parse().unwrap();
        assert_eq!(auth.check(Some(&basic("alice", "wrong")), other).await, Verdict::Challenge);
    }
}
