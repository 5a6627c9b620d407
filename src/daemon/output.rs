//! The output stage: writes scores, dead letters and snapshots, in the order they
//! were produced, on a thread of its own (file writes and fsyncs block).
//!
//! Before a snapshot, the scores and dead letters written so far are flushed: a
//! crash after the snapshot never loses the scores of points it contains (scores
//! are at least once; the model is exactly once). After the snapshot is durable it
//! is published, and only then are source offsets committed.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::mpsc;

use super::status::Counters;
use super::DaemonError;
use crate::model::{ModelFile, Positions, Scored};
use crate::sink::dead_letter::{DeadLetter, DeadLetterPosition, DeadLetterWriter};
use crate::sink::scores::{KafkaPosition, ScoresWriter};
use crate::sink::snapshot::SnapshotStore;
use crate::source::chunk::{Origin, Rejected};

/// Scores of one update, with each point's Kafka message when there is one.
pub struct ScoredBatch {
    pub scored: Scored,
    pub threshold: Option<f64>,
    pub kafka: Option<Vec<Origin>>,
}

pub enum Output {
    Scores(Box<ScoredBatch>),
    Snapshot(Box<ModelFile>),
}

/// Where a durable snapshot goes next: a Kafka topic.
pub trait SnapshotPublisher: Send {
    fn publish(&mut self, file: &ModelFile) -> Result<(), DaemonError>;
}

/// Tells the source that everything before `positions` is durably absorbed
/// (Kafka: commit the offsets, for lag monitoring).
pub trait PositionCommitter: Send {
    fn commit(&mut self, positions: &Positions) -> Result<(), DaemonError>;
}

/// What the output stage's wait returned.
enum Next {
    Rejects(Option<Vec<Rejected>>),
    Output(Option<Output>),
}

pub struct OutputStage {
    pub store: SnapshotStore,
    pub scores: Option<ScoresWriter>,
    pub dead_letters: Option<DeadLetterWriter>,
    pub publisher: Option<Box<dyn SnapshotPublisher>>,
    pub committer: Option<Box<dyn PositionCommitter>>,
    pub counters: Arc<Counters>,
    /// Where rejects are logged, at most once a second per reason.
    pub source_name: String,
}

impl OutputStage {
    /// Runs until the estimator and the batcher are gone and everything is written.
    pub fn run(
        mut self,
        mut outputs: mpsc::Receiver<Output>,
        mut rejects: mpsc::Receiver<Vec<Rejected>>,
    ) -> Result<(), DaemonError> {
        let mut log = RejectLog::default();
        let mut rejects_open = true;
        loop {
            // Waits on both channels at once. Waiting for outputs alone (and
            // draining rejects in between) deadlocked on input with many bad
            // records and few outputs (scores off, snapshots rare): the batcher
            // blocked on a full reject queue, so no batch, no output, no drain.
            // Rejects come first: their dead letters should be flushed by the
            // next snapshot like the scores.
            let next = futures::executor::block_on(async {
                tokio::select! {
                    biased;
                    batch = rejects.recv(), if rejects_open => Next::Rejects(batch),
                    output = outputs.recv() => Next::Output(output),
                }
            });
            match next {
                Next::Rejects(Some(batch)) => self.reject(&batch, &mut log)?,
                Next::Rejects(None) => rejects_open = false,
                Next::Output(Some(Output::Scores(batch))) => self.write_scores(&batch)?,
                Next::Output(Some(Output::Snapshot(file))) => {
                    // The batcher sends a record's reject before the batch holding
                    // the record, so every reject of the records this snapshot
                    // covers is queued by now, though it may have arrived after
                    // the wait above looked. Written after the snapshot, it would
                    // be lost to a crash in between: the restart resumes past its
                    // record.
                    self.drain_rejects(&mut rejects, &mut rejects_open, &mut log)?;
                    self.snapshot(&file)?;
                }
                Next::Output(None) => break,
            }
        }
        while let Some(batch) = rejects.blocking_recv() {
            self.reject(&batch, &mut log)?;
        }
        self.flush()
    }

    /// Writes the dead letters of every reject queued now, without waiting.
    fn drain_rejects(
        &mut self,
        rejects: &mut mpsc::Receiver<Vec<Rejected>>,
        open: &mut bool,
        log: &mut RejectLog,
    ) -> Result<(), DaemonError> {
        while *open {
            match rejects.try_recv() {
                Ok(batch) => self.reject(&batch, log)?,
                Err(mpsc::error::TryRecvError::Empty) => break,
                Err(mpsc::error::TryRecvError::Disconnected) => *open = false,
            }
        }
        Ok(())
    }

