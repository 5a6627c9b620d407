//! The counters every stage updates and everything that reports on the run reads:
//! the metrics table ([`super::metrics`]), the status lines ([`super::status`]),
//! readiness. Plain atomics: stages never wait on each other to count.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use gmm_io::RejectReason;

#[derive(Debug, Default)]
pub struct Counters {
    /// Points absorbed into the model (counted once, including warm-up).
    pub points_absorbed: AtomicU64,
    pub batches: AtomicU64,
    /// Points of batches the model could not absorb (numerical failures).
    pub failed_points: AtomicU64,
    pub model_version: AtomicU64,
    /// Mean log-likelihood per point of the latest batch, as f64 bits.
    recent_mean_ll: AtomicU64,
    rejects: [AtomicU64; RejectReason::ALL.len()],
    pub anomalies: AtomicU64,
    /// Current anomaly threshold as f64 bits (NaN while unknown).
    threshold: AtomicU64,
    pub changes_detected: AtomicU64,
    pub reseeds: AtomicU64,
    /// Live components (K under EM; 0 before the model exists).
    pub effective_components: AtomicU64,
    /// Variational inference: components born, retired and merged.
    pub births: AtomicU64,
    pub retirements: AtomicU64,
    pub merges: AtomicU64,
    pub snapshots: AtomicU64,
    /// With a state topic: this member's view of the group (all 0 without one).
    pub group: GroupCounters,
    /// Snapshots that could not be written (the run went on).
    pub snapshot_failures: AtomicU64,
    /// Unix time of the last durable snapshot, in milliseconds (0: none yet).
    pub last_snapshot_ms: AtomicU64,
    /// Duration of the last snapshot write, in microseconds.
    pub last_snapshot_us: AtomicU64,
    /// Latency of the last EM step (E-step, statistics, M-step), in microseconds.
    pub last_step_us: AtomicU64,
    /// Set once the model exists (the warm-up is over).
    pub model_ready: AtomicU64,
    /// Set once the source is connected and reading.
    pub source_ready: AtomicU64,
    /// True while a Kafka source reaches none of its brokers.
    pub source_down: Arc<AtomicBool>,
}

impl Counters {
    pub fn new() -> Self {
        let c = Self::default();
        c.threshold.store(f64::NAN.to_bits(), Relaxed);
        c.recent_mean_ll.store(f64::NAN.to_bits(), Relaxed);
        c
    }

    pub fn reject(&self, reason: RejectReason) {
        self.rejects[reason_index(reason)].fetch_add(1, Relaxed);
    }

    pub fn rejects(&self, reason: RejectReason) -> u64 {
        self.rejects[reason_index(reason)].load(Relaxed)
    }

    pub fn rejects_total(&self) -> u64 {
        self.rejects.iter().map(|r| r.load(Relaxed)).sum()
    }

    pub fn set_recent_mean_ll(&self, v: f64) {
        self.recent_mean_ll.store(v.to_bits(), Relaxed);
    }

    pub fn recent_mean_ll(&self) -> f64 {
        f64::from_bits(self.recent_mean_ll.load(Relaxed))
    }

    pub fn set_threshold(&self, v: Option<f64>) {
        self.threshold
            .store(v.unwrap_or(f64::NAN).to_bits(), Relaxed);
    }

    pub fn threshold(&self) -> Option<f64> {
        let v = f64::from_bits(self.threshold.load(Relaxed));
        (!v.is_nan()).then_some(v)
    }

    /// One EM update took `took`: kept as the latest, and counted in the latency
    /// histogram.
    pub fn em_step(&self, took: Duration) {
        self.last_step_us.store(took.as_micros() as u64, Relaxed);
        super::metrics::record_em_step(took);
    }

    pub fn is_ready(&self) -> bool {
        self.model_ready.load(Relaxed) == 1
            && self.source_ready.load(Relaxed) == 1
            && !self.source_down.load(Relaxed)
    }
}

fn reason_index(reason: RejectReason) -> usize {
    RejectReason::ALL
        .iter()
        .position(|r| *r == reason)
        .unwrap_or_default()
}

/// A group member's view of the group it shares a model with (docs/scale-out.md).
#[derive(Debug, Default)]
pub struct GroupCounters {
    /// 1 when the daemon runs with a state topic.
    pub enabled: AtomicU64,
    /// Input partitions with a known state (owned or not).
    pub partitions_known: AtomicU64,
    /// Input partitions this member owns.
    pub partitions_owned: AtomicU64,
    /// Unix time (ms) the oldest known partition state was published (0: none).
    pub oldest_state_ms: AtomicU64,
    /// The structure epoch of the model (0: the group has no model yet).
    pub epoch: AtomicU64,
    /// Bytes (keys and values) this member handed to the state topic.
    pub state_bytes: AtomicU64,
    pub state_records: AtomicU64,
}
