//! How the binary shows the library's results: the run summary as a table or JSON, and
//! errors as one line plus a hint that names this binary's flags. The library says what
//! to do in words ([`Help`], [`Setting`]); only here do flags and variables appear.

use serde_json::Value;

use trivy_mirror::error::{Help, Setting};
use trivy_mirror::summary::Report;

/// The advice of `help`, with the flags that carry it out.
pub(crate) fn hint(help: &Help) -> String {
    match help {
        Help::TrustCertificate => "a private CA? trust it with --dest-ca-file / --source-ca-file, or \
                                   --insecure-destination / --insecure-source"
            .into(),
        Help::ServerSpeaksTls => "the server speaks TLS; trust its CA with --dest-ca-file / --source-ca-file, \
                                  or use --insecure-destination / --insecure-source"
            .into(),
        Help::NoChunkedUploads => "the registry does not support chunked uploads; drop --dest-chunk-size, or \
                                   lift the proxy's body limit so that blobs go in one request"
            .into(),
        Help::AllowDowngrade => "the destination keeps serving the newer build; a source serving the older one \
                                 is stale or replaying an old tag. To roll back on purpose, rerun with --allow-downgrade"
            .into(),
        Help::Offline => "no source host could be reached: this machine looks offline, or cannot resolve names \
                          (check DNS and HTTPS_PROXY); to mirror from a registry inside your network, use --source"
            .into(),
        Help::SyncFirst { dir } => format!("nothing has been mirrored there yet: run `trivy-mirror sync --to {dir}` first"),
        Help::AllowMoreTime => "the run's deadline passed with work left; the next run continues where this one \
                                stopped. Raise --deadline (TRIVY_MIRROR_DEADLINE), or split the run with --only"
            .into(),
        other => other.to_string(),
    }
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
            if let (Some(help), Some(fields)) = (&entry.help, json.as_object_mut()) {
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
