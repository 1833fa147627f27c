//! VEX Hub mirroring: a fixture VEX repository served by nginx as the upstream, mirrored
//! into a local directory (served by `trivy-mirror serve`), into moto S3 behind the CDN
//! stand-in, and through a registry into a second mirror, then used by the real Trivy
//! client (0.76 and 0.71).

use std::path::Path;

use trivy_mirror_fixtures as fx;

use crate::harness::*;

/// An nginx serving a VEX repository the way GitHub does: the manifest, and the archive
/// in tar.gz and zip forms with a `vexhub-main/` top directory.
pub(crate) struct UpstreamVex {
    nginx: Nginx,
}

impl UpstreamVex {
    pub(crate) fn start() -> UpstreamVex {
        let nginx = Nginx::start("    root @WWW@;\n    location / { }");
        let root = nginx.static_root();
        let repo = fx::vex_repository(&fx::VexOptions::default());
        std::fs::create_dir_all(root.join("archive/refs/heads")).unwrap();
        std::fs::write(root.join("archive/refs/heads/main.tar.gz"), &repo.tar_gz).unwrap();
        std::fs::write(root.join("archive/refs/heads/main.zip"), &repo.zip).unwrap();
        let location = format!("http://{}/archive/refs/heads/main.tar.gz//{}", nginx.addr, fx::VEX_TOP_DIR);
        std::fs::write(root.join("vex-repository.json"), fx::vex_manifest(&[&location])).unwrap();
        UpstreamVex { nginx }
    }

    pub(crate) fn manifest_url(&self) -> String {
        format!("http://{}/vex-repository.json", self.nginx.addr)
    }

    fn replace_archive(&self, bytes: &[u8]) {
        std::fs::write(self.nginx.static_root().join("archive/refs/heads/main.tar.gz"), bytes).unwrap();
    }
}

/// Point a Trivy home at one VEX repository (the default one disabled).
fn configure_vex_repo(trivy: &Trivy, url: &str) {
    let dir = trivy.home.path().join(".trivy/vex");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("repository.yaml"),
        format!("repositories:\n  - name: default\n    url: https://github.com/aquasecurity/vexhub\n    enabled: false\n  - name: mirror\n    url: {url}\n    enabled: true\n"),
    )
    .unwrap();
}

/// Trivy downloads the mirrored VEX repository, and the fixture CVE is then suppressed.
pub(crate) fn assert_trivy_applies_vex(version: &str, repo_url: &str) {
    let trivy = Trivy::new(version);
    configure_vex_repo(&trivy, repo_url);
    // The vulnerability DB comes straight from a local fixture registry: only VEX is under test.
    let registry = Registry::start();
    let upstream = Upstream::standard();
    let dir = tempfile::tempdir().unwrap();
    fx::write_oci_layout(dir.path(), &[("2", &upstream.db)]).unwrap();
    registry.seed(dir.path(), "2", "aquasecurity/trivy-db", "2");
    assert!(trivy.download_db(&registry.addr).status.success());
    assert!(trivy.scan_requirements(&[]).contains(&fx::DEFAULT_CVE_ID.to_string()), "the CVE must show without VEX");

    trivy.run_ok(&["vex", "repo", "download"]);
    let ids = trivy.scan_requirements(&["--vex", "repo", "--skip-vex-repo-update"]);
    assert!(
        !ids.contains(&fx::DEFAULT_CVE_ID.to_string()),
        "trivy {version}: VEX from {repo_url} did not apply: {ids:?}"
    );
    let out = trivy.scan_project(&["--vex", "repo", "--skip-vex-repo-update", "--show-suppressed"]);
    let table = text(&out.stdout);
    assert!(table.contains(fx::DEFAULT_CVE_ID) && table.contains("not_affected"), "{table}");
}

