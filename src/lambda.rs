//! AWS Lambda entry point (feature `lambda`). In the `provided.al2023` runtime the binary is
//! named `bootstrap`; `main.rs` hands over to [`main`] when `AWS_LAMBDA_RUNTIME_API` is set.
//!
//! What this module owns: turning one invocation into one `sync` run, and the run's outcome
//! into the invocation's result.
//! - Settings come from the same `TRIVY_MIRROR_*` environment variables as the CLI, parsed by
//!   the CLI's own clap definitions, so names, defaults and validation cannot drift apart.
//! - The payload is an EventBridge (Scheduler or rule) event, `{}` or `null`. It may narrow
//!   what is mirrored (`only`, at the top level or in `detail`) and nothing else: a payload
//!   that could change the destination or the source would let anyone allowed to *invoke*
//!   the function publish other content into the mirror that every Trivy client trusts.
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

use aws_lambda_events::eventbridge::EventBridgeEvent;
use clap::{CommandFactory as _, Parser as _};
use lambda_runtime::{Context, Diagnostic, LambdaEvent, service_fn};
use serde_json::{Map, Value, json};

use trivy_mirror::artifact::Kind;
use trivy_mirror::credentials;
use trivy_mirror::summary::{Outcome, Report};

use crate::cli::{Cli, Command, SyncArgs};

/// Time kept back from the Lambda deadline to log the summary and return an error ourselves;
/// otherwise Lambda kills the process and all that remains is "Task timed out".
const DEADLINE_MARGIN: Duration = Duration::from_secs(10);

/// Variables the runtime client reads with `expect`.
const RUNTIME_VARIABLES: [&str; 3] =
    ["AWS_LAMBDA_FUNCTION_NAME", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "AWS_LAMBDA_FUNCTION_VERSION"];

