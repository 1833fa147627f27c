//! The serverless publishers, checked with the tools their users run.
//!
//! `handler` (feature `lambda`): the binary under test is the AWS Lambda function. `cargo lambda
//! watch --only-lambda-apis` serves the Lambda runtime API and the invoke endpoint on loopback,
//! the function polls it as it would in the `provided.al2023` runtime, and `cargo lambda invoke`
//! sends EventBridge payloads. It publishes the fixture artifacts from a local registry into moto
//! S3, and the real Trivy client downloads them through the nginx CDN stand-in.
//!
//! Why `--only-lambda-apis` instead of letting `cargo lambda watch` start the function itself:
//! watch starts it with `cargo run --features lambda`, and `cargo run` resolves features without
//! the dev-dependencies that `cargo test` unifies in. That is a second build of half the
//! dependency tree in the middle of a test, and it replaces `target/debug/trivy-mirror` (the
//! binary every other test in this suite runs) while those tests run in parallel. Starting
//! `CARGO_BIN_EXE_trivy-mirror` with the variables watch prints for this mode tests exactly the
//! binary that was built, with a known PID whose memory and disk writes can be read.
//!
//! The container image is built and run in `container.rs`.

/// The Lambda handler under `cargo lambda watch`.
#[cfg(feature = "lambda")]
mod handler {
    use std::path::Path;
    use std::process::Command;
    use std::time::{Duration, Instant};

    use serde_json::{Value, json};
    use tempfile::TempDir;
    use trivy_mirror_fixtures as fx;

    use crate::harness::*;

    const BUCKET: &str = "trivy-mirror";
    /// How long the function may take to start and poll the runtime API.
    const STARTUP: Duration = Duration::from_secs(60);

    /// The function as the AWS Terraform module configures it (512 MB), attached to a
    /// `cargo lambda watch` runtime API on a free loopback port.
    struct Function {
        port: u16,
        process: Proc,
        _watch: Proc,
        /// The function's TMPDIR, to show nothing is spooled there.
        tmp: std::path::PathBuf,
        _dir: TempDir,
    }

    /// What `cargo lambda invoke` returned.
    struct Invoked {
        success: bool,
        /// The response (the run summary) when the invocation succeeded.
        response: Value,
        /// The error as cargo lambda prints it, box-drawing and line wraps removed.
        error: String,
        seconds: f64,
    }

    impl Function {
        fn start(env: &[(&str, String)]) -> Function {
            let dir = tempfile::tempdir().unwrap();
            let port = free_port();
            let mut watch = Proc::spawn(
                "cargo lambda watch",
                Command::new(tool("py/bin/cargo-lambda"))
                    .args(["lambda", "watch", "--only-lambda-apis", "--invoke-address", "127.0.0.1"])
                    .args(["--invoke-port", &port.to_string()])
                    // It reads the package's metadata from the working directory.
                    .current_dir(root()),
                dir.path().join("watch.log"),
            );
            // Readiness is a TCP connect, not an HTTP probe: in this mode watch treats any
            // other path as an invocation of the default function and would queue it.
            watch.wait_until(STARTUP, || std::net::TcpStream::connect(("127.0.0.1", port)).is_ok());
            let tmp = dir.path().join("tmp");
            std::fs::create_dir_all(&tmp).unwrap();

            // A Lambda execution environment has the runtime's variables and the function's
            // configuration, nothing from the developer's shell (no AWS profile, no docker
            // config, no TRIVY_MIRROR_*).
            let mut cmd = Command::new(env!("CARGO_BIN_EXE_trivy-mirror"));
            cmd.env_clear()
                .env("AWS_LAMBDA_RUNTIME_API", format!("http://127.0.0.1:{port}/.rt"))
                // `_` is the function watch routes invocations to in this mode.
                .env("AWS_LAMBDA_FUNCTION_NAME", "_")
                .env("AWS_LAMBDA_FUNCTION_VERSION", "1")
                .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "512")
                .env("AWS_LAMBDA_LOG_FORMAT", "JSON")
                .env("DOCKER_CONFIG", "/nonexistent-docker-config")
                .env("TMPDIR", &tmp);
            for (k, v) in env {
                cmd.env(k, v);
            }
            let mut process = Proc::spawn("trivy-mirror Lambda function", &mut cmd, dir.path().join("function.log"));
            let ready = || process_log_has(&dir.path().join("function.log"), "trivy-mirror Lambda handler ready");
            process.wait_until(STARTUP, ready);
            Function { port, process, _watch: watch, tmp, _dir: dir }
        }

