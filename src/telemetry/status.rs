//! The log lines that report on a run: a status line every so often, and the
//! totals when it ends.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::Counters;

/// Logs one status line every `every` until cancelled.
pub async fn report(counters: Arc<Counters>, every: Duration, cancel: CancellationToken) {
    if every.is_zero() {
        return;
    }
    let mut last = (Instant::now(), counters.points_absorbed.load(Relaxed));
    let mut tick = tokio::time::interval(every);
    tick.tick().await;
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            _ = tick.tick() => {}
        }
        let now = Instant::now();
        let seen = counters.points_absorbed.load(Relaxed);
        let rate = (seen - last.1) as f64 / now.duration_since(last.0).as_secs_f64().max(1e-9);
        last = (now, seen);
        tracing::info!(
            points_per_second = format_args!("{rate:.0}"),
            points_seen = seen,
            model_version = counters.model_version.load(Relaxed),
            components = counters.effective_components.load(Relaxed),
            mean_log_likelihood = format_args!("{:.4}", counters.recent_mean_ll()),
            rejects = counters.rejects_total(),
            anomalies = counters.anomalies.load(Relaxed),
            "status"
        );
        let g = &counters.group;
        if g.enabled.load(Relaxed) == 1 {
            // points_seen above counts the whole group's points.
            tracing::info!(
                epoch = g.epoch.load(Relaxed),
                partitions_owned = g.partitions_owned.load(Relaxed),
                partitions_known = g.partitions_known.load(Relaxed),
                oldest_state_age_seconds =
                    format_args!("{:.1}", super::metrics::oldest_state_age(&counters)),
                state_bytes_published = g.state_bytes.load(Relaxed),
                "group status"
            );
        }
    }
}

/// One last line with the run's totals. The status lines give rejects only in
/// total and the per-reason warnings are rate-limited, so this is where the exact
/// count of every reason is told.
pub fn summarize(counters: &Counters) {
    use gmm_io::RejectReason as R;
    tracing::info!(
        points_seen = counters.points_absorbed.load(Relaxed),
        batches = counters.batches.load(Relaxed),
        model_version = counters.model_version.load(Relaxed),
        snapshots = counters.snapshots.load(Relaxed),
        failed_points = counters.failed_points.load(Relaxed),
        anomalies = counters.anomalies.load(Relaxed),
        rejected = counters.rejects_total(),
        rejected_parse = counters.rejects(R::Parse),
        rejected_dimension = counters.rejects(R::Dimension),
        rejected_non_finite = counters.rejects(R::NonFinite),
        rejected_missing_field = counters.rejects(R::MissingField),
        rejected_fields_needed = counters.rejects(R::FieldsNeeded),
        rejected_too_large = counters.rejects(R::TooLarge),
        rejected_out_of_range = counters.rejects(R::OutOfRange),
        rejected_unscorable = counters.rejects(R::Unscorable),
        "run ended"
    );
}
