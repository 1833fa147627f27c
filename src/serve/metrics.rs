//! `/metrics`: Prometheus' text exposition (OpenMetrics 1.0, which Prometheus scrapes
//! natively) through the `prometheus-client` crate, the official Rust client
//! (github.com/prometheus/client_rust). Every name starts `trivy_mirror_`.
//!
//! Request metrics are updated as requests finish; the per-artifact gauges are computed
//! at scrape time from the same walk as `/readyz`, so they are never out of date.

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use super::ready::Readiness;

/// The Content-Type of the exposition.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// What a request asked for, for the `route` label.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum Route {
    /// `/v2/`.
    ping,
    /// Manifests by tag or digest, tags/list.
    manifest,
    /// Blobs.
    blob,
    /// The VEX manifest and archive (any other JSON or archive key).
    vex,
    /// Health, metrics, unknown paths.
    other,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: Route,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabel {
    route: Route,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ArtifactLabel {
    artifact: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabel {
    outcome: String,
}

/// Every metric of the server.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    bytes_sent: Family<RouteLabel, Counter>,
    duration: Family<RouteLabel, Histogram>,
    /// Open client connections.
    pub connections: Gauge,
    ready: Gauge,
    build_age: Family<ArtifactLabel, Gauge<f64, AtomicU64>>,
    checked_age: Family<ArtifactLabel, Gauge<f64, AtomicU64>>,
    artifact_bytes: Family<ArtifactLabel, Gauge>,
    syncs: Family<OutcomeLabel, Counter>,
    /// Scrapes are serialized: the artifact gauges are reset and refilled per scrape.
    scrape: Mutex<()>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// A registry with every metric registered.
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("trivy_mirror");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register("http_requests", "HTTP requests answered, by route class and status", requests.clone());
        let bytes_sent = Family::<RouteLabel, Counter>::default();
        registry.register("http_response_body_bytes", "Response body bytes sent", bytes_sent.clone());
        let duration = Family::<RouteLabel, Histogram>::new_with_constructor(
            (|| Histogram::new(exponential_buckets(0.0001, 4.0, 10))) as fn() -> Histogram,
        );
        registry.register("http_request_duration_seconds", "Time to produce the response headers", duration.clone());
        let connections = Gauge::default();
        registry.register("http_connections", "Client connections open", connections.clone());
        let ready = Gauge::default();
        registry.register("ready", "1 when /readyz answers 200", ready.clone());
        let build_age = Family::<ArtifactLabel, Gauge<f64, AtomicU64>>::default();
        registry.register(
            "artifact_build_age_seconds",
            "Age of the served build (upstream UpdatedAt)",
            build_age.clone(),
        );
        let checked_age = Family::<ArtifactLabel, Gauge<f64, AtomicU64>>::default();
        registry.register(
            "artifact_last_check_age_seconds",
            "Seconds since the last successful check of the artifact",
            checked_age.clone(),
        );
        let artifact_bytes = Family::<ArtifactLabel, Gauge>::default();
        registry.register(
            "artifact_bytes",
            "Bytes of the served artifact (manifest and blobs)",
            artifact_bytes.clone(),
        );
        let syncs = Family::<OutcomeLabel, Counter>::default();
        registry.register("sync_runs", "In-process sync runs, by outcome (success, failure)", syncs.clone());
        Metrics {
            registry,
            requests,
            bytes_sent,
            duration,
            connections,
            ready,
            build_age,
            checked_age,
            artifact_bytes,
            syncs,
            scrape: Mutex::new(()),
        }
    }

    /// Count one answered request.
    pub fn request(&self, route: Route, status: u16, bytes: u64, seconds: f64) {
        self.requests.get_or_create(&RequestLabels { route, status }).inc();
        self.bytes_sent.get_or_create(&RouteLabel { route }).inc_by(bytes);
        self.duration.get_or_create(&RouteLabel { route }).observe(seconds);
    }

    /// Count one in-process sync run.
    pub fn sync_run(&self, success: bool) {
        let outcome = if success { "success" } else { "failure" };
        self.syncs.get_or_create(&OutcomeLabel { outcome: outcome.into() }).inc();
    }

    /// The exposition, with the artifact gauges taken from `readiness`.
    pub fn render(&self, readiness: &Readiness) -> String {
        let _one = self.scrape.lock().expect("scrape lock");
        self.build_age.clear();
        self.checked_age.clear();
        self.artifact_bytes.clear();
        self.ready.set(i64::from(readiness.ready));
        for a in &readiness.artifacts {
            let label = ArtifactLabel { artifact: a.name.clone() };
            if let Some(age) = a.build_age {
                self.build_age.get_or_create(&label).set(age);
            }
            if let Some(age) = a.checked_age {
                self.checked_age.get_or_create(&label).set(age);
            }
            self.artifact_bytes.get_or_create(&label).set(i64::try_from(a.bytes).unwrap_or(i64::MAX));
        }
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry).expect("writing to a String");
        out
    }
}

/// Shared handle.
pub type SharedMetrics = Arc<Metrics>;
