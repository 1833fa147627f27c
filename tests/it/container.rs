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

/// The image built from this binary, tagged for this test alone and removed when dropped
/// (with `--layers=false` a build leaves no intermediate images behind).
struct Image(String);

impl Image {
    fn build(test: &str) -> Image {
        let tag = format!("{IMAGE}-{test}-{}", std::process::id());
        let work = tempfile::tempdir().unwrap();
        let ctx = context(work.path());
        // The documented command for a host-built binary, with the network off to prove it
        // needs nothing but the base.
        #[rustfmt::skip]
        podman_ok(&[
            "build", "--layers=false", "--network", "none", "--target", "runtime",
            "--build-arg", &format!("BASE_IMAGE={BASE}"), "--build-arg", "BINARY=target/release/trivy-mirror",
            "-t", &tag, ctx.to_str().unwrap(),
        ]);
        Image(tag)
    }
}

impl Drop for Image {
    fn drop(&mut self) {
        let _ = podman().args(["rmi", "-f", &self.0]).output();
    }
}

/// A detached container, stopped with SIGTERM: asserts a clean exit (code 0) within the
/// grace period.
fn stop_cleanly(name: &str) {
    let start = Instant::now();
    podman_ok(&["stop", "-t", "30", name]);
    assert!(start.elapsed() < Duration::from_secs(20), "stop took {:?}", start.elapsed());
    let code = podman_ok(&["inspect", name, "--format", "{{.State.ExitCode}}"]);
    assert_eq!(text(&code.stdout).trim(), "0", "exit code after SIGTERM");
}

#[test]
fn the_image_syncs_and_serves_read_only_as_non_root() {
    let built = Image::build("serve");
    let image = built.0.as_str();
    let inspect = podman_ok(&["image", "inspect", image, "--format", "{{.Config.User}} {{json .Config.Entrypoint}}"]);
    assert_eq!(text(&inspect.stdout).trim(), format!("{USER} [\"/usr/local/bin/trivy-mirror\"]"));

    // One process that keeps itself fresh, from the fixture registry on loopback into a
    // volume: read-only root, the image's own non-root user, no capabilities.
    let work = tempfile::tempdir().unwrap();
    let (_upstream, registry) = Upstream::seeded();
    let data = work.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let volume = format!("{}:/data:U", data.display());
    let source = format!("{}/aquasecurity", registry.addr);
    let listen = format!("127.0.0.1:{}", free_port());
    let name = format!("trivy-mirror-serve-{}", std::process::id());
    let _serve = Container(name.clone());
    #[rustfmt::skip]
    podman_ok(&[
        "run", "-d", "--name", &name, "--network", "host", "--read-only", "--cap-drop", "ALL",
        "--security-opt", "no-new-privileges", "-v", &volume,
        image, "serve", "/data", "--listen", &listen, "--sync-every", "6h", "--source", &source,
    ]);
    wait_until_answers(&format!("http://{listen}/readyz"), &name);
    assert!(data.join("v2/aquasecurity/trivy-db/manifests/2").is_file());
    // The health check a container runtime can run: the binary probes itself.
    podman_ok(&["exec", &name, "/usr/local/bin/trivy-mirror", "probe", &format!("http://{listen}/healthz")]);
    assert_trivy_uses_mirror(&listen);
    stop_cleanly(&name);
}

