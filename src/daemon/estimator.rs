//! The estimator stage: owns the online EM, on a thread of its own (EM is CPU work
//! that must not stall the async reactor). For every batch it updates the model,
//! scores the batch's points with the model as it was before (and flags them
//! against the anomaly threshold as it was before), publishes the model for the
//! HTTP server, and decides when a snapshot is due.

use std::collections::VecDeque;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use tokio::sync::{mpsc, watch};

use super::batcher::{Batch, BatchMsg};
use super::output::{Output, ScoredBatch};
use super::DaemonError;
use crate::http::LiveModel;
use crate::source::chunk::{Ack, Origin, RecordMark, Rejected};
use crate::telemetry::Counters;
use gmm_io::{FileIdentity, ModelFile, Positions, Reject, RejectReason};
use gmm_model::{points_from_rows, Absorbed, StreamEstimator, StructureChanges};

/// When snapshots are due.
#[derive(Clone, Debug)]
pub struct SnapshotPolicy {
    pub every_points: u64,
    pub every_seconds: f64,
}

pub struct EstimatorStage {
    /// Online EM and the anomaly threshold of its points.
    pub stream: StreamEstimator,
    pub positions: Positions,
    pub policy: SnapshotPolicy,
    /// Build score records at all (a scores sink is configured).
    pub scores: bool,
    pub counters: Arc<Counters>,
    pub live: watch::Sender<Option<LiveModel>>,
    pub output: mpsc::Sender<Output>,
}

/// Records of points absorbed into the warm-up buffer, waiting for their scores
/// (and the points, for the dead letters of any the first model cannot score).
#[derive(Default)]
struct WarmupOrigins {
    marks: VecDeque<RecordMark>,
    points: usize,
    values: Vec<f64>,
}

impl EstimatorStage {
    /// Runs until the batcher ends the stream (`End`: finish the warm-up, final
    /// snapshot) or goes away (shutdown: final snapshot of what was absorbed).
    pub fn run(mut self, mut batches: mpsc::Receiver<BatchMsg>) -> Result<(), DaemonError> {
        let mut last_snapshot = (self.stream.em.points_seen(), Instant::now());
        let mut last_batch = Instant::now();
        let mut warmup = WarmupOrigins::default();
        // Absorbed points or a moved position that no snapshot holds yet.
        let mut unsaved = false;
        // Waiting for the next batch with a deadline needs the runtime's timer;
        // without a runtime (never in the daemon) snapshots follow batches only.
        let runtime = tokio::runtime::Handle::try_current().ok();
        self.publish();
        loop {
            let wait = self.idle_wait(last_snapshot.1, unsaved);
            let msg = match (wait, &runtime) {
                (Some(wait), Some(rt)) => {
                    match rt.block_on(tokio::time::timeout(wait, batches.recv())) {
                        Ok(msg) => msg,
                        Err(_) => {
                            // The stream went quiet after the last snapshot: save
                            // (publish, commit) what was absorbed since, rather
                            // than leave it unsaved until more input arrives.
                            self.snapshot(None)?;
                            last_snapshot = (self.stream.em.points_seen(), Instant::now());
                            unsaved = false;
                            continue;
                        }
                    }
                }
                _ => batches.blocking_recv(),
            };
            let Some(msg) = msg else {
                break;
            };
            match msg {
                BatchMsg::Batch(batch) => {
                    let elapsed = last_batch.elapsed().as_secs_f64();
                    last_batch = Instant::now();
                    self.absorb(batch, elapsed, &mut warmup)?;
                    unsaved = true;
                    if self.snapshot_due(last_snapshot) {
                        self.snapshot(None)?;
                        last_snapshot = (self.stream.em.points_seen(), Instant::now());
                        unsaved = false;
                    }
                }
                BatchMsg::Positions(positions) => {
                    self.positions = positions;
                    unsaved = true;
                }
                BatchMsg::Flush(ack) => {
                    self.snapshot(Some(ack))?;
                    last_snapshot = (self.stream.em.points_seen(), Instant::now());
                    unsaved = false;
                }
                BatchMsg::End { positions } => {
                    self.positions = positions;
                    let absorbed = self.stream.finish_warmup().map_err(DaemonError::Model)?;
                    self.emit_scores(absorbed, &[], &[], &mut warmup)?;
                    let em = &self.stream.em;
                    if em.model().is_none() && em.warmup_len() > 0 {
                        return Err(DaemonError::TooFewPoints {
                            points: em.warmup_len(),
                            components: em.settings().n_components,
                        });
                    }
                    break;
                }
            }
        }
        self.publish();
        // Before the model exists nothing was absorbed for good: a restart reads
        // the same points again, so there is nothing to save.
        if self.stream.em.model().is_some() {
            self.snapshot(None)?;
        }
        Ok(())
    }

