//! `--to oci://…`: pushing into a real registry (CNCF distribution), open, with htpasswd
//! Basic auth, and behind an nginx front that imitates a bearer-token registry; checked
//! with skopeo and the real Trivy client.

use crate::harness::*;

fn push(dest: &str, source: &str, extra: &[&str]) -> SyncRun {
    let mut args = vec!["--to", dest, "--source", source];
    args.extend_from_slice(extra);
    sync(&args, &[])
}

#[test]
fn push_into_an_open_registry_keeps_digests_and_reruns_push_nothing() {
    let (upstream, source) = Upstream::seeded();
    let target = Registry::start();
    let dest = format!("oci://{}/mirror", target.addr);
    let src = format!("{}/aquasecurity", source.addr);

    // One artifact at a time, so that the shared blob is already there for the next one.
    let run = push(&dest, &src, &["--concurrency", "1"]);
    run.assert_ok();
    assert_eq!(run.outcomes(), ["written"; 4]);
    for (name, tag, artifact) in upstream.items() {
        let raw = skopeo_raw(&format!("{}/mirror/aquasecurity/{name}:{tag}", target.addr), None);
        assert_eq!(raw, artifact.manifest, "{name}:{tag}: manifest bytes must be identical");
    }
    // The `{}` config blob is shared by all repositories: after the first push it is
    // mounted across repositories instead of uploaded again.
    let log = target.log();
    assert!(log.contains("mount="), "expected a cross-repository mount:\n{log}");

    // Trivy pulls through the namespace prefix: --db-repository HOST/mirror/aquasecurity/trivy-db:2.
    assert_trivy_uses_mirror(&format!("{}/mirror", target.addr));
    let (ok, out) = crate::operate::verify(&[&target.addr, "--namespace", "mirror/aquasecurity"]);
    assert!(ok, "verify against the registry destination:\n{out}");

    let again = push(&dest, &src, &[]);
    again.assert_ok();
    assert_eq!(again.outcomes(), ["unchanged"; 4]);
    let uploads = target.log().matches("\"PUT /v2/").count();
    let after = {
        push(&dest, &src, &[]).assert_ok();
        target.log().matches("\"PUT /v2/").count()
    };
    assert_eq!(uploads, after, "a rerun must push nothing");
}

