//! `sync` into a local directory served by `trivy-mirror serve`: the main job, checked
//! end to end with the real Trivy client, skopeo, and reruns.

use crate::harness::*;

#[test]
fn local_mirror_serves_every_database_to_real_trivy() {
    let (upstream, registry) = Upstream::seeded();
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("mirror");
    let source = format!("{}/aquasecurity", registry.addr);

    let first = sync(&["--to", dir.to_str().unwrap(), "--source", &source], &[]);
    first.assert_ok();
    assert_eq!(first.outcomes(), ["written"; 4], "{:?}", first.summary);
    let digests: Vec<_> = first.entries().iter().map(|e| e["digest"].as_str().unwrap().to_string()).collect();
    let expected: Vec<_> = upstream.items().iter().map(|(_, _, a)| a.manifest_digest()).collect();
    assert_eq!(digests, expected, "published digests must equal the source digests");

    let serve = Serve::start(&dir);
    // Byte-exact: an independent client reads back the source digest and bytes.
    for (name, tag, artifact) in upstream.items() {
        let raw = skopeo_raw(&format!("{}/aquasecurity/{name}:{tag}", serve.addr), None);
        assert_eq!(raw, artifact.manifest, "{name}:{tag} manifest bytes differ");
    }
    assert_trivy_uses_mirror(&serve.addr);

    // The Java DB identifies the fixture jar in a rootfs scan.
    let trivy = Trivy::new(TRIVY_CURRENT);
    assert!(trivy.download_java_db(&serve.addr).status.success());
    assert!(trivy.download_db(&serve.addr).status.success());
    let rootfs = trivy.home.path().join("rootfs");
    std::fs::create_dir_all(&rootfs).unwrap();
    std::fs::write(rootfs.join(trivy_mirror_fixtures::JAR_FILE_NAME), trivy_mirror_fixtures::fixture_jar()).unwrap();
    let out = trivy.run_ok(&[
        "rootfs",
        "--skip-db-update",
        "--skip-java-db-update",
        "--offline-scan",
        "--list-all-pkgs",
        "--format",
        "json",
        rootfs.to_str().unwrap(),
    ]);
    assert!(
        text(&out.stdout).contains(trivy_mirror_fixtures::JAR_PACKAGE_NAME),
        "the jar was not identified through the mirrored Java DB:\n{}",
        text(&out.stdout)
    );

    // status.json records what is served and how fresh it is.
    let status: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("status.json")).unwrap()).unwrap();
    let db = &status["artifacts"]["trivy-db:2"];
    assert_eq!(db["digest"], upstream.db.manifest_digest());
    assert_eq!(db["source"], source);
    assert_eq!(db["repository"], "aquasecurity/trivy-db");
    assert_eq!(db["size"], upstream.db.layer.len() as u64);
    assert_eq!(db["next_update"], "2099-01-01T00:00:00Z");
    assert_eq!(db["updated_at"], "2026-01-01T00:00:00Z");
    assert_eq!(status["artifacts"]["trivy-java-db:1"]["next_update"], "2099-01-01T00:00:00Z");
    let (_, h, _) = fetch("GET", &format!("http://{}/status.json", serve.addr));
    assert_eq!(header(&h, "content-type"), "application/json");
    assert!(!text(&std::fs::read(dir.join("status.json")).unwrap()).to_lowercase().contains("password"));

    // A rerun where nothing changed writes nothing but status.json's last_checked.
    let before = snapshot(&dir);
    let second = sync(&["--to", dir.to_str().unwrap(), "--source", &source], &[]);
    second.assert_ok();
    assert_eq!(second.outcomes(), ["unchanged"; 4]);
    assert_eq!(second.bytes_written(), 0);
    assert_eq!(snapshot(&dir), before, "a rerun touched files");
    let status2: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("status.json")).unwrap()).unwrap();
    assert_eq!(status2["artifacts"]["trivy-db:2"]["last_changed"], db["last_changed"]);
    assert_ne!(status2["artifacts"]["trivy-db:2"]["last_checked"], db["last_checked"]);
    assert_eq!(status2["artifacts"]["trivy-db:2"]["next_update"], "2099-01-01T00:00:00Z", "kept from the first run");
}

