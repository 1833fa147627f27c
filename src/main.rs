//! The `trivy-mirror` binary: parse flags, build validated settings, run, map the outcome
//! to an exit code. Everything else lives in the library.
// The Lambda handler future nests the whole sync engine; its layout needs a deeper query
// limit than the default when clippy computes it.
#![recursion_limit = "256"]

mod cli;
#[cfg(feature = "lambda")]
mod lambda;
mod logging;
mod render;
mod terminal_progress;

use std::io::IsTerminal as _;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Parser as _;

use cli::{Cli, Command, LogFormat};

fn main() -> ExitCode {
    // Inside AWS Lambda the same binary (named `bootstrap`) runs as the function handler.
    #[cfg(feature = "lambda")]
    if std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some() {
        return lambda::main();
    }
    let cli = Cli::parse();
    init_logging(&cli);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime");
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("{}", render::error(&err));
            ExitCode::FAILURE
        }
    }
}

fn init_logging(cli: &Cli) {
    let level = match (cli.quiet, cli.verbose) {
        (true, _) => "warn",
        (false, 0) => "info",
        (false, 1) => "debug",
        _ => "trace",
    };
    logging::init(&logging::Logging { json: cli.log_format == LogFormat::Json, level, span_fields: false });
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Sync(args) => {
            let mut config = args.config(&trivy_mirror::credentials::process_env)?;
            if cli.log_format == LogFormat::Text && !cli.quiet && std::io::stderr().is_terminal() {
                config.plan.progress = std::sync::Arc::new(terminal_progress::Bars::default());
            }
            let run = trivy_mirror::run::run(&config).await;
            let report = &run.sync;
            match cli.log_format {
                LogFormat::Json => println!(
                    "{}",
                    serde_json::json!({ "summary": render::summary_json(report), "success": report.success() })
                ),
                LogFormat::Text => print!("{}", render::table(report)),
            }
            // Each distinct hint once on stderr, after the one log line per failure, unless
            // a person already reads the table (which ends with the same hints) on a terminal.
            if cli.log_format == LogFormat::Json || !std::io::stdout().is_terminal() {
                for h in report.hints() {
                    eprintln!("hint: {}", render::hint(h));
                }
            }
            let mut ok = report.success();
            for pruned in run.pruned {
                ok &= print_prune(&pruned.destination, pruned.result, cli.log_format);
            }
            Ok(if ok { ExitCode::SUCCESS } else { ExitCode::FAILURE })
        }
        Command::Prune(args) => {
            let options = args.retention.options(&args.namespace, args.dry_run);
            let mut ok = true;
            for url in &args.to {
                ok &= prune_one(url, &options, cli.log_format).await?;
            }
            Ok(if ok { ExitCode::SUCCESS } else { ExitCode::FAILURE })
        }
        Command::Verify(args) => {
            let (host, options) = args.options()?;
            let report = trivy_mirror::verify::verify(&host, &options).await;
            if args.json {
                println!("{}", serde_json::json!({ "ok": report.ok(), "findings": report.findings }));
            } else {
                print!("{}", report.table());
            }
            Ok(if report.ok() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
        }
        Command::Probe(args) => {
            let options = trivy_mirror::http::ClientOptions { total_timeout: Some(args.timeout), ..Default::default() };
            let client = trivy_mirror::http::client(&options)?;
            let status = match client.get(&args.url).send().await {
                Ok(resp) => resp.status(),
                Err(e) => anyhow::bail!(trivy_mirror::http::transport_error("GET", &args.url, &e)),
            };
            anyhow::ensure!(status.is_success(), "GET {}: HTTP {}", args.url, status.as_u16());
            Ok(ExitCode::SUCCESS)
        }
        Command::Serve(args) => {
            // Settings (with --sync-every they create the directory), the directory, the
            // listeners, TLS files and htpasswd are all checked before "serving on" is
            // announced: a server that cannot run says why in one line and nothing else.
            let mut options = args.options(!cli.quiet)?;
            let listener = trivy_mirror::serve::bind(args.listen).await?;
            let addr = listener.local_addr().context("reading the bound address")?;
            if let Some(m) = args.metrics_listen {
                options.metrics_listener = Some(trivy_mirror::serve::bind(m).await?);
            }
            let (server, tls) = trivy_mirror::serve::prepare(&args.dir, &options)?;
            let scheme = if tls.is_some() { "https" } else { "http" };
            tracing::info!(dir = %args.dir.display(), "serving on {scheme}://{addr}");
            trivy_mirror::serve::run(server, listener, options, tls, trivy_mirror::serve::shutdown_signal()).await?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Prune one static destination and print what was (or would be) removed.
async fn prune_one(url: &str, options: &trivy_mirror::prune::PruneOptions, format: LogFormat) -> anyhow::Result<bool> {
    let env = &trivy_mirror::credentials::process_env;
    let dest = trivy_mirror::dest::open_static_layout(url, trivy_mirror::layout::DEFAULT_TAG_TTL, env)?;
    let result = trivy_mirror::prune::prune(&dest, options, jiff::Timestamp::now()).await;
    Ok(print_prune(url, result, format))
}

/// Print a prune outcome; false if it failed.
fn print_prune(url: &str, result: trivy_mirror::Result<trivy_mirror::prune::PruneReport>, format: LogFormat) -> bool {
    let report = match result {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: pruning {url}: {e}");
            return false;
        }
    };
    match format {
        LogFormat::Json => {
            println!("{}", serde_json::json!({ "prune": url, "report": report, "bytes": report.bytes() }))
        }
        LogFormat::Text => {
            let verb = if report.dry_run { "would remove" } else { "removed" };
            for r in &report.removed {
                println!("{verb} {} ({} bytes)", r.key, r.bytes);
            }
            println!("{url}: {verb} {} objects, {} bytes", report.removed.len(), report.bytes());
        }
    }
    true
}
