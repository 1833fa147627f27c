//! How the binary shows the library's results: the run summary as a table or JSON, and
//! errors as one line plus a hint that names this binary's flags. The library says what
//! to do in words ([`Help`], [`Setting`]); only here do flags and variables appear.

use serde_json::Value;

use trivy_mirror::error::{Help, Setting};
use trivy_mirror::summary::Report;

/// The advice of `help`: the library's words (each hint is written once, in `error.rs`),
/// then the flags that carry it out, where some do.
pub(crate) fn hint(help: &Help) -> String {
    let flags = match help {
        Help::TrustCertificate | Help::ServerSpeaksTls => {
            "--dest-ca-file / --source-ca-file, or --insecure-destination / --insecure-source".into()
        }
        Help::NoChunkedUploads => "drop --dest-chunk-size".into(),
        Help::AllowDowngrade => "--allow-downgrade".into(),
        Help::Offline => "--source".into(),
        Help::SyncFirst { dir } => format!("`trivy-mirror sync --to {dir}`"),
        Help::CheckSignature => "sync --sign-key; --require-signature".into(),
        Help::AllowMoreTime => "--deadline or TRIVY_MIRROR_DEADLINE; --only".into(),
        _ => return help.to_string(),
    };
    format!("{help} ({flags})")
}

/// The flag that sets `setting`, where one does.
pub(crate) fn flag(setting: Setting) -> Option<&'static str> {
    Some(match setting {
        Setting::Source => "--source",
        Setting::Destination => "--to",
        Setting::Namespace => "--namespace",
        Setting::ArtifactKind => "--only",
        Setting::VexSource => "--vex-source",
        Setting::BaseUrl => "--base-url",
        Setting::VexPrefix => "--vex-prefix",
        Setting::TlsCertificate => "--tls-cert",
        Setting::TlsKey => "--tls-key",
        Setting::Htpasswd => "--htpasswd",
        Setting::SignKey => "--sign-key",
        Setting::RequiredKey => "--require-signature",
        Setting::VerifyKey => "--key",
        _ => return None,
    })
}

/// An error for a person: the message, the flag it is about, and the hint.
pub(crate) fn error(err: &anyhow::Error) -> String {
    let mut out = format!("error: {}", one_line(err));
    if let Some(lib) = err.downcast_ref::<trivy_mirror::Error>() {
        if let trivy_mirror::Error::Config { setting, .. } = lib
            && let Some(flag) = flag(*setting)
        {
            out.push_str(&format!(" ({flag})"));
        }
        if let Some(help) = lib.help() {
            out.push_str(&format!("\n  hint: {}", hint(help)));
        }
    }
    out
}

/// The error and its causes on one line, each cause once. The library's errors say their
/// cause in words, so the chain stops at the first of them (its `source` is the raw form
/// of what it already said); elsewhere a cause whose text is already there is skipped.
fn one_line(err: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in err.chain() {
        let text = cause.to_string();
        if !out.contains(&text) {
            if !out.is_empty() {
                out.push_str(": ");
            }
            out.push_str(&text);
        }
        if cause.is::<trivy_mirror::Error>() {
            break;
        }
    }
    out
}

/// The summary as JSON: the library's entries, each failure with its rendered hint.
pub(crate) fn summary_json(report: &Report) -> Value {
    let mut value = serde_json::to_value(report).expect("the report serializes");
    if let Some(entries) = value.get_mut("entries").and_then(Value::as_array_mut) {
        for (json, entry) in entries.iter_mut().zip(&report.entries) {
            if let (Some(help), Some(fields)) = (entry.help(), json.as_object_mut()) {
                fields.insert("help".into(), Value::String(hint(help)));
            }
        }
    }
    value
}

/// The run as the Lambda handler returns it: summary, success and one line per prune.
#[cfg(feature = "lambda")]
pub(crate) fn run_json(run: &trivy_mirror::run::RunReport) -> Value {
    use serde_json::json;
    let pruned: Vec<Value> = run
        .pruned
        .iter()
        .map(|p| match &p.result {
            Ok(r) => json!({ "destination": p.destination, "removed": r.removed.len(), "bytes": r.bytes() }),
            Err(e) => json!({ "destination": p.destination, "error": e.to_string() }),
        })
        .collect();
    json!({ "summary": summary_json(&run.sync), "success": run.success(), "prune": pruned })
}

/// The summary table, each failure followed by its hint.
pub(crate) fn table(report: &Report) -> String {
    report.table(&hint)
}
