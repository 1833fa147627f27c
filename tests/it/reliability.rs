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
    let slow = FaultProxy::start(
        &registry.addr,
        vec![Rule {
            method: "GET",
            path: "/blobs/".into(),
            occurrences: (1..10_000).collect(),
            action: Action::Slow(Duration::from_millis(4)),
        }],
    );
    let through = format!("{}/aquasecurity", slow.addr);
    let mut rng = Rng(0x7e57);
    let mut killed_mid_upload = 0;
    for point in 0..20 {
        let mut child = mirror()
            .args(["sync", "--to", dir.to_str().unwrap(), "--source", &through, "--only", "db", "-q"])
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
    let upstream = Upstream::standard();
    let registry = Registry::start();
    upstream.seed(&registry, "aquasecurity");
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
    let upstream = Upstream::standard();
    let registry = Registry::start();
    upstream.seed(&registry, "aquasecurity");
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
