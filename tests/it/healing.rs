//! A mirror that heals itself, never goes backwards, and fails in one clear line: damage
//! done behind the publisher's back is repaired by the next plain sync, an older upstream
//! build is refused, an offline machine fails fast with one line per artifact and a hint,
//! and a mistyped destination never becomes a local directory.

use std::time::{Duration, Instant};

use trivy_mirror_fixtures as fx;

use crate::harness::*;

fn seeded_with_db(db: fx::Artifact) -> (Upstream, Registry) {
    let mut upstream = Upstream::standard();
    upstream.db = db;
    let registry = Registry::start();
    upstream.seed(&registry, "aquasecurity");
    (upstream, registry)
}

fn db_at(when: &str) -> fx::Artifact {
    fx::trivy_db(&fx::DbOptions::at(when.parse().unwrap()))
}

/// Re-seed only trivy-db:2 of `registry` with `db`.
fn reseed_db(registry: &Registry, db: &fx::Artifact) {
    let dir = tempfile::tempdir().unwrap();
    fx::write_oci_layout(dir.path(), &[("2", db)]).unwrap();
    registry.seed(dir.path(), "2", "aquasecurity/trivy-db", "2");
}

fn outcome_of(run: &SyncRun, artifact: &str) -> String {
    let e = run.entries().into_iter().find(|e| e["artifact"] == artifact).expect("entry for the artifact");
    e["outcome"].as_str().unwrap_or_default().to_string()
}

#[test]
fn a_truncated_blob_in_s3_and_a_deleted_one_in_a_directory_are_repaired_by_a_plain_sync() {
    let (upstream, registry) = Upstream::seeded();
    let source = format!("{}/aquasecurity", registry.addr);
    let layer_hex = upstream.java_db.layer_digest().trim_start_matches("sha256:").to_string();

    // S3: truncate the java-db layer through the S3 API, as a bad restore would.
    let moto = Moto::start("heal");
    let env = moto.env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    sync(&["--to", "s3://heal/m", "--source", &source], &env).assert_ok();
    let cut = upstream.java_db.layer[..upstream.java_db.layer.len() - 7].to_vec();
    let s3 = moto.store("heal");
    let key = object_store::path::Path::from(format!("m/v2/aquasecurity/trivy-java-db/blobs/sha256:{layer_hex}"));
    tokio::runtime::Runtime::new().unwrap().block_on(object_store::ObjectStoreExt::put(&s3, &key, cut.into())).unwrap();
    let cdn = Nginx::cdn(&format!("http://{}/heal/m/", moto.addr), &moto.addr);
    let (ok, out) = crate::operate::verify(&[&cdn.addr]);
    assert!(!ok && out.contains("Content-Length"), "verify should see the damage:\n{out}");

    let run = sync(&["--to", "s3://heal/m", "--source", &source], &env);
    run.assert_ok();
    assert_eq!(outcome_of(&run, "trivy-java-db:1"), "repaired");
    assert_eq!(outcome_of(&run, "trivy-db:2"), "unchanged");
    let (ok, out) = crate::operate::verify(&[&cdn.addr]);
    assert!(ok, "verify after the repair:\n{out}");
    let trivy = Trivy::new(TRIVY_CURRENT);
    let out = trivy.download_java_db(&cdn.addr);
    assert!(out.status.success(), "trivy java-db download after the repair:\n{}", text(&out.stderr));

    // A directory: delete the blob file; `status.json` records the repair.
    let dir = tempfile::tempdir().unwrap();
    let mirror_dir = dir.path().join("mirror");
    let to = mirror_dir.to_str().unwrap();
    sync(&["--to", to, "--source", &source], &[]).assert_ok();
    let blob = mirror_dir.join(format!("v2/aquasecurity/trivy-java-db/blobs/sha256:{layer_hex}"));
    std::fs::remove_file(&blob).unwrap();
    let run = sync(&["--to", to, "--source", &source], &[]);
    run.assert_ok();
    assert_eq!(outcome_of(&run, "trivy-java-db:1"), "repaired");
    assert_eq!(std::fs::read(&blob).unwrap(), upstream.java_db.layer);
    let status: serde_json::Value =
        serde_json::from_slice(&std::fs::read(mirror_dir.join("status.json")).unwrap()).unwrap();
    assert!(status["artifacts"]["trivy-java-db:1"]["last_repaired"].is_string(), "{status:#}");
    let serve = Serve::start(&mirror_dir);
    let (ok, out) = crate::operate::verify(&[&serve.addr]);
    assert!(ok, "verify of the repaired directory:\n{out}");
}

