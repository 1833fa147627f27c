//! Registry credentials: where they come from (flags, environment, docker `config.json`,
//! credential helpers) and how a `WWW-Authenticate` challenge is answered (Basic, or a
//! Bearer token fetched from the realm, as ghcr.io does for anonymous pulls).
//!
//! Secrets live in [`Secret`], whose `Debug` prints `***`, so no log line or error can
//! show them by accident.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use serde::Deserialize;

use crate::error::{Error, Result};

/// A string that must never be printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wrap a secret.
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }

    /// The secret itself, for building a header. Never format it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// How to authenticate to one registry.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Credentials {
    /// No credentials; anonymous bearer tokens are still fetched when challenged.
    #[default]
    Anonymous,
    /// Username and password (or token as password), sent as Basic or to the token realm.
    Basic {
        /// The user name.
        username: String,
        /// The password or access token.
        password: Secret,
    },
    /// A ready bearer token sent as-is (`--registry-token` style), no token exchange.
    Bearer(Secret),
    /// Exchanged on first use from the environment's cloud identity (see [`super::cloud`]):
    /// ECR `GetAuthorizationToken`, Google application default credentials, or an Entra
    /// ID token exchanged at an ACR.
    Cloud(super::cloud::Cloud),
}

impl Credentials {
    /// The `Authorization: Basic …` value, if these are Basic credentials.
    pub(crate) fn basic_header(&self) -> Option<String> {
        match self {
            Credentials::Basic { username, password } => Some(format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{username}:{}", password.expose()))
            )),
            _ => None,
        }
    }
}

/// A parsed `WWW-Authenticate` challenge we know how to answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Challenge {
    /// `Basic realm=…`, or a 401 with no usable challenge.
    Basic,
    /// `Bearer realm=…,service=…`.
    Bearer { realm: String, service: Option<String> },
}

impl Challenge {
    /// Parse the header value; Bearer is preferred when several challenges are offered.
    pub(crate) fn parse(header: &str) -> Challenge {
        let Ok(challenges) = http_auth::parse_challenges(header) else {
            return Challenge::Basic;
        };
        for c in &challenges {
            if c.scheme.eq_ignore_ascii_case("bearer") {
                let param = |name: &str| {
                    c.params.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.to_unescaped())
                };
                if let Some(realm) = param("realm") {
                    return Challenge::Bearer { realm, service: param("service") };
                }
            }
        }
        Challenge::Basic
    }
}

#[derive(Deserialize)]
struct TokenResponse {
    token: Option<String>,
    access_token: Option<String>,
}

/// Pull the token out of a token-service answer.
pub(crate) fn parse_token(body: &[u8]) -> Option<Secret> {
    let t: TokenResponse = serde_json::from_slice(body).ok()?;
    t.token.or(t.access_token).filter(|t| !t.is_empty()).map(Secret::new)
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct DockerConfig {
    #[serde(default)]
    auths: HashMap<String, DockerAuth>,
    #[serde(default)]
    creds_store: Option<String>,
    #[serde(default)]
    cred_helpers: HashMap<String, String>,
}

#[derive(Deserialize, Default)]
struct DockerAuth {
    auth: Option<String>,
    username: Option<String>,
    password: Option<String>,
    identitytoken: Option<String>,
}

/// Where docker's `config.json` lives: `$DOCKER_CONFIG/config.json`, else
/// `~/.docker/config.json`.
pub fn docker_config_path() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("DOCKER_CONFIG") {
        return Some(Path::new(&dir).join("config.json"));
    }
    std::env::var_os("HOME").map(|h| Path::new(&h).join(".docker/config.json"))
}

