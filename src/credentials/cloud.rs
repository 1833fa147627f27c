//! Cloud registry credentials: the token exchanges of Amazon ECR, Google Artifact
//! Registry and Azure Container Registry, each ending in plain Basic credentials that
//! the registry client's challenge code then uses like any other.
//!
//! - **ECR**: `GetAuthorizationToken` through aws-config + aws-sdk-ecr (cargo feature
//!   `ecr`, because the AWS SDK is the one heavy dependency here) → `AWS:<token>`.
//! - **GAR** (and gcr.io, which Artifact Registry serves): a service-account key becomes
//!   `_json_key_base64:<base64 key>`; user credentials (`gcloud auth application-default
//!   login`) are refreshed at their token URI; otherwise the metadata server's access
//!   token (Cloud Run, GKE, GCE) → `oauth2accesstoken:<token>`.
//! - **ACR**: a Microsoft Entra ID token (client secret, workload identity, or managed
//!   identity: Container Apps, App Service, VMs) exchanged at the registry's
//!   `/oauth2/exchange` for an ACR refresh token → `00000000-0000-0000-0000-000000000000:
//!   <refresh token>`, as `az acr login` does.
//!
//! GAR and ACR need only HTTP and JSON, so they are always built in. Every token is a
//! [`Secret`]; errors name the endpoint and the environment variable to fix, never a value.

use std::path::PathBuf;
use std::time::Duration;

use base64::Engine as _;
use serde::Deserialize;

use super::{Credentials, Secret};
use crate::error::{Error, Help, Result, Setting};
use crate::http::{ClientOptions, RetryPolicy, is_local_host, read_bounded, status_error, transport_error};

/// Exchange the environment's AWS credentials for ECR registry credentials.
#[cfg(feature = "ecr")]
pub(crate) async fn ecr_credentials() -> Result<Credentials> {
    let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let client = aws_sdk_ecr::Client::new(&config);
    let fail = |reason: String| Error::config(Setting::CloudIdentity, "GetAuthorizationToken", reason);
    let out = client
        .get_authorization_token()
        .send()
        .await
        .map_err(|e| fail(format!("{}", aws_sdk_ecr::error::DisplayErrorContext(&e))))?;
    let token = out
        .authorization_data()
        .first()
        .and_then(|d| d.authorization_token())
        .ok_or_else(|| fail("the answer holds no authorization token".into()))?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(token)
        .map_err(|_| fail("the authorization token is not base64".into()))?;
    let decoded = String::from_utf8(decoded).map_err(|_| fail("the authorization token is not text".into()))?;
    let (user, password) = decoded.split_once(':').ok_or_else(|| fail("the token is not user:password".into()))?;
    Ok(Credentials::Basic { username: user.to_string(), password: Secret::new(password) })
}

/// Without the `ecr` feature, say how to get it.
#[cfg(not(feature = "ecr"))]
pub(crate) async fn ecr_credentials() -> Result<Credentials> {
    Err(Error::config(
        Setting::CloudIdentity,
        "GetAuthorizationToken",
        "this build has no ECR support: rebuild with the cargo feature `ecr`, or log in with `aws ecr get-login-password | docker login` (docker config.json is read)",
    ))
}

/// The most a credentials file or token answer may weigh.
const MAX_CREDENTIAL_BYTES: usize = 64 * 1024;

/// Identity endpoints answer quickly or not at all (off-cloud, nothing listens).
const IDENTITY_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Deserialize)]
struct AccessToken {
    access_token: String,
}

#[derive(Deserialize)]
struct GoogleCredentialsFile {
    #[serde(rename = "type")]
    kind: String,
    client_id: Option<String>,
    client_secret: Option<String>,
    refresh_token: Option<String>,
    token_uri: Option<String>,
}

/// The application default credentials file: GOOGLE_APPLICATION_CREDENTIALS, else gcloud's
/// well-known file when it exists.
fn google_adc_file() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("GOOGLE_APPLICATION_CREDENTIALS") {
        return Some(PathBuf::from(p));
    }
    let dir = match std::env::var_os("CLOUDSDK_CONFIG") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(std::env::var_os("HOME")?).join(".config/gcloud"),
    };
    Some(dir.join("application_default_credentials.json")).filter(|p| p.is_file())
}