#[test]
fn push_with_basic_auth_and_trivy_pulls_with_credentials() {
    let (upstream, source) = Upstream::seeded();
    let target = Registry::start_with_auth("pusher", "s3cret-pw");
    let dest = format!("oci://{}", target.addr);
    let src = format!("{}/aquasecurity", source.addr);

    // Wrong credentials: a clear error, and the password never appears in the output.
    let bad = push(&dest, &src, &["--dest-username", "pusher", "--dest-password", "wrong-pw-123"]);
    assert!(!bad.success);
    let err = bad.failure(0);
    assert!(err.contains("401") && err.contains("credentials"), "{err}");
    assert!(!bad.stdout.contains("wrong-pw-123") && !bad.stderr.contains("wrong-pw-123"), "secret leaked");

    let run = push(&dest, &src, &["--dest-username", "pusher", "--dest-password", "s3cret-pw"]);
    run.assert_ok();
    assert!(!run.stdout.contains("s3cret-pw") && !run.stderr.contains("s3cret-pw"), "secret leaked");
    let raw = skopeo_raw(&format!("{}/aquasecurity/trivy-db:2", target.addr), Some("pusher:s3cret-pw"));
    assert_eq!(raw, upstream.db.manifest);

    let trivy = Trivy::new(TRIVY_CURRENT);
    let out = trivy
        .cmd()
        .env("TRIVY_USERNAME", "pusher")
        .env("TRIVY_PASSWORD", "s3cret-pw")
        .args(["image", "--download-db-only", "--db-repository"])
        .arg(format!("{}/aquasecurity/trivy-db:2", target.addr))
        .arg("--cache-dir")
        .arg(trivy.cache())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(trivy.scan_requirements(&[]).contains(&trivy_mirror_fixtures::DEFAULT_CVE_ID.to_string()));

    // Credentials from docker's config.json work too.
    let docker = tempfile::tempdir().unwrap();
    std::fs::write(
        docker.path().join("config.json"),
        format!(r#"{{"auths":{{"{}":{{"auth":"cHVzaGVyOnMzY3JldC1wdw=="}}}}}}"#, target.addr),
    )
    .unwrap();
    let mut cmd = mirror();
    let out = cmd
        .env("DOCKER_CONFIG", docker.path())
        .args(["sync", "--to", &format!("oci://{}/viaconfig", target.addr), "--source", &src, "--only", "db"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
}

/// nginx imitating a token registry (ghcr.io style): `/v2/` challenges with
/// `Bearer realm=…/token`, the token endpoint wants Basic credentials when `basic` is
/// set, and everything else needs the issued bearer token.
pub(crate) fn token_front(registry: &Registry, basic: Option<&str>) -> Nginx {
    let check_basic = match basic {
        Some(b) => format!("if ($http_authorization != \"Basic {b}\") {{ return 401; }}"),
        None => String::new(),
    };
    Nginx::start(&format!(
        "    location = /token {{ {check_basic} default_type application/json; return 200 '{{\"token\":\"tok-123\"}}'; }}\n\
             location / {{\n\
               if ($http_authorization != \"Bearer tok-123\") {{ return 401 '{{\"errors\":[{{\"code\":\"UNAUTHORIZED\"}}]}}'; }}\n\
               proxy_pass http://{};\n\
               proxy_set_header Host $http_host;\n\
               client_max_body_size 0;\n\
             }}\n\
             add_header WWW-Authenticate 'Bearer realm=\"http://$http_host/token\",service=\"test\"' always;",
        registry.addr
    ))
}

#[test]
fn bearer_token_registries_as_source_and_destination() {
    let (upstream, source) = Upstream::seeded();
    let anonymous_source = token_front(&source, None);
    let target = Registry::start();
    // base64("robot:tok-pw")
    let target_front = token_front(&target, Some("cm9ib3Q6dG9rLXB3"));
    let run = push(
        &format!("oci://{}", target_front.addr),
        &format!("{}/aquasecurity", anonymous_source.addr),
        &["--dest-username", "robot", "--dest-password", "tok-pw", "--only", "db,checks"],
    );
    run.assert_ok();
    assert_eq!(run.outcomes(), ["written"; 3]);
    let raw = skopeo_raw(&format!("{}/aquasecurity/trivy-checks:2", target.addr), None);
    assert_eq!(raw, upstream.checks2.manifest);
}

#[test]
fn a_registry_failing_mid_upload_is_retried() {
    let (upstream, source) = Upstream::seeded();
    let target = Registry::start();
    let layer = upstream.db.layer_digest();
    // The first upload of the trivy-db layer fails with 503, the manifest PUT with 500.
    let proxy = FaultProxy::start(
        &target.addr,
        vec![
            Rule {
                method: "PUT",
                path: format!("digest={}", layer.replace(':', "%3A")),
                occurrences: vec![1],
                action: Action::Status(503, Some(1)),
            },
            Rule {
                method: "PUT",
                path: "/manifests/2".into(),
                occurrences: vec![1],
                action: Action::Status(500, None),
            },
        ],
    );
    let run = push(&format!("oci://{}", proxy.addr), &format!("{}/aquasecurity", source.addr), &["--only", "db"]);
    run.assert_ok();
    let log = proxy.log();
    assert!(log.iter().any(|l| l.contains("Status(503")), "the fault was not injected: {log:#?}");
    assert!(log.iter().any(|l| l.contains("Status(500")), "the fault was not injected: {log:#?}");
    let raw = skopeo_raw(&format!("{}/aquasecurity/trivy-db:2", target.addr), None);
    assert_eq!(raw, upstream.db.manifest);
}

/// An nginx ingress in front of the registry with a small request-body limit (nginx's
/// default is 1 MiB) refuses the one-request upload with 413: the push falls back to
/// chunks, halves them until they pass, and the blob lands intact; Trivy then pulls it
/// through the same front. `--dest-chunk-size` starts in chunks without the 413.
#[test]
fn a_proxy_body_limit_falls_back_to_chunked_uploads() {
    let mut upstream = Upstream::standard();
    upstream.db =
        trivy_mirror_fixtures::trivy_db(&trivy_mirror_fixtures::DbOptions { padding: 1_500_000, ..Default::default() });
    let source = Registry::start();
    upstream.seed(&source, "aquasecurity");
    let target = Registry::start();
    let ingress = Nginx::start(&format!(
        "    client_max_body_size 256k;\n\
             location / {{ proxy_pass http://{}; proxy_set_header Host $http_host; }}",
        target.addr
    ));
    let src = format!("{}/aquasecurity", source.addr);
    let run = push(&format!("oci://{}", ingress.addr), &src, &[]);
    run.assert_ok();
    for (name, tag, artifact) in upstream.items() {
        let raw = skopeo_raw(&format!("{}/aquasecurity/{name}:{tag}", target.addr), None);
        assert_eq!(raw, artifact.manifest, "{name}:{tag}");
    }
    let log = ingress.access_log();
    let layer = upstream.db.layer_digest().replace(':', "%3A");
    assert!(log.lines().any(|l| l.contains(&layer) && l.contains("\"PUT ") && l.contains("\" 413 ")), "{log}");
    let patches: Vec<&str> = log.lines().filter(|l| l.contains("\"PATCH ")).collect();
    assert!(patches.iter().any(|l| l.contains("\" 413 ")), "expected a refused chunk to be halved:\n{log}");
    assert!(patches.iter().filter(|l| l.contains("\" 202 ")).count() >= 6, "1.5 MB in ≤ 256 KiB chunks:\n{log}");
    assert_trivy_uses_mirror(&ingress.addr);

    // Chunked from the start: no refused request at all.
    let before = ingress.access_log().matches("\" 413 ").count();
    let run = push(&format!("oci://{}/chunked", ingress.addr), &src, &["--dest-chunk-size", "256KiB", "--only", "db"]);
    run.assert_ok();
    assert_eq!(ingress.access_log().matches("\" 413 ").count(), before, "{}", ingress.access_log());
    let raw = skopeo_raw(&format!("{}/chunked/aquasecurity/trivy-db:2", target.addr), None);
    assert_eq!(raw, upstream.db.manifest);
}

/// A registry with a certificate from a private CA (Harbor behind a company CA), as
/// destination and as source: trusted with the CA file; refused with an error that says
/// what to pass when the CA is missing or wrong; `--insecure-destination` skips the check.
#[test]
fn a_tls_registry_signed_by_a_private_ca() {
    let (upstream, source) = Upstream::seeded();
    let dir = tempfile::tempdir().unwrap();
    let pki = TestCa::new(&dir.path().join("pki"));
    let target = Registry::start_tls(&pki.cert, &pki.key);
    let dest = format!("oci://{}", target.addr);
    let src = format!("{}/aquasecurity", source.addr);
    let error_of = |run: &SyncRun| {
        assert!(!run.success, "expected a failure:\n{}", run.stdout);
        run.failure(0)
    };

    // No CA given: plain http to a local host, as Trivy does; the TLS listener says so.
    let err = error_of(&push(&dest, &src, &["--only", "db"]));
    assert!(err.contains("speaks TLS") && err.contains("--dest-ca-file"), "{err}");
    // Another CA: the certificate is refused, and the message names the fix.
    let other = TestCa::new(&dir.path().join("other"));
    let err = error_of(&push(&dest, &src, &["--only", "db", "--dest-ca-file", other.ca.to_str().unwrap()]));
    assert!(err.contains("certificate") && err.contains("--dest-ca-file"), "{err}");

    push(&dest, &src, &["--dest-ca-file", pki.ca.to_str().unwrap()]).assert_ok();
    for (name, tag, artifact) in upstream.items() {
        assert_eq!(skopeo_raw(&format!("{}/aquasecurity/{name}:{tag}", target.addr), None), artifact.manifest);
    }
    push(&format!("{dest}/insecure"), &src, &["--only", "db", "--insecure-destination"]).assert_ok();
    let raw = skopeo_raw(&format!("{}/insecure/aquasecurity/trivy-db:2", target.addr), None);
    assert_eq!(raw, upstream.db.manifest);

    // A CA file does not break a plain-http local registry: TLS is tried, then http.
    let plain_out = tempfile::tempdir().unwrap();
    let ca = pki.ca.to_str().unwrap();
    let plain = sync(&["--to", plain_out.path().to_str().unwrap(), "--source", &src, "--source-ca-file", ca], &[]);
    plain.assert_ok();

    // The same registry as a source, trusted through --source-ca-file.
    let out = tempfile::tempdir().unwrap();
    let run = sync(
        &[
            "--to",
            out.path().to_str().unwrap(),
            "--source",
            &format!("{}/aquasecurity", target.addr),
            "--source-ca-file",
            pki.ca.to_str().unwrap(),
            "--only",
            "db",
        ],
        &[],
    );
    run.assert_ok();
    assert_eq!(run.outcomes(), ["written"]);
}

/// Registries that refuse Trivy's artifacts, played by the fault proxy: an older trivy-db
/// whose config blob is zero bytes long, into a registry failing on empty blobs as Harbor
/// before 2.0 did (aquasecurity/trivy#4112), and a registry refusing the media types as
/// Quay does. Each error says what failed and what to configure.
#[test]
fn registries_refusing_trivy_artifacts_get_errors_that_say_what_to_configure() {
    use trivy_mirror_fixtures as fx;
    const EMPTY: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    let legacy = fx::trivy_db(&fx::DbOptions { manifest_style: fx::ManifestStyle::LegacyConfig, ..Default::default() });
    let mut manifest = legacy.manifest_json();
    manifest["config"]["digest"] = EMPTY.into();
    manifest["config"]["size"] = 0.into();
    let mut db = legacy.with_manifest(serde_json::to_vec(&manifest).unwrap());
    db.config = Vec::new();
    let source = Registry::start();
    let layout = tempfile::tempdir().unwrap();
    fx::write_oci_layout(layout.path(), &[("2", &db)]).unwrap();
    source.seed(layout.path(), "2", "aquasecurity/trivy-db", "2");

    let target = Registry::start();
    let old_harbor = FaultProxy::start(
        &target.addr,
        vec![Rule {
            method: "PUT",
            path: format!("digest={}", EMPTY.replace(':', "%3A")),
            occurrences: (1..=20).collect(),
            action: Action::Status(500, None),
        }],
    );
    let src = format!("{}/aquasecurity", source.addr);
    let run = push(&format!("oci://{}", old_harbor.addr), &src, &["--only", "db", "--retry-base-ms", "10"]);
    assert!(!run.success);
    let err = run.failure(0);
    assert!(err.contains("HTTP 500") && err.contains("zero-length blob") && err.contains("trivy#4112"), "{err}");

    // A registry refusing the artifact's media types, as Quay does without
    // ALLOWED_OCI_ARTIFACT_TYPES: the error names the types to allow.
    let quay = FaultProxy::start(
        &target.addr,
        vec![Rule {
            method: "PUT",
            path: "/manifests/".into(),
            occurrences: (1..=20).collect(),
            action: Action::Status(415, None),
        }],
    );
    let run = push(&format!("oci://{}", quay.addr), &src, &["--only", "db", "--retry-base-ms", "10"]);
    assert!(!run.success);
    let err = run.failure(0);
    assert!(
        err.contains("HTTP 415")
            && err.contains("application/vnd.aquasec.trivy.config.v1+json")
            && err.contains("application/vnd.aquasec.trivy.db.layer.v1.tar+gzip")
            && err.contains("ALLOWED_OCI_ARTIFACT_TYPES"),
        "{err}"
    );

    // The same artifact into a registry that stores empty blobs: byte-exact.
    push(&format!("oci://{}", target.addr), &src, &["--only", "db"]).assert_ok();
    assert_eq!(skopeo_raw(&format!("{}/aquasecurity/trivy-db:2", target.addr), None), db.manifest);
}
