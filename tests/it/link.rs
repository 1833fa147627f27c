//! Real networks: a registry whose blob GETs redirect to a rate-limited "CDN" (nginx with
//! `limit_rate`, serving the registry's own blob files, refusing any Authorization), a CDN
//! that ignores `Range`, and the fault proxy for what no real server does on demand (a
//! wrong `Content-Range`, a reset or a corrupt byte in the middle of a range). The layer
//! under test is a 2 MiB java DB, fetched in 64 KiB ranges.

use std::path::{Path, PathBuf};

use trivy_mirror_fixtures as fx;

use crate::harness::*;

const PART: u64 = 64 * 1024;

/// The standard set with a 2 MiB java DB layer, seeded into a registry.
fn seeded(registry: &Registry) -> Upstream {
    let mut upstream = Upstream::standard();
    upstream.java_db = fx::java_db(&fx::JavaDbOptions { padding: 2 << 20, ..Default::default() });
    upstream.seed(registry, "aquasecurity");
    upstream
}

/// `.../blobs/sha256` of the registry's storage, where nginx finds the blob files.
fn blob_root(registry: &Registry) -> PathBuf {
    registry.storage.join("docker/registry/v2/blobs/sha256")
}

/// The CDN stand-in: `/cdn/<hex>` served from the registry's blob files at `rate`, 403 to
/// any request that carries credentials; `extra` adds directives (`max_ranges 0;`).
fn cdn(root: &Path, rate: &str, extra: &str) -> Nginx {
    Nginx::start(&format!(
        "    location ~ ^/cdn/(..)(.*)$ {{\n      if ($http_authorization) {{ return 403; }}\n      \
         alias {}/$1/$1$2/data;\n      limit_rate {rate};\n      {extra}\n    }}",
        root.display()
    ))
}

/// The registry front: blob GETs answer 307 to the CDN, everything else goes to the
/// registry (with the client's Authorization).
fn front(registry: &Registry, cdn: &Nginx) -> Nginx {
    Nginx::start(&format!(
        "    location ~ ^/v2/.+/blobs/sha256:(.+)$ {{ return 307 http://{}/cdn/$1; }}\n    \
         location / {{ proxy_pass http://{}; proxy_set_header Host $http_host; }}",
        cdn.addr, registry.addr
    ))
}

fn mirror_sync(source: &str, dir: &Path, extra: &[&str], env: &[(&str, &str)]) -> SyncRun {
    let mut args = vec!["--source", source, "--to", dir.to_str().unwrap(), "--range-size", "64KiB"];
    args.extend_from_slice(extra);
    sync(&args, env)
}

/// Ranged requests for the java DB layer in an nginx access log (status 206).
fn ranged_hits(log: &str, hex: &str) -> usize {
    log.lines().filter(|l| l.contains(&format!("/cdn/{hex}")) && l.contains("\" 206 ")).count()
}

#[test]
fn ranges_follow_the_redirect_to_a_rate_limited_cdn_without_credentials() {
    let registry = Registry::start_with_auth("puller", "s3cret-pull");
    let upstream = seeded(&registry);
    let cdn = cdn(&blob_root(&registry), "2m", "");
    let front = front(&registry, &cdn);
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("mirror");
    let source = format!("{}/aquasecurity", front.addr);
    let run = mirror_sync(
        &source,
        &dir,
        &["--source-username", "puller", "--source-password", "s3cret-pull", "--range-parts", "8"],
        &[],
    );
    run.assert_ok();
    let hex = upstream.java_db.layer_digest().trim_start_matches("sha256:").to_string();
    let log = cdn.access_log();
    let parts = (upstream.java_db.layer.len() as u64).div_ceil(PART) as usize;
    assert_eq!(ranged_hits(&log, &hex), parts, "one 206 per 64 KiB part:\n{log}");
    assert!(!log.contains("\" 403 "), "credentials reached the CDN:\n{log}");
    let stored = std::fs::read(dir.join(format!("v2/aquasecurity/trivy-java-db/blobs/sha256:{hex}"))).unwrap();
    assert!(stored == upstream.java_db.layer, "the layer landed whole");
    // Real Trivy downloads what was published.
    let serve = Serve::start(&dir);
    let trivy = Trivy::new(TRIVY_CURRENT);
    let out = trivy.download_java_db(&serve.addr);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(trivy.download_db(&serve.addr).status.success());
}