/// Look up credentials for `host` in a docker config file, as docker and crane do:
/// `credHelpers[host]`, then `auths` (keys may be bare hosts or URLs), then `credsStore`.
/// A missing file means anonymous; a malformed one is an error that names the file.
pub fn from_docker_config(path: &Path, host: &str) -> Result<Credentials> {
    let Some(config) = read_docker_config(path)? else {
        return Ok(Credentials::Anonymous);
    };
    if let Some(helper) = config.cred_helpers.get(host) {
        return credential_helper(helper, host);
    }
    let entry = config.auths.iter().find(|(k, _)| auth_key_host(k) == host).map(|(_, v)| v);
    if let Some(a) = entry {
        if let (Some(u), Some(p)) = (&a.username, &a.password) {
            return Ok(Credentials::Basic { username: u.clone(), password: Secret::new(p.clone()) });
        }
        if let Some(token) = &a.identitytoken {
            return Ok(Credentials::Basic { username: "<token>".into(), password: Secret::new(token.clone()) });
        }
        if let Some(auth) = &a.auth {
            let decoded = base64::engine::general_purpose::STANDARD.decode(auth.trim()).map_err(|_| {
                Error::config("docker config", path.display().to_string(), format!("auths[{host}].auth is not base64"))
            })?;
            let decoded = String::from_utf8(decoded).unwrap_or_default();
            if let Some((u, p)) = decoded.split_once(':') {
                return Ok(Credentials::Basic { username: u.to_string(), password: Secret::new(p) });
            }
            return Err(Error::config(
                "docker config",
                path.display().to_string(),
                format!("auths[{host}].auth does not decode to user:password"),
            ));
        }
    }
    match &config.creds_store {
        Some(store) => credential_helper(store, host),
        None => Ok(Credentials::Anonymous),
    }
}

/// Only the credential helper configured for exactly this host (`credHelpers[host]`), if
/// any: what a user set up on purpose for a cloud registry (docker-credential-gcloud,
/// -ecr-login, -acr-env), which mints fresh credentials, unlike an `auths` entry left by
/// an old `docker login`.
pub fn helper_for_host(path: &Path, host: &str) -> Result<Option<Credentials>> {
    match read_docker_config(path)?.and_then(|c| c.cred_helpers.get(host).cloned()) {
        Some(helper) => credential_helper(&helper, host).map(Some),
        None => Ok(None),
    }
}

fn read_docker_config(path: &Path) -> Result<Option<DockerConfig>> {
    let text = match std::fs::read(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(Error::Io { context: format!("reading {}", path.display()), source: e });
        }
    };
    serde_json::from_slice(&text)
        .map(Some)
        .map_err(|e| Error::config("docker config", path.display().to_string(), format!("not valid JSON: {e}")))
}

