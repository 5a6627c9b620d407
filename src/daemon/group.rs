//! The estimator stage of a consumer-group member (`kafka.state_topic` set): its
//! partitions' statistics are kept apart and published to the state topic with their
//! next offsets, the other members' records are read from it, and the model it
//! scores with, snapshots and serves is the group's (docs/scale-out.md).
//!
//! Like [`super::estimator`], on a thread of its own; it also reads the state topic's
//! records (in log order) and follows the partitions the rebalance callback assigns
//! ([`Assignment`]).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};

use super::batcher::BatchMsg;
use super::estimator::{now_rfc3339, unscorable_rejects, SnapshotPolicy};
use super::intake::{Intake, Round};
use super::output::{Output, ScoredBatch};
use super::DaemonError;
use crate::http::LiveModel;
use crate::source::chunk::{Ack, Origin};
use crate::state_topic::{now_ms, Assignment, Settled, StateEvent, StateTopic};
use crate::telemetry::Counters;
use gmm_io::state::{sample_key, Shape, StateValue};
use gmm_io::{EstimatorInfo, GroupInfo, KafkaOffsets, ModelFile, Positions};
use gmm_model::anomaly::{is_anomaly, AnomalyThreshold};
use gmm_model::group::{GroupEstimator, Incoming, PartitionKey, Reaction, Run, SampleUpdate};
use gmm_model::{points_from_rows, Scored};

/// How often the owned partitions' changed states are published.
pub const STATE_INTERVAL: Duration = Duration::from_millis(200);
/// How long a snapshot before a revocation or at shutdown waits for the state
/// records holding its offsets (the partitions' next owners resume from them).
const SETTLE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a periodic snapshot waits for them: a state topic out of reach must not
/// stall the scoring; such a snapshot commits no offsets.
const SETTLE_PERIODIC: Duration = Duration::from_secs(1);
/// While the group has no model (and while it collects points for a refit after an
/// abrupt change), a member takes in its first `warmup_points` over
/// this long at the least, so that the others' samples (published every
/// [`STATE_INTERVAL`]) arrive before it could fit alone: a member reading a backlog
/// would otherwise fit the initial model on its own partitions only (two clusters of
/// six, say) and the group would start from that.
///
/// Once other members' samples are known, a member also keeps to its share
/// (`warmup_points` over the members known), so that the pooled sample holds every
/// member's partitions in like measure (the initial model is fitted when the
/// samples add up to `warmup_points`); a member slower than the rest delays the
/// initial model by [`WARMUP_PATIENCE`] at the most.
pub const WARMUP_SPREAD: Duration = Duration::from_secs(2);
pub const WARMUP_PATIENCE: Duration = Duration::from_secs(10);
/// Points of each partition handed on at a time while a collection lasts.
const FAIR_CHUNK: usize = 50;
/// Points read and waiting for the estimator at most, in `warmup_points`.
const INTAKE_FACTOR: usize = 8;
/// Records taken in before the model is computed again.
const EVENTS_PER_REFRESH: usize = 512;

/// Why a state record cannot serve this member.
#[derive(Debug, thiserror::Error)]
#[error("the state topic {topic} (partition 0) holds a record ({key}) for another model: {why}; one state topic serves one model: give this group its own state topic or fix the settings")]
pub struct ForeignShape {
    pub topic: String,
    pub key: String,
    pub why: String,
}

pub struct GroupStage {
    pub group: GroupEstimator,
    pub anomaly: AnomalyThreshold,
    pub trim_anomalies: bool,
    pub topic: StateTopic,
    pub events: mpsc::Receiver<StateEvent>,
    pub assignment: Arc<Assignment>,
    /// The configured dimension (the shape records must have), when set.
    pub dim: Option<usize>,
    pub policy: SnapshotPolicy,
    pub scores: bool,
    pub counters: Arc<Counters>,
    pub live: watch::Sender<Option<LiveModel>>,
    pub output: mpsc::Sender<Output>,
    /// Warm-up points the initial model scored, to send on.
    pub pending_scores: Vec<(u64, Scored)>,
    /// Other members whose samples are known, with their collection (0: the
    /// warm-up, else the epoch of the recovery whose refit they are for).
    pub sample_peers: BTreeMap<String, u64>,
}

