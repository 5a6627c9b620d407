//! Prometheus metrics, through the `metrics` crate and its Prometheus exporter.
//!
//! [`METRICS`] is the one table of them: name, kind, unit, help, and where the
//! value comes from. Both the descriptions and the values published at a scrape are
//! driven by it, so a metric's name is written once. The counters ([`Counters`])
//! are the truth for totals and levels, copied into the recorder when `/metrics`
//! is scraped; distributions and per-partition values are recorded as they happen,
//! by the event functions at the bottom ([`record_em_step`],
//! [`record_consumer_lag`]). `docs/reference.md`, "Metrics", lists them for users.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use metrics::{KeyName, SharedString, Unit};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use super::Counters;
use gmm_io::RejectReason;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

/// Where a metric's value comes from.
#[derive(Clone, Copy)]
enum Reading {
    /// A total kept in the counters.
    Total(fn(&Counters) -> u64),
    /// A total per reject reason, labelled `reason`.
    PerReason(fn(&Counters, RejectReason) -> u64),
    /// A level computed from the counters.
    Level(fn(&Counters) -> f64),
    /// Recorded as events happen, not at a scrape.
    Events,
}

/// One row of the metrics table.
pub struct Metric {
    pub name: &'static str,
    pub kind: Kind,
    pub unit: Option<Unit>,
    pub help: &'static str,
    reading: Reading,
}

const fn total(name: &'static str, help: &'static str, read: fn(&Counters) -> u64) -> Metric {
    Metric {
        name,
        kind: Kind::Counter,
        unit: Some(Unit::Count),
        help,
        reading: Reading::Total(read),
    }
}

const fn level(
    name: &'static str,
    unit: Option<Unit>,
    help: &'static str,
    read: fn(&Counters) -> f64,
) -> Metric {
    Metric {
        name,
        kind: Kind::Gauge,
        unit,
        help,
        reading: Reading::Level(read),
    }
}

pub const POINTS_ABSORBED: Metric = total(
    "gmm_points_absorbed_total",
    "Points absorbed into the model since it was born (warm-up included).",
    |c| c.points_absorbed.load(Relaxed),
);
pub const REJECTS: Metric = Metric {
    name: "gmm_rejects_total",
    kind: Kind::Counter,
    unit: Some(Unit::Count),
    help: "Rejected input points or records, by reason.",
    reading: Reading::PerReason(Counters::rejects),
};
pub const BATCHES: Metric = total(
    "gmm_batches_total",
    "Mini-batches absorbed by this process.",
    |c| c.batches.load(Relaxed),
);
pub const FAILED_POINTS: Metric = total(
    "gmm_failed_points_total",
    "Points of batches the model could not absorb (numerical failures).",
    |c| c.failed_points.load(Relaxed),
);
pub const ANOMALIES: Metric = total("gmm_anomalies_total", "Points flagged as anomalies.", |c| {
    c.anomalies.load(Relaxed)
});
pub const CHANGES_DETECTED: Metric = total(
    "gmm_changes_detected_total",
    "Abrupt changes detected.",
    |c| c.changes_detected.load(Relaxed),
);
pub const RESEEDS: Metric = total(
    "gmm_reseeds_total",
    "Components re-seeded after withering.",
    |c| c.reseeds.load(Relaxed),
);
pub const BIRTHS: Metric = total(
    "gmm_births_total",
    "Components born in a free slot (variational inference).",
    |c| c.births.load(Relaxed),
);
pub const RETIREMENTS: Metric = total(
    "gmm_retirements_total",
    "Components retired after fading (variational inference).",
    |c| c.retirements.load(Relaxed),
);
pub const MERGES: Metric = total(
    "gmm_merges_total",
    "Pairs of components merged into one (variational inference).",
    |c| c.merges.load(Relaxed),
);
pub const EFFECTIVE_COMPONENTS: Metric = level(
    "gmm_effective_components",
    None,
    "Live components: model.components under EM, those the posterior keeps under variational inference.",
    |c| c.effective_components.load(Relaxed) as f64,
);
pub const SNAPSHOTS: Metric = total(
    "gmm_snapshots_total",
    "Snapshots written by this process.",
    |c| c.snapshots.load(Relaxed),
);
pub const SNAPSHOT_FAILURES: Metric = total(
    "gmm_snapshot_failures_total",
    "Snapshots that could not be written (the run went on; see the log).",
    |c| c.snapshot_failures.load(Relaxed),
);
pub const MODEL_VERSION: Metric = level(
    "gmm_model_version",
    None,
    "Model version (+1 at every M-step).",
    |c| c.model_version.load(Relaxed) as f64,
);
pub const MEAN_LOG_LIKELIHOOD: Metric = level(
    "gmm_mean_log_likelihood",
    None,
    "Mean log-likelihood per point of the latest batch, under the model before it.",
    Counters::recent_mean_ll,
);
pub const ANOMALY_THRESHOLD: Metric = level(
    "gmm_anomaly_threshold",
    None,
    "Log-density below which points are flagged (NaN until known).",
    |c| c.threshold().unwrap_or(f64::NAN),
);
pub const ANOMALY_RATE: Metric = level(
    "gmm_anomaly_rate",
    None,
    "Fraction of absorbed points flagged as anomalies.",
    anomaly_rate,
);
pub const SNAPSHOT_AGE: Metric = level(
    "gmm_snapshot_age_seconds",
    Some(Unit::Seconds),
    "Seconds since the last durable snapshot (-1 before the first).",
    snapshot_age,
);
pub const SNAPSHOT_DURATION: Metric = level(
    "gmm_snapshot_duration_seconds",
    Some(Unit::Seconds),
    "Time the last snapshot took to write.",
    |c| c.last_snapshot_us.load(Relaxed) as f64 / 1e6,
);
pub const READY: Metric = level(
    "gmm_ready",
    None,
    "1 while the model is initialised and the source connected (a Kafka source: some broker reachable).",
    |c| if c.is_ready() { 1.0 } else { 0.0 },
);
pub const EM_STEP_SECONDS: Metric = Metric {
    name: "gmm_em_step_seconds",
    kind: Kind::Histogram,
    unit: Some(Unit::Seconds),
    help: "Latency of one EM update (E-step, statistics, M-step).",
    reading: Reading::Events,
};
pub const CONSUMER_LAG: Metric = Metric {
    name: "gmm_kafka_consumer_lag",
    kind: Kind::Gauge,
    unit: Some(Unit::Count),
    help: "Kafka consumer lag per partition: high watermark minus committed offset.",
    reading: Reading::Events,
};

