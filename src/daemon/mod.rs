//! `gmm-stream run`: the long-running pipeline.
//!
//! ```text
//! source ──► batcher ──► estimator ──► output (scores, snapshots, commits)
//!              └──── rejected input ─────►┘ (dead letters)
//! ```
//! Stages are joined by bounded channels, so memory stays flat whatever the input
//! rate; EM and file output run on threads of their own, off the async reactor.
//! One cancellation token stops everything: the source stops reading, the partial
//! batch is dropped (the last snapshot's positions still point at it), the final
//! snapshot is written, offsets are committed.

pub mod batcher;
pub mod estimator;
pub mod output;
mod restore;
pub mod signals;
mod sources;
pub mod status;

use std::sync::Arc;
use std::time::Duration;

use thiserror::Error;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::config::{Config, ConfigError};
use crate::model::ModelError;
use crate::sink::{DeadLetterWriter, ScoresWriter, SinkError, SnapshotStore};
use crate::source::file::SourceError;
use batcher::Batcher;
use estimator::{EstimatorStage, LiveModel, SnapshotPolicy};
use output::OutputStage;
use status::Counters;

/// Capacities of the channels between stages, in messages.
const SOURCE_QUEUE: usize = 8;
const BATCH_QUEUE: usize = 2;
const OUTPUT_QUEUE: usize = 8;
const REJECT_QUEUE: usize = 64;
/// How long shutdown waits for a source thread blocked in a read.
const SOURCE_GRACE: Duration = Duration::from_millis(500);

#[derive(Debug, Error)]
pub enum DaemonError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error(transparent)]
    Sink(#[from] SinkError),
    #[error("{0}")]
    Model(ModelError),
    #[error("the snapshot {path} does not fit the configuration: {reason}; point snapshot.dir elsewhere or remove it to start afresh")]
    IncompatibleSnapshot { path: String, reason: String },
    #[error("the input ended after {points} points, fewer than the {components} components need")]
    TooFewPoints { points: usize, components: usize },
    #[error("{0}")]
    Kafka(String),
    #[error("the output stage stopped unexpectedly")]
    OutputGone,
    #[error("a pipeline stage failed unexpectedly: {0}")]
    Stage(String),
    #[error("cannot set up signal handling: {0}")]
    Signals(std::io::Error),
}

impl DaemonError {
    /// Bad configuration or bad input (exit 2) rather than a failure (exit 1).
    pub fn is_bad_input(&self) -> bool {
        matches!(
            self,
            Self::Config(_)
                | Self::IncompatibleSnapshot { .. }
                | Self::TooFewPoints { .. }
                | Self::Source(SourceError::Open { .. } | SourceError::BeyondEnd { .. })
        )
    }
}

/// Runs the daemon until a finite source ends or a signal asks it to stop.
pub async fn run(config: Config) -> Result<(), DaemonError> {
    let cancel = CancellationToken::new();
    let signals = tokio::spawn(signals::watch(cancel.clone()));
    let result = run_until(config, cancel.clone()).await;
    // After a first signal the watcher waits for a second one, to exit at once;
    // once the pipeline is done there is nothing left to interrupt.
    if signals.is_finished() {
        if let Ok(Err(e)) = signals.await {
            return result.and(Err(DaemonError::Signals(e)));
        }
    } else {
        signals.abort();
    }
    result
}