/// `https://index.docker.io/v1/` → `index.docker.io`; `ghcr.io` → `ghcr.io`.
fn auth_key_host(key: &str) -> &str {
    let k = key.strip_prefix("https://").or_else(|| key.strip_prefix("http://")).unwrap_or(key);
    k.split('/').next().unwrap_or(k)
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct HelperAnswer {
    username: String,
    secret: String,
}

/// Run `docker-credential-<helper> get` with the host on stdin (the docker credential
/// helper protocol). A helper that knows nothing about the host means anonymous.
fn credential_helper(helper: &str, host: &str) -> Result<Credentials> {
    use std::io::Write as _;
    use std::process::{Command, Stdio};
    if !helper.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.')) {
        return Err(Error::config("credential helper", helper, "helper names are letters, digits, - _ ."));
    }
    let program = format!("docker-credential-{helper}");
    let io_err = |e| Error::Io { context: format!("running {program} get for {host}"), source: e };
    let mut child = Command::new(&program)
        .arg("get")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(io_err)?;
    // A helper that answers without reading the host has closed its stdin: not an error.
    match child.stdin.take().expect("piped").write_all(host.as_bytes()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => return Err(io_err(e)),
        _ => {}
    }
    let out = child.wait_with_output().map_err(io_err)?;
    if !out.status.success() {
        // Helpers answer "credentials not found in native keychain" for unknown hosts.
        let stderr = String::from_utf8_lossy(&out.stderr);
        let stdout = String::from_utf8_lossy(&out.stdout);
        if stderr.contains("not found") || stdout.contains("not found") {
            return Ok(Credentials::Anonymous);
        }
        return Err(Error::config("credential helper", program, format!("exited with {} for {host}", out.status)));
    }
    let answer: HelperAnswer = serde_json::from_slice(&out.stdout)
        .map_err(|e| Error::config("credential helper", program.clone(), format!("unexpected output: {e}")))?;
    Ok(Credentials::Basic { username: answer.username, password: Secret::new(answer.secret) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_do_not_print() {
        let c = Credentials::Basic { username: "u".into(), password: Secret::new("hunter2") };
        assert!(!format!("{c:?}").contains("hunter2"));
        assert_eq!(c.basic_header().unwrap(), "Basic dTpodW50ZXIy");
    }

    #[test]
    fn challenges() {
        assert_eq!(
            Challenge::parse(r#"Bearer realm="https://ghcr.io/token",service="ghcr.io",scope="repository:a/b:pull""#),
            Challenge::Bearer { realm: "https://ghcr.io/token".into(), service: Some("ghcr.io".into()) }
        );
        assert_eq!(Challenge::parse(r#"Basic realm="Registry Realm""#), Challenge::Basic);
        assert_eq!(Challenge::parse(""), Challenge::Basic);
        assert_eq!(parse_token(br#"{"access_token":"abc"}"#).unwrap().expose(), "abc");
        assert!(parse_token(br#"{"token":""}"#).is_none());
    }

    #[test]
    fn docker_config_lookup() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        std::fs::write(
            &path,
            r#"{"auths":{"https://reg.example.com/v1/":{"auth":"dXNlcjpwYTpzcw=="},"other.example":{"username":"a","password":"b"}}}"#,
        )
        .unwrap();
        assert_eq!(
            from_docker_config(&path, "reg.example.com").unwrap(),
            Credentials::Basic { username: "user".into(), password: Secret::new("pa:ss") }
        );
        assert_eq!(
            from_docker_config(&path, "other.example").unwrap(),
            Credentials::Basic { username: "a".into(), password: Secret::new("b") }
        );
        assert_eq!(from_docker_config(&path, "ghcr.io").unwrap(), Credentials::Anonymous);
        assert_eq!(from_docker_config(&dir.path().join("none.json"), "x").unwrap(), Credentials::Anonymous);
        std::fs::write(&path, "{").unwrap();
        assert!(from_docker_config(&path, "x").unwrap_err().to_string().contains("not valid JSON"));
    }

    #[test]
    fn credential_helpers_are_invoked() {
        let dir = tempfile::tempdir().unwrap();
        let helper = dir.path().join("docker-credential-testhelper");
        std::fs::write(
            &helper,
            "#!/bin/sh\nread host\nif [ \"$host\" = reg.example.com ]; then echo '{\"ServerURL\":\"reg.example.com\",\"Username\":\"robot\",\"Secret\":\"s3cret\"}'; else echo 'credentials not found in native keychain'; exit 1; fi\n",
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).unwrap();
        let config = dir.path().join("config.json");
        std::fs::write(&config, r#"{"credHelpers":{"reg.example.com":"testhelper"},"credsStore":"testhelper"}"#)
            .unwrap();
        // The helper is found on PATH, as docker finds it.
        let path = format!("{}:{}", dir.path().display(), std::env::var("PATH").unwrap_or_default());
        // SAFETY: this test is the only one in the crate that touches PATH.
        unsafe { std::env::set_var("PATH", path) };
        assert_eq!(
            from_docker_config(&config, "reg.example.com").unwrap(),
            Credentials::Basic { username: "robot".into(), password: Secret::new("s3cret") }
        );
        assert_eq!(from_docker_config(&config, "other.example").unwrap(), Credentials::Anonymous);
    }
}
