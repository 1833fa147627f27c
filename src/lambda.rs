//! AWS Lambda entry point (feature `lambda`). In the `provided.al2023` runtime the binary is
//! named `bootstrap`; `main.rs` hands over to [`main`] when `AWS_LAMBDA_RUNTIME_API` is set.
//!
//! What this module owns: turning one invocation into one `sync` run, and the run's outcome
//! into the invocation's result.
//! - Settings come from the same `TRIVY_MIRROR_*` environment variables as the CLI, read by
//!   the library ([`SyncSettings::from_env`]) and validated by the same rules.
//! - The payload may narrow what is mirrored and nothing else ([`payload`]).
//! - The run's deadline is the function's, less a margin to report: the library stops
//!   starting work there and the run reports like any other.
//! - The response is the run summary (the `sync --log-format json` line). Any failed entry
//!   fails the invocation, so scheduler retries, the `Errors` metric and alarms work.
//! - Logs are JSON lines on stderr (CloudWatch Logs Insights parses them; Lambda's JSON log
//!   format filters on their `level`), plus one summary line on stdout at the end.
//!
//! What it does not own: the copy (`trivy_mirror::sync`), destinations and their credentials
//! (`trivy_mirror::dest`; on Lambda, object_store reads the role's session credentials from
//! `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`/`AWS_SESSION_TOKEN`/`AWS_REGION`).

use std::fmt;
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use lambda_runtime::{Context, Diagnostic, LambdaEvent, service_fn};
use serde_json::{Value, json};

use trivy_mirror::credentials;
use trivy_mirror::settings::SyncSettings;

mod payload;

use payload::Invocation;

/// Time kept back from the Lambda deadline to log the summary and return an error ourselves;
/// otherwise Lambda kills the process and all that remains is "Task timed out".
const DEADLINE_MARGIN: Duration = Duration::from_secs(10);

/// Variables the runtime client reads with `expect`.
const RUNTIME_VARIABLES: [&str; 3] =
    ["AWS_LAMBDA_FUNCTION_NAME", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "AWS_LAMBDA_FUNCTION_VERSION"];

/// Run the Lambda runtime loop until the execution environment is shut down.
pub(crate) fn main() -> ExitCode {
    init_logging();
    if let Err(message) = check_runtime_environment(credentials::process_env) {
        tracing::error!(error = %message, "not started by a Lambda runtime");
        return ExitCode::FAILURE;
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            tracing::error!(error = %e, "cannot start the tokio runtime");
            return ExitCode::FAILURE;
        }
    };
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        memory_mb = std::env::var("AWS_LAMBDA_FUNCTION_MEMORY_SIZE").ok().and_then(|m| m.parse::<u32>().ok()),
        "trivy-mirror Lambda handler ready"
    );
    match runtime.block_on(lambda_runtime::run(service_fn(handle))) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "the Lambda runtime API failed");
            ExitCode::FAILURE
        }
    }
}

/// JSON lines unless `TRIVY_MIRROR_LOG_FORMAT=text` (handy under `cargo lambda watch`).
/// The filter is `TRIVY_MIRROR_LOG` as for the CLI; else the function's log level
/// (`AWS_LAMBDA_LOG_LEVEL`, set by Lambda's advanced logging controls) for this crate and
/// warnings for the libraries.
fn init_logging() {
    let level = std::env::var("AWS_LAMBDA_LOG_LEVEL").map(|l| lambda_log_level(&l)).unwrap_or("info");
    let text = std::env::var("TRIVY_MIRROR_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("text"));
    crate::logging::init(&crate::logging::Logging { json: !text, level, span_fields: true });
}

/// Lambda's level names (TRACE … FATAL) as tracing directives.
fn lambda_log_level(level: &str) -> &'static str {
    match level.to_ascii_uppercase().as_str() {
        "TRACE" => "trace",
        "DEBUG" => "debug",
        "WARN" => "warn",
        "ERROR" | "FATAL" => "error",
        _ => "info",
    }
}