    fn absorb(
        &mut self,
        batch: Batch,
        elapsed: f64,
        warmup: &mut WarmupOrigins,
    ) -> Result<(), DaemonError> {
        let d = batch.dim();
        let x = points_from_rows(&batch.values, d).map_err(DaemonError::Model)?;
        let started = Instant::now();
        let absorbed = match self.stream.absorb(x, elapsed) {
            Ok(absorbed) => absorbed,
            Err(e) => {
                // The batch is lost to the model but not to the count: the daemon
                // goes on, and the error says why.
                tracing::error!(points = batch.n_points, error = %e, "a batch could not be absorbed");
                self.counters
                    .failed_points
                    .fetch_add(batch.n_points as u64, Relaxed);
                self.positions = batch.positions;
                return Ok(());
            }
        };
        self.counters.em_step(started.elapsed());
        self.positions = batch.positions;
        let outcome = &absorbed.outcome;
        if outcome.change_detected {
            tracing::warn!("abrupt change detected: forgetting faster and refitting on new points");
            self.counters.changes_detected.fetch_add(1, Relaxed);
        }
        if outcome.rebuilt {
            tracing::info!("model refitted on the points since the change");
        }
        self.counters
            .reseeds
            .fetch_add(outcome.reseeded.len() as u64, Relaxed);
        self.count_structure(&outcome.structure);
        self.emit_scores(absorbed, &batch.marks, &batch.values, warmup)?;
        self.counters.batches.fetch_add(1, Relaxed);
        self.counters
            .points_absorbed
            .store(self.stream.em.points_seen(), Relaxed);
        self.counters
            .model_version
            .store(self.stream.em.model_version(), Relaxed);
        self.publish();
        Ok(())
    }

    /// Flags and forwards the points an update scored; those the model could not
    /// score finitely go to the dead letters instead. While the warm-up lasts,
    /// nothing is scored and the records' origins wait in `warmup`.
    fn emit_scores(
        &mut self,
        absorbed: Absorbed,
        marks: &[RecordMark],
        values: &[f64],
        warmup: &mut WarmupOrigins,
    ) -> Result<(), DaemonError> {
        let Some(scored) = absorbed.outcome.scored else {
            let base = warmup.points;
            for m in marks {
                warmup.marks.push_back(RecordMark {
                    points_end: base + m.points_end,
                    origin: m.origin.clone(),
                });
            }
            warmup.points = base + marks.last().map_or(0, |m| m.points_end);
            warmup.values.extend_from_slice(values);
            return Ok(());
        };
        let mut all_marks: Vec<RecordMark> = warmup.marks.drain(..).collect();
        let base = std::mem::take(&mut warmup.points);
        all_marks.extend(marks.iter().map(|m| RecordMark {
            points_end: base + m.points_end,
            origin: m.origin.clone(),
        }));
        let mut all_values = std::mem::take(&mut warmup.values);
        all_values.extend_from_slice(values);
        // Every point of the batch (and of the warm-up it ends), unscorable ones included.
        let n = scored.evaluation.log_density.len() + absorbed.unscorable.len();
        let mut kafka = kafka_origins(&all_marks, n);
        if !absorbed.unscorable.is_empty() {
            let origins = point_origins(&all_marks, n);
            let rejected = unscorable_rejects(&absorbed.unscorable, &origins, &all_values, n);
            self.output
                .blocking_send(Output::Rejects(rejected))
                .map_err(|_| DaemonError::OutputGone)?;
            if let Some(origins) = kafka.as_mut() {
                *origins = (0..n)
                    .filter(|j| absorbed.unscorable.binary_search(j).is_err())
                    .filter_map(|j| origins.get(j).cloned())
                    .collect();
            }
        }
        let threshold = absorbed.threshold;
        self.counters
            .anomalies
            .fetch_add(absorbed.anomalies as u64, Relaxed);
        self.counters.set_threshold(self.stream.anomaly.threshold());
        self.counters
            .set_recent_mean_ll(scored.evaluation.mean_log_likelihood());
        if !self.scores {
            return Ok(());
        }
        self.output
            .blocking_send(Output::Scores(Box::new(ScoredBatch {
                scored,
                threshold,
                kafka,
            })))
            .map_err(|_| DaemonError::OutputGone)
    }

    /// How long to wait for the next batch before a time-based snapshot of what
    /// is unsaved; None: no snapshot is pending, wait as long as it takes.
    fn idle_wait(&self, since: Instant, unsaved: bool) -> Option<std::time::Duration> {
        if !unsaved || self.stream.em.model().is_none() || self.policy.every_seconds <= 0.0 {
            return None;
        }
        let every = std::time::Duration::try_from_secs_f64(self.policy.every_seconds).ok()?;
        Some(every.saturating_sub(since.elapsed()))
    }

    fn snapshot_due(&self, (points, at): (u64, Instant)) -> bool {
        if self.stream.em.model().is_none() {
            return false;
        }
        let p = &self.policy;
        let by_points =
            p.every_points > 0 && self.stream.em.points_seen() - points >= p.every_points;
        let by_time = p.every_seconds > 0.0 && at.elapsed().as_secs_f64() >= p.every_seconds;
        by_points || by_time
    }