/// The pipeline, stopped by `cancel` (tests drive it directly).
pub async fn run_until(config: Config, cancel: CancellationToken) -> Result<(), DaemonError> {
    let config = Arc::new(config);
    let counters = Arc::new(Counters::new());
    let store = SnapshotStore::open(&config.snapshot)?;
    let restored = restore::restore(&config, &store)?;
    // Rates and counts continue from the restored model, not from zero.
    counters.points_absorbed.store(
        restored.estimator.points_seen(),
        std::sync::atomic::Ordering::Relaxed,
    );
    counters.model_version.store(
        restored.estimator.model_version(),
        std::sync::atomic::Ordering::Relaxed,
    );
    let (live_tx, _live_rx) = watch::channel::<Option<LiveModel>>(None);

    let (src_tx, src_rx) = mpsc::channel(SOURCE_QUEUE);
    let (batch_tx, batch_rx) = mpsc::channel(BATCH_QUEUE);
    let (out_tx, out_rx) = mpsc::channel(OUTPUT_QUEUE);
    let (reject_tx, reject_rx) = mpsc::channel(REJECT_QUEUE);

    let source = sources::start(&config, &restored, src_tx, cancel.clone(), &counters)?;
    let batcher = Batcher {
        batch_size: config.estimator.batch_size,
        timeout: Duration::from_millis(config.estimator.batch_timeout_ms),
        tracker: source.tracker.clone(),
        cancel: cancel.clone(),
    };
    let batcher = tokio::spawn(batcher.run(src_rx, batch_tx, reject_tx));

    let estimator = EstimatorStage {
        estimator: restored.estimator,
        anomaly: restored.anomaly,
        positions: source.tracker.positions(),
        policy: SnapshotPolicy {
            every_points: config.snapshot.every_points,
            every_seconds: config.snapshot.every_seconds,
        },
        scores: config.scores.sink != crate::config::SinkKind::None,
        counters: counters.clone(),
        live: live_tx,
        output: out_tx,
    };
    let estimator = tokio::task::spawn_blocking(move || estimator.run(batch_rx));

    let output = OutputStage {
        store,
        scores: ScoresWriter::open(&config.scores)?,
        dead_letters: open_dead_letters(&config)?,
        publisher: source.publisher,
        committer: source.committer,
        counters: counters.clone(),
        source_name: source.name.clone(),
    };
    let output = tokio::task::spawn_blocking(move || output.run(out_rx, reject_rx));

    let status_every = Duration::from_secs_f64(config.log.status_every_seconds);
    let status = tokio::spawn(status::report(
        counters.clone(),
        status_every,
        cancel.clone(),
    ));

    // The estimator ends when the stream does (or on shutdown); everything
    // downstream then drains.
    let estimated = join(estimator).await;
    if estimated.is_err() {
        // Stop the source and the batcher so nothing waits on a dead stage.
        cancel.cancel();
    }
    let written = join(output).await;
    let _ = batcher.await;
    let sourced = if cancel.is_cancelled() {
        // On shutdown everything is written by now. A source blocked in a read
        // that cannot be interrupted (an idle stdin) is not waited for long.
        match tokio::time::timeout(SOURCE_GRACE, source.handle).await {
            Ok(joined) => joined,
            Err(_) => {
                tracing::info!("the source is blocked in a read: stopping without it");
                Ok(Ok(()))
            }
        }
    } else {
        source.handle.await
    };
    cancel.cancel();
    let _ = status.await;
    summarize(&counters);
    estimated?;
    written?;
    match sourced {
        Ok(result) => result,
        Err(e) => Err(DaemonError::Stage(e.to_string())),
    }
}

/// One last line with the run's totals. The status lines give rejects only in
/// total and the per-reason warnings are rate-limited, so this is where the exact
/// count of every reason is told.
fn summarize(counters: &Counters) {
    use crate::source::RejectReason as R;
    use std::sync::atomic::Ordering::Relaxed;
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
        "run ended"
    );
}

async fn join(handle: tokio::task::JoinHandle<Result<(), DaemonError>>) -> Result<(), DaemonError> {
    handle
        .await
        .unwrap_or_else(|e| Err(DaemonError::Stage(e.to_string())))
}

fn open_dead_letters(config: &Config) -> Result<Option<DeadLetterWriter>, DaemonError> {
    match config.dead_letter.sink {
        crate::config::SinkKind::File => {
            Ok(Some(DeadLetterWriter::append(&config.dead_letter.path)?))
        }
        _ => Ok(None),
    }
}
