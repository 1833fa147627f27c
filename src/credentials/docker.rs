//! Credentials from docker's `config.json`, as docker and crane read it: `credHelpers`
//! for the host, then `auths` (keys may be bare hosts or URLs), then `credsStore`, where
//! a helper is a `docker-credential-<name>` program speaking the credential-helper
//! protocol. Environment variables are read through an injected [`Env`], so tests need
//! not change the process environment.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use serde::Deserialize;

use super::{Credentials, Env, Secret};
use crate::error::{Error, Result, Setting};

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
pub fn config_path(env: Env<'_>) -> Option<PathBuf> {
    if let Some(dir) = env("DOCKER_CONFIG") {
        return Some(Path::new(&dir).join("config.json"));
    }
    env("HOME").map(|h| Path::new(&h).join(".docker/config.json"))
}

/// Look up credentials for `host` in a docker config file, as docker and crane do:
/// `credHelpers[host]`, then `auths` (keys may be bare hosts or URLs), then `credsStore`.
/// A missing file means anonymous; a malformed one is an error that names the file.
pub fn lookup(path: &Path, host: &str, env: Env<'_>) -> Result<Credentials> {
    let Some(config) = read_docker_config(path)? else {
        return Ok(Credentials::Anonymous);
    };
    if let Some(helper) = config.cred_helpers.get(host) {
        return credential_helper(helper, host, env);
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
                Error::config(
                    Setting::DockerConfig,
                    path.display().to_string(),
                    format!("auths[{host}].auth is not base64"),
                )
            })?;
            let decoded = String::from_utf8(decoded).unwrap_or_default();
            if let Some((u, p)) = decoded.split_once(':') {
                return Ok(Credentials::Basic { username: u.to_string(), password: Secret::new(p) });
            }
            return Err(Error::config(
                Setting::DockerConfig,
                path.display().to_string(),
                format!("auths[{host}].auth does not decode to user:password"),
            ));
        }
    }
    match &config.creds_store {
        Some(store) => credential_helper(store, host, env),
        None => Ok(Credentials::Anonymous),
    }
}

/// Only the credential helper configured for exactly this host (`credHelpers[host]`), if
/// any: what a user set up on purpose for a cloud registry (docker-credential-gcloud,
/// -ecr-login, -acr-env), which mints fresh credentials, unlike an `auths` entry left by
/// an old `docker login`.
pub fn helper_for_host(path: &Path, host: &str, env: Env<'_>) -> Result<Option<Credentials>> {
    match read_docker_config(path)?.and_then(|c| c.cred_helpers.get(host).cloned()) {
        Some(helper) => credential_helper(&helper, host, env).map(Some),
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
        .map_err(|e| Error::config(Setting::DockerConfig, path.display().to_string(), format!("not valid JSON: {e}")))
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
/// helper protocol), found on `env`'s PATH. A helper that knows nothing about the host
/// means anonymous.
fn credential_helper(helper: &str, host: &str, env: Env<'_>) -> Result<Credentials> {
    use std::io::Write as _;
    use std::process::{Command, Stdio};
    if !helper.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.')) {
        return Err(Error::config(Setting::CredentialHelper, helper, "helper names are letters, digits, - _ ."));
    }
    let program = format!("docker-credential-{helper}");
    let io_err = |e| Error::Io { context: format!("running {program} get for {host}"), source: e };
    let mut command = Command::new(&program);
    // A PATH set on the command is also where the program is looked up.
    if let Some(path) = env("PATH") {
        command.env("PATH", path);
    }
    let mut child = command
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
        return Err(Error::config(
            Setting::CredentialHelper,
            program,
            format!("exited with {} for {host}", out.status),
        ));
    }
    let answer: HelperAnswer = serde_json::from_slice(&out.stdout)
        .map_err(|e| Error::config(Setting::CredentialHelper, program.clone(), format!("unexpected output: {e}")))?;
    Ok(Credentials::Basic { username: answer.username, password: Secret::new(answer.secret) })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
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
            lookup(&path, "reg.example.com", &no_env).unwrap(),
            Credentials::Basic { username: "user".into(), password: Secret::new("pa:ss") }
        );
        assert_eq!(
            lookup(&path, "other.example", &no_env).unwrap(),
            Credentials::Basic { username: "a".into(), password: Secret::new("b") }
        );
        assert_eq!(lookup(&path, "ghcr.io", &no_env).unwrap(), Credentials::Anonymous);
        assert_eq!(lookup(&dir.path().join("none.json"), "x", &no_env).unwrap(), Credentials::Anonymous);
        std::fs::write(&path, "{").unwrap();
        assert!(lookup(&path, "x", &no_env).unwrap_err().to_string().contains("not valid JSON"));
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
        let path = format!("{}:/usr/bin:/bin", dir.path().display());
        let env = |name: &str| (name == "PATH").then(|| path.clone());
        assert_eq!(
            lookup(&config, "reg.example.com", &env).unwrap(),
            Credentials::Basic { username: "robot".into(), password: Secret::new("s3cret") }
        );
        assert_eq!(lookup(&config, "other.example", &env).unwrap(), Credentials::Anonymous);
    }
}
