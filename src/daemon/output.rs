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

use super::DaemonError;
use crate::sink::{
    DeadLetter, DeadLetterPosition, KafkaPosition, PublishedModel, ScoreRecord, Sink, SinkError,
    SnapshotStore,
};
use crate::source::chunk::{Ack, Origin, Rejected};
use crate::telemetry::{Chain, Counters};
use gmm_io::{ModelFile, Positions};
use gmm_model::Scored;

/// Scores of one update, with each point's Kafka message when there is one.
pub struct ScoredBatch {
    pub scored: Scored,
    pub threshold: Option<f64>,
    pub kafka: Option<Vec<Origin>>,
}

impl ScoredBatch {
    /// The score record of point `j`.
    fn record(&self, j: usize) -> ScoreRecord<'_> {
        let evaluation = &self.scored.evaluation;
        let mut record = ScoreRecord::from_evaluation(evaluation, j, self.threshold)
            .by_model(self.scored.model_version);
        record.kafka = self
            .kafka
            .as_ref()
            .and_then(|origins| origins.get(j))
            .and_then(kafka_position);
        record
    }
}

pub enum Output {
    Scores(Box<ScoredBatch>),
    /// Points the estimator refused (the model could not score them).
    Rejects(Vec<Rejected>),
    /// A snapshot to write; `ack` is answered once it is durable and committed.
    Snapshot {
        file: Box<ModelFile>,
        ack: Option<Ack>,
        /// Also publish it to the snapshot topic (in a group, one member does).
        publish: bool,
    },
}

/// Tells the source that everything before `positions` is durably absorbed
/// (Kafka: commit the offsets, for lag monitoring).
pub trait PositionCommitter: Send {
    fn commit(&mut self, positions: &Positions);
}

/// What the output stage's wait returned.
enum Next {
    Rejects(Option<Vec<Rejected>>),
    Output(Option<Output>),
}

pub struct OutputStage {
    pub store: SnapshotStore,
    pub scores: Sink,
    pub dead_letters: Sink,
    /// Where every snapshot is also published, keyed by `model_name`.
    pub published: Sink,
    pub model_name: String,
    pub committer: Option<Box<dyn PositionCommitter>>,
    pub counters: Arc<Counters>,
    /// Which input, in logs and dead letters.
    pub source_name: String,
    /// Why the last snapshot could not be written, until one is.
    pub unsaved: Option<SinkError>,
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
                Next::Output(Some(Output::Rejects(batch))) => self.reject(&batch, &mut log)?,
                Next::Output(Some(Output::Snapshot { file, ack, publish })) => {
                    // The batcher sends a record's reject before the batch holding
                    // the record, so every reject of the records this snapshot
                    // covers is queued by now, though it may have arrived after
                    // the wait above looked. Written after the snapshot, it would
                    // be lost to a crash in between: the restart resumes past its
                    // record.
                    self.drain_rejects(&mut rejects, &mut rejects_open, &mut log)?;
                    self.snapshot(&file, publish)?;
                    if let Some(ack) = ack {
                        let _ = ack.send(());
                    }
                }
                Next::Output(None) => break,
            }
        }
        while let Some(batch) = rejects.blocking_recv() {
            self.reject(&batch, &mut log)?;
        }
        self.flush()?;
        // The final state is not on disk: a restart replays from the last snapshot
        // that is, and the exit status says so.
        match self.unsaved.take() {
            Some(error) => Err(error.into()),
            None => Ok(()),
        }
    }

    /// Writes the rejects that have arrived, without waiting for more.
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
        for j in 0..batch.scored.evaluation.log_density.len() {
            self.scores.write(&batch.record(j))?;
        }
        Ok(())
    }

    fn reject(&mut self, batch: &[Rejected], log: &mut RejectLog) -> Result<(), DaemonError> {
        for r in batch {
            self.counters.reject(r.reject.reason);
            log.note(&self.source_name, r);
            if !self.dead_letters.is_none() {
                let position = dead_letter_position(r);
                let letter =
                    DeadLetter::from_reject(&r.reject, &self.source_name, position, &r.payload);
                self.dead_letters.write(&letter)?;
            }
        }
        Ok(())
    }

    /// Hands every score and dead letter written so far to the OS (files) or to
    /// the broker (Kafka, acknowledged).
    fn flush(&mut self) -> Result<(), DaemonError> {
        self.scores.flush()?;
        self.dead_letters.flush()?;
        Ok(())
    }

    fn snapshot(&mut self, file: &ModelFile, publish: bool) -> Result<(), DaemonError> {
        self.flush()?;
        let started = Instant::now();
        let path = match self.store.write(file) {
            Ok(path) => path,
            Err(error) => {
                // A full or failing disk: run on and try again at the next snapshot.
                // Nothing is committed past the last durable snapshot, so a crash
                // meanwhile replays from there; the snapshot-age alert fires.
                tracing::error!(error = %Chain(&error), "cannot write a snapshot; running on and trying again at the next one");
                self.counters.snapshot_failures.fetch_add(1, Relaxed);
                self.unsaved = Some(error);
                return Ok(());
            }
        };
        if self.unsaved.take().is_some() {
            tracing::info!("snapshots are written again");
        }
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
        if publish && !self.published.is_none() {
            let published = PublishedModel::new(&self.model_name, file).map_err(SinkError::from)?;
            self.published.write(&published)?;
            self.published.flush()?;
        }
        if let (Some(c), Some(positions)) = (self.committer.as_mut(), file.positions.as_ref()) {
            c.commit(positions);
        }
        Ok(())
    }
}

