//! The `kafka` source: a consumer in a group, polled on a thread of its own.
//!
//! Positions live in the snapshot, not in Kafka: offsets are stored and committed
//! by the daemon itself, never automatically. When partitions are assigned, each
//! starts at the newest durable snapshot's position for it (or at the group's
//! committed offset when that is further on, else `auto.offset.reset`), by
//! setting the offsets in the assignment itself. When partitions are revoked,
//! the pipeline is flushed first: the points read from them are absorbed, a
//! snapshot is written and the offsets committed, and only then are they given
//! up. When the pipeline is full the polling thread waits; librdkafka's bounded
//! prefetch queue (`queued.max.messages.kbytes`) keeps memory flat meanwhile.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, RebalanceProtocol};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::types::RDKafkaRespErr;
use rdkafka::ClientContext;
use thiserror::Error;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::chunk::{Chunk, Origin, RecordMark, Rejected, SourceMsg};
use super::{DecodeConfig, DecodeConfigError, Decoder, Reject, RejectReason};

/// Points per chunk sent into the pipeline.
const CHUNK_POINTS: usize = 1024;
const POLL: Duration = Duration::from_millis(100);
/// How long a full pipeline may hold the consumer before its partitions are
/// paused. Pausing at once costs throughput (librdkafka drops what it prefetched
/// for a paused partition and fetches it again: 41k against 157k points/s
/// measured), while a pipeline full for longer is a stall, during which fetching
/// should stop.
const PAUSE_AFTER: Duration = Duration::from_secs(1);
/// How long a revocation waits for the pipeline to absorb, snapshot and commit.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(60);
const METADATA_TIMEOUT: Duration = Duration::from_secs(15);
/// How often a failed commit is retried while no snapshot supersedes it.
const COMMIT_RETRY: Duration = Duration::from_secs(1);
/// How long an assignment waits for the group's committed offsets.
const COMMITTED_TIMEOUT: Duration = Duration::from_secs(15);

#[derive(Debug, Error)]
pub enum KafkaSourceError {
    #[error("cannot create the Kafka consumer: {0}")]
    Create(KafkaError),
    #[error("cannot reach the Kafka brokers {brokers}: {error}")]
    Unreachable { brokers: String, error: KafkaError },
    #[error("these Kafka topics do not exist: {}; create them first (gmm-stream never relies on auto-creation)", .0.join(", "))]
    MissingTopics(Vec<String>),
    #[error("cannot subscribe to {topics:?}: {error}")]
    Subscribe {
        topics: Vec<String>,
        error: KafkaError,
    },
    #[error("the Kafka consumer failed: {0}")]
    Fatal(String),
    #[error("{0}")]
    Decode(#[from] DecodeConfigError),
}

/// Source positions contained in a durable snapshot: where a partition that is
/// (re)assigned starts. The committer updates them after every snapshot.
pub type DurablePositions = Arc<Mutex<BTreeMap<String, BTreeMap<i32, i64>>>>;

/// The chunk being assembled, shared with the rebalance callback (which runs on
/// the polling thread, inside `poll`).
struct Link {
    tx: mpsc::Sender<SourceMsg>,
    pending: Chunk,
}

pub struct SourceContext {
    durable: DurablePositions,
    link: Mutex<Option<Link>>,
    /// Offsets whose commit failed and that no later commit has superseded:
    /// retried by the polling thread, so that a quiet stream's lag still reaches
    /// zero. Held while committing, so that commits never go backwards.
    failed_commit: Mutex<Option<Offsets>>,
    /// True while no broker can be reached (readiness reports it).
    brokers_down: Arc<AtomicBool>,
}

/// topic → partition → offset.
type Offsets = BTreeMap<String, BTreeMap<i32, i64>>;

/// Locks `mutex`, going on after a panic elsewhere: every holder leaves the data
/// whole between statements, and the snapshot, not this state, is the truth.
fn locked<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl ClientContext for SourceContext {
    /// librdkafka's periodic statistics carry each partition's lag behind its
    /// high watermark, measured from the committed offset (what monitoring sees).
    /// All brokers down: not ready until one is back (seen in the statistics or in
    /// a message). librdkafka reconnects by itself meanwhile.
    fn error(&self, error: KafkaError, reason: &str) {
        if let KafkaError::Global(RDKafkaErrorCode::AllBrokersDown) = error {
            self.brokers_down.store(true, Relaxed);
        }
        tracing::error!("librdkafka: {error}: {reason}");
    }

    fn stats(&self, statistics: rdkafka::Statistics) {
        let up = statistics
            .brokers
            .values()
            .any(|b| b.nodeid >= 0 && b.state == "UP");
        self.brokers_down.store(!up, Relaxed);
        for (topic, t) in &statistics.topics {
            for (partition, p) in &t.partitions {
                // -1 marks partitions this consumer does not fetch (or not yet).
                if *partition >= 0 && p.consumer_lag >= 0 {
                    metrics::gauge!(
                        crate::http::metrics::CONSUMER_LAG,
                        "topic" => topic.clone(),
                        "partition" => partition.to_string()
                    )
                    .set(p.consumer_lag as f64);
                }
            }
        }
    }
}

impl ConsumerContext for SourceContext {
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        let cooperative = matches!(
            consumer.rebalance_protocol(),
            RebalanceProtocol::Cooperative
        );
        let result = match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                self.set_start_offsets(consumer, tpl);
                tracing::info!(partitions = %describe(tpl), "partitions assigned");
                if cooperative {
                    consumer.incremental_assign(tpl)
                } else {
                    consumer.assign(tpl)
                }
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                tracing::info!(partitions = %describe(tpl), "partitions revoked: absorbing, snapshotting and committing first");
                self.flush_pipeline();
                if cooperative {
                    consumer.incremental_unassign(tpl)
                } else {
                    consumer.unassign()
                }
            }
            other => {
                tracing::error!(error = ?other, "rebalance failed");
                consumer.unassign()
            }
        };
        if let Err(e) = result {
            tracing::error!(error = %e, "cannot apply the new partition assignment");
        }
    }
}