        fn invoke(&self, payload: &Value) -> Invoked {
            let start = Instant::now();
            let out = offline_env(
                Command::new(tool("py/bin/cargo-lambda"))
                    .args(["lambda", "invoke", "--invoke-address", "127.0.0.1"])
                    .args(["--invoke-port", &self.port.to_string()])
                    .args(["--output-format", "json", "--color", "never", "--data-ascii"])
                    .arg(payload.to_string())
                    .current_dir(root()),
            )
            .output()
            .expect("cargo lambda invoke");
            let stdout = text(&out.stdout);
            Invoked {
                success: out.status.success(),
                response: serde_json::from_str(&stdout).unwrap_or(Value::Null),
                error: squash(&format!("{stdout}{}", text(&out.stderr))),
                seconds: start.elapsed().as_secs_f64(),
            }
        }

        /// Every line the function printed, each of which must be a JSON object.
        fn log_lines(&self) -> Vec<Value> {
            self.process
                .log()
                .lines()
                .filter(|l| !l.trim().is_empty())
                .map(|l| serde_json::from_str::<Value>(l).unwrap_or_else(|e| panic!("not a JSON log line ({e}): {l}")))
                .collect()
        }

        /// The last log line whose `message` is `message`.
        fn last_line(&self, message: &str) -> Value {
            self.log_lines()
                .into_iter()
                .rev()
                .find(|l| l["message"] == message)
                .unwrap_or_else(|| panic!("no {message:?} line in the function log:\n{}", self.process.log()))
        }