/// The stage's bookkeeping besides the estimator.
#[derive(Default)]
struct Books {
    /// The assignment generation of every owned partition.
    generations: BTreeMap<PartitionKey, u64>,
    seen_assignment: u64,
    /// Buffered warm-up runs' records and point values, by the run's sequence number.
    warmup: BTreeMap<u64, (Vec<Origin>, Vec<f64>)>,
    /// Final offsets of partitions given up since the last snapshot (committed
    /// with it: the consumer still holds them during the revocation).
    released: KafkaOffsets,
    /// Points read, until the estimator takes them.
    intake: Intake,
}

enum Next {
    Event(Option<StateEvent>),
    Batch(Option<BatchMsg>),
    Tick,
}

impl GroupStage {
    /// Takes in the records read while catching up (before the input is subscribed):
    /// a record of another shape stops the start-up.
    pub fn take_in(&mut self, events: Vec<StateEvent>) -> Result<(), DaemonError> {
        for event in events {
            self.event(event, true)?;
        }
        self.refresh();
        Ok(())
    }

    pub fn run(mut self, mut batches: mpsc::Receiver<BatchMsg>) -> Result<(), DaemonError> {
        let runtime = tokio::runtime::Handle::current();
        let mut books = Books::default();
        self.group.set_first_proposal_seq(now_ms());
        let mut last_snapshot = (self.group.points_seen(), Instant::now());
        let mut last_publish = Instant::now();
        let mut batches_open = true;
        let mut collecting_since: Option<(u64, Instant)> = None;
        self.publish_model();
        loop {
            // A member warming up with a full buffer waits for the group's model.
            let take_batches = batches_open
                && !self.group.warmup_full()
                && books.intake.len() < INTAKE_FACTOR * self.group.settings().warmup_points;
            let next = runtime.block_on(async {
                tokio::select! {
                    biased;
                    e = self.events.recv() => Next::Event(e),
                    b = batches.recv(), if take_batches => Next::Batch(b),
                    () = tokio::time::sleep(STATE_INTERVAL) => Next::Tick,
                }
            });
            self.reconcile(&mut books)?;
            match next {
                Next::Event(Some(event)) => {
                    self.event(event, false)?;
                    for _ in 0..EVENTS_PER_REFRESH {
                        match self.events.try_recv() {
                            Ok(e) => self.event(e, false)?,
                            Err(_) => break,
                        }
                    }
                    self.adopted_scores(&mut books)?;
                    self.refresh();
                }
                Next::Event(None) => {
                    return Err(DaemonError::StateTopic(
                        crate::state_topic::StateTopicError::ReaderGone,
                    ))
                }
                Next::Batch(None) => batches_open = false,
                Next::Batch(Some(BatchMsg::Batch(batch))) => {
                    let owned: BTreeSet<PartitionKey> = self.group.owned().cloned().collect();
                    let dropped = books.intake.push(&batch, &owned);
                    if dropped > 0 {
                        tracing::warn!(points = dropped, "points of partitions this member no longer owns were dropped (their next owners read them again)");
                    }
                }
                Next::Batch(Some(BatchMsg::Positions(_))) => {}
                Next::Batch(Some(BatchMsg::Flush(ack))) => {
                    self.snapshot(Some(ack), SETTLE_TIMEOUT, &mut books)?;
                    last_snapshot = (self.group.points_seen(), Instant::now());
                }
                Next::Batch(Some(BatchMsg::End { .. })) => batches_open = false,
                Next::Tick => {}
            }
            self.feed(&mut books, &mut collecting_since)?;
            if !batches_open {
                break;
            }
            if last_publish.elapsed() >= STATE_INTERVAL {
                self.publish_states();
                last_publish = Instant::now();
            }
            if self.snapshot_due(last_snapshot) {
                self.snapshot(None, SETTLE_PERIODIC, &mut books)?;
                last_snapshot = (self.group.points_seen(), Instant::now());
            }
            self.count();
        }
        self.reconcile(&mut books)?;
        self.publish_model();
        self.snapshot(None, SETTLE_TIMEOUT, &mut books)?;
        self.count();
        Ok(())
    }

    /// The collection this member buffers points for: 0 for the warm-up, else the
    /// recovery epoch whose refit they are for.
    fn collecting(&self) -> Option<u64> {
        if self.group.is_warming_up() {
            return Some(0);
        }
        self.group.structure().and_then(|s| s.collecting)
    }

