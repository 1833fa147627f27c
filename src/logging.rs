//! The one logging setup of the binary, for the CLI and the Lambda handler alike: lines
//! on stderr, the filter from `TRIVY_MIRROR_LOG` when set (else warnings for libraries
//! and `level` for this crate), as compact text or as one JSON object per line.

use tracing_subscriber::EnvFilter;

/// How to log.
pub(crate) struct Logging<'a> {
    /// One JSON object per line (CloudWatch, Cloud Logging, Azure Monitor) instead of text.
    pub(crate) json: bool,
    /// This crate's level when `TRIVY_MIRROR_LOG` is not set (`info`, `debug`, …).
    pub(crate) level: &'a str,
    /// Add the current span's fields to JSON lines (the Lambda runtime's span carries the
    /// `requestId`, so every line names its invocation).
    pub(crate) span_fields: bool,
}

/// Install the global subscriber.
pub(crate) fn init(logging: &Logging<'_>) {
    let filter = EnvFilter::try_from_env("TRIVY_MIRROR_LOG")
        .unwrap_or_else(|_| EnvFilter::new(format!("warn,trivy_mirror={}", logging.level)));
    // Colours only for a person at a terminal, never into a log file or a pipe.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi);
    if !logging.json {
        builder.with_target(false).compact().init();
    } else if logging.span_fields {
        builder.json().flatten_event(true).with_current_span(true).with_span_list(false).init();
    } else {
        builder.json().flatten_event(true).init();
    }
}