/// Google Artifact Registry credentials from the application default credentials.
pub(crate) async fn gar_credentials(retry: &RetryPolicy) -> Result<Credentials> {
    let id = &Identity::new(retry)?;
    if let Some(path) = google_adc_file() {
        let what = format!("Google credentials file {}", path.display());
        let bytes = std::fs::read(&path).map_err(|e| Error::Io { context: format!("reading {what}"), source: e })?;
        if bytes.len() > MAX_CREDENTIAL_BYTES {
            return Err(Error::TooLarge { what, limit: MAX_CREDENTIAL_BYTES as u64 });
        }
        return google_file_credentials(id, &what, &bytes).await;
    }
    let host = std::env::var("GCE_METADATA_HOST").unwrap_or_else(|_| "metadata.google.internal".into());
    let url = format!("http://{host}/computeMetadata/v1/instance/service-accounts/default/token");
    let req = id.http.get(&url).header("Metadata-Flavor", "Google");
    let token = fetch_access_token(id, req, &url).await.map_err(|e| {
        Error::config(
            Setting::CloudIdentity,
            "application default credentials",
            format!(
                "no GOOGLE_APPLICATION_CREDENTIALS, no gcloud application-default login, and the metadata server \
                 did not answer ({e}); run on Google Cloud with a service account, set GOOGLE_APPLICATION_CREDENTIALS, \
                 or give the destination the user oauth2accesstoken and the password \"$(gcloud auth print-access-token)\""
            ),
        )
    })?;
    Ok(Credentials::Basic { username: "oauth2accesstoken".into(), password: token })
}

/// Credentials from a Google credentials file (service-account key or authorized user).
async fn google_file_credentials(id: &Identity, what: &str, bytes: &[u8]) -> Result<Credentials> {
    let file: GoogleCredentialsFile = serde_json::from_slice(bytes)
        .map_err(|e| Error::rejected(what.to_string(), format!("not a Google credentials file: {e}")))?;
    match file.kind.as_str() {
        // Artifact Registry and gcr.io accept the key itself as the password
        // (documented as `docker login -u _json_key_base64`): no token exchange, no
        // JWT signing, and the key never leaves the request to the registry.
        "service_account" => Ok(Credentials::Basic {
            username: "_json_key_base64".into(),
            password: Secret::new(base64::engine::general_purpose::STANDARD.encode(bytes)),
        }),
        "authorized_user" => {
            let (Some(client_id), Some(secret), Some(refresh)) =
                (file.client_id, file.client_secret, file.refresh_token)
            else {
                return Err(Error::rejected(
                    what.to_string(),
                    "an authorized_user file needs client_id, client_secret and refresh_token",
                ));
            };
            let uri = file.token_uri.unwrap_or_else(|| "https://oauth2.googleapis.com/token".into());
            check_identity_url("token_uri", &uri)?;
            let form = [
                ("grant_type", "refresh_token"),
                ("client_id", client_id.as_str()),
                ("client_secret", secret.as_str()),
                ("refresh_token", refresh.as_str()),
            ];
            let token = fetch_access_token(id, id.http.post(&uri).form(&form), &uri).await?;
            Ok(Credentials::Basic { username: "oauth2accesstoken".into(), password: token })
        }
        other => Err(Error::rejected(
            what.to_string(),
            format!(
                "credentials of type {other:?} are not supported; use a service-account key, gcloud \
                 application-default login, or give the destination the password \"$(gcloud auth print-access-token)\""
            ),
        )),
    }
}

/// The Entra ID audience of Azure Container Registry: accepted whether or not the
/// registry still allows ARM-audience tokens (`azureADAuthenticationAsArmPolicy`).
const ACR_RESOURCE: &str = "https://containerregistry.azure.net";

