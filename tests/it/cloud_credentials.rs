//! Cloud registry credentials, each exchanged from the identity a job runs as and then
//! used as Basic credentials against a real registry (distribution with htpasswd, or the
//! nginx token front) that accepts exactly the credentials the cloud would issue.
//!
//! ECR's GetAuthorizationToken runs against moto. Google's metadata server and token
//! endpoint and Microsoft Entra ID have no local emulator, so nginx stands in for them
//! with fixed answers, and for ACR's `/oauth2/exchange` too: what these tests check is
//! our side of each protocol (paths, methods, headers, the answer's fields, the Basic
//! user each cloud expects), end to end through a push that Trivy-grade tools read back.

use base64::Engine as _;

use crate::harness::*;

/// Push trivy-db to `dest` with `--dest-auth <auth>` and the given environment.
fn push_db(dest: &str, source: &Registry, auth: &str, env: &[(&str, &str)]) -> SyncRun {
    let source = format!("{}/aquasecurity", source.addr);
    sync(&["--to", dest, "--source", &source, "--dest-auth", auth, "--only", "db"], env)
}

fn assert_no_secret(run: &SyncRun, secrets: &[&str]) {
    for s in secrets {
        assert!(!run.stdout.contains(s) && !run.stderr.contains(s), "secret {s:?} leaked");
    }
}

/// Amazon ECR: credentials from GetAuthorizationToken (moto implements it), used as
/// Basic `AWS:<token>` against a registry that expects exactly those credentials.
#[cfg(feature = "ecr")]
#[test]
fn ecr_credentials_come_from_get_authorization_token() {
    let (upstream, source) = Upstream::seeded();
    // moto answers "AWS:<account>-auth-token" for its default account.
    let target = Registry::start_with_auth("AWS", "123456789012-auth-token");
    let moto = Moto::start("unused");
    let env: Vec<(&str, String)> = moto.env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let run = push_db(&format!("oci://{}", target.addr), &source, "ecr", &env);
    run.assert_ok();
    assert!(moto.log().contains("POST / "), "GetAuthorizationToken was not called:\n{}", moto.log());
    let raw = skopeo_raw(&format!("{}/aquasecurity/trivy-db:2", target.addr), Some("AWS:123456789012-auth-token"));
    assert_eq!(raw, upstream.db.manifest);
    assert_no_secret(&run, &["123456789012-auth-token"]);
}

/// Google: the metadata server's token (Cloud Run, GKE, GCE), a gcloud user login
/// refreshed at its token URI, and a service-account key sent as `_json_key_base64`.
#[test]
fn gar_credentials_from_the_metadata_server_a_user_login_and_a_key_file() {
    let (upstream, source) = Upstream::seeded();
    let google = Nginx::start(
        "    location = /computeMetadata/v1/instance/service-accounts/default/token {\n\
               if ($http_metadata_flavor != \"Google\") { return 403; }\n\
               default_type application/json;\n\
               return 200 '{\"access_token\":\"ya29.metadata-token\",\"expires_in\":3599,\"token_type\":\"Bearer\"}';\n\
             }\n\
             location = /token {\n\
               if ($request_method != POST) { return 405; }\n\
               default_type application/json;\n\
               return 200 '{\"access_token\":\"ya29.user-token\",\"expires_in\":3599,\"token_type\":\"Bearer\"}';\n\
             }",
    );

    // On Google Cloud: GCE_METADATA_HOST is where Google's own libraries look too.
    let target = Registry::start_with_auth("oauth2accesstoken", "ya29.metadata-token");
    let run = push_db(&format!("oci://{}", target.addr), &source, "gar", &[("GCE_METADATA_HOST", &google.addr)]);
    run.assert_ok();
    let raw =
        skopeo_raw(&format!("{}/aquasecurity/trivy-db:2", target.addr), Some("oauth2accesstoken:ya29.metadata-token"));
    assert_eq!(raw, upstream.db.manifest);

    // The identity exchange follows --retries like any request: a metadata server that
    // throttles twice is asked three times with --retries 2, and given up on after two
    // attempts with --retries 1.
    let token = "/computeMetadata/v1/instance/service-accounts/default/token";
    let throttled_push = |retries: &str| {
        let rule =
            Rule { method: "GET", path: token.into(), occurrences: vec![1, 2], action: Action::Status(503, None) };
        let proxy = FaultProxy::start(&google.addr, vec![rule]);
        let env = [
            ("GCE_METADATA_HOST", proxy.addr.as_str()),
            ("TRIVY_MIRROR_RETRY_BASE_MS", "1"),
            ("TRIVY_MIRROR_RETRIES", retries),
        ];
        let run = push_db(&format!("oci://{}", target.addr), &source, "gar", &env);
        (run, proxy.log().iter().filter(|l| l.contains(token)).count())
    };
    let (run, asked) = throttled_push("2");
    run.assert_ok();
    assert_eq!(asked, 3);
    let (run, asked) = throttled_push("1");
    assert!(!run.success);
    assert_eq!(asked, 2);
    assert!(run.failure(0).contains("gave up after 2 attempts"), "{}", run.failure(0));
    assert_no_secret(&run, &["ya29.metadata-token"]);

    // A developer's `gcloud auth application-default login`, refreshed at its token URI.
    let dir = tempfile::tempdir().unwrap();
    let user = dir.path().join("user.json");
    std::fs::write(
        &user,
        format!(
            r#"{{"type":"authorized_user","client_id":"cid","client_secret":"csecret-1","refresh_token":"1//refresh-1","token_uri":"http://{}/token"}}"#,
            google.addr
        ),
    )
    .unwrap();
    let target = Registry::start_with_auth("oauth2accesstoken", "ya29.user-token");
    let run = push_db(
        &format!("oci://{}", target.addr),
        &source,
        "gar",
        &[("GOOGLE_APPLICATION_CREDENTIALS", user.to_str().unwrap())],
    );
    run.assert_ok();
    assert!(google.access_log().contains("\"POST /token"), "{}", google.access_log());
    assert_no_secret(&run, &["ya29.user-token", "csecret-1", "1//refresh-1"]);

    // A service-account key: Artifact Registry takes it base64-encoded as the password.
    let key = dir.path().join("key.json");
    let key_json = r#"{"type":"service_account","project_id":"p","private_key_id":"kid","private_key":"-----BEGIN PRIVATE KEY-----\nMIIBVQ\n-----END PRIVATE KEY-----\n","client_email":"mirror@p.iam.gserviceaccount.com"}"#;
    std::fs::write(&key, key_json).unwrap();
    let b64 = base64::engine::general_purpose::STANDARD;
    let basic = b64.encode(format!("_json_key_base64:{}", b64.encode(key_json)));
    let registry = Registry::start();
    let front = crate::registry::token_front(&registry, Some(&basic));
    let run = push_db(
        &format!("oci://{}", front.addr),
        &source,
        "gar",
        &[("GOOGLE_APPLICATION_CREDENTIALS", key.to_str().unwrap())],
    );
    run.assert_ok();
    assert_eq!(skopeo_raw(&format!("{}/aquasecurity/trivy-db:2", registry.addr), None), upstream.db.manifest);
    assert_no_secret(&run, &["MIIBVQ", &b64.encode(key_json)]);

    // No identity at all: a clear error that says what to set.
    let run = push_db(
        &format!("oci://{}", target.addr),
        &source,
        "gar",
        &[("GCE_METADATA_HOST", &format!("127.0.0.1:{}", free_port()))],
    );
    assert!(!run.success);
    let err = run.entries()[0]["error"].as_str().unwrap_or_default().to_string();
    assert!(err.contains("GOOGLE_APPLICATION_CREDENTIALS") && err.contains("metadata server"), "{err}");
}

