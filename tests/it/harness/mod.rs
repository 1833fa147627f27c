//! Test support: the real components the integration tests talk to, each started on
//! 127.0.0.1 with its own temporary directory and stopped by PID when the guard drops.
//!
//! Tools come from `scripts/install-test-deps.sh` (apt packages on PATH, Python and node
//! tools under `.tools/`). Children run with `HTTP(S)_PROXY` pointing at a closed
//! loopback port and `NO_PROXY=localhost,127.0.0.1`, so anything that tried to leave the
//! machine would fail instead of reaching out.

pub mod fault;
pub mod gcs;
pub mod services;
pub mod trivy;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

pub use fault::*;
pub use gcs::*;
pub use services::*;
pub use trivy::*;

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A tool installed under `.tools/`, or a clear panic saying how to get it.
pub fn tool(rel: &str) -> PathBuf {
    let p = root().join(".tools").join(rel);
    assert!(p.exists(), "{} is missing: run scripts/install-test-deps.sh", p.display());
    p
}

/// A binary on PATH (apt packages), or a clear panic.
pub fn system_tool(name: &str) -> PathBuf {
    for dir in ["/usr/bin", "/usr/sbin", "/usr/local/bin"] {
        let p = Path::new(dir).join(name);
        if p.exists() {
            return p;
        }
    }
    panic!("{name} is missing: run scripts/install-test-deps.sh");
}

/// Environment that keeps children on loopback.
pub fn offline_env(cmd: &mut Command) -> &mut Command {
    cmd.env("HTTP_PROXY", "http://127.0.0.1:9")
        .env("HTTPS_PROXY", "http://127.0.0.1:9")
        .env("http_proxy", "http://127.0.0.1:9")
        .env("https_proxy", "http://127.0.0.1:9")
        .env("NO_PROXY", "localhost,127.0.0.1")
        .env("no_proxy", "localhost,127.0.0.1")
}

/// Whether `ok` holds within `timeout`, asked every 100 ms.
pub fn within(timeout: Duration, mut ok: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while !ok() {
        if start.elapsed() >= timeout {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    true
}

/// Poll `ok` until it holds; panic naming `what` after `timeout`.
pub fn poll(what: &str, timeout: Duration, ok: impl FnMut() -> bool) {
    assert!(within(timeout, ok), "{what}: not within {timeout:?}");
}

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A child process killed (by its PID) when dropped; its output goes to a log file.
pub struct Proc {
    child: std::process::Child,
    name: String,
    log: PathBuf,
}

impl Proc {
    /// Spawn `cmd` with stdout/stderr in `log`.
    pub fn spawn(name: &str, cmd: &mut Command, log: PathBuf) -> Proc {
        let file = std::fs::File::create(&log).unwrap();
        let child = offline_env(cmd)
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {name}: {e}"));
        Proc { child, name: name.to_string(), log }
    }

    /// The process id (read by the Lambda tests, which need the `lambda` feature).
    #[cfg_attr(not(feature = "lambda"), allow(dead_code))]
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What the process printed so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Wait until `ready()` holds, polling; panic with the log after `timeout`.
    pub fn wait_until(&mut self, timeout: Duration, mut ready: impl FnMut() -> bool) {
        let start = Instant::now();
        loop {
            if ready() {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("{} exited ({status}) before it was ready:\n{}", self.name, self.log());
            }
            assert!(start.elapsed() < timeout, "{} not ready after {timeout:?}:\n{}", self.name, self.log());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Send SIGTERM (to this PID only).
    pub fn sigterm(&self) {
        run_ok("kill -TERM", Command::new("kill").args(["-TERM", &self.child.id().to_string()]));
    }

    /// Wait for the process to exit; panic with the log after `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> std::process::ExitStatus {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(start.elapsed() < timeout, "{} still running after {timeout:?}:\n{}", self.name, self.log());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Wait until an HTTP server answers on `port` (any status).
    pub fn wait_http(&mut self, port: u16) {
        let url = format!("http://127.0.0.1:{port}/");
        self.wait_until(Duration::from_secs(60), || http().get(&url).send().is_ok());
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A blocking HTTP client that never uses a proxy.
pub fn http() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder().no_proxy().timeout(Duration::from_secs(60)).build().unwrap()
}

/// Run a command to completion; panic with its output unless it succeeds.
pub fn run_ok(what: &str, cmd: &mut Command) -> Output {
    let out = offline_env(cmd).output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(out.status.success(), "{what} failed ({}):\n{}\n{}", out.status, text(&out.stdout), text(&out.stderr));
    out
}

/// Lossy UTF-8.
pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The trivy-mirror binary under test.
pub fn mirror() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_trivy-mirror"));
    offline_env(&mut c);
    // Source credentials must come from each test, never from the developer's machine.
    c.env("DOCKER_CONFIG", "/nonexistent-docker-config");
    // Nor may cloud identities: no gcloud login, no Azure or Google settings.
    c.env("CLOUDSDK_CONFIG", "/nonexistent-gcloud-config");
    for (k, _) in std::env::vars() {
        let cloud = ["AZURE_", "GOOGLE_", "GCE_", "IDENTITY_"].iter().any(|p| k.starts_with(p));
        if k.starts_with("TRIVY_MIRROR_") || cloud {
            c.env_remove(k);
        }
    }
    c
}

/// Run `trivy-mirror sync` with `args` plus `--log-format json`; returns the parsed
/// summary, the exit status and stderr.
pub fn sync(args: &[&str], env: &[(&str, &str)]) -> SyncRun {
    let mut cmd = mirror();
    cmd.arg("sync").args(args).arg("--log-format").arg("json");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    let stdout = text(&out.stdout);
    let summary = stdout
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .unwrap_or(serde_json::Value::Null);
    SyncRun { success: out.status.success(), summary, stderr: text(&out.stderr), stdout }
}

/// The outcome of one sync.
#[derive(Debug)]
pub struct SyncRun {
    /// Exit status 0.
    pub success: bool,
    /// The JSON summary line.
    pub summary: serde_json::Value,
    /// Log lines.
    pub stderr: String,
    /// Standard output.
    pub stdout: String,
}

impl SyncRun {
    /// Panic with the logs unless the run succeeded.
    pub fn assert_ok(&self) -> &Self {
        assert!(self.success, "sync failed:\n{}\n{}", self.stdout, self.stderr);
        self
    }

    /// The entries of the summary.
    pub fn entries(&self) -> Vec<serde_json::Value> {
        self.summary["summary"]["entries"].as_array().cloned().unwrap_or_default()
    }

    /// What a user reads about entry `i`'s failure: the error, then its hint.
    pub fn failure(&self, i: usize) -> String {
        let e = &self.entries()[i];
        let text = |k: &str| e[k].as_str().unwrap_or_default().to_string();
        format!("{} | hint: {}", text("error"), text("help"))
    }

    /// `outcome` of every entry.
    pub fn outcomes(&self) -> Vec<String> {
        self.entries().iter().map(|e| e["outcome"].as_str().unwrap_or("").to_string()).collect()
    }

    /// Total bytes written.
    pub fn bytes_written(&self) -> u64 {
        self.entries().iter().map(|e| e["bytes_written"].as_u64().unwrap_or(0)).sum()
    }
}