fn sync_vex(dest: &str, base_url: &str, source: &str, extra: &[&str], env: &[(&str, &str)]) -> SyncRun {
    let mut args =
        vec!["--only", "vex", "--to", dest, "--base-url", base_url, "--allow-http-base-url", "--vex-source", source];
    args.extend_from_slice(extra);
    sync(&args, env)
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn vex_mirrored_to_a_directory_is_used_by_trivy() {
    let upstream = UpstreamVex::start();
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("mirror");
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");

    let run = sync_vex(dir.to_str().unwrap(), &base, &upstream.manifest_url(), &[], &[]);
    run.assert_ok();
    assert_eq!(run.outcomes(), ["written"]);

    let manifest: serde_json::Value =
        serde_json::from_slice(&read(&dir.join(".well-known/vex-repository.json"))).unwrap();
    assert_eq!(manifest["versions"][0]["locations"][0]["url"], format!("{base}/main.tar.gz//vexhub-main"));
    assert_eq!(manifest["versions"][0]["update_interval"], "24h");
    assert_eq!(manifest["versions"][0]["spec_version"], "0.1");
    assert_eq!(read(&dir.join("main.tar.gz")), fx::vex_repository(&fx::VexOptions::default()).tar_gz);

    let _serve = Serve::start_on(&dir, port);
    let (status, h, _) = fetch("HEAD", &format!("{base}/main.tar.gz"));
    assert_eq!(status, 200);
    assert_eq!(header(&h, "content-type"), "application/gzip");
    assert_eq!(header(&h, "content-encoding"), "");
    assert_ne!(header(&h, "content-length"), "0", "go-getter skips a download whose HEAD says length 0");
    let (_, h, _) = fetch("GET", &format!("{base}/.well-known/vex-repository.json"));
    assert_eq!(header(&h, "content-type"), "application/json");
    assert_eq!(header(&h, "cache-control"), "public, max-age=300");

    assert_trivy_applies_vex(TRIVY_CURRENT, &base);
    assert_trivy_applies_vex(TRIVY_071, &base);

    // Unchanged upstream: nothing is rewritten, so the archive's ETag stays valid.
    let before = snapshot(&dir);
    let again = sync_vex(dir.to_str().unwrap(), &base, &upstream.manifest_url(), &[], &[]);
    again.assert_ok();
    assert_eq!(again.outcomes(), ["unchanged"]);
    assert_eq!(snapshot(&dir), before);

    // Files lost behind the publisher's back, then a moved mirror: a plain sync (no
    // --recheck) publishes them again, for the URL it is given now.
    let published = read(&dir.join(".well-known/vex-repository.json"));
    std::fs::remove_file(dir.join(".well-known/vex-repository.json")).unwrap();
    std::fs::remove_file(dir.join("main.tar.gz")).unwrap();
    let repaired = sync_vex(dir.to_str().unwrap(), &base, &upstream.manifest_url(), &[], &[]);
    repaired.assert_ok();
    assert_eq!(repaired.outcomes(), ["repaired"]);
    assert_eq!(read(&dir.join(".well-known/vex-repository.json")), published);
    assert_eq!(read(&dir.join("main.tar.gz")), fx::vex_repository(&fx::VexOptions::default()).tar_gz);
    let moved = "https://mirror.example.com/trivy";
    let rerun = sync_vex(dir.to_str().unwrap(), moved, &upstream.manifest_url(), &["--vex-prefix", "vex"], &[]);
    rerun.assert_ok();
    assert_eq!(rerun.outcomes(), ["repaired"]);
    let manifest: serde_json::Value =
        serde_json::from_slice(&read(&dir.join("vex/.well-known/vex-repository.json"))).unwrap();
    assert_eq!(manifest["versions"][0]["locations"][0]["url"], format!("{moved}/vex/main.tar.gz//vexhub-main"));
    assert_eq!(read(&dir.join("vex/main.tar.gz")), fx::vex_repository(&fx::VexOptions::default()).tar_gz);
}

#[test]
fn vex_as_zip_under_a_prefixed_base_url_in_s3_behind_a_cdn() {
    let upstream = UpstreamVex::start();
    let moto = Moto::start("vex-bucket");
    // The CDN serves the bucket root; the mirror lives under /mirror.
    let cdn = Nginx::cdn(&format!("http://{}/vex-bucket/", moto.addr), &moto.addr);
    let base = format!("http://{}/mirror", cdn.addr);
    let env: Vec<(&str, String)> = moto.env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let run = sync_vex("s3://vex-bucket/mirror", &base, &upstream.manifest_url(), &["--vex-archive", "zip"], &env);
    run.assert_ok();

    let (status, h, body) = fetch("GET", &format!("{base}/.well-known/vex-repository.json"));
    assert_eq!((status, header(&h, "content-type").as_str()), (200, "application/json"));
    let manifest: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(manifest["versions"][0]["locations"][0]["url"], format!("{base}/main.zip//vexhub-main"));
    let (status, h, body) = fetch("GET", &format!("{base}/main.zip"));
    assert_eq!((status, header(&h, "content-type").as_str()), (200, "application/zip"));
    assert_eq!(body, fx::vex_repository(&fx::VexOptions::default()).zip);

    assert_trivy_applies_vex(TRIVY_CURRENT, &base);

    let writes = moto.writes();
    sync_vex("s3://vex-bucket/mirror", &base, &upstream.manifest_url(), &["--vex-archive", "zip"], &env).assert_ok();
    assert_eq!(moto.writes(), writes + 1, "an unchanged VEX repository must not be rewritten (only status.json is)");
}

#[test]
fn a_broken_vex_archive_is_refused_and_the_previous_one_stays() {
    let upstream = UpstreamVex::start();
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("mirror");
    let base = "http://127.0.0.1:9";
    sync_vex(dir.to_str().unwrap(), base, &upstream.manifest_url(), &[], &[]).assert_ok();
    let good_archive = read(&dir.join("main.tar.gz"));
    let good_manifest = read(&dir.join(".well-known/vex-repository.json"));

    // Corrupt bytes, then a valid archive without index.json, then one escaping its tree.
    let no_index = fx::archive::tar_gz(&[fx::archive::Entry::File("vexhub-main/README.md", b"hi")], 0);
    let escape = fx::archive::tar_gz(
        &[fx::archive::Entry::File(
            "vexhub-main/index.json",
            br#"{"updated_at":"2026-01-01T00:00:00Z","packages":[{"id":"pkg:pypi/requests","location":"../../../etc/passwd.json"}]}"#,
        )],
        0,
    );
    for (bad, expect) in [
        (&b"not a tarball"[..], "not a tar.gz"),
        (&no_index[..], "no vexhub-main/index.json"),
        (&escape[..], "leaves the repository tree"),
    ] {
        upstream.replace_archive(bad);
        let run = sync_vex(dir.to_str().unwrap(), base, &upstream.manifest_url(), &[], &[]);
        assert!(!run.success, "a broken archive must fail the run");
        let err = run.entries()[0]["error"].as_str().unwrap().to_string();
        assert!(err.contains(expect), "{err}");
        assert_eq!(read(&dir.join("main.tar.gz")), good_archive, "the previous archive must stay");
        assert_eq!(read(&dir.join(".well-known/vex-repository.json")), good_manifest);
    }
}

#[test]
fn vex_in_azure_blob_behind_a_cdn() {
    let upstream = UpstreamVex::start();
    let azurite = Azurite::start("vex");
    let cdn = Nginx::cdn(&format!("http://{}/devstoreaccount1/vex/", azurite.addr), &azurite.addr);
    let base = format!("http://{}", cdn.addr);
    let env: Vec<(&str, String)> = azurite.env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    sync_vex("az://vex", &base, &upstream.manifest_url(), &[], &env).assert_ok();
    let (status, h, _) = fetch("HEAD", &format!("{base}/main.tar.gz"));
    assert_eq!((status, header(&h, "content-type").as_str()), (200, "application/gzip"));
    assert_trivy_applies_vex(TRIVY_CURRENT, &base);
    let again = sync_vex("az://vex", &base, &upstream.manifest_url(), &[], &env);
    again.assert_ok();
    assert_eq!(again.outcomes(), ["unchanged"]);
}

#[test]
fn hostile_vex_manifests_are_refused_and_nothing_is_published() {
    let upstream = UpstreamVex::start();
    let root = upstream.nginx.static_root();
    let work = tempfile::tempdir().unwrap();
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("file location", fx::vex_manifest(&["file:///etc/passwd.tar.gz"]), "not http(s)"),
        ("relative location", fx::vex_manifest(&["main.tar.gz//vexhub-main"]), "not an absolute"),
        ("missing fields", br#"{"name":"x","versions":[]}"#.to_vec(), "description"),
        ("huge document", format!(r#"{{"name":"{}"}}"#, "x".repeat(2 << 20)).into_bytes(), "larger than"),
        ("not json", b"<html>".to_vec(), "not JSON"),
    ];
    for (name, manifest, expect) in cases {
        std::fs::write(root.join("vex-repository.json"), manifest).unwrap();
        let dir = work.path().join(name.replace(' ', "-"));
        let run = sync_vex(dir.to_str().unwrap(), "http://127.0.0.1:9", &upstream.manifest_url(), &[], &[]);
        assert!(!run.success, "{name}: accepted");
        let err = run.entries()[0]["error"].as_str().unwrap_or("").to_string();
        assert!(err.contains(expect), "{name}: expected {expect:?} in {err:?}");
        assert!(!dir.join(".well-known").exists() && !dir.join("main.tar.gz").exists(), "{name}: published");
    }
}

#[test]
fn a_second_mirror_takes_vex_from_the_registry_the_first_pushed_it_to() {
    // First mirror: the databases from the upstream registry and VEX Hub over HTTP, pushed
    // into a registry of its own, signed.
    let keys = tempfile::tempdir().unwrap();
    let (key, public) = crate::signing::keypair(keys.path(), "first", false);
    let (upstream, source) = Upstream::seeded();
    let hub = UpstreamVex::start();
    let first = Registry::start();
    let first_dest = format!("oci://{}", first.addr);
    let source_ns = format!("{}/aquasecurity", source.addr);
    let run = sync(
        &[
            "--source",
            &source_ns,
            "--vex-source",
            &hub.manifest_url(),
            "--to",
            &first_dest,
            "--only",
            "db,java-db,checks,vex",
            "--sign-key",
            &key,
        ],
        &[],
    );
    run.assert_ok();
    assert_eq!(run.outcomes(), ["written"; 5], "{:?}", run.summary);
    assert_eq!(run.entries()[4]["artifact"], "vex");
    // A registry holds VEX as the OCI artifact, the same one an air-gap bundle carries.
    let raw = skopeo_raw(&format!("{}/aquasecurity/vexhub:latest", first.addr), None);
    let manifest: serde_json::Value = serde_json::from_slice(&raw).unwrap();
    assert_eq!(manifest["artifactType"], "application/vnd.trivy-mirror.vex-repository.v1");
    drop((hub, source));

    // Second mirror: everything from the first one's registry into a directory for its
    // clients, taking only what the first one signed. VEX Hub is stopped, and VEX Hub
    // proper is out of reach (every child runs behind a closed proxy): the named source
    // holds the VEX artifact, so neither is asked.
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("mirror");
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let from_first = format!("{}/aquasecurity", first.addr);
    let to = dir.to_str().unwrap();
    let args = [
        "--source",
        &from_first,
        "--to",
        to,
        "--base-url",
        &base,
        "--allow-http-base-url",
        "--require-signature",
        &public,
    ];
    let run = sync(&args, &[]);
    run.assert_ok();
    assert_eq!(run.outcomes(), ["written"; 5], "{:?}", run.summary);
    let vex_signature = run.entries()[4]["signature"].as_str().expect("VEX Hub's signature travels on").to_string();
    let vex_manifest = read(&dir.join("v2/aquasecurity/vexhub/manifests/latest"));
    let tag = format!("{}.sig", crate::signing::digest_of(&vex_manifest).replace(':', "-"));
    let carried = read(&dir.join(format!("v2/aquasecurity/vexhub/manifests/{tag}")));
    assert_eq!(crate::signing::digest_of(&carried), vex_signature);
    assert_eq!(run.entries()[4]["source"], from_first);
    assert_eq!(read(&dir.join("main.tar.gz")), fx::vex_repository(&fx::VexOptions::default()).tar_gz);
    let published: serde_json::Value =
        serde_json::from_slice(&read(&dir.join(".well-known/vex-repository.json"))).unwrap();
    assert_eq!(published["versions"][0]["locations"][0]["url"], format!("{base}/main.tar.gz//vexhub-main"));
    let again = sync(&args, &[]);
    again.assert_ok();
    assert_eq!(again.outcomes(), ["unchanged"; 5]);

    let serve = Serve::start_on(&dir, port);
    assert_trivy_uses_mirror(&serve.addr);
    assert_trivy_applies_vex(TRIVY_CURRENT, &base);
    drop(upstream);
}
