//! The real Trivy client (from PyPI) and the upstream fixture set it is checked against.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use tempfile::TempDir;
use trivy_mirror_fixtures as fx;

use super::{Registry, offline_env, text, tool};

/// Trivy versions installed by `scripts/install-test-deps.sh`.
pub const TRIVY_CURRENT: &str = "0.76.0";
/// Asks for trivy-checks:1.
pub const TRIVY_OLD: &str = "0.67.2";
/// The VEX client before the 304 fix's release line.
pub const TRIVY_071: &str = "0.71.2";

/// One Trivy binary with its own HOME and cache directory.
pub struct Trivy {
    bin: PathBuf,
    /// HOME for this client (VEX repository.yaml lives there).
    pub home: TempDir,
    env: Vec<(String, String)>,
}

impl Trivy {
    /// A fresh client of `version` (fresh cache: Trivy skips downloads younger than 1 h).
    pub fn new(version: &str) -> Trivy {
        Trivy { bin: tool(&format!("trivy-{version}/bin/trivy")), home: tempfile::tempdir().unwrap(), env: Vec::new() }
    }

    /// The same client with extra environment (`SSL_CERT_FILE`, `TRIVY_USERNAME`, …).
    pub fn with_env(mut self, env: &[(&str, &str)]) -> Trivy {
        self.env.extend(env.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        self
    }

    /// The cache directory.
    pub fn cache(&self) -> PathBuf {
        self.home.path().join("cache")
    }

    /// A command with the offline environment.
    pub fn cmd(&self) -> Command {
        let mut c = Command::new(&self.bin);
        offline_env(&mut c)
            .env("HOME", self.home.path())
            .env("TRIVY_SKIP_VERSION_CHECK", "true")
            .env("TRIVY_DISABLE_TELEMETRY", "true")
            .env("TRIVY_NO_PROGRESS", "true")
            .env_remove("XDG_DATA_HOME")
            .env_remove("TRIVY_USERNAME")
            .env_remove("TRIVY_PASSWORD")
            .envs(self.env.iter().map(|(k, v)| (k, v)));
        c
    }

    /// Run and return the output, whatever the exit status.
    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd().args(args).arg("--cache-dir").arg(self.cache()).output().unwrap()
    }

    /// Run and panic with the output unless it succeeds.
    pub fn run_ok(&self, args: &[&str]) -> Output {
        let out = self.run(args);
        assert!(out.status.success(), "trivy {args:?} failed:\n{}\n{}", text(&out.stdout), text(&out.stderr));
        out
    }

    /// `--download-db-only` from `host`.
    pub fn download_db(&self, host: &str) -> Output {
        self.run(&["image", "--download-db-only", "--db-repository", &format!("{host}/aquasecurity/trivy-db:2")])
    }

    /// `--download-java-db-only` from `host`.
    pub fn download_java_db(&self, host: &str) -> Output {
        self.run(&[
            "image",
            "--download-java-db-only",
            "--java-db-repository",
            &format!("{host}/aquasecurity/trivy-java-db:1"),
        ])
    }

    /// Offline vulnerability scan of a directory holding the fixture requirements.txt;
    /// returns the vulnerability IDs found.
    pub fn scan_requirements(&self, extra: &[&str]) -> Vec<String> {
        let mut args = vec!["--format", "json"];
        args.extend_from_slice(extra);
        vulnerability_ids(&self.scan_project(&args).stdout)
    }

    /// `trivy fs` offline (vulnerabilities only) on a directory holding the fixture
    /// requirements.txt, with `extra` flags.
    pub fn scan_project(&self, extra: &[&str]) -> Output {
        let dir = self.home.path().join("project");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("requirements.txt"), fx::REQUIREMENTS_TXT).unwrap();
        let mut args = vec!["fs", "--skip-db-update", "--skip-java-db-update", "--offline-scan", "--scanners", "vuln"];
        args.extend_from_slice(extra);
        let d = dir.display().to_string();
        args.push(&d);
        self.run_ok(&args)
    }

    /// `trivy config` with a checks bundle from `repo_ref`; returns the failed check IDs.
    pub fn config_scan(&self, repo_ref: &str) -> Vec<String> {
        let dir = self.home.path().join("iac");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("Dockerfile"), fx::CHECK_DOCKERFILE).unwrap();
        let d = dir.display().to_string();
        let out = self.run_ok(&["config", "--checks-bundle-repository", repo_ref, "--format", "json", &d]);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let mut ids = Vec::new();
        for r in v["Results"].as_array().into_iter().flatten() {
            for m in r["Misconfigurations"].as_array().into_iter().flatten() {
                ids.push(m["ID"].as_str().unwrap_or("").to_string());
            }
        }
        ids
    }
}