impl SourceContext {
    /// Starts each assigned partition at the durable snapshot's position for it,
    /// unless the group's committed offset is further on; the others keep the
    /// group's committed offset (or `auto.offset.reset`).
    ///
    /// Our own commits follow our durable snapshots, so they never run ahead of
    /// the newest one. A committed offset ahead of the snapshot's position means
    /// that another member of the group absorbed those points while it owned the
    /// partition (our position for a partition we gave up is stale), or that an
    /// operator moved the group on: either way they are not ours to absorb again.
    /// (Should the newest snapshot be corrupt and an older one restored, the
    /// points in between are then in neither; that is logged.)
    fn set_start_offsets(&self, consumer: &BaseConsumer<Self>, tpl: &mut TopicPartitionList) {
        let durable = locked(&self.durable);
        let starts: Vec<(String, i32, i64)> = tpl
            .elements()
            .iter()
            .filter_map(|e| {
                let offset = durable.get(e.topic())?.get(&e.partition())?;
                Some((e.topic().to_string(), e.partition(), *offset))
            })
            .collect();
        drop(durable);
        if starts.is_empty() {
            return;
        }
        let committed = match consumer.committed_offsets(tpl.clone(), COMMITTED_TIMEOUT) {
            Ok(c) => Some(c),
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the group's committed offsets; starting at the snapshot's positions");
                None
            }
        };
        // Where the snapshot is ahead of the group (our last commit failed), the
        // polling thread commits the snapshot's offsets soon; a failed commit
        // still pending for these partitions is stale and dropped.
        let mut failed = locked(&self.failed_commit);
        for (topic, partition, snapshot) in starts {
            let group = committed.as_ref().map(|c| {
                match c.find_partition(&topic, partition).map(|e| e.offset()) {
                    Some(Offset::Offset(c)) => Some(c),
                    _ => None,
                }
            });
            let offset = match group {
                Some(Some(c)) if c > snapshot => {
                    tracing::info!(topic, partition, snapshot, committed = c, "the group's committed offset is ahead of the snapshot (another member absorbed the points in between): starting there");
                    c
                }
                _ => snapshot,
            };
            if let Some(group) = group {
                let pending = failed.get_or_insert_with(Offsets::new);
                let partitions = pending.entry(topic.clone()).or_default();
                partitions.remove(&partition);
                if group.is_none_or(|c| c < snapshot) {
                    partitions.insert(partition, snapshot);
                }
            }
            if let Err(e) = tpl.set_partition_offset(&topic, partition, Offset::Offset(offset)) {
                tracing::warn!(topic, partition, offset, error = %e, "cannot set the start offset");
            }
        }
        if failed
            .as_ref()
            .is_some_and(|f| f.values().all(BTreeMap::is_empty))
        {
            *failed = None;
        }
    }

    /// Sends what was read so far, then a flush, and waits until the pipeline has
    /// absorbed it, written a snapshot and committed.
    fn flush_pipeline(&self) {
        let Some((tx, chunk)) = self.take_pending() else {
            return;
        };
        if !chunk.is_empty() && tx.blocking_send(SourceMsg::Chunk(chunk)).is_err() {
            return;
        }
        let (ack, done) = std::sync::mpsc::sync_channel(1);
        if tx.blocking_send(SourceMsg::Flush(ack)).is_err() {
            return;
        }
        if done.recv_timeout(FLUSH_TIMEOUT).is_err() {
            tracing::warn!("the snapshot before the revocation did not complete in time; the partitions' next owner may read some points again");
        }
    }

    fn take_pending(&self) -> Option<(mpsc::Sender<SourceMsg>, Chunk)> {
        let mut link = locked(&self.link);
        let link = link.as_mut()?;
        Some((link.tx.clone(), std::mem::take(&mut link.pending)))
    }
}