    /// Whether a collection (the warm-up, a refit's) may take more points now (see
    /// [`WARMUP_SPREAD`]): the same pacing for both, so that the pooled sample of
    /// either holds every member's partitions.
    fn collection_paced(&self, since: &mut Option<(u64, Instant)>) -> bool {
        let Some(purpose) = self.collecting() else {
            *since = None;
            return true;
        };
        let buffered = self.group.buffered();
        if buffered == 0 {
            return true;
        }
        let started = match since {
            Some((p, t)) if *p == purpose => *t,
            _ => since.insert((purpose, Instant::now())).1,
        };
        let elapsed = started.elapsed().as_secs_f64();
        let w = self.group.settings().warmup_points as f64;
        let by_time = (elapsed / WARMUP_SPREAD.as_secs_f64()).min(1.0) * w;
        let peers = self
            .sample_peers
            .values()
            .filter(|&&p| p == purpose)
            .count();
        let by_share = if elapsed < WARMUP_PATIENCE.as_secs_f64() {
            w / (peers + 1) as f64
        } else {
            w
        };
        (buffered as f64) < by_time.min(by_share)
    }

    /// Follows the rebalance callback: partitions given up publish their final
    /// states, partitions taken on start from the states the callback resumed them at.
    fn reconcile(&mut self, books: &mut Books) -> Result<(), DaemonError> {
        let version = self.assignment.version();
        if version == books.seen_assignment {
            return Ok(());
        }
        books.seen_assignment = version;
        let current = self.assignment.current();
        let gone: Vec<PartitionKey> = books
            .generations
            .iter()
            .filter(|(k, g)| current.get(*k).map(|a| a.generation) != Some(**g))
            .map(|(k, _)| k.clone())
            .collect();
        for key in gone {
            books.generations.remove(&key);
            books.intake.drop_partition(&key);
            if let Some(last) = self.group.revoke(&key) {
                if last.next_offset >= 0 {
                    books
                        .released
                        .set(&key.topic, key.partition, last.next_offset);
                }
                self.send(StateValue::Partition(last));
            }
        }
        for (key, assigned) in current {
            if books.generations.contains_key(&key) {
                continue;
            }
            if let Some(start) = &assigned.start {
                tracing::info!(partition = %key, offset = start.next_offset, points = start.points, "the partition resumes from its newest state");
            }
            self.group
                .assign(key.clone(), assigned.start)
                .map_err(|e| self.foreign(&key.to_string(), e.to_string()))?;
            books.generations.insert(key, assigned.generation);
        }
        Ok(())
    }

    fn foreign(&self, key: &str, why: String) -> DaemonError {
        DaemonError::ForeignState(ForeignShape {
            topic: self.topic.publisher.topic().to_string(),
            key: key.to_string(),
            why,
        })
    }

    fn shape(&self) -> Shape {
        let d = self
            .group
            .model()
            .map(|m| m.n_features())
            .or(self.dim)
            .unwrap_or(0);
        Shape::of(self.group.settings(), d)
    }

