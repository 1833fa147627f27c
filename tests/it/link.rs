//! Real networks: a registry whose blob GETs redirect to a rate-limited "CDN" (nginx with
//! `limit_rate`, serving the registry's own blob files, refusing any Authorization), a CDN
//! that ignores `Range`, and the fault proxy in front of the CDN for what no real server
//! does on demand (a wrong `Content-Range`, a reset or a corrupt byte in the middle of a
//! range). A registry serving blobs itself gets one resumable stream unless it is slow.
//! The layer under test is a 2 MiB java DB, fetched in 64 KiB ranges.

use std::path::Path;
use std::time::Duration;

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

fn mirror_sync(source: &str, dir: &Path, extra: &[&str], env: &[(&str, &str)]) -> SyncRun {
    let mut args = vec!["--source", source, "--to", dir.to_str().unwrap(), "--range-size", "64KiB"];
    args.extend_from_slice(extra);
    sync(&args, env)
}

/// Ranged requests for the java DB layer in an nginx access log (status 206).
fn ranged_hits(log: &str, hex: &str) -> usize {
    log.lines().filter(|l| l.contains(&format!("/cdn/blobs/sha256:{hex}")) && l.contains("\" 206 ")).count()
}

/// The `Range` headers of the layer's GETs in a fault proxy's log.
fn layer_ranges(proxy: &FaultProxy, hex: &str) -> Vec<String> {
    proxy
        .log()
        .into_iter()
        .filter(|l| l.contains(hex) && l.starts_with("GET"))
        .map(|l| l.split_once('[').and_then(|(_, r)| r.split_once(']')).map(|(r, _)| r.to_string()).unwrap_or(l))
        .collect()
}

#[test]
fn ranges_follow_the_redirect_to_a_rate_limited_cdn_without_credentials() {
    let registry = Registry::start_with_auth("puller", "s3cret-pull");
    let upstream = seeded(&registry);
    let cdn = Nginx::blob_cdn(&registry, "2m", "");
    let front = Nginx::registry_front(&registry, &cdn.addr);
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
    let plain = Nginx::blob_cdn(&registry, "0", "max_ranges 0;");
    let front = Nginx::registry_front(&registry, &plain.addr);
    let run = mirror_sync(&format!("{}/aquasecurity", front.addr), &work.path().join("a"), &["--only", "java-db"], &[]);
    run.assert_ok();
    let log = plain.access_log();
    let hits: Vec<&str> = log.lines().filter(|l| l.contains(&format!("/cdn/blobs/sha256:{hex}"))).collect();
    assert_eq!(hits.len(), 1, "one request for the whole layer: {hits:?}");
    assert!(hits[0].contains("\" 200 "), "{hits:?}");

    // A wrong Content-Range on the first range: refused, then one plain GET.
    let cdn = Nginx::blob_cdn(&registry, "0", "");
    let proxy = FaultProxy::start(
        &cdn.addr,
        vec![Rule {
            method: "GET",
            path: format!("/blobs/sha256:{hex}"),
            occurrences: vec![1],
            action: Action::WrongRange,
        }],
    );
    let dir = work.path().join("b");
    let front = Nginx::registry_front(&registry, &proxy.addr);
    let run = mirror_sync(&format!("{}/aquasecurity", front.addr), &dir, &["--only", "java-db"], &[]);
    run.assert_ok();
    assert_eq!(layer_ranges(&proxy, &hex), ["bytes=0-65535", ""], "{:#?}", proxy.log());
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
    let cdn = Nginx::blob_cdn(&registry, "0", "");

    // The 16th range (the middle of the layer) breaks after 20 KiB.
    let proxy = FaultProxy::start(
        &cdn.addr,
        vec![Rule { method: "GET", path: path.clone(), occurrences: vec![16], action: Action::Reset(20 * 1024) }],
    );
    let front = Nginx::registry_front(&registry, &proxy.addr);
    let dir = work.path().join("reset");
    let run = mirror_sync(
        &format!("{}/aquasecurity", front.addr),
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
        &cdn.addr,
        vec![Rule {
            method: "GET",
            path,
            occurrences: (1..400).filter(|n| n % 32 == 5).collect(),
            action: Action::Corrupt,
        }],
    );
    let front = Nginx::registry_front(&registry, &proxy.addr);
    let dir = work.path().join("corrupt");
    let run = mirror_sync(
        &format!("{}/aquasecurity", front.addr),
        &dir,
        &["--only", "java-db", "--retry-base-ms", "10"],
        &[],
    );
    assert!(!run.success, "a corrupt range was accepted");
    assert!(run.failure(0).contains("sha256"), "{}", run.failure(0));
    assert!(!dir.join(format!("v2/aquasecurity/trivy-java-db/blobs/sha256:{hex}")).exists());
    assert!(!dir.join("v2/aquasecurity/trivy-java-db/manifests/1").exists());
}