fn describe(tpl: &TopicPartitionList) -> String {
    tpl.elements()
        .iter()
        .map(|e| format!("{}[{}]", e.topic(), e.partition()))
        .collect::<Vec<_>>()
        .join(", ")
}

pub struct KafkaSource {
    pub consumer: Arc<BaseConsumer<SourceContext>>,
    pub durable: DurablePositions,
    decoder: Decoder,
    topics: Vec<String>,
    /// One shared name per topic, so messages do not allocate one each.
    names: HashMap<String, Arc<str>>,
}

/// The consumer settings, with `properties` applied after ours (they may override).
pub fn consumer_config(
    brokers: &str,
    group_id: &str,
    properties: &BTreeMap<String, String>,
) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", brokers)
        .set("group.id", group_id)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("allow.auto.create.topics", "false")
        .set("enable.partition.eof", "false")
        // Statistics feed the per-partition consumer lag metric.
        .set("statistics.interval.ms", "5000");
    for (k, v) in properties {
        config.set(k, v);
    }
    config
}

impl KafkaSource {
    /// Creates the consumer and checks that every `required` topic exists.
    pub fn connect(
        config: ClientConfig,
        brokers: &str,
        topics: &[String],
        required: &[String],
        resume: BTreeMap<String, BTreeMap<i32, i64>>,
        decode: DecodeConfig,
        brokers_down: Arc<AtomicBool>,
    ) -> Result<Self, KafkaSourceError> {
        let decoder = Decoder::new(decode)?;
        let durable = Arc::new(Mutex::new(resume));
        let context = SourceContext {
            durable: durable.clone(),
            link: Mutex::new(None),
            failed_commit: Mutex::new(None),
            brokers_down,
        };
        let consumer: BaseConsumer<SourceContext> = config
            .create_with_context(context)
            .map_err(KafkaSourceError::Create)?;
        let metadata = consumer
            .fetch_metadata(None, METADATA_TIMEOUT)
            .map_err(|error| KafkaSourceError::Unreachable {
                brokers: brokers.to_string(),
                error,
            })?;
        let missing = crate::kafka::missing_topics(&metadata, required);
        if !missing.is_empty() {
            return Err(KafkaSourceError::MissingTopics(missing));
        }
        Ok(Self {
            consumer: Arc::new(consumer),
            durable,
            decoder,
            topics: topics.to_vec(),
            names: HashMap::new(),
        })
    }