#[test]
fn an_older_upstream_build_is_refused_and_a_fresh_second_source_wins() {
    let (older, current, newer) =
        (db_at("2026-11-25T06:00:00Z"), db_at("2026-11-26T06:00:00Z"), db_at("2026-11-27T06:00:00Z"));
    let (_, stale) = seeded_with_db(current.clone());
    let stale_source = format!("{}/aquasecurity", stale.addr);
    let dir = tempfile::tempdir().unwrap();
    let to = dir.path().join("mirror");
    let to = to.to_str().unwrap();
    let tag = dir.path().join("mirror/v2/aquasecurity/trivy-db/manifests/2");
    sync(&["--to", to, "--source", &stale_source, "--only", "db"], &[]).assert_ok();

    // Upstream goes backwards: yesterday's manifest is replayed.
    reseed_db(&stale, &older);
    let run = sync(&["--to", to, "--source", &stale_source, "--only", "db"], &[]);
    assert!(!run.success, "a downgrade must fail the run:\n{}", run.stdout);
    let failure = run.failure(0);
    assert!(
        failure.contains("2026-11-26T06:00:00Z")
            && failure.contains("2026-11-25T06:00:00Z")
            && failure.contains("--allow-downgrade"),
        "{failure}"
    );
    assert_eq!(std::fs::read(&tag).unwrap(), current.manifest, "the newer build stays served");
    let serve = Serve::start(&dir.path().join("mirror"));
    let trivy = Trivy::new(TRIVY_CURRENT);
    let out = trivy.download_db(&serve.addr);
    assert!(out.status.success(), "trivy-db download:\n{}", text(&out.stderr));
    let meta = std::fs::read_to_string(trivy.cache().join("db/metadata.json")).unwrap();
    assert!(meta.contains("2026-11-26T06:00:00"), "Trivy got the newer build: {meta}");

    // A stale first source does not block a fresh second one.
    let (_, fresh) = seeded_with_db(newer.clone());
    let both = format!("{stale_source},{}/aquasecurity", fresh.addr);
    let run = sync(&["--to", to, "--source", &both, "--only", "db"], &[]);
    run.assert_ok();
    assert_eq!(run.entries()[0]["source"], format!("{}/aquasecurity", fresh.addr));
    assert_eq!(std::fs::read(&tag).unwrap(), newer.manifest);

    // A deliberate rollback.
    sync(&["--to", to, "--source", &stale_source, "--only", "db", "--allow-downgrade"], &[]).assert_ok();
    assert_eq!(std::fs::read(&tag).unwrap(), older.manifest);
}