/// What the chart's serve pod runs (rendered by the real Helm SDK), run under podman with
/// the image above: the container's args, env, user, read-only root and volume mounts as
/// rendered. Two things differ, because there is no cluster: the pod network is the
/// host's, so the listen addresses move from 0.0.0.0 to free loopback ports, and the
/// Service name in NOTES.txt is replaced by that address. Real Trivy then downloads with
/// the repositories and tags NOTES.txt tells trivy-operator users to paste.
#[test]
fn the_charts_serve_pod_runs_under_podman_and_serves_trivy_with_the_notes_values() {
    let built = Image::build("chart");
    let image = built.0.as_str();
    let (_upstream, registry) = Upstream::seeded();
    let source = format!("{}/aquasecurity", registry.addr);
    let set = serde_json::json!({ "mirror": { "source": [source] } }).to_string();
    let out = run_ok(
        "chart-test.sh --print-serve-container",
        Command::new("bash").arg(root().join("scripts/chart-test.sh")).args([
            "--print-serve-container",
            "--set-json",
            &set,
        ]),
    );
    let pod: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let container = &pod["container"];
    assert!(container["command"].is_null(), "the chart runs the image's ENTRYPOINT");
    let security = &container["securityContext"];
    assert_eq!(security["readOnlyRootFilesystem"], true);
    assert_eq!(security["capabilities"]["drop"], serde_json::json!(["ALL"]));
    assert_eq!(security["allowPrivilegeEscalation"], false);

    let work = tempfile::tempdir().unwrap();
    let listen = format!("127.0.0.1:{}", free_port());
    let metrics = format!("127.0.0.1:{}", free_port());
    let name = format!("trivy-mirror-chart-{}", std::process::id());
    let mut run: Vec<String> =
        ["run", "-d", "--name", &name, "--network", "host", "--read-only"].map(String::from).to_vec();
    run.extend(["--cap-drop".into(), "ALL".into(), "--security-opt".into(), "no-new-privileges".into()]);
    run.push(format!("--user={}:{}", security["runAsUser"], security["runAsGroup"]));
    for env in container["env"].as_array().unwrap() {
        run.push(format!("--env={}={}", env["name"].as_str().unwrap(), env["value"].as_str().unwrap_or_default()));
    }
    for mount in container["volumeMounts"].as_array().unwrap() {
        let (volume, path) = (mount["name"].as_str().unwrap(), mount["mountPath"].as_str().unwrap());
        let spec = pod["volumes"].as_array().unwrap().iter().find(|v| v["name"] == volume).unwrap();
        if spec.get("emptyDir").is_some() {
            run.push(format!("--tmpfs={path}"));
        } else {
            let host = work.path().join(volume);
            std::fs::create_dir(&host).unwrap();
            run.push(format!("--volume={}:{path}:U", host.display()));
        }
    }
    run.push(image.to_string());
    for arg in container["args"].as_array().unwrap() {
        let arg = arg.as_str().unwrap();
        run.push(match arg {
            "0.0.0.0:8080" => listen.clone(),
            "0.0.0.0:9090" => metrics.clone(),
            other => other.to_string(),
        });
    }
    let _chart = Container(name.clone());
    podman_ok(&run.iter().map(String::as_str).collect::<Vec<_>>());
    // The probes as the kubelet would send them: liveness, then readiness once synced.
    let probe = |kind: &str| container[kind]["httpGet"]["path"].as_str().unwrap().to_string();
    wait_until_answers(&format!("http://{listen}{}", probe("livenessProbe")), &name);
    wait_until_answers(&format!("http://{listen}{}", probe("readinessProbe")), &name);
    wait_until_answers(&format!("http://{metrics}/metrics"), &name);

    // The values NOTES.txt prints for trivy-operator, with the Service's name replaced.
    let notes = pod["notes"].as_str().unwrap();
    let value = |key: &str| {
        let line = notes
            .lines()
            .find(|l| l.trim_start().starts_with(&format!("{key}:")))
            .unwrap_or_else(|| panic!("NOTES.txt has no {key}:\n{notes}"));
        line.split_once(':').unwrap().1.trim().trim_matches('"').to_string()
    };
    let host = |registry: String| {
        assert!(registry.ends_with(".svc.cluster.local:8080"), "{registry}");
        listen.clone()
    };
    let trivy = Trivy::new(TRIVY_CURRENT);
    let db = format!("{}/{}:2", host(value("dbRegistry")), value("dbRepository"));
    trivy.run_ok(&["image", "--download-db-only", "--db-repository", &db]);
    let java = format!("{}/{}:1", host(value("javaDbRegistry")), value("javaDbRepository"));
    trivy.run_ok(&["image", "--download-java-db-only", "--java-db-repository", &java]);
    // trivy-operator's own checks tag (it embeds trivy-checks v1): the Trivy that asks for :1.
    let checks = format!("{}/{}:{}", host(value("registry")), value("repository"), value("tag"));
    let ids = Trivy::new(TRIVY_OLD).config_scan(&checks);
    assert!(ids.contains(&trivy_mirror_fixtures::CHECK_ID.to_string()), "checks from {checks}: {ids:?}");
    stop_cleanly(&name);
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
    if within(Duration::from_secs(30), || http().get(url).send().is_ok_and(|r| r.status().is_success())) {
        return;
    }
    let logs = podman().args(["logs", name]).output().unwrap();
    panic!("{url} never answered:\n{}{}", text(&logs.stdout), text(&logs.stderr));
}