    /// Polls until cancelled (Kafka never ends). Runs on its own thread.
    pub fn run(
        mut self,
        tx: mpsc::Sender<SourceMsg>,
        cancel: CancellationToken,
    ) -> Result<(), KafkaSourceError> {
        let topics: Vec<&str> = self.topics.iter().map(String::as_str).collect();
        self.consumer
            .subscribe(&topics)
            .map_err(|error| KafkaSourceError::Subscribe {
                topics: self.topics.clone(),
                error,
            })?;
        self.set_link(Some(Link {
            tx: tx.clone(),
            pending: Chunk::default(),
        }));
        // The daemon runs this on its runtime's blocking pool; the handle lets a
        // full pipeline be waited for with a timeout.
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|e| KafkaSourceError::Fatal(format!("no async runtime: {e}")))?;
        let result = self.poll_until(&tx, &cancel, &runtime);
        // Past this point a revocation (when the consumer closes) has no pipeline
        // to flush into.
        self.set_link(None);
        result
    }

    fn set_link(&self, link: Option<Link>) {
        *locked(&self.consumer.context().link) = link;
    }

    fn poll_until(
        &mut self,
        tx: &mpsc::Sender<SourceMsg>,
        cancel: &CancellationToken,
        runtime: &tokio::runtime::Handle,
    ) -> Result<(), KafkaSourceError> {
        let mut errors = ErrorLog::default();
        // A message borrows the consumer it came from, not `self`.
        let consumer = self.consumer.clone();
        let mut retried = std::time::Instant::now();
        while !cancel.is_cancelled() {
            if retried.elapsed() >= COMMIT_RETRY {
                retry_failed_commit(&consumer);
                retried = std::time::Instant::now();
            }
            let full = match consumer.poll(POLL) {
                None => self.pending_len() > 0,
                Some(Ok(message)) => {
                    consumer.context().brokers_down.store(false, Relaxed);
                    let (topic, partition, offset) = (
                        message.topic().to_string(),
                        message.partition(),
                        message.offset(),
                    );
                    self.decode(&topic, partition, offset, message.payload())
                }
                Some(Err(error)) => {
                    if let Some((_, reason)) = consumer.client().fatal_error() {
                        return Err(KafkaSourceError::Fatal(reason));
                    }
                    errors.note(&error);
                    false
                }
            };
            if full && !self.send_pending(tx, runtime) {
                return Ok(());
            }
        }
        Ok(())
    }

    fn pending_len(&self) -> usize {
        let link = locked(&self.consumer.context().link);
        link.as_ref()
            .map_or(0, |l| l.pending.marks.len() + l.pending.rejects.len())
    }

    /// Decodes one message into the pending chunk; true when the chunk is full.
    fn decode(&mut self, topic: &str, partition: i32, offset: i64, payload: Option<&[u8]>) -> bool {
        let name = self
            .names
            .entry(topic.to_string())
            .or_insert_with(|| Arc::from(topic))
            .clone();
        let origin = Origin::Kafka {
            topic: name,
            partition,
            offset,
        };
        let mut link = locked(&self.consumer.context().link);
        let Some(link) = link.as_mut() else {
            return false;
        };
        let chunk = &mut link.pending;
        let mut rejects = Vec::new();
        match payload {
            Some(bytes) if !bytes.is_empty() => {
                self.decoder.decode(bytes, &mut chunk.values, &mut rejects);
            }
            _ => rejects.push(Reject::new(RejectReason::Parse, "empty message")),
        }
        let dim = self.decoder.dim().unwrap_or(1);
        for reject in rejects {
            chunk.rejects.push(Rejected {
                location: format!("{topic}[{partition}]@{offset}"),
                reject,
                start: None,
                line: None,
                payload: payload.unwrap_or_default().to_vec(),
                origin: origin.clone(),
            });
        }
        chunk.marks.push(RecordMark {
            points_end: chunk.values.len() / dim,
            origin,
        });
        chunk.values.len() >= CHUNK_POINTS * dim || chunk.marks.len() >= CHUNK_POINTS
    }

    /// Sends the pending chunk, waiting while the pipeline is full. False when the
    /// pipeline is gone.
    ///
    /// A pipeline full for a moment (a batch's EM step) is waited for with the
    /// partitions running: librdkafka bounds its own queue of prefetched messages
    /// (`queued.max.messages.kbytes`), and pausing would throw that queue away, to
    /// be fetched again on resume (a quarter of the broker's throughput when every
    /// full pipeline paused, scripts/bench_kafka.py). Full for longer than
    /// [`PAUSE_AFTER`], the pipeline has stalled: the partitions are paused until
    /// it takes the chunk, so nothing more is fetched meanwhile. Rebalances wait
    /// for the send.
    fn send_pending(&self, tx: &mpsc::Sender<SourceMsg>, runtime: &tokio::runtime::Handle) -> bool {
        let chunk = {
            let mut link = locked(&self.consumer.context().link);
            match link.as_mut() {
                Some(l) => std::mem::take(&mut l.pending),
                None => return false,
            }
        };
        // Room usually comes within a batch's EM step: wait for it unpaused.
        let waited = runtime.block_on(tokio::time::timeout(PAUSE_AFTER, tx.reserve()));
        match waited {
            Ok(Ok(permit)) => {
                permit.send(SourceMsg::Chunk(chunk));
                true
            }
            Ok(Err(_closed)) => false,
            Err(_stalled) => {
                let paused = self.consumer.assignment().ok();
                if let Some(p) = &paused {
                    tracing::debug!("pipeline full for {PAUSE_AFTER:?}: pausing the partitions");
                    let _ = self.consumer.pause(p);
                }
                let sent = tx.blocking_send(SourceMsg::Chunk(chunk)).is_ok();
                if let Some(p) = &paused {
                    let _ = self.consumer.resume(p);
                }
                sent
            }
        }
    }
}