        /// A field of /proc/PID/status (kB) or /proc/PID/io (bytes) of the function process.
        fn proc_field(&self, file: &str, field: &str) -> u64 {
            let text = std::fs::read_to_string(format!("/proc/{}/{file}", self.process.pid())).unwrap();
            text.lines()
                .find_map(|l| l.strip_prefix(field)?.trim_start_matches(':').split_whitespace().next()?.parse().ok())
                .unwrap_or_else(|| panic!("{field} not in /proc/PID/{file}:\n{text}"))
        }
    }

    fn process_log_has(log: &Path, needle: &str) -> bool {
        std::fs::read_to_string(log).is_ok_and(|l| l.contains(needle))
    }

    /// Text without whitespace or miette's box drawing, so that assertions do not depend on
    /// where cargo lambda wrapped an error message.
    fn squash(s: &str) -> String {
        s.chars().filter(|c| !c.is_whitespace() && !matches!(c, '│' | '×' | '╰' | '─' | '╭')).collect()
    }

    fn assert_error(invoked: &Invoked, error_type: &str, needle: &str) {
        assert!(!invoked.success, "the invocation should have failed: {}", invoked.response);
        assert!(invoked.error.contains(&squash(error_type)), "expected {error_type}: {}", invoked.error);
        assert!(invoked.error.contains(&squash(needle)), "expected {needle:?} in: {}", invoked.error);
    }

    fn entries(response: &Value) -> Vec<Value> {
        response["summary"]["entries"].as_array().cloned().unwrap_or_default()
    }

    fn entry<'a>(entries: &'a [Value], artifact: &str) -> &'a Value {
        entries.iter().find(|e| e["artifact"] == artifact).unwrap_or_else(|| panic!("no {artifact} in {entries:?}"))
    }

    /// The input the AWS Terraform module's EventBridge Scheduler schedule sends
    /// (terraform/modules/aws/publisher.tf), here with an override in `detail`.
    fn scheduler_event(detail: Value) -> Value {
        json!({ "source": "trivy-mirror.scheduler", "detail-type": "Scheduled Event", "detail": detail })
    }

    /// The event an EventBridge scheduled rule delivers (aws_lambda_events'
    /// `example-eventbridge-schedule.json`).
    fn scheduled_rule_event() -> Value {
        json!({
            "version": "0",
            "id": "53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa",
            "detail-type": "Scheduled Event",
            "source": "aws.events",
            "account": "123456789012",
            "time": "2015-10-08T16:53:06Z",
            "region": "us-east-1",
            "resources": ["arn:aws:events:us-east-1:123456789012:rule/trivy-mirror"],
            "detail": {}
        })
    }

    fn function_env(moto: &Moto, registry: &Registry) -> Vec<(&'static str, String)> {
        let mut env = moto.env();
        env.push(("TRIVY_MIRROR_TO", format!("s3://{BUCKET}")));
        env.push(("TRIVY_MIRROR_SOURCE", format!("{}/aquasecurity", registry.addr)));
        env.push(("TRIVY_MIRROR_LOG_FORMAT", "json".into()));
        env
    }

    #[test]
    fn scheduled_invocations_publish_to_s3_and_trivy_downloads_through_the_cdn() {
        let (upstream, registry) = Upstream::seeded();
        let moto = Moto::start(BUCKET);
        let cdn = Nginx::cdn(&format!("http://{}/{BUCKET}/", moto.addr), &moto.addr);
        let function = Function::start(&function_env(&moto, &registry));

        // 1. The Scheduler's input, narrowed to trivy-db by the payload.
        let first = function.invoke(&scheduler_event(json!({ "only": ["db"] })));
        assert!(first.success, "scheduler invocation failed: {}\n{}", first.error, function.process.log());
        assert_eq!(first.response["success"], true);
        let e = entries(&first.response);
        assert_eq!(e.len(), 1, "only trivy-db was asked for: {e:?}");
        let db = entry(&e, "trivy-db:2");
        assert_eq!(db["outcome"], "written");
        assert_eq!(db["digest"], upstream.db.manifest_digest());
        assert_eq!(db["destination"], format!("s3://{BUCKET}"));
        assert!(db["bytes_written"].as_u64().unwrap() >= upstream.db.layer.len() as u64, "{db}");
        assert_eq!(db["blobs_skipped"], 0);

        // 2. A scheduled rule's event, no override: every database; trivy-db is already there.
        let second = function.invoke(&scheduled_rule_event());
        assert!(second.success, "scheduled event failed: {}\n{}", second.error, function.process.log());
        let e = entries(&second.response);
        assert_eq!(e.len(), 4, "{e:?}");
        let db = entry(&e, "trivy-db:2");
        assert_eq!((db["outcome"].as_str(), db["bytes_written"].as_u64()), (Some("unchanged"), Some(0)));
        for (name, tag, artifact) in upstream.items().into_iter().skip(1) {
            let x = entry(&e, &format!("{name}:{tag}"));
            assert_eq!(x["outcome"], "written", "{x}");
            assert_eq!(x["digest"], artifact.manifest_digest(), "{name}:{tag} digest");
        }
        let invoked = function.last_line("invoked");
        assert_eq!(
            (invoked["trigger"].as_str(), invoked["event_source"].as_str()),
            (Some("eventbridge"), Some("aws.events"))
        );

        // One structured summary line ends each run; it names the invocation.
        let summary = function.last_line("sync finished");
        assert_eq!(summary["success"], true);
        assert_eq!(summary["summary"], second.response["summary"]);
        assert!(!summary["requestId"].as_str().unwrap_or("").is_empty(), "{summary}");

        // The real Trivy client downloads every database through the CDN in front of the bucket.
        assert_trivy_uses_mirror(&cdn.addr);

        // 3. `{}`: nothing changed upstream, nothing is written.
        let third = function.invoke(&json!({}));
        assert!(third.success, "{}", third.error);
        let e = entries(&third.response);
        assert!(e.iter().all(|x| x["outcome"] == "unchanged" && x["bytes_written"] == 0), "{e:?}");

        // 4. The source is gone: the invocation fails, naming what failed and why.
        drop(registry);
        let fourth = function.invoke(&scheduled_rule_event());
        assert_error(&fourth, "TrivyMirror.PublishFailed", "4 of 4 failed");
        assert_error(&fourth, "TrivyMirror.PublishFailed", "no source could provide it");
        let failed = function.last_line("invocation failed");
        assert_eq!(failed["error_type"], "TrivyMirror.PublishFailed");
        let summary = function.last_line("sync failed");
        assert_eq!((summary["level"].as_str(), summary["success"].as_bool()), (Some("ERROR"), Some(false)));
        assert!(entries(&summary).iter().all(|x| x["outcome"] == "failed"), "{summary}");
        // The CDN still serves what was published before.
        assert!(Trivy::new(TRIVY_CURRENT).download_db(&cdn.addr).status.success());

        // Every line the function wrote is a JSON object with a level (log_lines panics otherwise).
        assert!(function.log_lines().iter().all(|l| l["level"].is_string()));
    }

    #[test]
    fn bad_payloads_and_settings_fail_the_invocation_with_what_to_fix() {
        // No TRIVY_MIRROR_TO: the function starts, and each invocation says what is missing.
        let function = Function::start(&[]);
        let invoked = function.invoke(&json!({}));
        assert_error(&invoked, "TrivyMirror.InvalidConfiguration", "TRIVY_MIRROR_TO");

        for (payload, needle) in [
            (json!({ "only": ["db", "nope"] }), "expected one of db, java-db, checks, vex"),
            // A payload must not be able to redirect what the mirror publishes.
            (json!({ "to": "s3://elsewhere" }), "\"to\" cannot be set by the payload"),
            (scheduler_event(json!({ "source": "evil.example/aquasecurity" })), "TRIVY_MIRROR_SOURCE"),
            (json!("sync"), "expected a JSON object"),
        ] {
            let invoked = function.invoke(&payload);
            assert_error(&invoked, "TrivyMirror.InvalidPayload", needle);
        }
        let failed = function.last_line("invocation failed");
        assert_eq!(failed["error_type"], "TrivyMirror.InvalidPayload");
        // The function survives bad invocations: it still answers.
        let again = function.invoke(&json!({}));
        assert_error(&again, "TrivyMirror.InvalidConfiguration", "TRIVY_MIRROR_TO");
    }

    /// The production constraint: trivy-java-db (~650 MB) inside a 512 MB function. A 650 MiB
    /// layer goes through while peak RSS stays a fraction of it and nothing is written to
    /// disk: the layer is streamed, neither held in memory nor spooled to /tmp.
    #[test]
    fn a_large_blob_streams_through_the_function_without_memory_or_disk() {
        const LAYER: u64 = 650 * 1024 * 1024;
        let registry = Registry::start();
        let layout = tempfile::tempdir().unwrap();
        let digest = fx::write_big_layer_layout(layout.path(), "2", LAYER, 42).unwrap();
        registry.seed(layout.path(), "2", "aquasecurity/trivy-db", "2");
        drop(layout);
        let moto = Moto::start(BUCKET);
        let function = Function::start(&function_env(&moto, &registry));
        let written_before = function.proc_field("io", "write_bytes");

        let invoked = function.invoke(&json!({ "only": ["db"] }));
        assert!(invoked.success, "{}\n{}", invoked.error, function.process.log());
        let e = entries(&invoked.response);
        let db = entry(&e, "trivy-db:2");
        assert_eq!(db["digest"], digest);
        assert!(db["bytes_written"].as_u64().unwrap() >= LAYER, "{db}");

        let peak_mib = function.proc_field("status", "VmHWM") / 1024;
        let disk_mib = (function.proc_field("io", "write_bytes") - written_before) / (1024 * 1024);
        eprintln!(
            "{} MiB layer: {:.1} s, peak RSS {peak_mib} MiB, {disk_mib} MiB written to disk",
            LAYER >> 20,
            invoked.seconds
        );
        // Part size × (concurrency + 1) plus the runtime: far below the layer and below
        // the 512 MB the function is given.
        assert!(peak_mib < 160, "peak RSS {peak_mib} MiB for a {} MiB layer", LAYER >> 20);
        assert!(disk_mib < 4, "{disk_mib} MiB written to disk: the layer was spooled");
        assert!(std::fs::read_dir(&function.tmp).unwrap().next().is_none(), "files left in TMPDIR");

        // The layer is in the bucket, whole.
        let url = format!("{}/{BUCKET}/v2/aquasecurity/trivy-db/manifests/2", moto.endpoint);
        let manifest: Value = serde_json::from_slice(&http().get(url).send().unwrap().bytes().unwrap()).unwrap();
        let layer = manifest["layers"][0]["digest"].as_str().unwrap().to_string();
        let head =
            http().head(format!("{}/{BUCKET}/v2/aquasecurity/trivy-db/blobs/{layer}", moto.endpoint)).send().unwrap();
        assert_eq!(header(head.headers(), "content-length"), LAYER.to_string());
    }
}