/// The variables the runtime client needs, checked up front: it would panic on a missing or
/// malformed one. `var` reads the environment (a parameter so that tests need not set it).
fn check_runtime_environment(var: impl Fn(&str) -> Option<String>) -> Result<(), String> {
    for name in RUNTIME_VARIABLES {
        if var(name).is_none() {
            return Err(format!("{name} is not set"));
        }
    }
    let memory = var("AWS_LAMBDA_FUNCTION_MEMORY_SIZE").unwrap_or_default();
    if memory.parse::<i32>().is_err() {
        return Err(format!("AWS_LAMBDA_FUNCTION_MEMORY_SIZE is not a number: {memory:?}"));
    }
    // Lambda sets `host:port`; emulators a full URL. A path without a scheme (`host:port/.rt`)
    // is neither.
    let api = var("AWS_LAMBDA_RUNTIME_API").unwrap_or_default();
    if !(api.starts_with("http://") || api.starts_with("https://") || !api.contains('/')) {
        return Err(format!("AWS_LAMBDA_RUNTIME_API must be host:port or an http(s) URL, not {api:?}"));
    }
    Ok(())
}

/// Why an invocation failed. Becomes the Lambda error: `errorType` is stable (for metric
/// filters and alarms), `errorMessage` says what to fix.
enum Failure {
    /// The payload is not an event this function accepts.
    Payload(String),
    /// The function's `TRIVY_MIRROR_*` settings are unusable.
    Config(String),
    /// At least one artifact did not reach at least one destination.
    Publish(String),
    /// The run would have outlived the function's timeout.
    Deadline(String),
}

impl Failure {
    fn error_type(&self) -> &'static str {
        match self {
            Failure::Payload(_) => "TrivyMirror.InvalidPayload",
            Failure::Config(_) => "TrivyMirror.InvalidConfiguration",
            Failure::Publish(_) => "TrivyMirror.PublishFailed",
            Failure::Deadline(_) => "TrivyMirror.DeadlineExceeded",
        }
    }

    fn message(&self) -> &str {
        match self {
            Failure::Payload(m) | Failure::Config(m) | Failure::Publish(m) | Failure::Deadline(m) => m,
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.error_type(), self.message())
    }
}

/// The runtime logs a failed invocation with `{:?}`: make that line readable too.
impl fmt::Debug for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl From<Failure> for Diagnostic {
    fn from(failure: Failure) -> Diagnostic {
        Diagnostic { error_type: failure.error_type().to_string(), error_message: failure.message().to_string() }
    }
}

/// One invocation: parse, configure, sync, report.
async fn handle(event: LambdaEvent<Value>) -> Result<Value, Failure> {
    let (payload, context) = event.into_parts();
    let result = run(payload, &context).await;
    if let Err(failure) = &result {
        tracing::error!(error_type = failure.error_type(), error = failure.message(), "invocation failed");
    }
    result
}

async fn run(payload: Value, context: &Context) -> Result<Value, Failure> {
    let invocation = Invocation::parse(payload).map_err(Failure::Payload)?;
    invocation.log();
    let config_failure = |e: trivy_mirror::Error| Failure::Config(e.to_string());
    let mut settings = SyncSettings::from_env(&credentials::process_env).map_err(config_failure)?;
    if let Some(only) = invocation.only {
        settings.only = only;
    }
    let budget = time_budget(context, SystemTime::now());
    settings.deadline = match (settings.deadline, budget) {
        (Some(set), Some(budget)) => Some(set.min(budget)),
        (set, budget) => set.or(budget),
    };
    let config = settings.validate(&credentials::process_env).map_err(config_failure)?;

    let kinds: Vec<&str> = config.plan.only.iter().map(|k| k.as_str()).collect();
    tracing::info!(
        only = ?kinds,
        to = ?settings.to,
        deadline_ms = context.deadline,
        budget_seconds = config.deadline.map(|b| b.as_secs()),
        "sync starting"
    );
    let report = trivy_mirror::run::run(&config).await;
    let summary = crate::render::run_json(&report);
    if report.success() {
        print_summary(context, &summary, "sync finished");
        Ok(summary)
    } else if report.deadline_passed {
        let message = format!(
            "stopped after {}s, {}s before the function timeout, with the run unfinished. \
             Tags still point at complete content (they are published last); raise the \
             timeout or the memory (which also raises CPU and network), or split the run \
             with `only`. {}",
            config.deadline.unwrap_or_default().as_secs(),
            DEADLINE_MARGIN.as_secs(),
            report.sync.failures()
        );
        print_summary(context, &summary, "sync stopped at the deadline");
        Err(Failure::Deadline(message))
    } else {
        // The entries carry the reasons; the error message repeats them for the caller.
        print_summary(context, &summary, "sync failed");
        Err(Failure::Publish(report.sync.failures()))
    }
}