    /// One record of the state topic; during the catch-up (`starting`) a record of
    /// another model stops the start-up, later it is refused with an error logged.
    fn event(&mut self, event: StateEvent, starting: bool) -> Result<(), DaemonError> {
        let (key, incoming) = match event {
            StateEvent::Record { key, record } => {
                if matches!(record.value, StateValue::Fence { .. }) {
                    return Ok(());
                }
                if let Some(why) = record.meta.shape.mismatch(&self.shape()) {
                    let e = self.foreign(&key, why);
                    if starting {
                        return Err(e);
                    }
                    tracing::error!(error = %e, "state record refused");
                    return Ok(());
                }
                let publisher = record.meta.publisher;
                if let StateValue::Sample(sample) = &record.value {
                    if publisher != self.group.member() {
                        self.sample_peers.insert(publisher.clone(), sample.purpose);
                    }
                }
                let incoming = match record.value {
                    StateValue::Partition(state) => Incoming::Partition { state, publisher },
                    StateValue::Structure(s) => Incoming::Structure(s),
                    StateValue::Sample(s) => Incoming::Sample(s),
                    StateValue::Fence { .. } => return Ok(()),
                };
                (key, incoming)
            }
            StateEvent::Deleted { key } => match key.strip_prefix("sample/") {
                Some(member) => {
                    self.sample_peers.remove(member);
                    (
                        key.clone(),
                        Incoming::SampleDeleted {
                            member: member.to_string(),
                        },
                    )
                }
                None => return Ok(()),
            },
            StateEvent::Invalid { key, reason } => {
                tracing::warn!(key, reason, "skipping a state record");
                return Ok(());
            }
        };
        match self.group.receive(incoming, now_seconds()) {
            Ok(Reaction::Adopted(a)) => {
                let used = self
                    .group
                    .structure()
                    .and_then(|s| s.used.as_ref())
                    .map(|u| u.samples.clone());
                let weights = self
                    .group
                    .structure()
                    .map(|s| s.model.weights().as_slice().to_vec());
                tracing::info!(epoch = a.epoch, change = ?a.change, proposer = a.proposer, ours = a.ours, ?used, ?weights, "the group's model changed structure");
                self.pending_scores.extend(a.scored);
            }
            Ok(Reaction::Lost { winner }) => {
                self.send(StateValue::Structure(winner));
            }
            Ok(Reaction::ForeignWrite { key, publisher }) => {
                tracing::info!(partition = %key, publisher, "another member wrote a state of a partition this member owns: publishing ours again");
            }
            Ok(Reaction::Ignored | Reaction::Updated) => {}
            Err(e) => {
                let e = self.foreign(&key, e.to_string());
                if starting {
                    return Err(e);
                }
                tracing::error!(error = %e, "state record refused");
            }
        }
        Ok(())
    }

    /// Scores the warm-up points the initial model scored, once it is adopted.
    fn adopted_scores(&mut self, books: &mut Books) -> Result<(), DaemonError> {
        for (seq, scored) in std::mem::take(&mut self.pending_scores) {
            let (origins, values) = books.warmup.remove(&seq).unzip();
            self.emit(scored, origins, values.as_deref())?;
        }
        if !self.group.is_warming_up() {
            // Runs of partitions given up during the warm-up are never scored here:
            // their next owners read them again.
            books.warmup.clear();
        }
        Ok(())
    }

    fn refresh(&mut self) {
        if let Err(e) = self.group.refresh() {
            tracing::error!(error = %e, "the group's model could not be computed from the states; the previous model stays");
        }
        self.publish_model();
    }

    /// Hands the points read to the estimator: while a collection lasts, a few of
    /// every partition at a time and as the pacing allows; otherwise all.
    fn feed(
        &mut self,
        books: &mut Books,
        since: &mut Option<(u64, Instant)>,
    ) -> Result<(), DaemonError> {
        while !books.intake.is_empty() {
            // Fairness matters only for what a sample can hold: the start of the
            // buffer, up to `warmup_points`.
            let sampled = self.group.buffered() < self.group.settings().warmup_points;
            let per_partition = if self.collecting().is_some() && sampled {
                if !self.collection_paced(since) {
                    return Ok(());
                }
                FAIR_CHUNK
            } else {
                usize::MAX
            };
            let Some(round) = books.intake.take(per_partition) else {
                return Ok(());
            };
            self.absorb(round, books)?;
        }
        Ok(())
    }

    /// Points of owned partitions: scored under the group's model, absorbed into
    /// the partitions' statistics.
    fn absorb(&mut self, round: Round, books: &mut Books) -> Result<(), DaemonError> {
        let n_points = round.values.len().checked_div(round.d).unwrap_or(0);
        let x = points_from_rows(&round.values, round.d).map_err(DaemonError::Model)?;
        let runs: Vec<Run<'_>> = round
            .pieces
            .iter()
            .map(|p| Run {
                key: &p.key,
                points: x.columns(p.start, p.end - p.start),
            })
            .collect();
        let trim = self.anomaly.threshold().filter(|_| self.trim_anomalies);
        self.group.set_trim_threshold(trim);
        let started = Instant::now();
        let outcome = match self.group.absorb(&runs, &round.offsets, now_seconds()) {
            Ok(o) => o,
            Err(e) => {
                tracing::error!(points = n_points, error = %e, "a batch could not be absorbed");
                self.counters
                    .failed_points
                    .fetch_add(n_points as u64, Relaxed);
                return Ok(());
            }
        };
        self.counters.em_step(started.elapsed());
        self.counters.batches.fetch_add(1, Relaxed);
        if outcome.change_detected {
            tracing::warn!("abrupt change detected: proposing the group's recovery");
            self.counters.changes_detected.fetch_add(1, Relaxed);
        }
        if let Some(change) = &outcome.proposed {
            tracing::info!(?change, "proposed a change of the group's structure");
        }
        if let Some(e) = &outcome.proposal_error {
            tracing::warn!(error = %e, "a structure change could not be proposed; trying again later");
        }
        if let Some(e) = &outcome.model_error {
            tracing::error!(error = %e, "the group's model could not be updated; the previous model stays");
        }
        let d = round.d;
        match outcome.scored {
            Some(scored) => {
                let origins = round.pieces.into_iter().flat_map(|p| p.origins).collect();
                self.emit(scored, Some(origins), Some(&round.values))?
            }
            None => {
                for (seq, p) in outcome.buffered.iter().zip(round.pieces) {
                    let values = round.values[p.start * d..p.end * d].to_vec();
                    books.warmup.insert(*seq, (p.origins, values));
                }
            }
        }
        self.publish_model();
        Ok(())
    }

