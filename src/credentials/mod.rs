//! Registry credentials: what they are ([`Credentials`], with every secret in a
//! [`Secret`] whose `Debug` prints `***`), where they come from ([`docker`] config and
//! credential helpers, [`cloud`] identity exchanges), and the policy that picks one for a
//! host ([`resolve`]). Answering a registry's auth challenge with them is the registry
//! client's business (`registry::challenge`).

pub mod cloud;
pub mod docker;

use std::fmt;

use base64::Engine as _;

use crate::error::Result;

/// A cloud whose registry credentials are exchanged from the environment's identity.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cloud {
    /// Amazon ECR (`GetAuthorizationToken`; needs the `ecr` cargo feature).
    Ecr,
    /// Google Artifact Registry / gcr.io (application default credentials).
    Gar,
    /// Azure Container Registry (Entra ID token exchanged for an ACR refresh token).
    Acr,
}

impl Cloud {
    /// The cloud that runs a registry host, recognised by its name.
    pub fn for_host(host: &str) -> Option<Cloud> {
        let name = host.split(':').next().unwrap_or(host).to_ascii_lowercase();
        if is_ecr_host(&name) {
            Some(Cloud::Ecr)
        } else if name.ends_with("-docker.pkg.dev") || name == "gcr.io" || name.ends_with(".gcr.io") {
            Some(Cloud::Gar)
        } else if [".azurecr.io", ".azurecr.cn", ".azurecr.us"].iter().any(|s| name.ends_with(s)) {
            Some(Cloud::Acr)
        } else {
            None
        }
    }
}

/// Whether a host is an Amazon ECR private registry (`<account>.dkr.ecr.<region>.amazonaws.com[.cn]`).
pub fn is_ecr_host(host: &str) -> bool {
    let host = host.split(':').next().unwrap_or(host);
    let parts: Vec<&str> = host.split('.').collect();
    parts.len() >= 6
        && parts[0].len() == 12
        && parts[0].bytes().all(|b| b.is_ascii_digit())
        && parts[1] == "dkr"
        && parts[2] == "ecr"
        && (host.ends_with(".amazonaws.com") || host.ends_with(".amazonaws.com.cn"))
}

/// Reads an environment variable: the process environment in the binary
/// ([`process_env`]), a fixed map in tests.
pub type Env<'a> = &'a dyn Fn(&str) -> Option<String>;

/// The process environment, for [`Env`].
pub fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

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
    /// A ready bearer token sent as-is, no token exchange.
    Bearer(Secret),
    /// Exchanged on first use from the environment's cloud identity (see [`cloud`]): ECR
    /// `GetAuthorizationToken`, Google application default credentials, or an Entra ID
    /// token exchanged at an ACR.
    Cloud(Cloud),
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

    /// Add these credentials to a plain HTTP request (a mirror behind Basic auth or a
    /// token): Basic or Bearer as they are; nothing for anonymous or cloud credentials.
    pub(crate) fn authorize(&self, req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match self {
            Credentials::Bearer(t) => req.bearer_auth(t.expose()),
            Credentials::Basic { username, password } => req.basic_auth(username, Some(password.expose())),
            Credentials::Anonymous | Credentials::Cloud(_) => req,
        }
    }
}

/// Where a registry's credentials come from when none are given explicitly.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AuthMode {
    /// docker config.json, except that a recognised cloud registry host (ECR, Artifact
    /// Registry, ACR) uses the job's cloud identity unless a `credHelpers` entry is set up
    /// for exactly that host.
    #[default]
    Auto,
    /// docker config.json (auths, credHelpers, credsStore) only.
    Docker,
    /// This cloud's identity exchange, whatever the host.
    Cloud(Cloud),
}