/// stderr without the leading timestamp of each log line.
fn without_timestamps(stderr: &str) -> String {
    stderr
        .lines()
        .map(|l| if l.starts_with("20") { l.split_once(' ').map_or(l, |(_, rest)| rest.trim_start()) } else { l })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn offline_the_default_sync_fails_within_seconds_in_one_line_per_artifact() {
    let dir = tempfile::tempdir().unwrap();
    // The dead proxy of the harness stands for a machine whose proxy is down.
    let start = Instant::now();
    let out = mirror().current_dir(dir.path()).args(["sync", "--to", "mirror"]).output().unwrap();
    let elapsed = start.elapsed();
    assert!(!out.status.success());
    assert!(elapsed < Duration::from_secs(10), "took {elapsed:?}");
    let stderr = text(&out.stderr);
    assert!(stderr.lines().count() <= 4 + 1, "{stderr}");
    crate::cli::check_snapshot("offline-stderr.txt", &without_timestamps(&stderr));

    // No proxy, a name that does not resolve: the same shape, with DNS as the cause.
    let start = Instant::now();
    let out = mirror()
        .env_remove("HTTPS_PROXY")
        .env_remove("HTTP_PROXY")
        .env_remove("https_proxy")
        .env_remove("http_proxy")
        .current_dir(dir.path())
        .args(["sync", "--to", "mirror", "--source", "registry.invalid/aquasec"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(start.elapsed() < Duration::from_secs(10), "took {:?}", start.elapsed());
    let stderr = text(&out.stderr);
    assert!(stderr.lines().count() <= 4 + 1, "{stderr}");
    assert!(stderr.contains("registry.invalid/aquasec (DNS lookup failed)") && stderr.contains("hint: "), "{stderr}");
}

#[test]
fn mistyped_destinations_are_refused_and_nothing_is_created() {
    let cwd = tempfile::tempdir().unwrap();
    for to in ["s3:/mybucket", "gs:b", "foo://x", "trivy-cache://srv/cache", "oci-archive:"] {
        let out = mirror().current_dir(cwd.path()).args(["sync", "--to", to]).output().unwrap();
        assert!(!out.status.success(), "{to} was accepted");
        let stderr = text(&out.stderr);
        assert!(stderr.contains("s3://bucket") && stderr.contains("oci://registry"), "{to}: {stderr}");
    }
    assert_eq!(std::fs::read_dir(cwd.path()).unwrap().count(), 0, "nothing may be written to the working directory");
}

#[test]
fn retries_zero_makes_exactly_one_attempt_at_a_blob() {
    let (upstream, registry) = Upstream::seeded();
    let layer = upstream.db.layer_digest();
    let proxy = FaultProxy::start(
        &registry.addr,
        vec![Rule {
            method: "GET",
            path: format!("/blobs/{layer}"),
            occurrences: (1..=20).collect(),
            action: Action::Status(503, None),
        }],
    );
    let dir = tempfile::tempdir().unwrap();
    let to = dir.path().join("mirror");
    let source = format!("{}/aquasecurity", proxy.addr);
    let run = sync(&["--to", to.to_str().unwrap(), "--source", &source, "--only", "db", "--retries", "0"], &[]);
    assert!(!run.success);
    let blob_gets = proxy.log().iter().filter(|l| l.starts_with("GET ") && l.contains(&layer)).count();
    assert_eq!(blob_gets, 1, "{:#?}", proxy.log());

    let run = sync(
        &["--to", to.to_str().unwrap(), "--source", &source, "--only", "db", "--retries", "2", "--retry-base-ms", "1"],
        &[],
    );
    assert!(!run.success);
    let blob_gets = proxy.log().iter().filter(|l| l.starts_with("GET ") && l.contains(&layer)).count();
    assert_eq!(blob_gets, 1 + 3, "--retries 2 is three attempts in all: {:#?}", proxy.log());
    assert!(run.failure(0).contains("after 3 attempts"), "{}", run.failure(0));
}

/// `--retries N` means N + 1 attempts at each request and at each transfer, once: a
/// failure that used up its attempts at one level is not tried again by another (before,
/// a ranged part retried inside the request's retries inside the engine's, N³ in all).
#[test]
fn retries_bound_each_request_and_each_transfer_once_on_every_path() {
    let registry = Registry::start();
    let mut upstream = Upstream::standard();
    upstream.java_db = fx::java_db(&fx::JavaDbOptions { padding: 1 << 20, ..Default::default() });
    upstream.seed(&registry, "aquasecurity");
    let (db_layer, java_layer) = (upstream.db.layer_digest(), upstream.java_db.layer_digest());
    let rule =
        |path: String, occurrences: Vec<usize>, action: Action| Rule { method: "GET", path, occurrences, action };
    let proxy = FaultProxy::start(
        &registry.addr,
        vec![
            // A registry request: the manifest answers 503 every time.
            rule("/trivy-checks/manifests/2".into(), (1..=50).collect(), Action::Status(503, None)),
            // A whole blob that cannot resume (a plain GET): its body breaks every time.
            rule(format!("/blobs/{db_layer}"), (1..=50).collect(), Action::Reset(64)),
            // A ranged blob: the first range answers, every range after it gets 503.
            rule(format!("/blobs/{java_layer}"), (2..=50).collect(), Action::Status(503, None)),
        ],
    );
    let dir = tempfile::tempdir().unwrap();
    let source = format!("{}/aquasecurity", proxy.addr);
    let to = dir.path().join("mirror");
    let args = ["--to", to.to_str().unwrap(), "--source", &source, "--only", "db,java-db,checks"];
    let run = sync(&[&args[..], &["--retries", "2", "--retry-base-ms", "1", "--range-size", "64KiB"]].concat(), &[]);
    assert!(!run.success);
    let gets = |needle: &str| proxy.log().iter().filter(|l| l.starts_with("GET ") && l.contains(needle)).count();
    assert_eq!(gets("/trivy-checks/manifests/2"), 3, "a request: {:#?}", proxy.log());
    assert_eq!(gets(&db_layer), 3, "a transfer that cannot resume: {:#?}", proxy.log());
    assert_eq!(gets(&java_layer), 1 + 3, "the first range, then one range request tried 3 times: {:#?}", proxy.log());
    let entries = run.entries();
    let failure = |artifact: &str| {
        let e = entries.iter().find(|e| e["artifact"] == artifact).unwrap();
        e["error"].as_str().unwrap_or_default().to_string()
    };
    for artifact in ["trivy-db:2", "trivy-java-db:1", "trivy-checks:2"] {
        assert!(failure(artifact).contains("after 3 attempts"), "{artifact}: {}", failure(artifact));
    }
}

#[test]
fn a_blob_deleted_from_a_registry_destination_is_pushed_again() {
    let (upstream, registry) = Upstream::seeded();
    let source = format!("{}/aquasecurity", registry.addr);
    let target = Registry::start();
    let to = format!("oci://{}/mirror", target.addr);
    sync(&["--to", &to, "--source", &source, "--only", "db"], &[]).assert_ok();
    let url = format!("http://{}/v2/mirror/aquasecurity/trivy-db/blobs/{}", target.addr, upstream.db.layer_digest());
    let resp = http().delete(&url).send().unwrap();
    assert_eq!(resp.status().as_u16(), 202, "deleting the blob through the registry API");
    assert_eq!(http().head(&url).send().unwrap().status().as_u16(), 404);

    let run = sync(&["--to", &to, "--source", &source, "--only", "db"], &[]);
    run.assert_ok();
    assert_eq!(run.outcomes(), ["repaired"]);
    assert_eq!(http().head(&url).send().unwrap().status().as_u16(), 200);
    let trivy = Trivy::new(TRIVY_CURRENT);
    let out = trivy.run(&[
        "image",
        "--download-db-only",
        "--db-repository",
        &format!("{}/mirror/aquasecurity/trivy-db:2", target.addr),
    ]);
    assert!(out.status.success(), "trivy-db download after the repair:\n{}", text(&out.stderr));
}

#[test]
fn a_flipped_byte_is_found_only_by_recheck_and_repaired() {
    let (upstream, registry) = Upstream::seeded();
    let source = format!("{}/aquasecurity", registry.addr);
    let dir = tempfile::tempdir().unwrap();
    let mirror_dir = dir.path().join("mirror");
    let to = mirror_dir.to_str().unwrap();
    sync(&["--to", to, "--source", &source, "--only", "db"], &[]).assert_ok();
    let blob = mirror_dir.join(format!("v2/aquasecurity/trivy-db/blobs/{}", upstream.db.layer_digest()));
    let mut bytes = std::fs::read(&blob).unwrap();
    bytes[100] ^= 0x01;
    std::fs::write(&blob, &bytes).unwrap();

    // Same size: the cheap health check does not notice, by design.
    let plain = sync(&["--to", to, "--source", &source, "--only", "db"], &[]);
    plain.assert_ok();
    assert_eq!(plain.outcomes(), ["unchanged"]);
    let serve = Serve::start(&mirror_dir);
    let (ok, out) = crate::operate::verify(&[&serve.addr, "--only", "db"]);
    assert!(!ok, "verify should see the flipped byte:\n{out}");

    let rechecked = sync(&["--to", to, "--source", &source, "--only", "db", "--recheck"], &[]);
    rechecked.assert_ok();
    assert_eq!(rechecked.outcomes(), ["repaired"]);
    assert_eq!(std::fs::read(&blob).unwrap(), upstream.db.layer);
    let (ok, out) = crate::operate::verify(&[&serve.addr, "--only", "db"]);
    assert!(ok, "verify after the recheck:\n{out}");
}