/// Vulnerability IDs in a `--format json` report.
pub fn vulnerability_ids(json: &[u8]) -> Vec<String> {
    let v: serde_json::Value = serde_json::from_slice(json).unwrap_or_else(|e| panic!("{e}: {}", text(json)));
    let mut ids = Vec::new();
    for r in v["Results"].as_array().into_iter().flatten() {
        for vuln in r["Vulnerabilities"].as_array().into_iter().flatten() {
            ids.push(vuln["VulnerabilityID"].as_str().unwrap_or("").to_string());
        }
    }
    ids
}

/// The four upstream artifacts, built by the fixture generator.
pub struct Upstream {
    /// trivy-db:2.
    pub db: fx::Artifact,
    /// trivy-java-db:1.
    pub java_db: fx::Artifact,
    /// trivy-checks:1 (a 1.x bundle).
    pub checks1: fx::Artifact,
    /// trivy-checks:2 (a 2.x bundle).
    pub checks2: fx::Artifact,
}

impl Upstream {
    /// The standard fixture set.
    pub fn standard() -> Upstream {
        Upstream {
            db: fx::trivy_db(&fx::DbOptions::default()),
            java_db: fx::java_db(&fx::JavaDbOptions::default()),
            checks1: fx::checks_bundle("1.9.0"),
            checks2: fx::checks_bundle("2.2.0"),
        }
    }

    /// The standard set seeded into a fresh registry under `aquasecurity/`.
    pub fn seeded() -> (Upstream, Registry) {
        let upstream = Upstream::standard();
        let registry = Registry::start();
        upstream.seed(&registry, "aquasecurity");
        (upstream, registry)
    }

    /// (repository, tag, artifact) for every artifact, as published under `aquasecurity/`.
    pub fn items(&self) -> [(&'static str, &'static str, &fx::Artifact); 4] {
        [
            ("trivy-db", "2", &self.db),
            ("trivy-java-db", "1", &self.java_db),
            ("trivy-checks", "1", &self.checks1),
            ("trivy-checks", "2", &self.checks2),
        ]
    }

    /// Seed every artifact into `registry` under `namespace/…` with skopeo.
    pub fn seed(&self, registry: &Registry, namespace: &str) {
        let dir = tempfile::tempdir().unwrap();
        for (i, (name, tag, artifact)) in self.items().into_iter().enumerate() {
            let layout = dir.path().join(format!("layout-{i}"));
            fx::write_oci_layout(&layout, &[(tag, artifact)]).unwrap();
            registry.seed(&layout, tag, &format!("{namespace}/{name}"), tag);
        }
    }
}

/// Assert the real Trivy client downloads all three databases from `host` and scans
/// with them: trivy-db finds the fixture CVE offline, trivy-checks:2 (Trivy 0.76) and
/// trivy-checks:1 (Trivy 0.67) report the fixture check, the Java DB downloads.
pub fn assert_trivy_uses_mirror(host: &str) {
    assert_trivy_uses_mirror_with(host, &[]);
}

/// [`assert_trivy_uses_mirror`] with extra client environment (a CA, credentials).
pub fn assert_trivy_uses_mirror_with(host: &str, env: &[(&str, &str)]) {
    let trivy = Trivy::new(TRIVY_CURRENT).with_env(env);
    let out = trivy.download_db(host);
    assert!(out.status.success(), "trivy-db download from {host} failed:\n{}", text(&out.stderr));
    let ids = trivy.scan_requirements(&[]);
    assert!(ids.contains(&fx::DEFAULT_CVE_ID.to_string()), "offline scan found {ids:?}");
    let out = trivy.download_java_db(host);
    assert!(out.status.success(), "java-db download from {host} failed:\n{}", text(&out.stderr));
    assert!(trivy.cache().join("java-db/trivy-java.db").exists(), "java DB not extracted");
    let ids = trivy.config_scan(&format!("{host}/aquasecurity/trivy-checks:2"));
    assert!(ids.contains(&fx::CHECK_ID.to_string()), "trivy config (checks:2) found {ids:?}");
    let old = Trivy::new(TRIVY_OLD).with_env(env);
    let ids = old.config_scan(&format!("{host}/aquasecurity/trivy-checks:1"));
    assert!(ids.contains(&fx::CHECK_ID.to_string()), "trivy 0.67 config (checks:1) found {ids:?}");
}

/// Every file below `dir` with its modification time, to prove a run wrote nothing but
/// `status.json` (rewritten by every run on purpose: it records when the mirror was last
/// checked).
pub fn snapshot(dir: &Path) -> Vec<(PathBuf, std::time::SystemTime, u64)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let m = e.metadata().unwrap();
            if m.is_dir() {
                stack.push(e.path());
            } else if e.file_name() != "status.json" {
                out.push((e.path(), m.modified().unwrap(), m.len()));
            }
        }
    }
    out.sort();
    out
}