pub const GROUP_PARTITIONS_KNOWN: Metric = level(
    "gmm_group_partitions_known",
    None,
    "With a state topic: input partitions whose state this member knows (owned or not).",
    |c| c.group.partitions_known.load(Relaxed) as f64,
);
pub const GROUP_PARTITIONS_OWNED: Metric = level(
    "gmm_group_partitions_owned",
    None,
    "With a state topic: input partitions this member owns.",
    |c| c.group.partitions_owned.load(Relaxed) as f64,
);
pub const GROUP_OLDEST_STATE_AGE: Metric = level(
    "gmm_group_oldest_state_age_seconds",
    Some(Unit::Seconds),
    "With a state topic: seconds since the oldest known partition state was published (-1: none). A partition nobody owns stops being published: this grows.",
    oldest_state_age,
);
pub const GROUP_EPOCH: Metric = level(
    "gmm_group_model_epoch",
    None,
    "With a state topic: the structure epoch of the group's model (0 before the group has one).",
    |c| c.group.epoch.load(Relaxed) as f64,
);
pub const GROUP_STATE_BYTES: Metric = total(
    "gmm_group_state_bytes_published_total",
    "With a state topic: bytes (keys and values) this member published to it.",
    |c| c.group.state_bytes.load(Relaxed),
);
pub const GROUP_STATE_RECORDS: Metric = total(
    "gmm_group_state_records_published_total",
    "With a state topic: records this member published to it.",
    |c| c.group.state_records.load(Relaxed),
);

/// Every metric the daemon publishes.
pub const METRICS: &[&Metric] = &[
    &POINTS_ABSORBED,
    &REJECTS,
    &BATCHES,
    &FAILED_POINTS,
    &ANOMALIES,
    &CHANGES_DETECTED,
    &RESEEDS,
    &BIRTHS,
    &RETIREMENTS,
    &MERGES,
    &EFFECTIVE_COMPONENTS,
    &SNAPSHOTS,
    &SNAPSHOT_FAILURES,
    &MODEL_VERSION,
    &MEAN_LOG_LIKELIHOOD,
    &ANOMALY_THRESHOLD,
    &ANOMALY_RATE,
    &SNAPSHOT_AGE,
    &SNAPSHOT_DURATION,
    &READY,
    &EM_STEP_SECONDS,
    &CONSUMER_LAG,
    &GROUP_PARTITIONS_KNOWN,
    &GROUP_PARTITIONS_OWNED,
    &GROUP_OLDEST_STATE_AGE,
    &GROUP_EPOCH,
    &GROUP_STATE_BYTES,
    &GROUP_STATE_RECORDS,
];