/// Commits offsets to the group once the snapshot holding them is durable, for
/// partitions still assigned; records them as where a reassigned partition starts.
pub struct KafkaCommitter {
    pub consumer: Arc<BaseConsumer<SourceContext>>,
    pub durable: DurablePositions,
}

impl KafkaCommitter {
    pub fn commit(&self, positions: &BTreeMap<String, BTreeMap<i32, i64>>) {
        {
            let mut durable = locked(&self.durable);
            for (topic, partitions) in positions {
                durable.entry(topic.clone()).or_default().extend(partitions);
            }
        }
        let mut failed = locked(&self.consumer.context().failed_commit);
        // Whatever failed before is superseded by these newer offsets.
        *failed = None;
        let Some(tpl) = assigned_offsets(&self.consumer, positions) else {
            return;
        };
        // Commits serve lag monitoring; the snapshot is the truth. A failed commit
        // is retried by the polling thread until the next snapshot's commit.
        if let Err(e) = self.consumer.commit(&tpl, CommitMode::Sync) {
            tracing::warn!(error = %e, "cannot commit offsets; retrying");
            *failed = Some(positions.clone());
        }
    }
}

/// The offsets of the partitions still assigned, if any.
fn assigned_offsets(
    consumer: &BaseConsumer<SourceContext>,
    positions: &Offsets,
) -> Option<TopicPartitionList> {
    let assigned = consumer.assignment().ok()?;
    let mut tpl = TopicPartitionList::new();
    for e in assigned.elements() {
        if let Some(offset) = positions.get(e.topic()).and_then(|p| p.get(&e.partition())) {
            let _ = tpl.add_partition_offset(e.topic(), e.partition(), Offset::Offset(*offset));
        }
    }
    (tpl.count() > 0).then_some(tpl)
}

/// Commits again the offsets whose commit failed, unless a commit is under way
/// (it supersedes them).
fn retry_failed_commit(consumer: &BaseConsumer<SourceContext>) {
    let mut failed = match consumer.context().failed_commit.try_lock() {
        Ok(guard) => guard,
        Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner(),
        Err(std::sync::TryLockError::WouldBlock) => return,
    };
    let Some(positions) = failed.as_ref() else {
        return;
    };
    // Nothing of it assigned now (between a revocation and the next
    // assignment, which drops what became stale): keep it for later.
    let Some(tpl) = assigned_offsets(consumer, positions) else {
        return;
    };
    match consumer.commit(&tpl, CommitMode::Sync) {
        Ok(()) => {
            tracing::info!("committed the offsets whose commit had failed");
            *failed = None;
        }
        Err(e) => tracing::debug!(error = %e, "cannot commit offsets yet"),
    }
}

/// Logs consumer errors (broker down, fetch failures) at most every ten seconds:
/// librdkafka retries them itself.
#[derive(Default)]
struct ErrorLog {
    last: Option<std::time::Instant>,
    suppressed: u64,
}

impl ErrorLog {
    fn note(&mut self, error: &KafkaError) {
        let now = std::time::Instant::now();
        if self
            .last
            .is_none_or(|t| now.duration_since(t) >= Duration::from_secs(10))
        {
            tracing::warn!(%error, suppressed = self.suppressed, "Kafka consumer error (retrying)");
            self.last = Some(now);
            self.suppressed = 0;
        } else {
            self.suppressed += 1;
        }
    }
}