/// The credentials for `host`: `explicit` ones (flags) win; otherwise as `mode` says.
///
/// Why `Auto` prefers the cloud identity for a cloud registry: an `auths` entry there was
/// left by an old `docker login` and has likely expired (ECR tokens last 12 hours), while
/// a `credHelpers` entry mints fresh credentials and was set up on purpose. An unusable
/// docker config is ignored with a warning in that case, since the identity does not need
/// it.
pub fn resolve(host: &str, explicit: Option<Credentials>, mode: AuthMode, env: Env<'_>) -> Result<Credentials> {
    if let Some(c) = explicit {
        return Ok(c);
    }
    let docker = || match docker::config_path(env) {
        Some(path) => docker::lookup(&path, host, env),
        None => Ok(Credentials::Anonymous),
    };
    match mode {
        AuthMode::Cloud(cloud) => Ok(Credentials::Cloud(cloud)),
        AuthMode::Docker => docker(),
        AuthMode::Auto => match Cloud::for_host(host) {
            None => docker(),
            Some(cloud) => match docker::config_path(env).map(|p| docker::helper_for_host(&p, host, env)) {
                Some(Ok(Some(found))) if found != Credentials::Anonymous => Ok(found),
                Some(Err(e)) => {
                    tracing::warn!(error = %e, host, "ignoring docker config; using the cloud identity");
                    Ok(Credentials::Cloud(cloud))
                }
                _ => Ok(Credentials::Cloud(cloud)),
            },
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cloud_hosts() {
        assert_eq!(Cloud::for_host("123456789012.dkr.ecr.eu-west-1.amazonaws.com"), Some(Cloud::Ecr));
        assert_eq!(Cloud::for_host("123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn"), Some(Cloud::Ecr));
        assert_eq!(Cloud::for_host("public.ecr.aws"), None);
        assert_eq!(Cloud::for_host("123.dkr.ecr.eu-west-1.amazonaws.com"), None);
        assert_eq!(Cloud::for_host("europe-west1-docker.pkg.dev"), Some(Cloud::Gar));
        assert_eq!(Cloud::for_host("eu.gcr.io"), Some(Cloud::Gar));
        assert_eq!(Cloud::for_host("myreg.azurecr.io"), Some(Cloud::Acr));
        assert_eq!(Cloud::for_host("myreg.azurecr.io:443"), Some(Cloud::Acr));
        assert_eq!(Cloud::for_host("ghcr.io"), None);
        assert_eq!(Cloud::for_host("azurecr.io.evil.example"), None);
    }

    #[test]
    fn secrets_do_not_print() {
        let c = Credentials::Basic { username: "u".into(), password: Secret::new("hunter2") };
        assert!(!format!("{c:?}").contains("hunter2"));
        assert_eq!(c.basic_header().unwrap(), "Basic dTpodW50ZXIy");
    }

    #[test]
    fn a_configured_helper_wins_over_the_cloud_identity() {
        let host = "myreg.azurecr.io";
        let dir = tempfile::tempdir().unwrap();
        let docker_dir = dir.path().display().to_string();
        let path = format!("{docker_dir}:/usr/bin:/bin");
        let env = |name: &str| match name {
            "DOCKER_CONFIG" => Some(docker_dir.clone()),
            "PATH" => Some(path.clone()),
            _ => None,
        };
        let creds = |mode| resolve(host, None, mode, &env).unwrap();
        // No docker config at all.
        assert_eq!(creds(AuthMode::Auto), Credentials::Cloud(Cloud::Acr));
        assert_eq!(creds(AuthMode::Cloud(Cloud::Gar)), Credentials::Cloud(Cloud::Gar));
        assert_eq!(creds(AuthMode::Docker), Credentials::Anonymous);
        // Explicit credentials beat everything.
        let explicit = Credentials::Bearer(Secret::new("t"));
        assert_eq!(resolve(host, Some(explicit.clone()), AuthMode::Auto, &env).unwrap(), explicit);

        // An `auths` entry (maybe expired) does not beat the cloud identity…
        std::fs::write(dir.path().join("config.json"), r#"{"auths":{"myreg.azurecr.io":{"auth":"dTpw"}}}"#).unwrap();
        assert_eq!(creds(AuthMode::Auto), Credentials::Cloud(Cloud::Acr));
        assert_eq!(creds(AuthMode::Docker), Credentials::Basic { username: "u".into(), password: Secret::new("p") });
        // …a credential helper set up for this very host does; an unusable config is ignored.
        std::fs::write(dir.path().join("config.json"), r#"{"credHelpers":{"myreg.azurecr.io":"env"}}"#).unwrap();
        std::fs::write(
            dir.path().join("docker-credential-env"),
            "#!/bin/sh\necho '{\"Username\":\"helper-user\",\"Secret\":\"helper-secret\"}'\n",
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(dir.path().join("docker-credential-env"), std::fs::Permissions::from_mode(0o755))
            .unwrap();
        assert_eq!(
            creds(AuthMode::Auto),
            Credentials::Basic { username: "helper-user".into(), password: Secret::new("helper-secret") }
        );
        std::fs::write(dir.path().join("config.json"), "{").unwrap();
        assert_eq!(creds(AuthMode::Auto), Credentials::Cloud(Cloud::Acr));
        // Any other host reads the docker config as docker does.
        std::fs::write(dir.path().join("config.json"), r#"{"auths":{"ghcr.io":{"auth":"dTpw"}}}"#).unwrap();
        assert_eq!(
            resolve("ghcr.io", None, AuthMode::Auto, &env).unwrap(),
            Credentials::Basic { username: "u".into(), password: Secret::new("p") }
        );
    }
}
