//! The container image, built and run with podman as a user would run it: the Dockerfile's
//! `runtime` stage packages this build's binary on a base made from Debian's packages
//! (`scripts/install-test-deps.sh`; no image can be pulled here), with no network during
//! the build. Then the image syncs from the fixture registry on loopback into a volume and
//! serves it, read-only root filesystem, non-root user, and real Trivy downloads all three
//! databases from it; SIGTERM stops it with exit code 0.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use crate::harness::*;

/// The base image the install script made with debootstrap.
const BASE: &str = "localhost/trivy-mirror-base:bookworm";
/// The image under test.
const IMAGE: &str = "localhost/trivy-mirror:test";
/// The user the Dockerfile runs as (distroless's `nonroot`).
const USER: &str = "65532:65532";

fn podman() -> Command {
    let mut c = Command::new(system_tool("podman"));
    c.env("CONTAINERS_CONF", tool("containers/containers.conf"));
    // podman passes the caller's proxy variables into containers by default; none here.
    for k in ["HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "NO_PROXY", "no_proxy"] {
        c.env_remove(k);
    }
    c
}

fn podman_ok(args: &[&str]) -> Output {
    run_ok(&format!("podman {}", args.first().unwrap_or(&"")), podman().args(args))
}

/// A container removed (by name) when dropped.
struct Container(String);

impl Drop for Container {
    fn drop(&mut self) {
        let _ = podman().args(["rm", "-f", "-t", "0", &self.0]).output();
    }
}

/// The build context a user would have: the Dockerfile, its .dockerignore, and the binary
/// at `target/release/trivy-mirror` (this build's, without debug info to keep it small).
fn context(dir: &Path) -> PathBuf {
    let ctx = dir.join("context");
    std::fs::create_dir_all(ctx.join("target/release")).unwrap();
    for f in ["Dockerfile", ".dockerignore"] {
        std::fs::copy(root().join(f), ctx.join(f)).unwrap();
    }
    run_ok(
        "strip",
        Command::new("strip")
            .arg("--strip-debug")
            .arg("-o")
            .arg(ctx.join("target/release/trivy-mirror"))
            .arg(env!("CARGO_BIN_EXE_trivy-mirror")),
    );
    ctx
}

#[test]
fn the_image_runs_read_only_as_non_root_and_serves_trivy() {
    let work = tempfile::tempdir().unwrap();
    let ctx = context(work.path());
    // The documented command for a host-built binary, with the network off to prove it
    // needs nothing but the base.
    podman_ok(&[
        "build",
        "--network",
        "none",
        "--target",
        "runtime",
        "--build-arg",
        &format!("BASE_IMAGE={BASE}"),
        "--build-arg",
        "BINARY=target/release/trivy-mirror",
        "-t",
        IMAGE,
        ctx.to_str().unwrap(),
    ]);
    let inspect = podman_ok(&["image", "inspect", IMAGE, "--format", "{{.Config.User}} {{json .Config.Entrypoint}}"]);
    assert_eq!(text(&inspect.stdout).trim(), format!("{USER} [\"/usr/local/bin/trivy-mirror\"]"));

    // Sync from the fixture registry on loopback into a volume: read-only root, the
    // image's own non-root user, no capabilities.
    let (_upstream, registry) = Upstream::seeded();
    let data = work.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let volume = format!("{}:/data:U", data.display());
    let source = format!("{}/aquasecurity", registry.addr);
    let base = [
        "run",
        "--network",
        "host",
        "--read-only",
        "--cap-drop",
        "ALL",
        "--security-opt",
        "no-new-privileges",
        "-v",
        &volume,
    ];
    let sync_name = format!("trivy-mirror-sync-{}", std::process::id());
    let _sync = Container(sync_name.clone());
    let out = podman()
        .args(base)
        .args(["--name", &sync_name, IMAGE, "sync", "--to", "/data", "--source", &source])
        .output()
        .unwrap();
    assert!(out.status.success(), "sync in the container failed:\n{}", text(&out.stderr));
    assert!(data.join("v2/aquasecurity/trivy-db/manifests/2").is_file());

    // Serve it, and let real Trivy download every database from the container.
    let port = free_port();
    let name = format!("trivy-mirror-serve-{}", std::process::id());
    let _serve = Container(name.clone());
    let listen = format!("127.0.0.1:{port}");
    podman_ok(&[&base[..], &["-d", "--name", &name, IMAGE, "serve", "/data", "--listen", &listen]].concat());
    wait_until_answers(&format!("http://{listen}/v2/"), &name);
    // The health check a container runtime can run: the binary probes itself.
    podman_ok(&["exec", &name, "/usr/local/bin/trivy-mirror", "probe", &format!("http://{listen}/v2/")]);
    assert_trivy_uses_mirror(&listen);

    // SIGTERM: a clean stop, well within the grace period.
    let start = Instant::now();
    podman_ok(&["stop", "-t", "30", &name]);
    assert!(start.elapsed() < Duration::from_secs(20), "stop took {:?}", start.elapsed());
    let code = podman_ok(&["inspect", &name, "--format", "{{.State.ExitCode}}"]);
    assert_eq!(text(&code.stdout).trim(), "0", "exit code after SIGTERM");
}