    /// Sends a snapshot of the current state; `ack` is answered once it is durable
    /// and committed (at once during the warm-up, when there is nothing to save).
    fn snapshot(&mut self, ack: Option<Ack>) -> Result<(), DaemonError> {
        let Some(mut file) = self.model_file(true) else {
            if let Some(ack) = ack {
                let _ = ack.send(());
            }
            return Ok(());
        };
        file.extensions.source_file = self.file_identity();
        self.output
            .blocking_send(Output::Snapshot {
                file: Box::new(file),
                ack,
                publish: true,
            })
            .map_err(|_| DaemonError::OutputGone)
    }

    /// For a file source, the identity of the bytes before its offset, so that a
    /// restart can tell the file was replaced (docs/reference.md, "Resuming a
    /// file"). Unreadable now (moved away), the snapshot goes without it.
    fn file_identity(&self) -> Option<FileIdentity> {
        let Positions::File { path, offset } = &self.positions else {
            return None;
        };
        match FileIdentity::of_path(std::path::Path::new(path), *offset) {
            Ok(identity) => Some(identity),
            Err(e) => {
                tracing::warn!(path, offset, error = %e, "cannot read the file's first bytes for the snapshot: a restart will not be able to tell whether it was replaced");
                None
            }
        }
    }

    /// The model file of the current state (None during the warm-up); with the
    /// estimator's state for snapshots, without for readers of the parameters.
    fn model_file(&self, with_state: bool) -> Option<ModelFile> {
        let mut file = ModelFile::of_stream(&self.stream, with_state, now_rfc3339())?;
        file.positions = Some(self.positions.clone());
        Some(file)
    }

    /// Hands the current model to the HTTP server.
    /// Counts (and logs) the components variational inference gave birth to,
    /// retired and merged in a batch.
    fn count_structure(&self, changes: &StructureChanges) {
        if *changes == StructureChanges::default() {
            return;
        }
        tracing::info!(
            born = ?changes.born,
            retired = ?changes.retired,
            merged = ?changes.merged,
            "components changed"
        );
        let c = &self.counters;
        c.births.fetch_add(changes.born.len() as u64, Relaxed);
        c.retirements
            .fetch_add(changes.retired.len() as u64, Relaxed);
        c.merges.fetch_add(changes.merged.len() as u64, Relaxed);
    }

    fn publish(&mut self) {
        let Some(file) = self.model_file(false) else {
            return;
        };
        let Some(model) = self.stream.em.model() else {
            return;
        };
        self.counters.model_ready.store(1, Relaxed);
        let effective = self.stream.em.effective_components().unwrap_or(0);
        self.counters
            .effective_components
            .store(effective as u64, Relaxed);
        let live = LiveModel {
            model: Arc::new(model.clone()),
            file: Arc::new(file),
        };
        self.live.send_replace(Some(live));
    }
}

/// Each point's Kafka message, when the points came from Kafka.
fn kafka_origins(marks: &[RecordMark], points: usize) -> Option<Vec<Origin>> {
    if !marks
        .iter()
        .any(|m| matches!(m.origin, Origin::Kafka { .. }))
    {
        return None;
    }
    Some(point_origins(marks, points))
}

/// Each point's record.
fn point_origins(marks: &[RecordMark], points: usize) -> Vec<Origin> {
    let mut out = Vec::with_capacity(points);
    let mut start = 0;
    for m in marks {
        for _ in start..m.points_end {
            out.push(m.origin.clone());
        }
        start = m.points_end;
    }
    out
}

/// Dead letters for the points (indices into `values`, `n` points, `origins` one
/// per point) that the model could not score finitely: the point itself as csv, its
/// record's position.
pub(super) fn unscorable_rejects(
    unscorable: &[usize],
    origins: &[Origin],
    values: &[f64],
    n: usize,
) -> Vec<Rejected> {
    let d = values.len().checked_div(n).unwrap_or(0);
    unscorable
        .iter()
        .map(|&j| {
            let point = values.get(j * d..(j + 1) * d).unwrap_or_default();
            let payload = point
                .iter()
                .map(|v| format!("{v:?}"))
                .collect::<Vec<_>>()
                .join(",");
            let origin = origins.get(j).cloned().unwrap_or(Origin::Next(0));
            let location = match &origin {
                Origin::Kafka {
                    topic,
                    partition,
                    offset,
                } => format!("{topic}/{partition}@{offset}"),
                Origin::Next(next) => format!("the record before position {next}"),
            };
            Rejected {
                reject: Reject::new(
                    RejectReason::Unscorable,
                    "the model cannot score this point finitely (its log-density is \
                     not a finite number): it is too far from every component",
                ),
                location,
                start: None,
                line: None,
                payload: payload.into_bytes(),
                origin,
            }
        })
        .collect()
}

pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_millis(SystemTime::now()).to_string()
}
