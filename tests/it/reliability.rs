//! Reliability: syncs killed with SIGKILL at random points, injected upstream faults over
//! many seeded runs, concurrent syncs into one destination, hostile upstream content and
//! secrets in failing runs. The invariant everywhere: the mirror never serves a tag
//! whose manifest or blobs are missing or corrupt (checked by `verify` and real Trivy),
//! and a rerun converges.

use std::process::Stdio;
use std::time::{Duration, Instant};

use trivy_mirror_fixtures as fx;

use crate::harness::*;
use crate::operate::verify;

/// A small deterministic generator (SplitMix64), so every "random" run can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// The digest `trivy-db:2` resolves to in a mirror directory, if any.
fn served_digest(dir: &std::path::Path) -> Option<String> {
    std::fs::read(dir.join("v2/aquasecurity/trivy-db/manifests/2")).ok().map(|b| fx::sha256_digest(&b))
}

fn seed_db(registry: &Registry, artifact: &fx::Artifact) {
    let dir = tempfile::tempdir().unwrap();
    fx::write_oci_layout(dir.path(), &[("2", artifact)]).unwrap();
    registry.seed(dir.path(), "2", "aquasecurity/trivy-db", "2");
}

#[test]
fn a_sync_killed_at_random_points_leaves_the_previous_version_served() {
    let registry = Registry::start();
    let v1 = fx::trivy_db(&fx::DbOptions::default());
    seed_db(&registry, &v1);
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("mirror");
    let direct = format!("{}/aquasecurity", registry.addr);
    sync(&["--to", dir.to_str().unwrap(), "--source", &direct, "--only", "db"], &[]).assert_ok();
    let serve = Serve::start(&dir);

    // v2 has a 24 MiB layer (a multipart upload), pulled through a slow link.
    let v2 = fx::trivy_db(&fx::DbOptions {
        updated_at: "2026-06-01T00:00:00Z".parse().unwrap(),
        padding: 24 << 20,
        ..fx::DbOptions::default()
    });
    seed_db(&registry, &v2);
    // The blobs come from a CDN the registry redirects to (as from ghcr.io), over a slow link.
    let cdn = Nginx::blob_cdn(&registry, "0", "");
    let slow = FaultProxy::start(
        &cdn.addr,
        vec![Rule {
            method: "GET",
            path: "/blobs/".into(),
            occurrences: (1..10_000).collect(),
            action: Action::Slow(Duration::from_millis(4)),
        }],
    );
    let front = Nginx::registry_front(&registry, &slow.addr);
    let through = format!("{}/aquasecurity", front.addr);
    let mut rng = Rng(0x7e57);
    let mut killed_mid_upload = 0;
    for point in 0..20 {
        let mut child = mirror()
            // Even points fetch the layer in ranges, odd ones as one slow stream (so that
            // a kill lands while the upload's staging file exists).
            .args(["sync", "--to", dir.to_str().unwrap(), "--source", &through, "--only", "db", "-q"])
            .args(["--range-parts", if point % 2 == 0 { "6" } else { "1" }, "--range-size", "64KiB"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Half the kills land at a random moment, half right after the upload has started.
        let deadline = Instant::now() + Duration::from_millis(rng.below(1500));
        let staging = dir.join("v2/aquasecurity/trivy-db/blobs");
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                let mut err = String::new();
                std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
                assert!(status.success(), "point {point}: the sync failed by itself:\n{err}");
                break;
            }
            let uploading = std::fs::read_dir(&staging)
                .map(|d| d.flatten().any(|e| e.file_name().to_string_lossy().contains('#')))
                .unwrap_or(false);
            if (point % 2 == 0 && Instant::now() >= deadline) || (point % 2 == 1 && uploading) {
                killed_mid_upload += usize::from(uploading);
                child.kill().unwrap(); // SIGKILL
                break;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        child.wait().unwrap();
        let served = served_digest(&dir).expect("a tag must always be served");
        assert!(
            served == v1.manifest_digest() || served == v2.manifest_digest(),
            "point {point}: unknown digest {served}"
        );
        let (ok, out) = verify(&[&serve.addr, "--only", "db"]);
        assert!(ok, "point {point}: the mirror is inconsistent after a kill:\n{out}");
        if served == v2.manifest_digest() {
            break; // A run finished before the kill; later kills would prove nothing new.
        }
    }
    assert!(killed_mid_upload > 0, "no kill landed during an upload");
    // Real Trivy still gets a complete database, and the next run completes.
    let trivy = Trivy::new(TRIVY_CURRENT);
    assert!(trivy.download_db(&serve.addr).status.success());
    sync(&["--to", dir.to_str().unwrap(), "--source", &direct, "--only", "db"], &[]).assert_ok();
    assert_eq!(served_digest(&dir).unwrap(), v2.manifest_digest());
    let (ok, out) = verify(&[&serve.addr, "--only", "db"]);
    assert!(ok, "{out}");
}

/// One random fault for a request class.
fn random_rule(rng: &mut Rng) -> Rule {
    let (method, path) = match rng.below(3) {
        0 => ("GET", "/manifests/".to_string()),
        1 => ("GET", "/blobs/".to_string()),
        _ => ("", "/v2/".to_string()),
    };
    let action = match rng.below(8) {
        0 => Action::Status(500, None),
        1 => Action::Status(502, None),
        2 => Action::Status(503, None),
        3 => Action::Status(429, Some(rng.below(2) as u32)),
        4 => Action::Reset(rng.below(600) as usize),
        5 => Action::Truncate(rng.below(600) as usize),
        6 => Action::Corrupt,
        _ => Action::Stall(Duration::from_millis(1500)),
    };
    let first = 1 + rng.below(3) as usize;
    let occurrences = (first..first + 1 + rng.below(4) as usize).collect();
    Rule { method, path, occurrences, action }
}

#[test]
fn injected_upstream_faults_never_publish_a_broken_tag_and_reruns_converge() {
    let (upstream, registry) = Upstream::seeded();
    let work = tempfile::tempdir().unwrap();
    let mut rng = Rng(0xfa17);
    let fast = ["--retries", "2", "--retry-base-ms", "5", "--read-timeout", "1", "--only", "db,checks"];
    let (mut succeeded, mut failed) = (0, 0);
    for run in 0..100 {
        let dir = work.path().join(format!("m{run}"));
        let rules: Vec<Rule> = (0..1 + rng.below(3)).map(|_| random_rule(&mut rng)).collect();
        let proxy = FaultProxy::start(&registry.addr, rules.clone());
        let source = format!("{}/aquasecurity", proxy.addr);
        let mut args = vec!["--to", dir.to_str().unwrap(), "--source", &source];
        args.extend(fast);
        let outcome = sync(&args, &[]);
        if outcome.success {
            succeeded += 1;
        } else {
            failed += 1;
            for e in outcome.entries().iter().filter(|e| e["outcome"] == "failed") {
                let msg = e["error"].as_str().unwrap_or("");
                assert!(msg.len() > 10 && msg.contains(&proxy.addr), "run {run}: unclear error {msg:?} for {rules:?}");
            }
        }
        // Whatever happened, every tag present is complete and correct.
        for (name, tag, artifact) in upstream.items().into_iter().filter(|(n, _, _)| *n != "trivy-java-db") {
            if let Ok(bytes) = std::fs::read(dir.join(format!("v2/aquasecurity/{name}/manifests/{tag}"))) {
                assert_eq!(bytes, artifact.manifest, "run {run}: {name}:{tag} has foreign bytes");
                for digest in [artifact.layer_digest(), artifact.config_digest()] {
                    let blob = std::fs::read(dir.join(format!("v2/aquasecurity/{name}/blobs/{digest}")))
                        .unwrap_or_else(|_| {
                            panic!("run {run}: {name}:{tag} is tagged but blob {digest} is missing ({rules:?})")
                        });
                    assert_eq!(fx::sha256_digest(&blob), digest, "run {run}: corrupt blob served");
                }
            }
        }
        // A rerun without faults converges.
        if !outcome.success {
            let direct = format!("{}/aquasecurity", registry.addr);
            sync(&["--to", dir.to_str().unwrap(), "--source", &direct, "--only", "db,checks"], &[]).assert_ok();
        }
    }
    eprintln!(
        "fault runs: {succeeded} succeeded within the retry budget, {failed} failed cleanly and converged on rerun"
    );
    assert!(succeeded > 0 && failed > 0, "the fault mix should produce both outcomes");
}

#[test]
fn concurrent_syncs_into_one_destination_never_corrupt_it() {
    let (upstream, registry) = Upstream::seeded();
    let work = tempfile::tempdir().unwrap();
    let source = format!("{}/aquasecurity", registry.addr);
    for round in 0..3 {
        let dir = work.path().join(format!("m{round}"));
        let spawn = || {
            mirror()
                .args(["sync", "--to", dir.to_str().unwrap(), "--source", &source, "-q"])
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        };
        let (a, b) = (spawn(), spawn());
        let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
        assert!(a.status.success() && b.status.success(), "{}{}", text(&a.stderr), text(&b.stderr));
        let serve = Serve::start(&dir);
        let (ok, out) = verify(&[&serve.addr]);
        assert!(ok, "round {round}:\n{out}");
        for (name, tag, artifact) in upstream.items() {
            let bytes = std::fs::read(dir.join(format!("v2/aquasecurity/{name}/manifests/{tag}"))).unwrap();
            assert_eq!(bytes, artifact.manifest);
        }
    }
}

/// A trivy-db manifest with the given config and layers (raw JSON descriptors).
fn manifest_json(layers: &[serde_json::Value]) -> Vec<u8> {
    let config = serde_json::json!({"mediaType": "application/vnd.oci.empty.v1+json", "digest": fx::sha256_digest(b"{}"), "size": 2});
    fx::manifest_from_json(config, layers.to_vec(), serde_json::json!({}))
}

fn layer(media_type: &str, digest: &str, size: u64, title: &str) -> serde_json::Value {
    serde_json::json!({"mediaType": media_type, "digest": digest, "size": size, "annotations": {"org.opencontainers.image.title": title}})
}

#[test]
fn hostile_upstream_content_is_refused_and_nothing_is_published() {
    let good = fx::trivy_db(&fx::DbOptions::default());
    let db_type = fx::TRIVY_DB_LAYER_MEDIA_TYPE;
    let (layer_digest, layer_size) = (good.layer_digest(), good.layer.len() as u64);
    let index = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}"#.to_vec();
    let mut huge = manifest_json(&[layer(db_type, &layer_digest, layer_size, "db.tar.gz")]);
    huge.splice(1..1, format!(r#""pad":"{}","#, "x".repeat(5 << 20)).into_bytes());
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "path in digest",
            manifest_json(&[layer(db_type, "sha256:../../../../etc/passwd", 10, "db.tar.gz")]),
            "64 lowercase hex",
        ),
        (
            "sha512 digest",
            manifest_json(&[layer(db_type, &format!("sha512:{}", "a".repeat(128)), 10, "db.tar.gz")]),
            "only sha256",
        ),
        ("index", index, "index"),
        ("no layer", manifest_json(&[]), "0 layers"),
        (
            "two layers",
            manifest_json(&[
                layer(db_type, &layer_digest, layer_size, "db.tar.gz"),
                layer(db_type, &layer_digest, layer_size, "db.tar.gz"),
            ]),
            "2 layers",
        ),
        (
            "wrong media type",
            manifest_json(&[layer(
                "application/vnd.oci.image.layer.v1.tar+gzip",
                &layer_digest,
                layer_size,
                "db.tar.gz",
            )]),
            "Trivy expects",
        ),
        (
            "absolute title",
            manifest_json(&[layer(db_type, &layer_digest, layer_size, "/etc/cron.d/db.tar.gz")]),
            "not a plain file name",
        ),
        (
            "dotdot title",
            manifest_json(&[layer(db_type, &layer_digest, layer_size, "../../db.tar.gz")]),
            "not a plain file name",
        ),
        (
            "size lies (smaller)",
            manifest_json(&[layer(db_type, &layer_digest, layer_size - 7, "db.tar.gz")]),
            "differs from the descriptor size",
        ),
        (
            "size lies (bigger)",
            manifest_json(&[layer(db_type, &layer_digest, layer_size + 7, "db.tar.gz")]),
            "differs from the descriptor size",
        ),
        ("manifest over 4 MiB", huge, "larger than"),
    ];
    for (name, manifest, expect) in cases {
        let routes = vec![
            (
                "/v2/aquasecurity/trivy-db/manifests/2".to_string(),
                "application/vnd.oci.image.manifest.v1+json".to_string(),
                manifest,
            ),
            (
                format!("/v2/aquasecurity/trivy-db/blobs/{}", fx::sha256_digest(b"{}")),
                "application/octet-stream".to_string(),
                b"{}".to_vec(),
            ),
            (
                format!("/v2/aquasecurity/trivy-db/blobs/{layer_digest}"),
                "application/octet-stream".to_string(),
                good.layer.clone(),
            ),
        ];
        let hostile = HostileRegistry::start(routes);
        let work = tempfile::tempdir().unwrap();
        let dir = work.path().join("mirror");
        let run = sync(
            &[
                "--to",
                dir.to_str().unwrap(),
                "--source",
                &format!("{}/aquasecurity", hostile.addr),
                "--only",
                "db",
                "--retries",
                "0",
            ],
            &[],
        );
        assert!(!run.success, "{name}: accepted");
        let err = run.entries()[0]["error"].as_str().unwrap_or("").to_string();
        assert!(err.contains(expect), "{name}: expected {expect:?} in {err:?}");
        assert!(!dir.join("v2/aquasecurity").exists(), "{name}: something was published");
    }
    // Hostile names given by the user are refused before anything runs.
    for args in [["--namespace", "../../etc"], ["--to", "s3://bucket/../x"]] {
        let out = mirror().args(["sync", "--to", "/tmp/unused-mirror", "--only", "db"]).args(args).output().unwrap();
        assert!(!out.status.success(), "{args:?}");
        assert!(text(&out.stderr).contains("invalid"), "{args:?}: {}", text(&out.stderr));
    }
}

#[test]
fn secrets_never_appear_in_the_output_of_failing_runs() {
    let registry = Registry::start_with_auth("user", "right-password");
    let work = tempfile::tempdir().unwrap();
    let secrets = ["SRC-PASS-7f3a", "DEST-TOKEN-91bc", "AWS-SECRET-c0de", "DEST-PASS-5e5e"];
    let runs: Vec<Vec<String>> = vec![
        // Wrong source credentials.
        vec![
            "--source".into(),
            format!("{}/aquasecurity", registry.addr),
            "--source-username".into(),
            "user".into(),
            "--source-password".into(),
            secrets[0].into(),
            "--to".into(),
            work.path().join("a").display().to_string(),
        ],
        // A destination registry token and password that are refused.
        vec![
            "--source".into(),
            format!("{}/aquasecurity", registry.addr),
            "--to".into(),
            format!("oci://{}", registry.addr),
            "--dest-token".into(),
            secrets[1].into(),
        ],
        vec![
            "--source".into(),
            format!("{}/aquasecurity", registry.addr),
            "--to".into(),
            format!("oci://{}", registry.addr),
            "--dest-username".into(),
            "user".into(),
            "--dest-password".into(),
            secrets[3].into(),
        ],
        // An S3 destination whose endpoint is down.
        vec!["--source".into(), format!("{}/aquasecurity", registry.addr), "--to".into(), "s3://bucket/x".into()],
    ];
    for args in runs {
        let out = mirror()
            .arg("sync")
            .args(&args)
            .args(["-vv", "--retries", "0", "--only", "db"])
            .env("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
            .env("AWS_ALLOW_HTTP", "true")
            .env("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
            .env("AWS_SECRET_ACCESS_KEY", secrets[2])
            .env("AWS_REGION", "us-east-1")
            .output()
            .unwrap();
        assert!(!out.status.success(), "{args:?} should fail");
        let all = format!("{}{}", text(&out.stdout), text(&out.stderr));
        for s in secrets {
            assert!(!all.contains(s), "secret {s} leaked in the output of {args:?}:\n{all}");
        }
    }
}

#[test]
fn a_rerun_where_nothing_changed_makes_a_handful_of_requests() {
    let (_, registry) = Upstream::seeded();
    let counting = FaultProxy::start(&registry.addr, Vec::new());
    let vex = Nginx::start("    root @WWW@;\n    location / { }");
    let root = vex.static_root();
    std::fs::write(root.join("main.tar.gz"), fx::vex_repository(&fx::VexOptions::default()).tar_gz).unwrap();
    let loc = format!("http://{}/main.tar.gz//{}", vex.addr, fx::VEX_TOP_DIR);
    std::fs::write(root.join("vex-repository.json"), fx::vex_manifest(&[&loc])).unwrap();
    let moto = Moto::start("cheap");
    let env: Vec<(&str, String)> = moto.env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let source = format!("{}/aquasecurity", counting.addr);
    let vex_source = format!("http://{}/vex-repository.json", vex.addr);
    let args = [
        "--to",
        "s3://cheap/m",
        "--source",
        &source,
        "--base-url",
        "https://mirror.example.com",
        "--vex-source",
        &vex_source,
    ];
    sync(&args, &env).assert_ok();
    let (upstream_before, vex_before, dest_before) =
        (counting.requests(), vex.access_log().lines().count(), moto.requests());
    let started = Instant::now();
    let rerun = sync(&args, &env);
    let elapsed = started.elapsed();
    rerun.assert_ok();
    assert_eq!(rerun.outcomes(), ["unchanged"; 5]);
    let upstream = counting.requests() - upstream_before + vex.access_log().lines().count() - vex_before;
    let dest = moto.requests() - dest_before;
    eprintln!("unchanged rerun: {upstream} upstream requests, {dest} destination requests, {elapsed:?}");
    assert!(upstream <= 12, "{upstream} upstream requests for an unchanged rerun: {:#?}", counting.log());
    // Per artifact one tag GET and the health check's HEAD of each blob, once per run (the
    // two trivy-checks tags share their config; VEX has its config and one archive); VEX's
    // published files one GET (the rewritten manifest) and one HEAD (the archive);
    // status.json one GET and one PUT.
    assert!(dest <= 4 * (1 + 2) + 2 + 2 + 2, "{dest} destination requests for an unchanged rerun:\n{}", moto.log());
}