fn dockerfile() -> String {
    std::fs::read_to_string(root().join("Dockerfile")).expect("Dockerfile at the repository root")
}

/// HIGH and CRITICAL findings of `trivy config` (offline, embedded checks) per target.
fn high_findings(dir: &Path) -> Vec<(String, Vec<String>, u64)> {
    let trivy = Trivy::new(TRIVY_CURRENT);
    let out = trivy.run_ok(&["config", "--skip-check-update", "--format", "json", "--quiet", dir.to_str().unwrap()]);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut targets = Vec::new();
    for r in report["Results"].as_array().into_iter().flatten() {
        let high = r["Misconfigurations"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|m| matches!(m["Severity"].as_str(), Some("HIGH" | "CRITICAL")))
            .map(|m| format!("{} {}: {}", m["ID"], m["Severity"], m["Title"]))
            .collect();
        let passed = r["MisconfSummary"]["Successes"].as_u64().unwrap_or(0);
        targets.push((r["Target"].as_str().unwrap_or("").to_string(), high, passed));
    }
    targets.sort();
    targets
}

#[test]
fn trivy_config_finds_nothing_high_or_critical_in_the_dockerfile() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("Dockerfile"), dockerfile()).unwrap();
    // A control in the same scan: the same file running as root must be caught, or the
    // scan proves nothing.
    std::fs::create_dir(dir.path().join("control")).unwrap();
    let as_root = dockerfile().replace("USER 65532:65532", "USER root");
    std::fs::write(dir.path().join("control/Dockerfile"), as_root).unwrap();

    let targets = high_findings(dir.path());
    let find = |t: &str| targets.iter().find(|(name, _, _)| name == t).cloned();
    let (_, high, passed) = find("Dockerfile").unwrap_or_else(|| panic!("Dockerfile not scanned: {targets:?}"));
    assert!(high.is_empty(), "HIGH/CRITICAL findings in the Dockerfile: {high:?}");
    assert!(passed > 10, "only {passed} checks passed: were the Dockerfile checks loaded?");
    let (_, control, _) = find("control/Dockerfile").expect("control scanned");
    assert!(!control.is_empty(), "the root-user control was not flagged: {targets:?}");
}

/// What the image cannot be built from here (the Rust stage and the distroless default
/// need a registry), checked as text: the default base, and a build context that is an
/// allowlist (no target/ beyond the one binary, no .tools/ or stray credentials).
#[test]
fn the_default_build_uses_distroless_and_an_allowlisted_context() {
    let text = dockerfile();
    assert!(text.contains("\nARG BASE_IMAGE=gcr.io/distroless/cc-debian12:nonroot\n"), "default base changed");
    assert!(text.contains("\nFROM ${BASE_IMAGE} AS base\n"));
    let ignore = std::fs::read_to_string(root().join(".dockerignore")).unwrap();
    assert_eq!(ignore.lines().find(|l| !l.starts_with('#') && !l.trim().is_empty()), Some("*"));
    for copied in
        ["Cargo.toml", "Cargo.lock", "src/", "fixtures/Cargo.toml", "fixtures/src/", "target/release/trivy-mirror"]
    {
        assert!(ignore.lines().any(|l| l == format!("!{copied}")), "{copied} is not in the context");
    }
}

/// Poll `url` until it answers, failing with the container's log if it never does.
fn wait_until_answers(url: &str, name: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if http().get(url).send().is_ok_and(|r| r.status().is_success()) {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let logs = podman().args(["logs", name]).output().unwrap();
    panic!("{url} never answered:\n{}{}", text(&logs.stdout), text(&logs.stderr));
}