/// How long the run may take: until the deadline minus [`DEADLINE_MARGIN`] (the whole rest
/// when little is left). `None` when the runtime gave no usable deadline: none at all, or
/// one already past when the invocation starts, which Lambda never sends but emulators do
/// (`cargo lambda watch` 1.9 sends its 600000 ms timeout instead of an epoch time).
fn time_budget(context: &Context, now: SystemTime) -> Option<Duration> {
    if context.deadline == 0 {
        return None;
    }
    let left = context.deadline().duration_since(now).ok()?;
    Some(if left > 2 * DEADLINE_MARGIN { left - DEADLINE_MARGIN } else { left })
}

/// The one structured line a run ends with, on stdout: the same `summary`/`success` object
/// as the CLI's JSON line, with the fields CloudWatch and Lambda's log filtering key on.
fn print_summary(context: &Context, summary: &Value, message: &str) {
    let success = summary["success"] == Value::Bool(true);
    let line = json!({
        "timestamp": jiff::Timestamp::now().to_string(),
        "level": if success { "INFO" } else { "ERROR" },
        "message": message,
        "requestId": context.request_id,
        "success": success,
        "summary": summary["summary"],
    });
    println!("{line}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_keeps_a_margin_before_the_deadline() {
        let now = SystemTime::now();
        let at = |secs: u64| {
            // `Context` is non-exhaustive: set the one field on a default.
            let mut context = Context::default();
            context.deadline =
                (now + Duration::from_secs(secs)).duration_since(SystemTime::UNIX_EPOCH).unwrap().as_millis() as u64;
            context
        };
        assert_eq!(time_budget(&Context::default(), now), None);
        let mut relative = Context::default();
        relative.deadline = 600_000;
        assert_eq!(time_budget(&relative, now), None, "a past deadline is no deadline");
        let budget = time_budget(&at(900), now).unwrap();
        assert!(budget <= Duration::from_secs(890) && budget > Duration::from_secs(888), "{budget:?}");
        let short = time_budget(&at(5), now).unwrap();
        assert!(short > Duration::from_secs(4), "{short:?}");
    }

    #[test]
    fn a_broken_runtime_environment_is_an_error_not_a_panic() {
        let env = |api: &'static str, memory: &'static str| {
            move |name: &str| match name {
                "AWS_LAMBDA_RUNTIME_API" => Some(api.to_string()),
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE" => Some(memory.to_string()),
                "AWS_LAMBDA_FUNCTION_NAME" | "AWS_LAMBDA_FUNCTION_VERSION" => Some("x".to_string()),
                _ => None,
            }
        };
        assert_eq!(check_runtime_environment(env("127.0.0.1:9001", "512")), Ok(()));
        assert_eq!(check_runtime_environment(env("http://127.0.0.1:9000/.rt", "512")), Ok(()));
        let err = check_runtime_environment(env("127.0.0.1:9000/.rt", "512")).unwrap_err();
        assert!(err.contains("host:port"), "{err}");
        let err = check_runtime_environment(env("127.0.0.1:9001", "lots")).unwrap_err();
        assert!(err.contains("not a number"), "{err}");
        let err = check_runtime_environment(|_| None).unwrap_err();
        assert!(err.contains("is not set"), "{err}");
    }

    #[test]
    fn failures_map_to_stable_error_types() {
        let d: Diagnostic = Failure::Publish("1 of 4 failed".into()).into();
        assert_eq!(d.error_type, "TrivyMirror.PublishFailed");
        assert_eq!(d.error_message, "1 of 4 failed");
    }
}