/// An Entra ID access token for ACR, from the first identity the environment offers, in
/// azure-identity's order: client secret, workload identity, managed identity.
async fn entra_token(id: &Identity) -> Result<(Secret, Option<String>)> {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let tenant = var("AZURE_TENANT_ID");
    let client = var("AZURE_CLIENT_ID");
    let scope = format!("{ACR_RESOURCE}/.default");
    if let (Some(tenant), Some(client)) = (&tenant, &client) {
        // A client secret, else a federated token (AKS workload identity, GitHub OIDC…).
        let proof = match (var("AZURE_CLIENT_SECRET"), var("AZURE_FEDERATED_TOKEN_FILE")) {
            (Some(secret), _) => Some(("client_secret", secret)),
            (None, Some(path)) => {
                let jwt = std::fs::read_to_string(&path).map_err(|e| Error::Io {
                    context: format!("reading AZURE_FEDERATED_TOKEN_FILE {path}"),
                    source: e,
                })?;
                Some(("client_assertion", jwt.trim().to_string()))
            }
            (None, None) => None,
        };
        if let Some((kind, proof)) = proof {
            let authority = var("AZURE_AUTHORITY_HOST").unwrap_or_else(|| "https://login.microsoftonline.com".into());
            check_identity_url("AZURE_AUTHORITY_HOST", &authority)?;
            let url = format!("{}/{tenant}/oauth2/v2.0/token", authority.trim_end_matches('/'));
            let mut form = vec![("grant_type", "client_credentials"), ("client_id", client), ("scope", &scope)];
            if kind == "client_assertion" {
                form.push(("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"));
            }
            form.push((kind, &proof));
            let token = fetch_access_token(id, id.http.post(&url).form(&form), &url).await?;
            return Ok((token, Some(tenant.clone())));
        }
    }
    // Managed identity: Container Apps and App Service publish an endpoint, VMs have IMDS.
    let (url, header) = match (var("IDENTITY_ENDPOINT"), var("IDENTITY_HEADER")) {
        (Some(endpoint), Some(header)) => {
            check_platform_endpoint(&endpoint)?;
            (format!("{endpoint}?api-version=2019-08-01&resource={ACR_RESOURCE}"), ("X-IDENTITY-HEADER", header))
        }
        _ => (
            format!(
                "http://169.254.169.254/metadata/identity/oauth2/token?api-version=2018-02-01&resource={ACR_RESOURCE}"
            ),
            ("Metadata", "true".to_string()),
        ),
    };
    let mut url =
        url::Url::parse(&url).map_err(|e| Error::config(Setting::CloudIdentity, url.clone(), e.to_string()))?;
    if let Some(c) = &client {
        url.query_pairs_mut().append_pair("client_id", c);
    }
    let req = id.http.get(url.clone()).header(header.0, header.1);
    let token = fetch_access_token(id, req, url.as_str()).await.map_err(|e| {
        Error::config(
            Setting::CloudIdentity,
            "Entra ID",
            format!(
                "no AZURE_CLIENT_SECRET or AZURE_FEDERATED_TOKEN_FILE (with AZURE_TENANT_ID and AZURE_CLIENT_ID), \
                 and no managed identity answered ({e}); or use the admin user or a repository token as the destination's \
                 username and password"
            ),
        )
    })?;
    Ok((token, tenant))
}

/// Azure Container Registry credentials: an Entra ID token exchanged at
/// `<base>/oauth2/exchange` for an ACR refresh token.
pub(crate) async fn acr_credentials(base: &str, host: &str, retry: &RetryPolicy) -> Result<Credentials> {
    #[derive(Deserialize)]
    struct Exchanged {
        refresh_token: String,
    }
    let id = &Identity::new(retry)?;
    let url = format!("{base}/oauth2/exchange");
    check_identity_url("ACR token exchange", &url)?;
    let (aad, tenant) = entra_token(id).await?;
    let mut form = vec![("grant_type", "access_token"), ("service", host), ("access_token", aad.expose())];
    if let Some(t) = &tenant {
        form.push(("tenant", t));
    }
    let resp = id.http.post(&url).form(&form).send().await.map_err(|e| transport_error("POST", &url, &e))?;
    if !resp.status().is_success() {
        return Err(status_error("POST", &url, resp).await.with_help(Help::GrantAcrPush));
    }
    let body = read_bounded(resp, MAX_CREDENTIAL_BYTES, "POST", &url).await?;
    let answer: Exchanged = serde_json::from_slice(&body)
        .map_err(|e| Error::rejected(format!("ACR token exchange at {url}"), format!("unexpected answer: {e}")))?;
    Ok(Credentials::Basic {
        username: "00000000-0000-0000-0000-000000000000".into(),
        password: Secret::new(answer.refresh_token),
    })
}

/// The client for identity endpoints and the retry policy of the run. Certificates are
/// always verified (whatever `--insecure-destination` says about the registry), and no
/// redirect is followed, so a secret in a form body is never resent elsewhere.
struct Identity {
    http: reqwest::Client,
    retry: RetryPolicy,
}

impl Identity {
    fn new(retry: &RetryPolicy) -> Result<Identity> {
        let http = crate::http::client(&ClientOptions {
            no_redirects: true,
            read_timeout: Some(IDENTITY_TIMEOUT),
            total_timeout: Some(IDENTITY_TIMEOUT),
            ..ClientOptions::default()
        })?;
        Ok(Identity { http, retry: retry.clone() })
    }
}

