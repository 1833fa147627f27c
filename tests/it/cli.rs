//! The command line as users see it: `--help` texts and the end-of-run summary are
//! compared with committed snapshots (`UPDATE_SNAPSHOTS=1` rewrites them after a
//! deliberate change).

use crate::harness::*;

pub(crate) fn check_snapshot(name: &str, actual: &str) {
    let path = root().join("tests/it/snapshots").join(name);
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|_| panic!("{} is missing: run with UPDATE_SNAPSHOTS=1", path.display()));
    assert_eq!(actual, expected, "{name} changed; if on purpose, rerun with UPDATE_SNAPSHOTS=1");
}

#[test]
fn help_texts() {
    for (name, args) in [
        ("help.txt", vec!["--help"]),
        ("sync-help.txt", vec!["sync", "--help"]),
        ("serve-help.txt", vec!["serve", "--help"]),
        ("verify-help.txt", vec!["verify", "--help"]),
        ("prune-help.txt", vec!["prune", "--help"]),
    ] {
        let out = mirror().args(&args).env("COLUMNS", "100").output().unwrap();
        assert!(out.status.success());
        check_snapshot(name, &text(&out.stdout));
    }
}

#[test]
fn summary_table() {
    let (_, registry) = Upstream::seeded();
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("mirror");
    let source = format!("{}/aquasecurity", registry.addr);
    let run = |dir: &std::path::Path| {
        let out = mirror().args(["sync", "-q", "--to", dir.to_str().unwrap(), "--source", &source]).output().unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
        // Seconds and the destination path vary between runs, and column widths with them.
        text(&out.stdout)
            .replace(dir.to_str().unwrap(), "DIR")
            .lines()
            .map(|l| {
                let mut cells: Vec<&str> = l.split_whitespace().collect();
                cells.pop();
                cells.push("SECONDS");
                cells.join(" ") + "\n"
            })
            .collect::<String>()
    };
    check_snapshot("summary-first-run.txt", &run(&dir));
    check_snapshot("summary-rerun.txt", &run(&dir));
}

/// What a first-time user trips over gets one line with the cause once and the hint that
/// applies: `serve` of a directory that does not exist, `verify` of an address where
/// nothing listens (and of one where something else answers), and https on a machine
/// without CA certificates (a minimal container image). The dead proxy is in
/// `healing::offline_…` (its snapshot names the proxy).
#[test]
fn first_mistakes_get_one_line_with_the_cause_once() {
    let work = tempfile::tempdir().unwrap();
    let missing = work.path().join("never-synced");
    let missing_str = missing.to_str().unwrap();

    // serve: no "serving on" line before the failure; the cause once; sync first.
    let out =
        mirror().args(["serve", missing_str, "--listen", &format!("127.0.0.1:{}", free_port())]).output().unwrap();
    assert!(!out.status.success());
    let serve = text(&out.stderr).replace(missing_str, "DIR");
    check_snapshot("serve-missing-dir.txt", &serve);

    // verify: nothing listens. The cause in words, no transport chain, no CDN advice.
    let port = free_port();
    let (ok, out) = crate::operate::verify(&[&format!("http://127.0.0.1:{port}")]);
    assert!(!ok);
    check_snapshot("verify-refused.txt", &out.replace(&port.to_string(), "PORT"));

    // verify: something answers, but not as a registry (an empty directory served): the
    // CDN mapping is the advice now.
    let empty = work.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let served = Serve::start(&empty);
    let (ok, out) = crate::operate::verify(&[&format!("http://{}", served.addr)]);
    assert!(!ok);
    let ping = out.lines().find(|l| l.contains("ping")).unwrap_or_default().to_string();
    assert!(ping.contains("HTTP 404") && ping.contains("map /v2/ to the v2/index.json object"), "{out}");
    drop(served);

    // No CA certificates on the machine: plain http still works (a local registry into a
    // directory); https fails per request, saying what to install.
    let no_roots = work.path().join("no-roots");
    std::fs::create_dir(&no_roots).unwrap();
    std::fs::write(no_roots.join("empty.pem"), "").unwrap();
    let roots_env = [
        ("SSL_CERT_FILE", no_roots.join("empty.pem").to_str().unwrap().to_string()),
        ("SSL_CERT_DIR", no_roots.to_str().unwrap().to_string()),
    ];
    let (_, registry) = Upstream::seeded();
    let source = format!("{}/aquasecurity", registry.addr);
    let dir = work.path().join("mirror");
    let out = mirror()
        .envs(roots_env.iter().map(|(k, v)| (k, v)))
        .args(["sync", "-q", "--only", "db", "--to", dir.to_str().unwrap(), "--source", &source])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(dir.join("v2/aquasecurity/trivy-db/manifests/2").is_file());

    // A TLS server on 127.0.0.2 (not local for the client's plain-http rule, so https is
    // used; kept off the dead proxy by NO_PROXY).
    let pki = TestCa::new(&work.path().join("pki"));
    let tls_port = free_port();
    let _tls = Nginx::start(&format!(
        "    listen 127.0.0.2:{tls_port} ssl;\n    ssl_certificate {};\n    ssl_certificate_key {};\n    \
         location / {{ return 200 '{{}}'; }}",
        pki.cert.display(),
        pki.key.display()
    ));
    let out = mirror()
        .envs(roots_env.iter().map(|(k, v)| (k, v)))
        .env("NO_PROXY", "localhost,127.0.0.1,127.0.0.2")
        .env("no_proxy", "localhost,127.0.0.1,127.0.0.2")
        .args(["verify", &format!("https://127.0.0.2:{tls_port}")])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let ping = text(&out.stdout);
    assert!(
        ping.contains("certificate not trusted") && ping.contains("ca-certificates") && ping.contains("SSL_CERT_FILE"),
        "{ping}"
    );
}

/// docs/ARCHITECTURE.md names every file under src/ (its "Modules" table), so the map a
/// newcomer reads matches the tree.
#[test]
fn a_passed_deadline_starts_nothing_and_still_reports() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("mirror");
    // The deadline passes before the first artifact, so no source is ever contacted.
    let run = sync(&["--to", dir.to_str().unwrap(), "--deadline", "0s"], &[]);
    assert!(!run.success, "{}", run.stdout);
    assert_eq!(run.outcomes(), ["failed"; 4]);
    for e in run.entries() {
        let error = e["error"].as_str().unwrap_or_default();
        assert!(error.contains("not started: the run's deadline had passed"), "{e}");
        assert!(e["help"].as_str().unwrap_or_default().contains("--deadline"), "{e}");
    }
    let status: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("status.json")).unwrap()).unwrap();
    assert!(status["artifacts"]["trivy-db:2"]["last_error"].is_string(), "{status}");
}

#[test]
fn docs_name_every_module() {
    let doc = std::fs::read_to_string(root().join("docs/ARCHITECTURE.md")).unwrap();
    let src = root().join("src");
    let mut missing = Vec::new();
    let mut stack = vec![src.clone()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let rel = path.strip_prefix(&src).unwrap().to_str().unwrap().replace('\\', "/");
                if !doc.contains(&format!("`{rel}`")) {
                    missing.push(rel);
                }
            }
        }
    }
    missing.sort();
    assert!(missing.is_empty(), "docs/ARCHITECTURE.md does not name {missing:?}");
}