    /// Judges scored points against the anomaly threshold and sends them on; points
    /// the model could not score finitely (`values` holds the batch's coordinates)
    /// go to the dead letters instead, as in one daemon.
    fn emit(
        &mut self,
        mut scored: Scored,
        mut origins: Option<Vec<Origin>>,
        values: Option<&[f64]>,
    ) -> Result<(), DaemonError> {
        let unscorable = scored.evaluation.unscorable();
        if !unscorable.is_empty() {
            let n = scored.evaluation.log_density.len();
            let keep: Vec<usize> = (0..n)
                .filter(|j| unscorable.binary_search(j).is_err())
                .collect();
            let per_point = origins.as_deref().filter(|o| o.len() == n).unwrap_or(&[]);
            let rejected = unscorable_rejects(&unscorable, per_point, values.unwrap_or(&[]), n);
            self.output
                .blocking_send(Output::Rejects(rejected))
                .map_err(|_| DaemonError::OutputGone)?;
            scored.evaluation = scored.evaluation.select(&keep);
            origins = origins
                .filter(|o| o.len() == n)
                .map(|o| keep.iter().filter_map(|&j| o.get(j).cloned()).collect());
        }
        let log_density = &scored.evaluation.log_density;
        let threshold = self.anomaly.threshold();
        let anomalies = log_density
            .iter()
            .filter(|&&ld| is_anomaly(ld, threshold))
            .count();
        self.anomaly.observe_batch(log_density);
        self.counters.anomalies.fetch_add(anomalies as u64, Relaxed);
        self.counters.set_threshold(self.anomaly.threshold());
        self.counters
            .set_recent_mean_ll(scored.evaluation.mean_log_likelihood());
        if !self.scores {
            return Ok(());
        }
        let kafka = origins.filter(|o| o.len() == log_density.len());
        self.output
            .blocking_send(Output::Scores(Box::new(ScoredBatch {
                scored,
                threshold,
                kafka,
            })))
            .map_err(|_| DaemonError::OutputGone)
    }

    /// Publishes what changed: the owned partitions' states, proposals, the sample.
    /// After a failed delivery every owned state is published again.
    fn publish_states(&mut self) {
        let publisher = self.topic.publisher.clone();
        let failed = publisher.take_failure_news();
        if failed {
            self.group.mark_all_dirty();
            self.group.proposal_undelivered();
        }
        let from = publisher.last_sent() + 1;
        for state in self.group.take_dirty() {
            self.send(StateValue::Partition(state));
        }
        for proposal in self.group.take_proposals() {
            self.send(StateValue::Structure(Box::new(proposal)));
        }
        match self.group.take_sample() {
            Some(SampleUpdate::Publish(sample)) => self.send(StateValue::Sample(sample)),
            Some(SampleUpdate::Delete) => {
                if let Err(e) = self.topic.withdraw(&sample_key(self.group.member())) {
                    tracing::error!(error = %e, "cannot withdraw this member's sample");
                }
            }
            None => {}
        }
        if failed {
            publisher.republished_from(from);
        }
    }

    fn send(&self, value: StateValue) {
        if let Err(e) = self.topic.publish(value) {
            // Delivery failures are tracked by the publisher; this is a producer
            // that refuses the record at once (e.g. larger than message.max.bytes).
            tracing::error!(error = %e, "cannot publish a state record");
        }
    }