/// Identity endpoints get secrets: https only, except on this machine.
fn check_identity_url(what: &'static str, url: &str) -> Result<()> {
    let parsed = url::Url::parse(url)
        .map_err(|e| Error::config(Setting::CloudIdentity, format!("{what} {url}"), e.to_string()))?;
    let local = parsed.host_str().is_some_and(|h| is_local_host(&format!("{h}:{}", parsed.port().unwrap_or(80))));
    match parsed.scheme() {
        "https" => Ok(()),
        "http" if local => Ok(()),
        _ => Err(Error::config(
            Setting::CloudIdentity,
            format!("{what} {url}"),
            "credentials are only sent over https (or to this machine)",
        )),
    }
}

/// The managed-identity endpoint the platform publishes: plain http is how App Service
/// and Container Apps serve it, on a loopback, link-local or private address; anything
/// else must be https.
fn check_platform_endpoint(url: &str) -> Result<()> {
    let parsed = url::Url::parse(url).map_err(|e| Error::config(Setting::CloudIdentity, url, e.to_string()))?;
    let internal = match parsed.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback() || ip.is_link_local() || ip.is_private(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d == "localhost",
        None => false,
    };
    match parsed.scheme() {
        "https" => Ok(()),
        "http" if internal => Ok(()),
        _ => Err(Error::config(Setting::CloudIdentity, url, "expected the platform's own http endpoint or https")),
    }
}

/// Send a token request (retried as the run's policy says: identity endpoints throttle
/// and start slowly) and take `access_token` out of the JSON answer.
async fn fetch_access_token(id: &Identity, req: reqwest::RequestBuilder, url: &str) -> Result<Secret> {
    let url = crate::http::strip_query(url);
    let resp = id
        .retry
        .run("token request", || async {
            let this = req.try_clone().expect("token requests have in-memory bodies");
            match this.send().await {
                Ok(resp) if resp.status().is_success() => Ok(resp),
                Ok(resp) => Err(status_error("token request", &url, resp).await),
                Err(e) => Err(transport_error("token request", &url, &e)),
            }
        })
        .await?;
    let body = read_bounded(resp, MAX_CREDENTIAL_BYTES, "token request", &url).await?;
    let answer: AccessToken = serde_json::from_slice(&body)
        .map_err(|e| Error::rejected(format!("token answer from {url}"), format!("no access_token in it: {e}")))?;
    if answer.access_token.is_empty() {
        return Err(Error::rejected(format!("token answer from {url}"), "the access_token is empty"));
    }
    Ok(Secret::new(answer.access_token))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platform_identity_endpoints_may_be_internal_http() {
        assert!(check_platform_endpoint("http://localhost:42356/msi/token").is_ok());
        assert!(check_platform_endpoint("http://169.254.129.3:8081/msi/token").is_ok());
        assert!(check_platform_endpoint("http://172.16.0.5:8081/msi/token").is_ok());
        assert!(check_platform_endpoint("https://identity.example.com/token").is_ok());
        assert!(check_platform_endpoint("http://identity.example.com/token").is_err());
        assert!(check_platform_endpoint("http://8.8.8.8/token").is_err());
    }

    #[test]
    fn identity_urls_need_https_unless_local() {
        assert!(check_identity_url("x", "https://login.microsoftonline.com").is_ok());
        assert!(check_identity_url("x", "http://127.0.0.1:8080/token").is_ok());
        assert!(check_identity_url("x", "http://localhost:8080/token").is_ok());
        let err = check_identity_url("x", "http://login.example.com/token").unwrap_err().to_string();
        assert!(err.contains("https"), "{err}");
        assert!(check_identity_url("x", "file:///etc/passwd").is_err());
    }

    #[tokio::test]
    async fn a_service_account_key_is_the_password() {
        let key = br#"{"type":"service_account","client_email":"m@p.iam.gserviceaccount.com","private_key":"k"}"#;
        let http = &Identity::new(&RetryPolicy::default()).unwrap();
        let Credentials::Basic { username, password } = google_file_credentials(http, "f", key).await.unwrap() else {
            panic!("expected Basic credentials");
        };
        assert_eq!(username, "_json_key_base64");
        assert_eq!(base64::engine::general_purpose::STANDARD.decode(password.expose()).unwrap(), key);

        let err = google_file_credentials(http, "f", br#"{"type":"external_account"}"#).await.unwrap_err();
        assert!(err.to_string().contains("not supported"), "{err}");
        let err = google_file_credentials(http, "f", br#"{"type":"authorized_user"}"#).await.unwrap_err();
        assert!(err.to_string().contains("refresh_token"), "{err}");
        let err = google_file_credentials(http, "f", b"[1]").await.unwrap_err();
        assert!(err.to_string().contains("not a Google credentials file"), "{err}");
    }
}