#[test]
fn serve_answers_like_a_cdn_in_front_of_a_bucket() {
    let (upstream, registry) = Upstream::seeded();
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("mirror");
    sync(&["--to", dir.to_str().unwrap(), "--source", &format!("{}/aquasecurity", registry.addr), "--only", "db"], &[])
        .assert_ok();
    let serve = Serve::start(&dir);
    let base = format!("http://{}", serve.addr);
    let db = &upstream.db;

    let (status, h, body) = fetch("GET", &format!("{base}/v2/"));
    assert_eq!((status, header(&h, "content-type").as_str(), body.as_slice()), (200, "application/json", &b"{}"[..]));

    let (status, h, body) = fetch("GET", &format!("{base}/v2/aquasecurity/trivy-db/manifests/2"));
    assert_eq!(status, 200);
    assert_eq!(header(&h, "content-type"), "application/vnd.oci.image.manifest.v1+json");
    assert_eq!(header(&h, "cache-control"), "public, max-age=300");
    assert_eq!(header(&h, "docker-content-digest"), db.manifest_digest());
    assert_eq!(body, db.manifest);

    let by_digest = format!("{base}/v2/aquasecurity/trivy-db/manifests/{}", db.manifest_digest());
    let (status, h, _) = fetch("GET", &by_digest);
    assert_eq!((status, header(&h, "cache-control").as_str()), (200, "public, max-age=31536000, immutable"));

    let blob = format!("{base}/v2/aquasecurity/trivy-db/blobs/{}", db.layer_digest());
    let (status, h, body) = fetch("HEAD", &blob);
    assert_eq!(status, 200);
    assert_eq!(header(&h, "content-length"), db.layer.len().to_string(), "HEAD must carry the real length");
    assert_eq!(header(&h, "content-type"), "application/octet-stream");
    assert_eq!(header(&h, "content-encoding"), "");
    assert!(body.is_empty());
    let (_, _, body) = fetch("GET", &blob);
    assert_eq!(body, db.layer);

    let (status, _, body) = fetch("GET", &format!("{base}/v2/aquasecurity/trivy-db/tags/list"));
    assert_eq!((status, body.as_slice()), (200, &br#"{"name":"aquasecurity/trivy-db","tags":["2"]}"#[..]));

    // Only layout keys are served; nothing escapes the directory.
    std::fs::write(work.path().join("secret.json"), "{}").unwrap();
    for path in [
        "/../secret.json",
        "/v2/%2e%2e/%2e%2e/secret.json",
        "/Cargo.toml",
        "/v2/aquasecurity/trivy-db/blobs/sha256:0000",
        "/v2/aquasecurity/trivy-db/manifests/nope",
    ] {
        let (status, _, _) = fetch("GET", &format!("{base}{path}"));
        assert_eq!(status, 404, "{path}");
    }
    let (status, _, body) = fetch("GET", &format!("{base}/v2/aquasecurity/trivy-db/blobs/sha256:{}", "0".repeat(64)));
    assert_eq!(status, 404);
    assert!(text(&body).contains("BLOB_UNKNOWN"), "a missing blob must say BLOB_UNKNOWN so Trivy falls back");
    let resp = http().post(format!("{base}/v2/")).send().unwrap();
    assert_eq!(resp.status().as_u16(), 405);
}

#[test]
fn a_corrupt_source_blob_is_refused_and_nothing_is_published() {
    let (upstream, registry) = Upstream::seeded();
    // Flip one byte of the trivy-db layer inside the registry's storage.
    let hex = upstream.db.layer_digest().trim_start_matches("sha256:").to_string();
    let file = registry.blob_file(&hex);
    let mut bytes = std::fs::read(&file).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&file, bytes).unwrap();

    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("mirror");
    let run = sync(&["--to", dir.to_str().unwrap(), "--source", &format!("{}/aquasecurity", registry.addr)], &[]);
    assert!(!run.success, "a corrupt blob must fail the run");
    let db = run.entries().into_iter().find(|e| e["artifact"] == "trivy-db:2").unwrap();
    assert_eq!(db["outcome"], "failed");
    let err = db["error"].as_str().unwrap();
    assert!(err.contains("hashes to") && err.contains(&upstream.db.layer_digest()), "{err}");
    // The other artifacts still went through.
    assert_eq!(run.outcomes().iter().filter(|o| *o == "written").count(), 3);
    // Nothing of trivy-db was published: no tag, no blob.
    let repo = dir.join("v2/aquasecurity/trivy-db");
    assert!(!repo.join("manifests/2").exists());
    assert!(!repo.join(format!("blobs/{}", upstream.db.layer_digest())).exists());
}

#[test]
fn the_second_source_is_used_when_the_first_fails() {
    let (_, registry) = Upstream::seeded();
    // The first source answers 503 to everything, like an overloaded upstream.
    let down = Nginx::start("    location / { return 503; }");
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("mirror");
    let run = sync(
        &[
            "--to",
            dir.to_str().unwrap(),
            "--source",
            &format!("{}/aquasec", down.addr),
            "--source",
            &format!("{}/aquasecurity", registry.addr),
            "--only",
            "db",
        ],
        &[],
    );
    run.assert_ok();
    let entry = &run.entries()[0];
    assert_eq!(entry["source"], format!("{}/aquasecurity", registry.addr));
    assert!(run.stderr.contains("503"), "the fallback should be logged:\n{}", run.stderr);
}
