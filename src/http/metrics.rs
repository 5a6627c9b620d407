//! Prometheus metrics, through the `metrics` crate and its Prometheus exporter.
//!
//! The daemon's counters ([`Counters`]) are the one source of truth for totals and
//! levels; they are copied into the recorder when `/metrics` is scraped. Events
//! that need a distribution (the EM step latency) are recorded as they happen, and
//! the Kafka consumer's lag per partition comes from librdkafka's statistics.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use metrics::{counter, describe_counter, describe_gauge, describe_histogram, gauge, Unit};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::daemon::status::Counters;
use gmm_io::RejectReason;

pub const EM_STEP_SECONDS: &str = "gmm_em_step_seconds";
pub const CONSUMER_LAG: &str = "gmm_kafka_consumer_lag";

/// EM step latency buckets: 100 µs to about 13 s.
const STEP_BUCKETS: [f64; 18] = [
    1e-4, 2e-4, 5e-4, 1e-3, 2e-3, 5e-3, 1e-2, 2e-2, 5e-2, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 13.0,
    20.0,
];

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// The process-wide recorder (installed on first use; None if another recorder
/// was installed first, e.g. by an embedding program).
pub fn handle() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Full(EM_STEP_SECONDS.into()), &STEP_BUCKETS)
                .ok()?;
            let handle = builder.install_recorder().ok()?;
            describe();
            Some(handle)
        })
        .as_ref()
}

fn describe() {
    describe_counter!(
        "gmm_points_absorbed_total",
        Unit::Count,
        "Points absorbed into the model since it was born (warm-up included)."
    );
    describe_counter!(
        "gmm_rejects_total",
        Unit::Count,
        "Rejected input points or records, by reason."
    );
    describe_counter!(
        "gmm_batches_total",
        Unit::Count,
        "Mini-batches absorbed by this process."
    );
    describe_counter!(
        "gmm_failed_points_total",
        Unit::Count,
        "Points of batches the model could not absorb (numerical failures)."
    );
    describe_counter!(
        "gmm_anomalies_total",
        Unit::Count,
        "Points flagged as anomalies."
    );
    describe_counter!(
        "gmm_changes_detected_total",
        Unit::Count,
        "Abrupt changes detected."
    );
    describe_counter!(
        "gmm_reseeds_total",
        Unit::Count,
        "Components re-seeded after withering."
    );
    describe_counter!(
        "gmm_births_total",
        Unit::Count,
        "Components born in a free slot (variational inference)."
    );
    describe_counter!(
        "gmm_retirements_total",
        Unit::Count,
        "Components retired after fading (variational inference)."
    );
    describe_counter!(
        "gmm_merges_total",
        Unit::Count,
        "Pairs of components merged into one (variational inference)."
    );
    describe_gauge!(
        "gmm_effective_components",
        "Live components: model.components under EM, those the posterior keeps under variational inference."
    );
    describe_counter!(
        "gmm_snapshots_total",
        Unit::Count,
        "Snapshots written by this process."
    );
    describe_counter!(
        "gmm_snapshot_failures_total",
        Unit::Count,
        "Snapshots that could not be written (the run went on; see the log)."
    );
    describe_gauge!("gmm_model_version", "Model version (+1 at every M-step).");
    describe_gauge!(
        "gmm_mean_log_likelihood",
        "Mean log-likelihood per point of the latest batch, under the model before it."
    );
    describe_gauge!(
        "gmm_anomaly_threshold",
        "Log-density below which points are flagged (NaN until known)."
    );
    describe_gauge!(
        "gmm_anomaly_rate",
        "Fraction of absorbed points flagged as anomalies."
    );
    describe_gauge!(
        "gmm_snapshot_age_seconds",
        Unit::Seconds,
        "Seconds since the last durable snapshot (-1 before the first)."
    );
    describe_gauge!(
        "gmm_snapshot_duration_seconds",
        Unit::Seconds,
        "Time the last snapshot took to write."
    );
    describe_gauge!(
        "gmm_ready",
        "1 while the model is initialised and the source connected (a Kafka source: some broker reachable)."
    );
    describe_histogram!(
        EM_STEP_SECONDS,
        Unit::Seconds,
        "Latency of one EM update (E-step, statistics, M-step)."
    );
    describe_gauge!(
        CONSUMER_LAG,
        Unit::Count,
        "Kafka consumer lag per partition: high watermark minus committed offset."
    );
}

/// Copies the counters into the recorder and renders the scrape page.
pub fn render(counters: &Counters) -> Option<String> {
    let handle = handle()?;
    publish(counters);
    handle.run_upkeep();
    Some(handle.render())
}

fn publish(c: &Counters) {
    let absorbed = c.points_absorbed.load(Relaxed);
    counter!("gmm_points_absorbed_total").absolute(absorbed);
    for reason in RejectReason::ALL {
        counter!("gmm_rejects_total", "reason" => reason.as_str()).absolute(c.rejects(reason));
    }
    counter!("gmm_batches_total").absolute(c.batches.load(Relaxed));
    counter!("gmm_failed_points_total").absolute(c.failed_points.load(Relaxed));
    let anomalies = c.anomalies.load(Relaxed);
    counter!("gmm_anomalies_total").absolute(anomalies);
    counter!("gmm_changes_detected_total").absolute(c.changes_detected.load(Relaxed));
    counter!("gmm_reseeds_total").absolute(c.reseeds.load(Relaxed));
    counter!("gmm_births_total").absolute(c.births.load(Relaxed));
    counter!("gmm_retirements_total").absolute(c.retirements.load(Relaxed));
    counter!("gmm_merges_total").absolute(c.merges.load(Relaxed));
    gauge!("gmm_effective_components").set(c.effective_components.load(Relaxed) as f64);
    counter!("gmm_snapshots_total").absolute(c.snapshots.load(Relaxed));
    counter!("gmm_snapshot_failures_total").absolute(c.snapshot_failures.load(Relaxed));
    gauge!("gmm_model_version").set(c.model_version.load(Relaxed) as f64);
    gauge!("gmm_mean_log_likelihood").set(c.recent_mean_ll());
    gauge!("gmm_anomaly_threshold").set(c.threshold().unwrap_or(f64::NAN));
    let rate = if absorbed > 0 {
        anomalies as f64 / absorbed as f64
    } else {
        0.0
    };
    gauge!("gmm_anomaly_rate").set(rate);
    gauge!("gmm_snapshot_age_seconds").set(snapshot_age(c));
    gauge!("gmm_snapshot_duration_seconds").set(c.last_snapshot_us.load(Relaxed) as f64 / 1e6);
    gauge!("gmm_ready").set(if c.is_ready() { 1.0 } else { 0.0 });
}

fn snapshot_age(c: &Counters) -> f64 {
    let last = c.last_snapshot_ms.load(Relaxed);
    if last == 0 {
        return -1.0;
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    now.saturating_sub(last) as f64 / 1e3
}
