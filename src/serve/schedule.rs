//! `serve DIR --sync-every DURATION`: the sync engine into DIR, in the serving process.
//!
//! The first run starts at once (`/readyz` stays 503 until the mirror is complete), the
//! next ones every DURATION ±10 % so that many replicas started together do not hit the
//! upstream registry in step. A failed run keeps the previous version served (the
//! directory destination publishes by rename, tag last), is logged and counted in
//! `trivy_mirror_sync_runs_total{outcome="failure"}`; `/readyz` turns 503 only once the
//! data is older than `--max-age`. Shutdown drops a running sync: every object it had
//! not renamed into place yet stays invisible, so nothing half-written is ever served.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::watch;

use crate::artifact::ARTIFACTS;
use crate::run::SyncConfig;
use crate::summary::Outcome;

/// A sync to run on a schedule.
pub struct Schedule {
    /// Mean time between runs.
    pub every: Duration,
    /// What to sync (its destination is the served directory).
    pub config: SyncConfig,
}

impl std::fmt::Debug for Schedule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Schedule").field("every", &self.every).finish_non_exhaustive()
    }
}

impl Schedule {
    /// The artifacts this sync mirrors, named as in the run summary (`trivy-db:2`, `vex`):
    /// what `/readyz` requires.
    pub fn artifacts(&self) -> Vec<String> {
        let only = &self.config.plan.only;
        ARTIFACTS.iter().filter(|a| only.contains(&a.kind)).map(|a| a.label()).collect()
    }
}

/// `every` ±10 %, from the clock's nanoseconds (spreading replicas needs no better
/// randomness than that).
pub fn jittered(every: Duration) -> Duration {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    let factor = 0.9 + 0.2 * f64::from(nanos % 1_000_001) / 1_000_000.0;
    every.mul_f64(factor)
}

/// Run `schedule` until `stop` turns true.
///
/// The engine's future is not `Send` (a closure over borrowed artifacts in `sync::sync`
/// is not general over lifetimes), so it cannot be `tokio::spawn`ed: it runs on a
/// blocking-pool thread that drives it with the runtime's own I/O and timers.
pub(super) async fn run(schedule: Schedule, server: Arc<super::Server>, stop: watch::Receiver<bool>) {
    let handle = tokio::runtime::Handle::current();
    let driver = tokio::task::spawn_blocking(move || handle.block_on(schedule_loop(schedule, server, stop)));
    if let Err(e) = driver.await {
        tracing::error!("the sync schedule stopped: {e}");
    }
}

async fn schedule_loop(schedule: Schedule, server: Arc<super::Server>, mut stop: watch::Receiver<bool>) {
    loop {
        tracing::info!("sync starting");
        let report = tokio::select! {
            r = crate::run::run(&schedule.config) => r,
            _ = stop.changed() => {
                tracing::info!("shutdown: the running sync is stopped; what it had not published stays unpublished");
                return;
            }
        };
        let ok = report.success();
        server.metrics.sync_run(ok);
        for e in &report.sync.entries {
            match &e.outcome {
                Outcome::Failed => tracing::warn!(
                    artifact = %e.artifact,
                    error = %e.why().unwrap_or_default(),
                    "sync failed; the previous version stays served"
                ),
                other => tracing::info!(artifact = %e.artifact, outcome = ?other, "synced"),
            }
        }
        for p in &report.pruned {
            if let Err(e) = &p.result {
                tracing::warn!("pruning {}: {e}", p.destination);
            }
        }
        let wait = jittered(schedule.every);
        tracing::info!(next_in_seconds = wait.as_secs(), "sync done");
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.changed() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_within_ten_percent() {
        let every = Duration::from_secs(6 * 3600);
        for _ in 0..100 {
            let j = jittered(every);
            assert!(j >= every.mul_f64(0.9) && j <= every.mul_f64(1.1), "{j:?}");
        }
    }
}