    fn snapshot_due(&self, (points, at): (u64, Instant)) -> bool {
        if self.group.model().is_none() {
            return false;
        }
        let p = &self.policy;
        let by_points =
            p.every_points > 0 && self.group.points_seen().saturating_sub(points) >= p.every_points;
        let by_time = p.every_seconds > 0.0 && at.elapsed().as_secs_f64() >= p.every_seconds;
        by_points || by_time
    }

    /// Publishes the states, waits for them to be acknowledged, and sends a snapshot
    /// whose positions (what is committed) are the acknowledged states' offsets.
    fn snapshot(
        &mut self,
        ack: Option<Ack>,
        wait: Duration,
        books: &mut Books,
    ) -> Result<(), DaemonError> {
        self.publish_states();
        let publisher = self.topic.publisher.clone();
        let settled = publisher.wait_settled(publisher.last_sent(), wait);
        let Some(mut file) = self.model_file(true) else {
            if let Some(ack) = ack {
                let _ = ack.send(());
            }
            return Ok(());
        };
        if settled == Settled::Delivered {
            let mut offsets = std::mem::take(&mut books.released);
            for st in self.group.own_states().filter(|s| s.next_offset >= 0) {
                offsets.set(&st.key.topic, st.key.partition, st.next_offset);
            }
            file.positions = Some(Positions::Kafka(offsets));
        } else {
            tracing::warn!(
                ?settled,
                "the state records are not acknowledged yet: this snapshot commits no offsets"
            );
        }
        let publish = self.publishes_snapshots();
        self.output
            .blocking_send(Output::Snapshot {
                file: Box::new(file),
                ack,
                publish,
            })
            .map_err(|_| DaemonError::OutputGone)
    }

    /// The owner of the group's lowest input partition publishes the snapshots.
    fn publishes_snapshots(&self) -> bool {
        let lowest = self
            .group
            .owned()
            .chain(self.group.remote_states().map(|s| &s.key))
            .min();
        lowest.is_some_and(|k| self.group.owned().any(|o| o == k))
    }

    /// The group's model as a model file; with the member's state for snapshots.
    fn model_file(&self, with_state: bool) -> Option<ModelFile> {
        let model = self.group.model()?;
        let settings = self.group.settings().clone();
        let mut file = ModelFile::new(model, EstimatorInfo::Online(settings), now_rfc3339());
        file.points_seen = self.group.points_seen();
        file.model_version = self.group.model_version();
        file.anomaly_threshold = self.anomaly.threshold();
        if with_state {
            file.anomaly_state = Some(self.anomaly.clone());
            file.extensions.group = Some(GroupInfo::of(&self.group, &self.topic.group, now_ms()));
        }
        Some(file)
    }

    /// Hands the current model to the HTTP server.
    fn publish_model(&mut self) {
        let (Some(model), Some(file)) = (self.group.model(), self.model_file(false)) else {
            return;
        };
        self.counters.model_ready.store(1, Relaxed);
        let effective = self.group.effective_components().unwrap_or(0);
        self.counters
            .effective_components
            .store(effective as u64, Relaxed);
        self.counters
            .points_absorbed
            .store(self.group.points_seen(), Relaxed);
        self.counters
            .model_version
            .store(self.group.model_version(), Relaxed);
        let live = LiveModel {
            model: Arc::new(model.clone()),
            file: Arc::new(file),
        };
        self.live.send_replace(Some(live));
    }

    /// The group metrics.
    fn count(&self) {
        let g = &self.counters.group;
        g.partitions_known
            .store(self.group.partitions_known() as u64, Relaxed);
        g.partitions_owned
            .store(self.group.owned().count() as u64, Relaxed);
        g.epoch.store(self.group.epoch(), Relaxed);
        let (bytes, records) = self.topic.publisher.published();
        g.state_bytes.store(bytes, Relaxed);
        g.state_records.store(records, Relaxed);
        let index = self.topic.index.lock();
        let oldest = index.partitions.values().map(|i| i.published_ms).min();
        g.oldest_state_ms.store(oldest.unwrap_or(0), Relaxed);
    }
}

fn now_seconds() -> f64 {
    now_ms() as f64 / 1000.0
}