/// The position of a point read from Kafka.
fn kafka_position(origin: &Origin) -> Option<KafkaPosition<'_>> {
    match origin {
        Origin::Kafka {
            topic,
            partition,
            offset,
        } => Some(KafkaPosition {
            topic,
            partition: *partition,
            offset: *offset,
        }),
        Origin::Next(_) => None,
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
    use crate::sink::LineWriter;
    use gmm_io::{Encoding, EstimatorInfo};
    use gmm_io::{Reject, RejectReason};
    use gmm_model::{Covariances, GaussianMixture, OnlineSettings};

    /// Records, at each commit, how many dead letters the file held.
    struct Probe {
        dead_letters: std::path::PathBuf,
        seen: Arc<Mutex<Vec<usize>>>,
    }

    impl PositionCommitter for Probe {
        fn commit(&mut self, _: &Positions) {
            let lines = std::fs::read_to_string(&self.dead_letters)
                .map(|t| t.lines().count())
                .unwrap_or(0);
            self.seen.lock().expect("lock").push(lines);
        }
    }

    fn model_file() -> ModelFile {
        let model = GaussianMixture::new(
            DVector::from_element(1, 1.0),
            DMatrix::zeros(2, 1),
            Covariances::Full(vec![DMatrix::identity(2, 2)]),
        )
        .expect("a valid mixture");
        let mut file = ModelFile::new(
            &model,
            EstimatorInfo::Online(OnlineSettings::new(1)),
            "2026-01-01T00:00:00Z".into(),
        );
        file.positions = Some(Positions::Generator { index: 3 });
        file
    }

    #[test]
    fn rejects_that_arrive_while_waiting_are_written_before_the_snapshot() {
        let dir = tempfile::tempdir().expect("temp dir");
        let dead_letters = dir.path().join("dead.ndjson");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stage = OutputStage {
            store: SnapshotStore::new(dir.path().join("snapshots"), 2, Encoding::Json),
            scores: Sink::none(),
            dead_letters: Sink::lines(
                LineWriter::append(&dead_letters, "dead letters").expect("dead letter file"),
            ),
            published: Sink::none(),
            model_name: "m".into(),
            committer: Some(Box::new(Probe {
                dead_letters: dead_letters.clone(),
                seen: seen.clone(),
            })),
            counters: Arc::new(Counters::new()),
            source_name: "test".into(),
            unsaved: None,
        };
        let (out_tx, out_rx) = mpsc::channel(4);
        let (rej_tx, rej_rx) = mpsc::channel(4);
        let thread = std::thread::spawn(move || stage.run(out_rx, rej_rx));
        // Let the stage drain the (empty) rejects and wait for an output; then a
        // reject arrives, and after it the snapshot whose position is past it.
        std::thread::sleep(Duration::from_millis(200));
        rej_tx
            .blocking_send(vec![Rejected {
                reject: Reject::new(RejectReason::Parse, "not a number"),
                location: "line 3".into(),
                start: Some(4),
                line: Some(3),
                payload: b"x".to_vec(),
                origin: Origin::Next(6),
            }])
            .expect("send a reject");
        out_tx
            .blocking_send(Output::Snapshot {
                file: Box::new(model_file()),
                ack: None,
                publish: true,
            })
            .expect("send a snapshot");
        drop((out_tx, rej_tx));
        thread.join().expect("no panic").expect("output stage");
        assert_eq!(*seen.lock().expect("lock"), vec![1]);
    }

    /// Records the position of every commit.
    struct Commits(Arc<Mutex<Vec<u64>>>);

    impl PositionCommitter for Commits {
        fn commit(&mut self, positions: &Positions) {
            if let Positions::Generator { index } = positions {
                self.0.lock().expect("lock").push(*index);
            }
        }
    }

    fn snapshot_at(index: u64) -> Output {
        let mut file = model_file();
        file.positions = Some(Positions::Generator { index });
        file.points_seen = index;
        Output::Snapshot {
            file: Box::new(file),
            ack: None,
            publish: true,
        }
    }

    /// Runs the stage on `outputs`, calling `between` after each has been handled.
    fn run_snapshots(
        dir: &std::path::Path,
        outputs: Vec<(Output, &dyn Fn())>,
    ) -> (Result<(), DaemonError>, Vec<u64>, u64) {
        let commits = Arc::new(Mutex::new(Vec::new()));
        let counters = Arc::new(Counters::new());
        let stage = OutputStage {
            store: SnapshotStore::new(dir.join("snapshots"), 5, Encoding::Json),
            scores: Sink::none(),
            dead_letters: Sink::none(),
            published: Sink::none(),
            model_name: "m".into(),
            committer: Some(Box::new(Commits(commits.clone()))),
            counters: counters.clone(),
            source_name: "test".into(),
            unsaved: None,
        };
        let (out_tx, out_rx) = mpsc::channel(1);
        let (rej_tx, rej_rx) = mpsc::channel(1);
        let thread = std::thread::spawn(move || stage.run(out_rx, rej_rx));
        for (output, between) in outputs {
            let (ack_tx, ack_rx) = std::sync::mpsc::sync_channel(1);
            let output = match output {
                Output::Snapshot { file, publish, .. } => Output::Snapshot {
                    file,
                    ack: Some(ack_tx),
                    publish,
                },
                other => other,
            };
            out_tx.blocking_send(output).expect("send");
            ack_rx.recv().expect("acknowledged");
            between();
        }
        drop(out_tx);
        drop(rej_tx);
        let result = thread.join().expect("no panic");
        let commits = commits.lock().expect("lock").clone();
        (result, commits, counters.snapshot_failures.load(Relaxed))
    }

    #[test]
    fn a_snapshot_that_cannot_be_written_is_tried_again_and_never_committed() {
        let dir = tempfile::tempdir().expect("temp dir");
        let blocker = dir.path().join("snapshots");
        // A file where the directory should be: every write fails (even as root).
        std::fs::write(&blocker, b"").expect("block");
        let unblock = || std::fs::remove_file(&blocker).expect("unblock");
        let nothing = || {};
        let (result, commits, failures) = run_snapshots(
            dir.path(),
            vec![
                (snapshot_at(10), &nothing),
                (snapshot_at(20), &unblock),
                (snapshot_at(30), &nothing),
            ],
        );
        result.expect("the run goes on and ends well: its last snapshot is saved");
        assert_eq!(failures, 2);
        assert_eq!(commits, vec![30], "only the durable snapshot is committed");
        let on_disk = std::fs::read_dir(dir.path().join("snapshots"))
            .expect("snapshots")
            .count();
        assert_eq!(on_disk, 1);
    }

    #[test]
    fn a_run_whose_last_snapshot_cannot_be_written_fails() {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join("snapshots"), b"").expect("block");
        let nothing = || {};
        let (result, commits, failures) =
            run_snapshots(dir.path(), vec![(snapshot_at(10), &nothing)]);
        let error = result.expect_err("the final state is not saved");
        assert!(error.to_string().contains("snapshot"), "{error}");
        assert_eq!((commits, failures), (vec![], 1));
    }
}