#[test]
fn a_cdn_ignoring_range_or_a_wrong_content_range_gives_one_plain_stream() {
    let registry = Registry::start();
    let upstream = seeded(&registry);
    let hex = upstream.java_db.layer_digest().trim_start_matches("sha256:").to_string();
    let work = tempfile::tempdir().unwrap();

    // nginx with `max_ranges 0` answers 200 with the whole file: read as one stream.
    let plain = cdn(&blob_root(&registry), "0", "max_ranges 0;");
    let front = front(&registry, &plain);
    let run = mirror_sync(&format!("{}/aquasecurity", front.addr), &work.path().join("a"), &["--only", "java-db"], &[]);
    run.assert_ok();
    let log = plain.access_log();
    let hits: Vec<&str> = log.lines().filter(|l| l.contains(&format!("/cdn/{hex}"))).collect();
    assert_eq!(hits.len(), 1, "one request for the whole layer: {hits:?}");
    assert!(hits[0].contains("\" 200 "), "{hits:?}");

    // A wrong Content-Range on the first range: refused, then one plain GET.
    let proxy = FaultProxy::start(
        &registry.addr,
        vec![Rule {
            method: "GET",
            path: format!("/blobs/sha256:{hex}"),
            occurrences: vec![1],
            action: Action::WrongRange,
        }],
    );
    let dir = work.path().join("b");
    let run = mirror_sync(&format!("{}/aquasecurity", proxy.addr), &dir, &["--only", "java-db"], &[]);
    run.assert_ok();
    let layer_gets: Vec<String> =
        proxy.log().into_iter().filter(|l| l.contains(&hex) && l.starts_with("GET")).collect();
    assert_eq!(layer_gets.len(), 2, "{layer_gets:?}");
    assert!(layer_gets[0].contains("[bytes=0-65535]") && layer_gets[1].contains("[]"), "{layer_gets:?}");
    assert!(run.stderr.contains("ranges refused"), "{}", run.stderr);
    let stored = std::fs::read(dir.join(format!("v2/aquasecurity/trivy-java-db/blobs/sha256:{hex}"))).unwrap();
    assert!(stored == upstream.java_db.layer);
}

#[test]
fn a_reset_mid_layer_costs_one_range_and_a_corrupt_range_commits_nothing() {
    let registry = Registry::start();
    let upstream = seeded(&registry);
    let hex = upstream.java_db.layer_digest().trim_start_matches("sha256:").to_string();
    let size = upstream.java_db.layer.len() as u64;
    let work = tempfile::tempdir().unwrap();
    let path = format!("/blobs/sha256:{hex}");

    // The 16th range (the middle of the layer) breaks after 20 KiB.
    let proxy = FaultProxy::start(
        &registry.addr,
        vec![Rule { method: "GET", path: path.clone(), occurrences: vec![16], action: Action::Reset(20 * 1024) }],
    );
    let dir = work.path().join("reset");
    let run = mirror_sync(
        &format!("{}/aquasecurity", proxy.addr),
        &dir,
        &["--only", "java-db", "--retry-base-ms", "10"],
        &[],
    );
    run.assert_ok();
    let refetched = proxy.blob_bytes().saturating_sub(size + upstream.java_db.config.len() as u64);
    assert!(refetched < 2 * PART, "a reset cost {refetched} bytes fetched again (parts are {PART})");
    // One request per part, plus one for the rest of the broken part (from the byte it
    // reached, or from its start when the reset lost what was in flight).
    let gets: Vec<String> = proxy.log().into_iter().filter(|l| l.contains(&hex)).collect();
    assert_eq!(gets.len() as u64, size.div_ceil(PART) + 1, "{gets:#?}");
    let stored = std::fs::read(dir.join(format!("v2/aquasecurity/trivy-java-db/blobs/sha256:{hex}"))).unwrap();
    assert!(stored == upstream.java_db.layer);

    // A flipped byte in one range, every time: the digest fails, nothing is committed.
    let proxy = FaultProxy::start(
        &registry.addr,
        vec![Rule {
            method: "GET",
            path,
            occurrences: (1..400).filter(|n| n % 32 == 5).collect(),
            action: Action::Corrupt,
        }],
    );
    let dir = work.path().join("corrupt");
    let run = mirror_sync(
        &format!("{}/aquasecurity", proxy.addr),
        &dir,
        &["--only", "java-db", "--retry-base-ms", "10"],
        &[],
    );
    assert!(!run.success, "a corrupt range was accepted");
    assert!(run.failure(0).contains("sha256"), "{}", run.failure(0));
    assert!(!dir.join(format!("v2/aquasecurity/trivy-java-db/blobs/sha256:{hex}")).exists());
    assert!(!dir.join("v2/aquasecurity/trivy-java-db/manifests/1").exists());
}
