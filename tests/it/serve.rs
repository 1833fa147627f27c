//! `serve` run as a service: HTTP semantics (validators, 304, ranges, bounds), health,
//! readiness and metrics on plain HTTP; TLS with a private CA, Basic authentication and
//! certificate rotation with the real Trivy client.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::harness::*;

/// GET with extra request headers: status, headers, body.
fn get(url: &str, headers: &[(&str, &str)]) -> (u16, reqwest::header::HeaderMap, Vec<u8>) {
    let mut req = http().get(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.send().unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let status = resp.status().as_u16();
    let h = resp.headers().clone();
    (status, h, resp.bytes().unwrap().to_vec())
}

/// Every sample of a metrics exposition, parsed by the Prometheus project's own Python
/// client (its OpenMetrics parser is strict: a malformed line fails the test):
/// `name{label="value",…}` (labels sorted) → value.
fn parse_metrics(exposition: &[u8]) -> BTreeMap<String, f64> {
    let script = r#"
import json, sys
from prometheus_client.openmetrics.parser import text_string_to_metric_families
out = {}
for family in text_string_to_metric_families(sys.stdin.read()):
    for s in family.samples:
        labels = ",".join(f'{k}="{v}"' for k, v in sorted(s.labels.items()))
        out[f"{s.name}{{{labels}}}"] = s.value
print(json.dumps(out))
"#;
    let mut child = Command::new(tool("py/bin/python"))
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(exposition).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "the Prometheus parser refused /metrics:\n{}\n{}",
        text(&out.stderr),
        text(exposition)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn http_semantics_readiness_and_metrics() {
    let (upstream, registry) = Upstream::seeded();
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("mirror");
    std::fs::create_dir_all(&dir).unwrap();
    let metrics_addr = format!("127.0.0.1:{}", free_port());
    let serve = Serve::start_with(&dir, &["--max-age", "4s", "--metrics-listen", &metrics_addr]);
    let base = format!("http://{}", serve.addr);

    // Health and readiness of an empty directory.
    assert_eq!(get(&format!("{base}/healthz"), &[]).0, 200);
    let (status, _, body) = get(&format!("{base}/readyz"), &[]);
    assert_eq!(status, 503, "{}", text(&body));
    assert!(text(&body).contains("status.json"), "{}", text(&body));

    let source = format!("{}/aquasecurity", registry.addr);
    sync(&["--to", dir.to_str().unwrap(), "--source", &source, "--only", "db"], &[]).assert_ok();
    let (status, _, body) = get(&format!("{base}/readyz"), &[]);
    assert_eq!(status, 200, "{}", text(&body));

    // Validators and conditional requests, on a manifest (from memory) and a blob (streamed).
    let db = &upstream.db;
    let manifest = format!("{base}/v2/aquasecurity/trivy-db/manifests/2");
    let blob = format!("{base}/v2/aquasecurity/trivy-db/blobs/{}", db.layer_digest());
    for url in [&manifest, &blob] {
        let (status, h, _) = get(url, &[]);
        assert_eq!(status, 200);
        let (etag, modified) = (header(&h, "etag"), header(&h, "last-modified"));
        assert!(etag.starts_with('"') && modified.ends_with("GMT"), "{etag} {modified}");
        let (status, h304, body) = get(url, &[("if-none-match", &etag)]);
        assert_eq!((status, body.len(), header(&h304, "etag")), (304, 0, etag.clone()), "{url}");
        assert_eq!(get(url, &[("if-modified-since", &modified)]).0, 304, "{url}");
        assert_eq!(get(url, &[("if-none-match", "\"other\""), ("if-modified-since", &modified)]).0, 200);
        // HEAD matches GET, header for header.
        let (_, head, _) = fetch("HEAD", url);
        for name in
            ["content-length", "content-type", "etag", "last-modified", "cache-control", "docker-content-digest"]
        {
            assert_eq!(header(&head, name), header(&h, name), "HEAD {url}: {name}");
        }
    }

    // Ranges: one → 206, past the end → 416, several or malformed → the whole object.
    let len = db.layer.len();
    let (status, h, body) = get(&blob, &[("range", "bytes=0-9")]);
    assert_eq!(
        (status, header(&h, "content-range"), body.as_slice()),
        (206, format!("bytes 0-9/{len}"), &db.layer[..10])
    );
    let (status, _, body) = get(&blob, &[("range", "bytes=-5")]);
    assert_eq!((status, body.as_slice()), (206, &db.layer[len - 5..]));
    let (status, h, _) = get(&blob, &[("range", "bytes=100-")]);
    assert_eq!((status, header(&h, "content-range")), (206, format!("bytes 100-{}/{len}", len - 1)));
    for unsatisfiable in [format!("bytes={len}-"), "bytes=99999999999999999999999-".into(), "bytes=-0".into()] {
        let (status, h, _) = get(&blob, &[("range", &unsatisfiable)]);
        assert_eq!((status, header(&h, "content-range")), (416, format!("bytes */{len}")), "{unsatisfiable}");
    }
    let thousand = format!("bytes={}", vec!["0-0"; 1000].join(","));
    for whole in ["bytes=0-1,5-6", thousand.as_str(), "bytes=9-5", "bytes=-5-10", "bytes=abc"] {
        let (status, _, body) = get(&blob, &[("range", whole)]);
        assert_eq!((status, body.len()), (200, len), "{}", &whole[..whole.len().min(40)]);
    }

    // Oversized request heads and paths are refused, not buffered.
    let big = "x".repeat(20 * 1024);
    assert_eq!(get(&format!("{base}/v2/"), &[("x-big", &big)]).0, 431);
    assert_eq!(get(&format!("{base}/v2/{}", "a/".repeat(2500)), &[]).0, 414);

    // Metrics on their own listener, parsed by a real Prometheus parser; counters move.
    assert_eq!(get(&format!("{base}/metrics"), &[]).0, 404, "metrics live on --metrics-listen");
    let scrape = || parse_metrics(&get(&format!("http://{metrics_addr}/metrics"), &[]).2);
    let before = scrape();
    let key = r#"trivy_mirror_http_requests_total{route="blob",status="206"}"#;
    assert!(before[key] >= 3.0, "{before:#?}");
    get(&blob, &[("range", "bytes=0-0")]);
    let after = scrape();
    assert_eq!(after[key], before[key] + 1.0);
    assert!(after[r#"trivy_mirror_http_response_body_bytes_total{route="blob"}"#] > len as f64);
    assert!(after.contains_key(r#"trivy_mirror_http_request_duration_seconds_count{route="manifest"}"#));
    assert_eq!(after[r#"trivy_mirror_ready{}"#], 1.0);
    assert!(after[r#"trivy_mirror_artifact_bytes{artifact="trivy-db:2"}"#] > len as f64);
    assert!(after[r#"trivy_mirror_artifact_last_check_age_seconds{artifact="trivy-db:2"}"#] < 60.0);
    assert!(after.contains_key(r#"trivy_mirror_artifact_build_age_seconds{artifact="trivy-db:2"}"#));
    assert!(after.contains_key(r#"trivy_mirror_http_connections{}"#));

    // One access-log line per request.
    let log = serve.log();
    assert!(
        log.lines().any(|l| l.contains("/v2/aquasecurity/trivy-db/manifests/2") && l.contains("304")),
        "no access-log line for the 304:\n{log}"
    );

    // Once the last successful check is older than --max-age, /readyz names the artifact.
    poll("/readyz turning stale", Duration::from_secs(15), || {
        let (status, _, body) = get(&format!("{base}/readyz"), &[]);
        status == 503 && text(&body).contains("trivy-db:2") && text(&body).contains("stale")
    });
}

/// A client trusting only `ca`, optionally HTTP/1.1 only.
fn tls_client(ca: &std::path::Path) -> reqwest::blocking::Client {
    let cert = reqwest::Certificate::from_pem(&std::fs::read(ca).unwrap()).unwrap();
    reqwest::blocking::Client::builder()
        .no_proxy()
        .tls_certs_only([cert])
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

#[test]
fn real_trivy_over_tls_with_basic_auth_and_certificate_rotation() {
    let (_, registry) = Upstream::seeded();
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("mirror");
    let port = free_port();
    let vex = crate::vex::UpstreamVex::start();
    let base_url = format!("https://127.0.0.1:{port}");
    let (to, source) = (dir.to_str().unwrap(), format!("{}/aquasecurity", registry.addr));
    let only = ["--only", "db,java-db,checks,vex", "--vex-source", &vex.manifest_url(), "--base-url", &base_url];
    sync(&[&["--to", to, "--source", &source][..], &only[..]].concat(), &[]).assert_ok();
    let pki = TestCa::new(&work.path().join("pki"));
    let other = TestCa::new(&work.path().join("other"));
    let htpasswd = work.path().join("htpasswd");
    let htpasswd_tool = || Command::new(system_tool("htpasswd"));
    run_ok("htpasswd -B", htpasswd_tool().arg("-cbB").arg(&htpasswd).args(["scanner", "s3cret"]));

    // Settings that cannot work fail at start, in one line naming the file.
    let md5 = work.path().join("md5-htpasswd");
    run_ok("htpasswd -m", htpasswd_tool().arg("-cbm").arg(&md5).args(["old", "pw"]));
    let start_fails = |args: &[&std::ffi::OsStr]| {
        let out = mirror().arg("serve").arg(&dir).args(["--listen", "127.0.0.1:0"]).args(args).output().unwrap();
        assert!(!out.status.success());
        let err = text(&out.stderr);
        // Nothing is announced for a server that cannot run: the error line and its hint only.
        assert!(!err.contains("serving on") && err.lines().count() <= 2, "{err}");
        err
    };
    let err = start_fails(&["--htpasswd".as_ref(), md5.as_os_str()]);
    assert!(err.contains(md5.to_str().unwrap()) && err.contains("line 1") && err.contains("bcrypt"), "{err}");
    let err = start_fails(&["--tls-cert".as_ref(), pki.cert.as_os_str(), "--tls-key".as_ref(), other.key.as_os_str()]);
    assert!(err.contains(other.key.to_str().unwrap()) && err.contains("does not match"), "{err}");
    let missing = work.path().join("missing.pem");
    let err = start_fails(&["--tls-cert".as_ref(), missing.as_os_str(), "--tls-key".as_ref(), pki.key.as_os_str()]);
    assert!(err.contains(missing.to_str().unwrap()), "{err}");

    // Serve from copies of the certificate and key, which the rotation replaces later.
    let (cert, key) = (work.path().join("tls.crt"), work.path().join("tls.key"));
    std::fs::copy(&pki.cert, &cert).unwrap();
    std::fs::copy(&pki.key, &key).unwrap();
    let path = |p: &std::path::Path| p.to_str().unwrap().to_string();
    let serve = Serve::start_with_on(
        &dir,
        port,
        &["--tls-cert", &path(&cert), "--tls-key", &path(&key), "--htpasswd", &path(&htpasswd)],
    );
    let base = format!("https://{}", serve.addr);
    let client = tls_client(&pki.ca);

    // The challenge Trivy answers with credentials; health stays open.
    let resp = client.get(format!("{base}/v2/")).send().unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    assert_eq!(header(resp.headers(), "www-authenticate"), r#"Basic realm="trivy-mirror""#);
    let blob_path = "/v2/aquasecurity/trivy-db/manifests/2";
    assert_eq!(client.get(format!("{base}{blob_path}")).send().unwrap().status().as_u16(), 401);
    assert_eq!(client.get(format!("{base}/healthz")).send().unwrap().status().as_u16(), 200);
    assert_eq!(client.get(format!("{base}/readyz")).send().unwrap().status().as_u16(), 200);
    let garbage = client.get(format!("{base}/v2/")).header("authorization", "Basic %%%not-base64").send().unwrap();
    assert_eq!(garbage.status().as_u16(), 401);
    let ok = client.get(format!("{base}/v2/")).basic_auth("scanner", Some("s3cret")).send().unwrap();
    assert_eq!(ok.status().as_u16(), 200);

    // The htpasswd file is re-read when it changes (looked at once a second; polled slowly,
    // since every refused attempt counts against this address).
    run_ok("htpasswd -B", htpasswd_tool().arg("-bB").arg(&htpasswd).args(["ci", "added"]));
    let started = Instant::now();
    loop {
        let r = client.get(format!("{base}/v2/")).basic_auth("ci", Some("added")).send().unwrap();
        if r.status().as_u16() == 200 {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(5), "the added user was not accepted: {}", r.status());
        std::thread::sleep(Duration::from_millis(400));
    }

    // Real Trivy 0.76 and 0.67 over TLS with a private CA and Basic credentials.
    let ca = path(&pki.ca);
    let env = [("SSL_CERT_FILE", ca.as_str()), ("TRIVY_USERNAME", "scanner"), ("TRIVY_PASSWORD", "s3cret")];
    assert_trivy_uses_mirror_with(&serve.addr, &env);
    let old = Trivy::new(TRIVY_OLD).with_env(&env);
    let out = old.download_db(&serve.addr);
    assert!(out.status.success(), "trivy 0.67 over TLS + auth:\n{}", text(&out.stderr));
    let out = old.download_java_db(&serve.addr);
    assert!(out.status.success(), "trivy 0.67 java-db over TLS + auth:\n{}", text(&out.stderr));
    // VEX with the credentials in repository.yaml (HEAD and GET of manifest and archive).
    let trivy = Trivy::new(TRIVY_CURRENT).with_env(&env);
    let vex_dir = trivy.home.path().join(".trivy/vex");
    std::fs::create_dir_all(&vex_dir).unwrap();
    std::fs::write(
        vex_dir.join("repository.yaml"),
        format!(
            "repositories:\n  - name: mirror\n    url: {base_url}\n    enabled: true\n    username: scanner\n    password: s3cret\n"
        ),
    )
    .unwrap();
    assert!(trivy.download_db(&serve.addr).status.success());
    trivy.run_ok(&["vex", "repo", "download"]);
    let ids = trivy.scan_requirements(&["--vex", "repo", "--skip-vex-repo-update"]);
    assert!(!ids.contains(&trivy_mirror_fixtures::DEFAULT_CVE_ID.to_string()), "VEX did not apply: {ids:?}");

    let wrong = Trivy::new(TRIVY_CURRENT).with_env(&[
        ("SSL_CERT_FILE", ca.as_str()),
        ("TRIVY_USERNAME", "scanner"),
        ("TRIVY_PASSWORD", "wrong"),
    ]);
    let out = wrong.download_db(&serve.addr);
    assert!(!out.status.success());
    // Trivy prints the registry error code of the 401 body.
    assert!(text(&out.stderr).contains("UNAUTHORIZED: authentication required"), "{}", text(&out.stderr));

    // Wrong passwords in a loop are rate-limited per address; known credentials still work.
    let mut limited = None;
    for _ in 0..30 {
        let r = client.get(format!("{base}/v2/")).basic_auth("scanner", Some("guess")).send().unwrap();
        if r.status().as_u16() == 429 {
            limited = Some(header(r.headers(), "retry-after"));
            break;
        }
        assert_eq!(r.status().as_u16(), 401);
    }
    let retry_after: u64 = limited.expect("no 429 after 30 wrong passwords").parse().unwrap();
    assert!((1..=60).contains(&retry_after));
    let ok = client.get(format!("{base}/v2/")).basic_auth("scanner", Some("s3cret")).send().unwrap();
    assert_eq!(ok.status().as_u16(), 200);

    // Neither the password nor the Authorization header reaches the log; the user does.
    let log = serve.log();
    assert!(log.contains("scanner"), "{log}");
    assert!(!log.contains("s3cret") && !log.contains("Basic ") && !log.contains("guess"), "{log}");

    // Rotation: replace certificate and key on disk. New connections get the new
    // certificate; the open keep-alive connection of `client` keeps working.
    std::fs::copy(&other.cert, &cert).unwrap();
    std::fs::copy(&other.key, &key).unwrap();
    let rotated = tls_client(&other.ca);
    poll("the new certificate on new connections", Duration::from_secs(15), || {
        rotated.get(format!("{base}/healthz")).send().is_ok_and(|r| r.status().is_success())
    });
    let kept = client.get(format!("{base}/v2/")).basic_auth("scanner", Some("s3cret")).send().unwrap();
    assert_eq!(kept.status().as_u16(), 200, "the open connection broke on rotation");
    assert!(
        tls_client(&pki.ca).get(format!("{base}/healthz")).send().is_err(),
        "a new connection got the old certificate"
    );
}

/// `serve --sync-every`: the in-process schedule picks up three upstream updates while a
/// reader downloads manifests and blobs in a loop and checks every blob against its
/// digest; no reader ever gets a short blob or a mix of two versions.
#[test]
fn sync_while_serving_serves_whole_versions_only() {
    use trivy_mirror_fixtures as fx;
    let registry = Registry::start();
    let work = tempfile::tempdir().unwrap();
    let version = |i: u32| {
        let updated_at = format!("2026-02-0{}T00:00:00Z", i + 1).parse().unwrap();
        fx::trivy_db(&fx::DbOptions { updated_at, padding: 3 << 20, ..fx::DbOptions::default() })
    };
    let publish = |i: u32| {
        let artifact = version(i);
        let layout = work.path().join(format!("layout-{i}"));
        fx::write_oci_layout(&layout, &[("2", &artifact)]).unwrap();
        registry.seed(&layout, "2", "aquasecurity/trivy-db", "2");
        artifact.manifest_digest()
    };
    publish(0);
    let dir = work.path().join("mirror");
    std::fs::create_dir_all(&dir).unwrap();
    let source = format!("{}/aquasecurity", registry.addr);
    let serve = Serve::start_with(&dir, &["--sync-every", "1s", "--source", &source, "--only", "db", "-q"]);
    let base = format!("http://{}", serve.addr);
    poll("the first in-process sync", Duration::from_secs(60), || get(&format!("{base}/readyz"), &[]).0 == 200);

    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let (stop, base) = (stop.clone(), base.clone());
        std::thread::spawn(move || {
            let (mut good, mut bad, mut seen) = (0, Vec::new(), std::collections::BTreeSet::new());
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let (status, h, manifest) = get(&format!("{base}/v2/aquasecurity/trivy-db/manifests/2"), &[]);
                let digest = trivy_mirror::oci::Digest::of(&manifest).to_string();
                if status != 200 || header(&h, "docker-content-digest") != digest {
                    bad.push(format!(
                        "manifest: {status}, header {} for {digest}",
                        header(&h, "docker-content-digest")
                    ));
                    continue;
                }
                seen.insert(digest);
                let m: serde_json::Value = serde_json::from_slice(&manifest).unwrap();
                for layer in m["layers"].as_array().unwrap() {
                    let (d, size) = (layer["digest"].as_str().unwrap(), layer["size"].as_u64().unwrap());
                    let (status, _, blob) = get(&format!("{base}/v2/aquasecurity/trivy-db/blobs/{d}"), &[]);
                    let got = trivy_mirror::oci::Digest::of(&blob).to_string();
                    if status == 200 && got == d && blob.len() as u64 == size {
                        good += 1;
                    } else {
                        bad.push(format!("blob {d}: {status}, {} of {size} bytes hashing to {got}", blob.len()));
                    }
                }
            }
            (good, bad, seen)
        })
    };
    for i in 1..=3 {
        let digest = publish(i);
        poll(&format!("update {i} served"), Duration::from_secs(60), || {
            header(&get(&format!("{base}/v2/aquasecurity/trivy-db/manifests/2"), &[]).1, "docker-content-digest")
                == digest
        });
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (good, bad, seen) = reader.join().unwrap();
    assert!(bad.is_empty(), "{} bad downloads of {}:\n{}", bad.len(), good + bad.len(), bad.join("\n"));
    assert!(good >= 4 && seen.len() >= 2, "{good} downloads saw {} versions", seen.len());

    let metrics = parse_metrics(&get(&format!("{base}/metrics"), &[]).2);
    assert!(metrics[r#"trivy_mirror_sync_runs_total{outcome="success"}"#] >= 4.0, "{metrics:#?}");
    assert_eq!(get(&format!("{base}/readyz"), &[]).0, 200);
    assert!(!serve.log().contains("/blobs/"), "-q turns the access log off:\n{}", serve.log());

    // The source goes away: the scheduled runs fail and are counted, and the last version
    // stays served and ready (it is younger than --max-age).
    let manifest_url = format!("{base}/v2/aquasecurity/trivy-db/manifests/2");
    let served = header(&get(&manifest_url, &[]).1, "docker-content-digest");
    drop(registry);
    let failures = r#"trivy_mirror_sync_runs_total{outcome="failure"}"#;
    poll("a failed in-process sync counted", Duration::from_secs(60), || {
        parse_metrics(&get(&format!("{base}/metrics"), &[]).2).get(failures).is_some_and(|n| *n >= 1.0)
    });
    assert_eq!(get(&format!("{base}/readyz"), &[]).0, 200, "a failed run keeps the mirror ready");
    let (status, h, _) = get(&manifest_url, &[]);
    assert_eq!((status, header(&h, "docker-content-digest")), (200, served), "the previous version stays served");
}

/// Silent and slow clients are disconnected, idle connections cannot lock real clients
/// out for good, and SIGTERM lets a download in flight finish; access log as JSON.
#[test]
fn connection_bounds_graceful_shutdown_and_json_access_log() {
    use std::io::Read as _;
    use std::net::TcpStream;
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("mirror");
    std::fs::create_dir_all(&dir).unwrap();
    let big: Vec<u8> = (0..32u32 << 20).map(|i| (i % 251) as u8).collect();
    std::fs::write(dir.join("big.tar.gz"), &big).unwrap();
    let metrics_addr = format!("127.0.0.1:{}", free_port());
    let args = ["--max-connections", "3", "--header-timeout", "1s", "--log-format", "json", "--metrics-listen"];
    let mut serve = Serve::start_with(&dir, &[&args[..], &[metrics_addr.as_str()]].concat());
    let open_connections = || {
        let m = parse_metrics(&get(&format!("http://{metrics_addr}/metrics"), &[]).2);
        // The scrape's own connection counts too.
        m["trivy_mirror_http_connections{}"] - 1.0
    };
    let addr = serve.addr.clone();
    let connect = || {
        let s = TcpStream::connect(&addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s
    };
    // Nothing sent, or half a request head: closed after --header-timeout, not kept.
    for partial in ["", "GET /healthz HTTP/1.1\r\nHost: x\r\n"] {
        let mut s = connect();
        s.write_all(partial.as_bytes()).unwrap();
        let started = Instant::now();
        let mut buf = [0u8; 256];
        let closed = matches!(s.read(&mut buf), Ok(0) | Err(_));
        assert!(closed && started.elapsed() < Duration::from_secs(5), "{partial:?} kept open");
    }

    // Three idle connections take every slot; a real client waits, then gets in once
    // the server closed them.
    let hogs: Vec<TcpStream> = (0..3).map(|_| connect()).collect();
    poll("the idle connections taking every slot", Duration::from_secs(5), || open_connections() == 3.0);
    let started = Instant::now();
    let (status, _, _) = get(&format!("http://{addr}/healthz"), &[]);
    assert_eq!(status, 200);
    assert!(started.elapsed() >= Duration::from_millis(500), "the client did not wait for a free slot");
    drop(hogs);
    poll("every connection closed", Duration::from_secs(5), || open_connections() == 0.0);

    // SIGTERM: the download in flight completes, new connections are refused, exit 0.
    let mut s = connect();
    s.write_all(b"GET /big.tar.gz HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut response = vec![0u8; 64 * 1024];
    s.read_exact(&mut response).unwrap();
    serve.process().sigterm();
    poll("the listener closing", Duration::from_secs(10), || TcpStream::connect(&addr).is_err());
    s.read_to_end(&mut response).unwrap();
    let head_end = response.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    assert!(text(&response[..head_end]).starts_with("HTTP/1.1 200"));
    assert!(response[head_end..] == big[..], "the download in flight was cut ({} bytes)", response.len() - head_end);
    let status = serve.process().wait_exit(Duration::from_secs(30));
    assert!(status.success(), "{status}");

    // One JSON access-log line per request, with the fields an operator filters on.
    let log = serve.log();
    let line = log
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["path"] == "/big.tar.gz")
        .unwrap_or_else(|| panic!("no JSON access-log line:\n{log}"));
    let f = &line;
    assert_eq!((f["method"].as_str(), f["status"].as_u64()), (Some("GET"), Some(200)), "{line}");
    assert_eq!(
        (f["bytes"].as_u64(), f["client"].as_str(), f["user"].as_str()),
        (Some(32 << 20), Some("127.0.0.1"), Some("-"))
    );
}

/// SIGTERM while a scheduled sync is copying: the process exits promptly and cleanly, and
/// nothing of the interrupted version is visible; the next start completes it.
#[test]
fn sigterm_during_a_scheduled_sync_leaves_nothing_half_published() {
    let (upstream, registry) = Upstream::seeded();
    let layer = upstream.db.layer_digest();
    let stall = Rule {
        method: "GET",
        path: format!("/blobs/{layer}"),
        occurrences: vec![1],
        action: Action::Stall(Duration::from_secs(60)),
    };
    let proxy = FaultProxy::start(&registry.addr, vec![stall]);
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("mirror");
    std::fs::create_dir_all(&dir).unwrap();
    let source = format!("{}/aquasecurity", proxy.addr);
    let args = ["--sync-every", "1h", "--source", &source, "--only", "db"];
    let mut serve = Serve::start_with(&dir, &args);
    poll("the layer download under way", Duration::from_secs(30), || proxy.log().iter().any(|l| l.contains(&layer)));
    let asked = Instant::now();
    serve.process().sigterm();
    let status = serve.process().wait_exit(Duration::from_secs(20));
    assert!(status.success(), "exit status {status}:\n{}", serve.log());
    assert!(asked.elapsed() < Duration::from_secs(15), "the stalled download held the shutdown");
    assert!(serve.log().contains("the running sync is stopped"), "{}", serve.log());
    let tag = dir.join("v2/aquasecurity/trivy-db/manifests/2");
    assert!(!tag.exists(), "an interrupted sync published its tag");
    assert!(!dir.join(format!("v2/aquasecurity/trivy-db/blobs/{layer}")).exists(), "a half-copied layer is visible");

    // The next start (the stall was for the first request only) completes the mirror.
    let serve = Serve::start_with(&dir, &args);
    let base = format!("http://{}", serve.addr);
    poll("the next sync", Duration::from_secs(60), || get(&format!("{base}/readyz"), &[]).0 == 200);
    assert_eq!(std::fs::read(&tag).unwrap(), upstream.db.manifest);
}
