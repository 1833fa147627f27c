//! One run of the publisher, the same for every entry point (the CLI's `sync`, the Lambda
//! handler, a container job): sync every destination, then apply retention to the static
//! ones, and report both. The binary parses flags, environment or a Lambda payload into
//! a validated [`SyncConfig`] and renders the [`RunReport`]; nothing here knows where the
//! settings came from.

use std::time::Duration;

use jiff::Timestamp;

use crate::dest::Target;
use crate::prune::{PruneOptions, PruneReport};
use crate::summary::Report;
use crate::sync::SyncPlan;

/// Everything one run needs, validated and opened.
#[derive(Debug)]
pub struct SyncConfig {
    /// What to mirror, from where.
    pub plan: SyncPlan,
    /// Where to publish, in the order given.
    pub targets: Vec<Target>,
    /// Retention applied to every static destination after the sync, if asked for.
    pub prune: Option<PruneOptions>,
    /// How long the run may take: no new work starts after it, and the run reports.
    pub deadline: Option<Duration>,
}

/// Retention's outcome at one static destination.
#[derive(Debug)]
pub struct Pruned {
    /// The destination as the user named it.
    pub destination: String,
    /// What was removed, or why pruning failed.
    pub result: crate::Result<PruneReport>,
}

/// What a run did.
#[derive(Debug)]
pub struct RunReport {
    /// Per artifact and destination.
    pub sync: Report,
    /// Per static destination, when retention was asked for.
    pub pruned: Vec<Pruned>,
    /// Whether the deadline passed before the sync was done (retention is then skipped).
    pub deadline_passed: bool,
}

impl RunReport {
    /// True if every artifact reached every destination and every prune succeeded.
    pub fn success(&self) -> bool {
        self.sync.success() && self.pruned.iter().all(|p| p.result.is_ok())
    }
}

/// Sync, then prune (when configured and time is left), then report.
pub async fn run(config: &SyncConfig) -> RunReport {
    let destinations: Vec<_> = config.targets.iter().map(Target::destination).collect();
    let deadline = config.deadline.map(|d| tokio::time::Instant::now() + d);
    let sync = crate::sync::sync_until(&config.plan, &destinations, deadline).await;
    let deadline_passed = deadline.is_some_and(|at| tokio::time::Instant::now() >= at);
    let mut pruned = Vec::new();
    if let Some(options) = config.prune.as_ref().filter(|_| !deadline_passed) {
        for layout in config.targets.iter().filter_map(Target::static_layout) {
            let result = crate::prune::prune(layout, options, Timestamp::now()).await;
            pruned.push(Pruned { destination: crate::dest::Destination::name(layout).to_string(), result });
        }
    }
    RunReport { sync, pruned, deadline_passed }
}
