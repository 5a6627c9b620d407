//! `gmm-stream run`: the long-running pipeline, and the HTTP server beside it.
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
//!
//! This module composes the daemon: it resolves the [`Plan`], opens the sinks,
//! starts the HTTP server (which reads the counters and the model the estimator
//! publishes, and knows nothing of the stages) and the stages, and waits for them.
//! `docs/architecture.md` follows one point through it.

pub mod batcher;
pub mod estimator;
pub mod group;
mod intake;
mod member;
pub mod output;
mod restore;
pub mod signals;
mod sources;

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use thiserror::Error;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::{Config, ConfigError};
use crate::http::{self, LiveModel};
use crate::plan::{HttpPlan, Plan};
use crate::sink::{KafkaSink, Sink, SinkError, SnapshotStore};
use crate::source::file::SourceError;
use crate::source::kafka::KafkaSourceError;
use crate::source::GeneratorError;
use crate::telemetry::{status, Counters};
use batcher::Batcher;
use estimator::{EstimatorStage, SnapshotPolicy};
use gmm_model::anomaly::AnomalyError;
use gmm_model::{ModelError, StreamEstimator};
use group::GroupStage;
use output::OutputStage;

/// Capacities of the channels between stages, in messages.
const SOURCE_QUEUE: usize = 8;
const BATCH_QUEUE: usize = 2;
const OUTPUT_QUEUE: usize = 8;
const REJECT_QUEUE: usize = 64;
/// How long shutdown waits for a source thread blocked in a read.
const SOURCE_GRACE: Duration = Duration::from_millis(500);

