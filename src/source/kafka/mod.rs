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
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use thiserror::Error;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

mod commit;
mod context;
pub mod lag;

use commit::retry_failed_commit;
pub use commit::KafkaCommitter;
pub use context::SourceContext;
use context::{locked, Link};

use crate::kafka::{check_topics, TopicsError};
use crate::source::chunk::{Chunk, Origin, RecordMark, Rejected, SourceMsg};
use gmm_io::{DecodeConfig, DecodeConfigError, KafkaOffsets, RecordDecoder, Reject, RejectReason};

const POLL: Duration = Duration::from_millis(100);
/// How long a full pipeline may hold the consumer before its partitions are
/// paused. Pausing at once costs throughput (librdkafka drops what it prefetched
/// for a paused partition and fetches it again: 41k against 157k points/s
/// measured), while a pipeline full for longer is a stall, during which fetching
/// should stop.
const PAUSE_AFTER: Duration = Duration::from_secs(1);
/// How long a revocation waits for the pipeline to absorb, snapshot and commit.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(60);
/// How often a failed commit is retried while no snapshot supersedes it.
const COMMIT_RETRY: Duration = Duration::from_secs(1);
/// How long an assignment waits for the group's committed offsets.
const COMMITTED_TIMEOUT: Duration = Duration::from_secs(15);

#[derive(Debug, Error)]
pub enum KafkaSourceError {
    #[error("cannot create the Kafka consumer")]
    Create(#[source] KafkaError),
    #[error(transparent)]
    Topics(#[from] TopicsError),
    #[error("cannot subscribe to {topics:?}")]
    Subscribe {
        topics: Vec<String>,
        #[source]
        error: KafkaError,
    },
    #[error("the Kafka consumer failed: {0}")]
    Fatal(String),
    #[error("the Kafka source must run inside the daemon's async runtime")]
    NoRuntime(#[source] tokio::runtime::TryCurrentError),
    #[error(transparent)]
    Decode(#[from] DecodeConfigError),
}

impl KafkaSourceError {
    /// The settings are at fault (exit status 2), not the system.
    pub fn is_bad_input(&self) -> bool {
        matches!(
            self,
            Self::Topics(TopicsError::Missing(_)) | Self::Decode(_)
        )
    }
}

/// Source positions contained in a durable snapshot: where a partition that is
/// (re)assigned starts. The committer updates them after every snapshot.
pub type DurablePositions = Arc<Mutex<KafkaOffsets>>;

pub struct KafkaSource {
    pub consumer: Arc<BaseConsumer<SourceContext>>,
    pub durable: DurablePositions,
    decoder: RecordDecoder,
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

/// What the consumer shares with the rest of the daemon.
pub struct SourceLinks {
    /// True while no broker can be reached (readiness reports it).
    pub brokers_down: Arc<AtomicBool>,
    /// With a state topic: where assigned partitions resume, and what this member
    /// owns (docs/scale-out.md).
    pub group: Option<Arc<crate::state_topic::Assignment>>,
}

impl KafkaSource {
    /// Creates the consumer and checks that every `required` topic exists.
    pub fn connect(
        config: ClientConfig,
        brokers: &str,
        topics: &[String],
        required: &[String],
        resume: KafkaOffsets,
        decode: DecodeConfig,
        links: SourceLinks,
    ) -> Result<Self, KafkaSourceError> {
        let decoder = RecordDecoder::new(decode)?;
        let durable = Arc::new(Mutex::new(resume));
        let context = SourceContext::new(durable.clone(), links.brokers_down, links.group);
        let consumer: BaseConsumer<SourceContext> = config
            .create_with_context(context)
            .map_err(KafkaSourceError::Create)?;
        check_topics(consumer.client(), brokers, required)?;
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
        let runtime = tokio::runtime::Handle::try_current().map_err(KafkaSourceError::NoRuntime)?;
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
                    let (partition, offset) = (message.partition(), message.offset());
                    self.decode(message.topic(), partition, offset, message.payload())
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
        let name = match self.names.get(topic) {
            Some(name) => name.clone(),
            None => {
                let name: Arc<str> = Arc::from(topic);
                self.names.insert(topic.to_string(), name.clone());
                name
            }
        };
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
        let payload = payload.unwrap_or_default();
        let record = if payload.is_empty() {
            Err(Reject::new(RejectReason::Parse, "empty message"))
        } else {
            Ok(payload)
        };
        self.decoder.decode(record, &mut chunk.values);
        for reject in self.decoder.take_rejects() {
            chunk.rejects.push(Rejected {
                location: format!("{topic}[{partition}]@{offset}"),
                reject,
                start: None,
                line: None,
                payload: payload.to_vec(),
                origin: origin.clone(),
            });
        }
        let dim = self.decoder.decoder().dim().unwrap_or(1);
        chunk.marks.push(RecordMark {
            points_end: chunk.values.len() / dim,
            origin,
        });
        chunk.is_full(dim)
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