/// EM step latency buckets: 100 µs to about 13 s.
const STEP_BUCKETS: [f64; 18] = [
    1e-4, 2e-4, 5e-4, 1e-3, 2e-3, 5e-3, 1e-2, 2e-2, 5e-2, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 13.0,
    20.0,
];

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// The process-wide recorder (installed on first use; None if another recorder
/// was installed first, e.g. by an embedding program). Install it before events
/// are recorded, or they go nowhere.
pub fn handle() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Full(EM_STEP_SECONDS.name.into()), &STEP_BUCKETS)
                .ok()?;
            let handle = builder.install_recorder().ok()?;
            describe();
            Some(handle)
        })
        .as_ref()
}

fn describe() {
    metrics::with_recorder(|recorder| {
        for m in METRICS {
            let (name, help) = (KeyName::from(m.name), SharedString::from(m.help));
            match m.kind {
                Kind::Counter => recorder.describe_counter(name, m.unit, help),
                Kind::Gauge => recorder.describe_gauge(name, m.unit, help),
                Kind::Histogram => recorder.describe_histogram(name, m.unit, help),
            }
        }
    });
}

/// Copies the counters into the recorder and renders the scrape page.
pub fn render(counters: &Counters) -> Option<String> {
    let handle = handle()?;
    publish(counters);
    handle.run_upkeep();
    Some(handle.render())
}

fn publish(c: &Counters) {
    for m in METRICS {
        match m.reading {
            Reading::Total(read) => metrics::counter!(m.name).absolute(read(c)),
            Reading::PerReason(read) => {
                for reason in RejectReason::ALL {
                    metrics::counter!(m.name, "reason" => reason.as_str())
                        .absolute(read(c, reason));
                }
            }
            Reading::Level(read) => metrics::gauge!(m.name).set(read(c)),
            Reading::Events => {}
        }
    }
}

fn anomaly_rate(c: &Counters) -> f64 {
    let absorbed = c.points_absorbed.load(Relaxed);
    if absorbed > 0 {
        c.anomalies.load(Relaxed) as f64 / absorbed as f64
    } else {
        0.0
    }
}

fn snapshot_age(c: &Counters) -> f64 {
    age_of(c.last_snapshot_ms.load(Relaxed))
}

pub(super) fn oldest_state_age(c: &Counters) -> f64 {
    age_of(c.group.oldest_state_ms.load(Relaxed))
}

/// Seconds since Unix time `ms` (-1 for 0: never).
fn age_of(last: u64) -> f64 {
    if last == 0 {
        return -1.0;
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    now.saturating_sub(last) as f64 / 1e3
}

/// Event: one EM update took `took` (see [`Counters::em_step`]).
pub(super) fn record_em_step(took: Duration) {
    metrics::histogram!(EM_STEP_SECONDS.name).record(took.as_secs_f64());
}

/// Event: librdkafka's statistics say how far a partition's committed offset is
/// behind its high watermark.
pub fn record_consumer_lag(topic: &str, partition: i32, lag: i64) {
    metrics::gauge!(
        CONSUMER_LAG.name,
        "topic" => topic.to_owned(),
        "partition" => partition.to_string()
    )
    .set(lag as f64);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_metric_is_named_once_with_its_family_prefix() {
        let mut names: Vec<&str> = METRICS.iter().map(|m| m.name).collect();
        assert!(names.iter().all(|n| n.starts_with("gmm_")), "{names:?}");
        names.sort_unstable();
        let before = names.len();
        names.dedup();
        assert_eq!(names.len(), before, "a metric is listed twice");
        for m in METRICS {
            let counter = m.kind == Kind::Counter;
            assert_eq!(counter, m.name.ends_with("_total"), "{}", m.name);
        }
    }

    #[test]
    fn a_scrape_describes_and_publishes_every_metric_of_the_table() {
        // Installed first, as the HTTP server does: events before it go nowhere.
        handle().expect("the recorder is ours");
        let counters = Counters::new();
        counters.points_absorbed.store(10, Relaxed);
        counters.em_step(Duration::from_millis(3));
        record_consumer_lag("points", 0, 42);
        let page = render(&counters).expect("the recorder is ours");
        for m in METRICS {
            assert!(
                page.contains(&format!("# HELP {} {}", m.name, m.help)),
                "{} is not described:\n{page}",
                m.name
            );
        }
        assert!(page.contains("gmm_points_absorbed_total 10"), "{page}");
        assert!(
            page.contains("gmm_rejects_total{reason=\"too_large\"} 0"),
            "{page}"
        );
        assert!(page.contains("gmm_em_step_seconds_bucket"), "{page}");
        let lag = page
            .lines()
            .find(|l| l.starts_with("gmm_kafka_consumer_lag{") && l.contains("topic=\"points\""));
        assert!(lag.is_some_and(|l| l.ends_with(" 42")), "{page}");
    }
}