/// Why the daemon stopped. Each variant shows its own context and chains its
/// cause; [`DaemonError::is_bad_input`] tells the exit status.
#[derive(Debug, Error)]
pub enum DaemonError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error(transparent)]
    KafkaSource(#[from] KafkaSourceError),
    #[error("source.generator")]
    Generator(#[from] GeneratorError),
    #[error(transparent)]
    Sink(#[from] SinkError),
    #[error("the estimator settings are invalid")]
    Settings(#[source] ModelError),
    #[error("the anomaly threshold settings are invalid")]
    Anomaly(#[source] AnomalyError),
    /// The model could not be updated (a numerical failure).
    #[error(transparent)]
    Model(ModelError),
    #[error("the snapshot {path} does not fit the configuration: {reason}; point snapshot.dir elsewhere or remove it to start afresh")]
    IncompatibleSnapshot { path: String, reason: String },
    #[error("the input ended after {points} points, fewer than the {components} components need")]
    TooFewPoints { points: usize, components: usize },
    #[error("the output stage stopped unexpectedly")]
    OutputGone,
    #[error("the {stage} stopped unexpectedly")]
    Crashed {
        stage: &'static str,
        #[source]
        error: tokio::task::JoinError,
    },
    #[error("the source thread stopped unexpectedly (it panicked)")]
    SourceThreadLost,
    #[error("cannot start the source thread")]
    Spawn(#[source] std::io::Error),
    #[error("cannot set up signal handling")]
    Signals(#[source] std::io::Error),
    #[error(transparent)]
    StateTopic(#[from] crate::state_topic::StateTopicError),
    #[error(transparent)]
    ForeignState(group::ForeignShape),
    #[error("cannot listen on http.listen = {addr}")]
    Http {
        addr: String,
        #[source]
        error: std::io::Error,
    },
}

impl DaemonError {
    /// Bad settings or bad input (exit 2) rather than a failure (exit 1).
    pub fn is_bad_input(&self) -> bool {
        match self {
            Self::Config(_)
            | Self::Generator(_)
            | Self::Settings(_)
            | Self::Anomaly(_)
            | Self::IncompatibleSnapshot { .. }
            | Self::TooFewPoints { .. } => true,
            Self::Source(e) => e.is_bad_input(),
            Self::KafkaSource(e) => e.is_bad_input(),
            Self::Sink(e) => e.is_bad_input(),
            Self::StateTopic(e) => e.is_bad_input(),
            Self::ForeignState(_) => true,
            // Not an address at all, as opposed to one that is taken.
            Self::Http { error, .. } => error.kind() == std::io::ErrorKind::InvalidInput,
            Self::Model(_)
            | Self::OutputGone
            | Self::Crashed { .. }
            | Self::SourceThreadLost
            | Self::Spawn(_)
            | Self::Signals(_) => false,
        }
    }
}

/// Runs the daemon until a finite source ends or a signal asks it to stop.
pub async fn run(plan: Plan) -> Result<(), DaemonError> {
    let cancel = CancellationToken::new();
    let signals = tokio::spawn(signals::watch(cancel.clone()));
    let result = run_plan(plan, cancel.clone()).await;
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

/// The daemon on `config`, stopped by `cancel` (tests drive it directly).
pub async fn run_until(config: Config, cancel: CancellationToken) -> Result<(), DaemonError> {
    let plan = Plan::resolve(&config)?;
    run_plan(plan, cancel).await
}

/// The pipeline and the HTTP server, stopped by `cancel`.
pub async fn run_plan(plan: Plan, cancel: CancellationToken) -> Result<(), DaemonError> {
    let counters = Arc::new(Counters::new());
    let snapshots = &plan.snapshots;
    let store = SnapshotStore::open(&snapshots.dir, snapshots.keep, snapshots.encoding)?;
    let dim = plan.source.decode.dim;
    let (member, restored) = match &plan.group {
        Some(group) => {
            let (m, r) = member::start(group, &plan.estimator, dim, &store).await?;
            (Some(m), r)
        }
        None => (None, restore::restore(&plan.estimator, dim, &store)?),
    };
    // Rates and counts continue from the restored model, not from zero.
    counters
        .points_absorbed
        .store(restored.estimator.points_seen(), Relaxed);
    counters
        .model_version
        .store(restored.estimator.model_version(), Relaxed);
    let (live_tx, live_rx) = watch::channel::<Option<LiveModel>>(None);
    let http = match &plan.http {
        Some(http) => Some(start_http(http, &counters, live_rx, &cancel).await?),
        None => None,
    };

    let (src_tx, src_rx) = mpsc::channel(SOURCE_QUEUE);
    let (batch_tx, batch_rx) = mpsc::channel(BATCH_QUEUE);
    let (out_tx, out_rx) = mpsc::channel(OUTPUT_QUEUE);
    let (reject_tx, reject_rx) = mpsc::channel(REJECT_QUEUE);

    let producer = kafka_producer(&plan).await?;
    let source = sources::start(
        &plan.source,
        &plan.required_topics,
        &restored,
        src_tx,
        cancel.clone(),
        &counters,
        member.as_ref().map(|m| m.assignment.clone()),
    )
    .await?;
    let batcher = Batcher {
        batch_size: plan.batching.size,
        timeout: plan.batching.timeout,
        positions: source.positions.clone(),
        cancel: cancel.clone(),
    };
    let batcher = tokio::spawn(batcher.run(src_rx, batch_tx, reject_tx));

    let scores = Sink::open(&plan.scores, "scores", producer.as_ref())?;
    let policy = SnapshotPolicy {
        every_points: snapshots.every_points,
        every_seconds: snapshots.every_seconds,
    };
    let estimator = match member {
        Some(m) => {
            counters.group.enabled.store(1, Relaxed);
            let mut stage = GroupStage {
                group: m.group,
                anomaly: m.anomaly,
                trim_anomalies: plan.estimator.trim_anomalies,
                topic: m.topic,
                events: m.events,
                assignment: m.assignment,
                dim: plan.source.decode.dim,
                policy,
                scores: !scores.is_none(),
                counters: counters.clone(),
                live: live_tx,
                output: out_tx,
                pending_scores: Vec::new(),
                sample_peers: Default::default(),
            };
            let caught_up = m.caught_up;
            tokio::task::spawn_blocking(move || {
                stage.take_in(caught_up)?;
                stage.run(batch_rx)
            })
        }
        None => {
            let estimator = EstimatorStage {
                stream: StreamEstimator {
                    em: restored.estimator,
                    anomaly: restored.anomaly,
                    trim_anomalies: plan.estimator.trim_anomalies,
                },
                positions: source.positions.clone(),
                policy,
                scores: !scores.is_none(),
                counters: counters.clone(),
                live: live_tx,
                output: out_tx,
            };
            tokio::task::spawn_blocking(move || estimator.run(batch_rx))
        }
    };

    let output = OutputStage {
        store,
        scores,
        dead_letters: Sink::open(&plan.dead_letters, "dead letters", producer.as_ref())?,
        published: Sink::open(&snapshots.published, "snapshots", producer.as_ref())?,
        model_name: snapshots.model_name.clone(),
        committer: source.committer,
        counters: counters.clone(),
        source_name: source.name.clone(),
        unsaved: None,
    };
    let output = tokio::task::spawn_blocking(move || output.run(out_rx, reject_rx));

    let status = tokio::spawn(status::report(
        counters.clone(),
        plan.log.status_every,
        cancel.clone(),
    ));

    // The estimator ends when the stream does (or on shutdown); everything
    // downstream then drains.
    let estimated = join("estimator", estimator).await;
    if estimated.is_err() {
        // Stop the source and the batcher so nothing waits on a dead stage.
        cancel.cancel();
    }
    let written = join("output stage", output).await;
    let _ = batcher.await;
    let sourced = if cancel.is_cancelled() {
        // On shutdown everything is written by now. A source blocked in a read
        // that cannot be interrupted (an idle stdin) is not waited for long.
        match tokio::time::timeout(SOURCE_GRACE, join("source", source.handle)).await {
            Ok(joined) => joined,
            Err(_) => {
                tracing::info!("the source is blocked in a read: stopping without it");
                Ok(())
            }
        }
    } else {
        join("source", source.handle).await
    };
    cancel.cancel();
    let _ = status.await;
    if let Some(http) = http {
        let _ = http.await;
    }
    status::summarize(&counters);
    estimated?;
    written?;
    sourced
}

async fn join(
    stage: &'static str,
    handle: JoinHandle<Result<(), DaemonError>>,
) -> Result<(), DaemonError> {
    handle
        .await
        .unwrap_or_else(|error| Err(DaemonError::Crashed { stage, error }))
}

/// Binds and serves the HTTP API.
async fn start_http(
    plan: &HttpPlan,
    counters: &Arc<Counters>,
    live: watch::Receiver<Option<LiveModel>>,
    cancel: &CancellationToken,
) -> Result<JoinHandle<std::io::Result<()>>, DaemonError> {
    let (listener, addr) = http::bind(&plan.listen)
        .await
        .map_err(|error| DaemonError::Http {
            addr: plan.listen.clone(),
            error,
        })?;
    tracing::info!(%addr, "HTTP API listening");
    let state = http::AppState {
        counters: counters.clone(),
        live,
        token: plan.token.clone(),
        max_body_bytes: plan.max_body_bytes,
        max_abs_value: plan.max_abs_value,
        max_score_points: plan.max_score_points,
        scoring: Arc::new(tokio::sync::Semaphore::new(plan.max_concurrent_scores)),
        request_timeout: plan.request_timeout,
    };
    let app = http::router(state);
    Ok(tokio::spawn(http::serve(
        listener,
        app,
        plan.limits,
        cancel.clone(),
    )))
}

/// The producer, when some output goes to Kafka; every topic the daemon needs is
/// checked first, the input's included, so that one error names all the missing.
async fn kafka_producer(plan: &Plan) -> Result<Option<Arc<KafkaSink>>, DaemonError> {
    let Some(client) = plan.producer.clone() else {
        return Ok(None);
    };
    let required = plan.required_topics.clone();
    // Creating the producer and fetching metadata block (up to seconds).
    let created = tokio::task::spawn_blocking(move || -> Result<KafkaSink, SinkError> {
        let sink = KafkaSink::new(&client.brokers, &client.properties)?;
        sink.check_topics(&client.brokers, &required)?;
        Ok(sink)
    })
    .await
    .map_err(|error| DaemonError::Crashed {
        stage: "Kafka producer set-up",
        error,
    })??;
    Ok(Some(Arc::new(created)))
}
