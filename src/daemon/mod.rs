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

use crate::config::{Config, ConfigError, SinkKind, SourceKind};
use crate::sink::kafka::{KafkaSink, KafkaSinkError};
use crate::sink::{DeadLetterWriter, ScoresWriter, SinkError, SnapshotStore};
use crate::source::file::SourceError;
use crate::source::kafka::KafkaSourceError;
use batcher::Batcher;
use estimator::{EstimatorStage, LiveModel, SnapshotPolicy};
use gmm_model::ModelError;
use output::{DeadLetterTarget, OutputStage, ScoresTarget};
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
    #[error(transparent)]
    KafkaSource(#[from] crate::source::kafka::KafkaSourceError),
    #[error(transparent)]
    KafkaSink(#[from] crate::sink::kafka::KafkaSinkError),
    #[error("the output stage stopped unexpectedly")]
    OutputGone,
    #[error("a pipeline stage failed unexpectedly: {0}")]
    Stage(String),
    #[error("cannot set up signal handling: {0}")]
    Signals(std::io::Error),
    #[error("cannot listen on http.listen = {addr}: {error}")]
    Http { addr: String, error: std::io::Error },
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
                | Self::KafkaSource(
                    KafkaSourceError::MissingTopics(_) | KafkaSourceError::Decode(_)
                )
                | Self::KafkaSink(KafkaSinkError::MissingTopics(_))
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
    let (live_tx, live_rx) = watch::channel::<Option<LiveModel>>(None);
    let http = start_http(&config, &counters, live_rx, &cancel).await?;

    let (src_tx, src_rx) = mpsc::channel(SOURCE_QUEUE);
    let (batch_tx, batch_rx) = mpsc::channel(BATCH_QUEUE);
    let (out_tx, out_rx) = mpsc::channel(OUTPUT_QUEUE);
    let (reject_tx, reject_rx) = mpsc::channel(REJECT_QUEUE);

    let kafka = kafka_sink(&config).await?;
    let source = sources::start(&config, &restored, src_tx, cancel.clone(), &counters).await?;
    let batcher = Batcher {
        batch_size: config.estimator.batch_size,
        timeout: Duration::from_millis(config.estimator.batch_timeout_ms),
        positions: source.positions.clone(),
        cancel: cancel.clone(),
    };
    let batcher = tokio::spawn(batcher.run(src_rx, batch_tx, reject_tx));

    let estimator = EstimatorStage {
        estimator: restored.estimator,
        anomaly: restored.anomaly,
        positions: source.positions.clone(),
        policy: SnapshotPolicy {
            every_points: config.snapshot.every_points,
            every_seconds: config.snapshot.every_seconds,
        },
        trim_anomalies: config.estimator.trim_anomalies,
        scores: config.scores.sink != crate::config::SinkKind::None,
        counters: counters.clone(),
        live: live_tx,
        output: out_tx,
    };
    let estimator = tokio::task::spawn_blocking(move || estimator.run(batch_rx));

    let output = OutputStage {
        store,
        scores: scores_target(&config)?,
        dead_letters: dead_letter_target(&config)?,
        kafka,
        snapshot_topic: non_empty(&config.snapshot.topic),
        model_name: config.model.name.clone(),
        committer: source.committer,
        counters: counters.clone(),
        source_name: source.name.clone(),
        unsaved: None,
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
    if let Some(http) = http {
        let _ = http.await;
    }
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
    use gmm_io::RejectReason as R;
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
        rejected_out_of_range = counters.rejects(R::OutOfRange),
        rejected_unscorable = counters.rejects(R::Unscorable),
        "run ended"
    );
}

async fn join(handle: tokio::task::JoinHandle<Result<(), DaemonError>>) -> Result<(), DaemonError> {
    handle
        .await
        .unwrap_or_else(|e| Err(DaemonError::Stage(e.to_string())))
}

/// Binds and serves the HTTP API when `http.listen` is set.
async fn start_http(
    config: &Config,
    counters: &Arc<Counters>,
    live: watch::Receiver<Option<LiveModel>>,
    cancel: &CancellationToken,
) -> Result<Option<tokio::task::JoinHandle<std::io::Result<()>>>, DaemonError> {
    let listen = config.http.listen.trim();
    if listen.is_empty() {
        return Ok(None);
    }
    let (listener, addr) = crate::http::bind(listen)
        .await
        .map_err(|error| DaemonError::Http {
            addr: listen.to_string(),
            error,
        })?;
    tracing::info!(%addr, "HTTP API listening");
    let state = crate::http::AppState {
        counters: counters.clone(),
        live,
        token: non_empty(&config.http.token).map(Arc::from),
        max_body_bytes: config.http.max_body_bytes,
        max_abs_value: config.source.max_abs_value,
        max_score_points: config.http.max_score_points,
        scoring: Arc::new(tokio::sync::Semaphore::new(
            config.http.max_concurrent_scores,
        )),
        request_timeout: Duration::from_millis(config.http.request_timeout_ms),
    };
    let limits = crate::http::ConnectionLimits {
        max_connections: config.http.max_connections,
        header_timeout: Duration::from_millis(config.http.header_timeout_ms),
        shutdown_timeout: Duration::from_millis(config.http.shutdown_timeout_ms),
    };
    // Install the metrics recorder before events (EM step latencies) are recorded.
    let _ = crate::http::metrics::handle();
    let app = crate::http::router(state);
    Ok(Some(tokio::spawn(crate::http::serve(
        listener,
        app,
        limits,
        cancel.clone(),
    ))))
}

fn scores_target(config: &Config) -> Result<ScoresTarget, DaemonError> {
    Ok(match config.scores.sink {
        SinkKind::None => ScoresTarget::None,
        SinkKind::Kafka => ScoresTarget::Kafka {
            topic: config.scores.topic.clone(),
        },
        SinkKind::Stdout | SinkKind::File => match ScoresWriter::open(&config.scores)? {
            Some(w) => ScoresTarget::Writer(w),
            None => ScoresTarget::None,
        },
    })
}

fn dead_letter_target(config: &Config) -> Result<DeadLetterTarget, DaemonError> {
    Ok(match config.dead_letter.sink {
        SinkKind::File => {
            DeadLetterTarget::File(DeadLetterWriter::append(&config.dead_letter.path)?)
        }
        SinkKind::Kafka => DeadLetterTarget::Kafka {
            topic: config.dead_letter.topic.clone(),
        },
        SinkKind::None | SinkKind::Stdout => DeadLetterTarget::None,
    })
}

fn non_empty(s: &str) -> Option<String> {
    (!s.trim().is_empty()).then(|| s.to_string())
}

/// The topics the daemon reads or writes, which must exist before it starts.
pub(crate) fn required_topics(config: &Config) -> Vec<String> {
    let mut topics = Vec::new();
    if config.source.kind == SourceKind::Kafka {
        topics.extend(config.kafka.topics.iter().cloned());
    }
    topics.extend(non_empty(&config.snapshot.topic));
    if config.scores.sink == SinkKind::Kafka {
        topics.push(config.scores.topic.clone());
    }
    if config.dead_letter.sink == SinkKind::Kafka {
        topics.push(config.dead_letter.topic.clone());
    }
    topics.sort();
    topics.dedup();
    topics
}

/// The producer, when some output goes to Kafka; every topic the daemon needs is
/// checked first, the input's included, so that one error names all the missing.
async fn kafka_sink(config: &Config) -> Result<Option<KafkaSink>, DaemonError> {
    let required = required_topics(config);
    let mut outputs = required.clone();
    if config.source.kind == SourceKind::Kafka {
        outputs.retain(|t| !config.kafka.topics.contains(t));
    }
    if outputs.is_empty() {
        return Ok(None);
    }
    let k = config.kafka.clone();
    let sink = tokio::task::spawn_blocking(move || -> Result<KafkaSink, DaemonError> {
        let sink = KafkaSink::new(&k.brokers, &k.properties)?;
        sink.check_topics(&k.brokers, &required)?;
        Ok(sink)
    })
    .await
    .map_err(|e| DaemonError::Stage(e.to_string()))??;
    Ok(Some(sink))
}