/// Run the Lambda runtime loop until the execution environment is shut down.
pub(crate) fn main() -> ExitCode {
    init_logging();
    if let Err(message) = check_runtime_environment(|name| std::env::var(name).ok()) {
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
    let mut args = settings_from_environment()?;
    if let Some(only) = &invocation.only {
        args.only.clone_from(only);
    }
    let config = args.config(&credentials::process_env).map_err(|e| Failure::Config(e.to_string()))?;

    let kinds: Vec<&str> = config.plan.only.iter().map(|k| k.as_str()).collect();
    let budget = time_budget(context, SystemTime::now());
    tracing::info!(
        only = ?kinds,
        to = ?args.to,
        deadline_ms = context.deadline,
        budget_seconds = budget.map(|b| b.as_secs()),
        "sync starting"
    );
    let run = trivy_mirror::run::run(&config);
    let report = match budget {
        Some(budget) => tokio::time::timeout(budget, run).await.map_err(|_| {
            let message = format!(
                "stopped after {}s, {}s before the function timeout, with the run unfinished. \
                 Tags still point at complete content (they are published last); raise the \
                 timeout or the memory (which also raises CPU and network), or split the run \
                 with `only`",
                budget.as_secs(),
                DEADLINE_MARGIN.as_secs()
            );
            print_summary(context, None, &message);
            Failure::Deadline(message)
        })?,
        None => run.await,
    };
    let summary = crate::render::run_json(&report);
    if report.success() {
        print_summary(context, Some(&summary), "sync finished");
        Ok(summary)
    } else {
        // The entries carry the reasons; the error message repeats them for the caller.
        print_summary(context, Some(&summary), "sync failed");
        Err(Failure::Publish(failed_entries(&report.sync)))
    }
}

/// The sync settings, exactly as `trivy-mirror sync` would read them from the environment.
fn settings_from_environment() -> Result<SyncArgs, Failure> {
    let cli = Cli::try_parse_from(["trivy-mirror", "sync"]).map_err(|e| Failure::Config(clap_message(&e)))?;
    // Parsed from a fixed `sync` argument list, so any other command cannot come back.
    let Command::Sync(args) = cli.command else {
        return Err(Failure::Config("expected the sync command".into()));
    };
    Ok(*args)
}

/// clap's message without the usage text, naming the environment variables involved (a
/// Lambda user sets variables, not flags).
fn clap_message(err: &clap::Error) -> String {
    let rendered = err.render().to_string();
    let text = rendered.split("\nUsage:").next().unwrap_or_default();
    let text = text.trim().trim_start_matches("error: ").split_whitespace().collect::<Vec<_>>().join(" ");
    let cli = Cli::command();
    let sync = cli.find_subcommand("sync");
    let arguments = cli.get_arguments().chain(sync.into_iter().flat_map(|s| s.get_arguments()));
    let mut variables = Vec::new();
    for arg in arguments {
        let (Some(long), Some(env)) = (arg.get_long(), arg.get_env()) else {
            continue;
        };
        let mentioned = [format!("--{long} "), format!("--{long}'"), format!("--{long}>")]
            .iter()
            .any(|needle| text.contains(needle.as_str()))
            || text.ends_with(&format!("--{long}"));
        let env = env.to_string_lossy().into_owned();
        if mentioned && !variables.contains(&env) {
            variables.push(env);
        }
    }
    if variables.is_empty() {
        format!("{text} (the function reads its settings from TRIVY_MIRROR_* environment variables)")
    } else {
        format!("{text} (set by {})", variables.join(", "))
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

/// "2 of 4 failed: trivy-db:2 → s3://…: why; …"
fn failed_entries(report: &Report) -> String {
    let failed: Vec<String> = report
        .entries
        .iter()
        .filter(|e| e.outcome == Outcome::Failed)
        .map(|e| format!("{} → {}: {}", e.artifact, e.destination, e.error.as_deref().unwrap_or("failed")))
        .collect();
    format!("{} of {} failed: {}", failed.len(), report.entries.len(), failed.join("; "))
}

/// The one structured line a run ends with, on stdout: the same `summary`/`success` object
/// as the CLI's JSON line, with the fields CloudWatch and Lambda's log filtering key on.
fn print_summary(context: &Context, summary: Option<&Value>, message: &str) {
    let success = summary.is_some_and(|s| s["success"] == Value::Bool(true));
    let mut line = json!({
        "timestamp": jiff::Timestamp::now().to_string(),
        "level": if success { "INFO" } else { "ERROR" },
        "message": message,
        "requestId": context.request_id,
        "success": success,
    });
    if let (Some(Value::Object(extra)), Value::Object(fields)) = (summary, &mut line) {
        fields.insert("summary".into(), extra["summary"].clone());
    }
    println!("{line}");
}

/// Where an invocation came from, for the logs.
#[derive(Debug, PartialEq)]
enum Trigger {
    /// `{}`, `null` or a bare override object: a manual `aws lambda invoke`, a test, or a
    /// Scheduler target without an EventBridge-shaped input.
    Direct,
    /// An EventBridge event envelope (a rule, or Scheduler with an event-shaped input).
    EventBridge { source: String, detail_type: String, id: Option<String>, time: Option<String> },
}

/// What one payload asks for.
#[derive(Debug, PartialEq)]
struct Invocation {
    trigger: Trigger,
    /// Replaces `TRIVY_MIRROR_ONLY` for this run.
    only: Option<Vec<Kind>>,
}

/// Keys of an EventBridge envelope, which are never settings even where a setting has the
/// same name (`source`).
const ENVELOPE_KEYS: [&str; 9] =
    ["version", "id", "detail-type", "source", "account", "time", "region", "resources", "detail"];

impl Invocation {
    fn parse(payload: Value) -> Result<Invocation, String> {
        let object = match payload {
            Value::Null => Map::new(),
            Value::Object(object) => object,
            other => {
                return Err(format!("expected a JSON object (an EventBridge event or {{}}), got {}", kind_of(&other)));
            }
        };
        let (trigger, detail) = if object.contains_key("detail-type") {
            let event: EventBridgeEvent<Value> = serde_json::from_value(Value::Object(object.clone()))
                .map_err(|e| format!("an EventBridge event needs \"detail-type\", \"source\" and \"detail\": {e}"))?;
            let detail = match event.detail {
                Value::Object(detail) => Some(detail),
                Value::Null => None,
                other => {
                    return Err(format!("the event's \"detail\" must be an object, got {}", kind_of(&other)));
                }
            };
            let trigger = Trigger::EventBridge {
                source: event.source,
                detail_type: event.detail_type,
                id: event.id,
                time: event.time.map(|t| t.to_rfc3339()),
            };
            (trigger, detail)
        } else {
            (Trigger::Direct, None)
        };
        let envelope = matches!(trigger, Trigger::EventBridge { .. });

        let mut only = None;
        let top = object.iter().filter(|(key, _)| !(envelope && ENVELOPE_KEYS.contains(&key.as_str())));
        let nested = detail.iter().flat_map(|d| d.iter());
        for (key, value) in top.chain(nested) {
            if key == "only" {
                let kinds = parse_only(value)?;
                if only.as_ref().is_some_and(|o| o != &kinds) {
                    return Err("\"only\" is given twice with different values".into());
                }
                only = Some(kinds);
            } else if let Some(variable) = setting_variable(key) {
                return Err(format!(
                    "{key:?} cannot be set by the payload; it is the function's {variable} \
                     setting. Only \"only\" can be given per invocation"
                ));
            }
            // Anything else (an event's own detail fields) is not ours and is ignored.
        }
        Ok(Invocation { trigger, only })
    }

    fn log(&self) {
        let only: Option<Vec<&str>> = self.only.as_ref().map(|kinds| kinds.iter().map(|k| k.as_str()).collect());
        match &self.trigger {
            Trigger::Direct => tracing::info!(trigger = "direct", only = ?only, "invoked"),
            Trigger::EventBridge { source, detail_type, id, time } => tracing::info!(
                trigger = "eventbridge",
                event_source = %source,
                detail_type = %detail_type,
                event_id = id.as_deref().unwrap_or(""),
                event_time = time.as_deref().unwrap_or(""),
                only = ?only,
                "invoked"
            ),
        }
    }
}

/// `["db", "vex"]` or `"db,vex"`.
fn parse_only(value: &Value) -> Result<Vec<Kind>, String> {
    let names: Vec<&str> = match value {
        Value::String(s) => s.split(',').collect(),
        Value::Array(items) => items
            .iter()
            .map(|item| {
                item.as_str()
                    .ok_or_else(|| format!("\"only\" must list artifact kinds as strings, got {}", kind_of(item)))
            })
            .collect::<Result<_, _>>()?,
        other => {
            return Err(format!("\"only\" must be a list like [\"db\", \"vex\"], got {}", kind_of(other)));
        }
    };
    let kinds = names
        .iter()
        .map(|name| name.trim())
        .filter(|name| !name.is_empty())
        .map(|name| name.parse::<Kind>().map_err(|e| format!("\"only\": {e}")))
        .collect::<Result<Vec<_>, _>>()?;
    if kinds.is_empty() {
        return Err("\"only\" is empty; name at least one of db, java-db, checks, vex, or leave it out".into());
    }
    Ok(kinds)
}

/// The environment variable of the sync setting a payload key names (`to`, `base_url`,
/// `base-url`, …), from the CLI definitions so that new settings are refused too.
fn setting_variable(key: &str) -> Option<String> {
    let cli = Cli::command();
    let sync = cli.find_subcommand("sync")?;
    let normalized = key.replace('_', "-");
    sync.get_arguments()
        .chain(cli.get_arguments())
        .find(|arg| arg.get_long() == Some(normalized.as_str()) || arg.get_id() == key)
        .map(|arg| arg.get_env().map(|e| e.to_string_lossy().into_owned()).unwrap_or_else(|| format!("--{normalized}")))
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(payload: Value) -> Result<Invocation, String> {
        Invocation::parse(payload)
    }

    #[test]
    fn empty_and_null_payloads_run_with_the_function_settings() {
        for payload in [json!({}), Value::Null] {
            assert_eq!(parse(payload).unwrap(), Invocation { trigger: Trigger::Direct, only: None });
        }
    }

    #[test]
    fn a_scheduled_event_is_accepted() {
        // EventBridge's scheduled-rule event (aws_lambda_events' fixture shape).
        let event = json!({
            "version": "0",
            "id": "53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa",
            "detail-type": "Scheduled Event",
            "source": "aws.events",
            "account": "123456789012",
            "time": "2015-10-08T16:53:06Z",
            "region": "us-east-1",
            "resources": ["arn:aws:events:us-east-1:123456789012:rule/my-scheduled-rule"],
            "detail": {}
        });
        let invocation = parse(event).unwrap();
        assert_eq!(invocation.only, None);
        assert!(matches!(
            invocation.trigger,
            Trigger::EventBridge { ref source, ref detail_type, .. }
                if source == "aws.events" && detail_type == "Scheduled Event"
        ));
    }

    #[test]
    fn overrides_come_from_the_top_level_or_the_detail() {
        let top = parse(json!({"only": ["db", "vex"]})).unwrap();
        assert_eq!(top.only, Some(vec![Kind::Db, Kind::Vex]));
        let detail = parse(json!({
            "source": "trivy-mirror.scheduler",
            "detail-type": "Scheduled Event",
            "detail": {"only": "java-db, checks"}
        }))
        .unwrap();
        assert_eq!(detail.only, Some(vec![Kind::JavaDb, Kind::Checks]));
    }

    #[test]
    fn bad_payloads_are_refused_with_a_reason() {
        let cases = [
            (json!([]), "expected a JSON object"),
            (json!({"only": ["nope"]}), "expected one of db, java-db, checks, vex"),
            (json!({"only": []}), "\"only\" is empty"),
            (json!({"only": 3}), "must be a list"),
            (json!({"detail-type": "Scheduled Event"}), "needs \"detail-type\", \"source\""),
            (json!({"to": "s3://elsewhere"}), "TRIVY_MIRROR_TO"),
            (json!({"source": "evil.example/ns"}), "TRIVY_MIRROR_SOURCE"),
            (
                json!({"source": "aws.events", "detail-type": "x", "detail": {"base_url": "https://x"}}),
                "TRIVY_MIRROR_BASE_URL",
            ),
        ];
        for (payload, expected) in cases {
            let err = parse(payload.clone()).unwrap_err();
            assert!(err.contains(expected), "{payload}: {err}");
        }
    }

    #[test]
    fn unknown_detail_fields_are_ignored() {
        let invocation = parse(json!({
            "source": "aws.events",
            "detail-type": "Scheduled Event",
            "detail": {"note": "anything"}
        }))
        .unwrap();
        assert_eq!(invocation.only, None);
    }

    #[test]
    fn clap_errors_name_the_environment_variable() {
        let err = Cli::try_parse_from(["trivy-mirror", "sync", "--to", "x", "--only", "nope"]).unwrap_err();
        let message = clap_message(&err);
        assert!(message.contains("TRIVY_MIRROR_ONLY"), "{message}");
        assert!(!message.contains("Usage"), "{message}");
    }

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