/// Azure: an Entra ID token (client secret, then a Container Apps managed identity)
/// exchanged at the registry's `/oauth2/exchange` for an ACR refresh token, used as the
/// password of the all-zero user, as `az acr login` does.
#[test]
fn acr_credentials_from_an_entra_id_token_exchange() {
    let (upstream, source) = Upstream::seeded();
    let zero = "00000000-0000-0000-0000-000000000000";
    let registry = Registry::start_with_auth(zero, "acr-refresh-token-1");
    let acr = Nginx::start(&format!(
        "    location = /tenant-1/oauth2/v2.0/token {{\n\
               if ($request_method != POST) {{ return 405; }}\n\
               default_type application/json;\n\
               return 200 '{{\"access_token\":\"entra-token-1\",\"token_type\":\"Bearer\",\"expires_in\":3599}}';\n\
             }}\n\
             location = /msi/token {{\n\
               if ($http_x_identity_header != \"identity-header-1\") {{ return 401; }}\n\
               if ($arg_resource != \"https://containerregistry.azure.net\") {{ return 400; }}\n\
               default_type application/json;\n\
               return 200 '{{\"access_token\":\"entra-token-2\",\"token_type\":\"Bearer\"}}';\n\
             }}\n\
             location = /oauth2/exchange {{\n\
               if ($request_method != POST) {{ return 405; }}\n\
               if ($content_type != \"application/x-www-form-urlencoded\") {{ return 415; }}\n\
               default_type application/json;\n\
               return 200 '{{\"refresh_token\":\"acr-refresh-token-1\"}}';\n\
             }}\n\
             location / {{ proxy_pass http://{}; proxy_set_header Host $http_host; client_max_body_size 0; }}",
        registry.addr
    ));
    let dest = format!("oci://{}", acr.addr);
    let authority = format!("http://{}", acr.addr);
    let run = push_db(
        &dest,
        &source,
        "acr",
        &[
            ("AZURE_AUTHORITY_HOST", &authority),
            ("AZURE_TENANT_ID", "tenant-1"),
            ("AZURE_CLIENT_ID", "client-1"),
            ("AZURE_CLIENT_SECRET", "entra-secret-1"),
        ],
    );
    run.assert_ok();
    let log = acr.access_log();
    assert!(log.contains("\"POST /tenant-1/oauth2/v2.0/token") && log.contains("\"POST /oauth2/exchange"), "{log}");
    let creds = format!("{zero}:acr-refresh-token-1");
    assert_eq!(skopeo_raw(&format!("{}/aquasecurity/trivy-db:2", registry.addr), Some(&creds)), upstream.db.manifest);
    assert_no_secret(&run, &["entra-secret-1", "entra-token-1", "acr-refresh-token-1"]);

    // Container Apps Jobs: the managed identity endpoint and header they inject.
    let run = push_db(
        &format!("{dest}/msi"),
        &source,
        "acr",
        &[("IDENTITY_ENDPOINT", &format!("http://{}/msi/token", acr.addr)), ("IDENTITY_HEADER", "identity-header-1")],
    );
    run.assert_ok();
    assert!(acr.access_log().contains("\"GET /msi/token?api-version=2019-08-01"), "{}", acr.access_log());
    assert_no_secret(&run, &["identity-header-1", "entra-token-2", "acr-refresh-token-1"]);
}