#[test]
fn a_registry_serving_blobs_itself_gives_one_resumable_stream_unless_it_is_slow() {
    let registry = Registry::start();
    let upstream = seeded(&registry);
    let hex = upstream.java_db.layer_digest().trim_start_matches("sha256:").to_string();
    let size = upstream.java_db.layer.len() as u64;
    let path = format!("/blobs/sha256:{hex}");
    let work = tempfile::tempdir().unwrap();
    let stored = |dir: &Path| std::fs::read(dir.join(format!("v2/aquasecurity/trivy-java-db/blobs/sha256:{hex}")));

    // No redirect, loopback speed: the first part, then the rest as one range; that breaks
    // after 256 KiB and is asked again from the byte it reached.
    let proxy = FaultProxy::start(
        &registry.addr,
        vec![Rule { method: "GET", path: path.clone(), occurrences: vec![2], action: Action::Reset(256 * 1024) }],
    );
    let dir = work.path().join("fast");
    let source = format!("{}/aquasecurity", proxy.addr);
    mirror_sync(&source, &dir, &["--only", "java-db", "--retry-base-ms", "10"], &[]).assert_ok();
    let ranges = layer_ranges(&proxy, &hex);
    let last = size - 1;
    assert_eq!(ranges.len(), 3, "{ranges:#?}");
    assert_eq!(ranges[..2], [format!("bytes=0-{}", PART - 1), format!("bytes={PART}-{last}")], "{ranges:#?}");
    let resumed: u64 = ranges[2].trim_start_matches("bytes=").split_once('-').unwrap().0.parse().unwrap();
    assert!(resumed > PART && resumed <= PART + 256 * 1024 && ranges[2].ends_with(&format!("-{last}")), "{ranges:#?}");
    assert!(stored(&dir).unwrap() == upstream.java_db.layer, "the layer landed whole");

    // The same registry behind a slow link (4 ms per 64 KiB, at most 16 MiB/s): the 1 MiB
    // first part is timed, found slow, and the rest comes in ranges.
    let slow = FaultProxy::start(
        &registry.addr,
        vec![Rule {
            method: "GET",
            path,
            occurrences: (1..100).collect(),
            action: Action::Slow(Duration::from_millis(4)),
        }],
    );
    let dir = work.path().join("slow");
    let source = format!("{}/aquasecurity", slow.addr);
    sync(&["--source", &source, "--to", dir.to_str().unwrap(), "--only", "java-db", "--range-size", "1MiB"], &[])
        .assert_ok();
    let mib = 1024 * 1024;
    let want: Vec<String> =
        (0..size.div_ceil(mib)).map(|i| format!("bytes={}-{}", i * mib, ((i + 1) * mib).min(size) - 1)).collect();
    // The timed first part comes alone; the rest are in flight together, in any order.
    let mut seen = layer_ranges(&slow, &hex);
    assert_eq!(seen.first(), want.first(), "{seen:#?}");
    seen[1..].sort_by_key(|r| r.trim_start_matches("bytes=").split_once('-').unwrap().0.parse::<u64>().unwrap());
    assert_eq!(seen, want);
    assert!(stored(&dir).unwrap() == upstream.java_db.layer, "the layer landed whole");
}