    fn write_scores(&mut self, batch: &ScoredBatch) -> Result<(), DaemonError> {
        let Some(writer) = self.scores.as_mut() else {
            return Ok(());
        };
        let positions: Option<Vec<KafkaPosition<'_>>> = batch.kafka.as_ref().map(|origins| {
            origins
                .iter()
                .map(|o| match o {
                    Origin::Kafka {
                        topic,
                        partition,
                        offset,
                    } => KafkaPosition {
                        topic,
                        partition: *partition,
                        offset: *offset,
                    },
                    Origin::Next(_) => KafkaPosition {
                        topic: "",
                        partition: -1,
                        offset: -1,
                    },
                })
                .collect()
        });
        writer.write_scored(&batch.scored, batch.threshold, positions.as_deref())?;
        Ok(())
    }

    fn reject(&mut self, batch: &[Rejected], log: &mut RejectLog) -> Result<(), DaemonError> {
        for r in batch {
            self.counters.reject(r.reject.reason);
            log.note(&self.source_name, r);
            if let Some(writer) = self.dead_letters.as_mut() {
                let letter = DeadLetter::from_reject(
                    &r.reject,
                    &self.source_name,
                    dead_letter_position(r),
                    &r.payload,
                );
                writer.write(&letter)?;
            }
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), DaemonError> {
        if let Some(w) = self.scores.as_mut() {
            w.flush()?;
        }
        if let Some(w) = self.dead_letters.as_mut() {
            w.flush()?;
        }
        Ok(())
    }

    fn snapshot(&mut self, file: &ModelFile) -> Result<(), DaemonError> {
        self.flush()?;
        let started = Instant::now();
        let path = self.store.write(file)?;
        let took = started.elapsed();
        self.counters.snapshots.fetch_add(1, Relaxed);
        self.counters
            .last_snapshot_us
            .store(took.as_micros() as u64, Relaxed);
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO)
            .as_millis() as u64;
        self.counters.last_snapshot_ms.store(now_ms, Relaxed);
        tracing::debug!(path = %path.display(), model_version = file.model_version, "snapshot written");
        if let Some(p) = self.publisher.as_mut() {
            p.publish(file)?;
        }
        if let (Some(c), Some(positions)) = (self.committer.as_mut(), file.positions.as_ref()) {
            c.commit(positions)?;
        }
        Ok(())
    }
}

fn dead_letter_position(r: &Rejected) -> Option<DeadLetterPosition<'_>> {
    match &r.origin {
        Origin::Kafka {
            topic,
            partition,
            offset,
        } => Some(DeadLetterPosition::Kafka {
            topic,
            partition: *partition,
            offset: *offset,
        }),
        Origin::Next(_) => r.start.map(|offset| DeadLetterPosition::Stream {
            offset,
            line: r.line,
        }),
    }
}

/// Logs rejected input at most once a second per reason, saying how many were
/// not logged in between.
#[derive(Default)]
struct RejectLog {
    last: std::collections::HashMap<&'static str, (Instant, u64)>,
}

impl RejectLog {
    fn note(&mut self, source: &str, r: &Rejected) {
        let reason = r.reject.reason.as_str();
        let now = Instant::now();
        let entry = self
            .last
            .entry(reason)
            .or_insert((now - Duration::from_secs(2), 0));
        if now.duration_since(entry.0) >= Duration::from_secs(1) {
            tracing::warn!(
                source = source,
                at = %r.location,
                reason = reason,
                suppressed = entry.1,
                "rejected input: {}",
                r.reject.detail
            );
            *entry = (now, 0);
        } else {
            entry.1 += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use nalgebra::{DMatrix, DVector};

    use super::*;
    use crate::config::SnapshotFormat;
    use crate::model::{Covariances, EstimatorInfo, GaussianMixture, OnlineSettings};
    use crate::source::{Reject, RejectReason};

    /// Counts the dead letters on disk each time a snapshot is durable.
    struct Peek {
        dead: std::path::PathBuf,
        seen: Arc<Mutex<Vec<usize>>>,
    }

    impl SnapshotPublisher for Peek {
        fn publish(&mut self, _: &ModelFile) -> Result<(), DaemonError> {
            let text = std::fs::read_to_string(&self.dead).unwrap_or_default();
            self.seen
                .lock()
                .map_err(|e| DaemonError::Stage(e.to_string()))?
                .push(text.lines().count());
            Ok(())
        }
    }

    fn model_file() -> ModelFile {
        let model = GaussianMixture::new(
            DVector::from_element(1, 1.0),
            DMatrix::zeros(2, 1),
            Covariances::Spherical(DVector::from_element(1, 1.0)),
        )
        .expect("a valid mixture");
        ModelFile::new(
            &model,
            EstimatorInfo::Online(OnlineSettings::new(1)),
            "t".into(),
        )
    }

    #[test]
    fn rejects_queued_before_a_snapshot_are_written_before_it() {
        let dir = tempfile::tempdir().expect("temp dir");
        let dead = dir.path().join("dead.ndjson");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stage = OutputStage {
            store: SnapshotStore::new(dir.path().join("snapshots"), 3, SnapshotFormat::Json),
            scores: None,
            dead_letters: Some(DeadLetterWriter::append(&dead).expect("open")),
            publisher: Some(Box::new(Peek {
                dead: dead.clone(),
                seen: seen.clone(),
            })),
            committer: None,
            counters: Arc::new(Counters::new()),
            source_name: "test".into(),
        };
        let (out_tx, out_rx) = mpsc::channel(8);
        let (reject_tx, reject_rx) = mpsc::channel(8);
        let stage = std::thread::spawn(move || stage.run(out_rx, reject_rx));
        // The stage is now waiting for an output, with no reject queued; the
        // reject then comes first, as the batcher sends it, and the snapshot of
        // the batch holding its record after.
        std::thread::sleep(Duration::from_millis(50));
        let rejected = Rejected {
            reject: Reject::new(RejectReason::Parse, "not a number"),
            location: "line 1".into(),
            start: Some(0),
            line: Some(1),
            payload: b"x".to_vec(),
            origin: Origin::Next(2),
        };
        reject_tx.blocking_send(vec![rejected]).expect("send");
        out_tx
            .blocking_send(Output::Snapshot(Box::new(model_file())))
            .expect("send");
        drop((out_tx, reject_tx));
        stage.join().expect("the stage").expect("no error");
        assert_eq!(*seen.lock().expect("lock"), vec![1]);
    }
}
