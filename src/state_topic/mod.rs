//! The state topic: where the members of a consumer group publish their partitions'
//! statistics and the group's structure, and read everyone's (docs/scale-out.md).
//!
//! [`StateTopic`] owns a reader (a consumer of the topic's partition 0 from its
//! beginning, on its own thread, handing decoded records on in log order and keeping
//! an [index](StateIndex) of each partition's newest state) and a
//! [publisher](StatePublisher) whose deliveries are tracked. Every record of the group
//! goes to partition 0: one log orders them all.

mod assignment;
mod index;
mod publish;
mod reader;

pub use assignment::{Assigned, Assignment};
pub use index::{IndexData, Indexed, StateIndex};
pub use publish::{Settled, StatePublisher};
pub use reader::StateEvent;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use thiserror::Error;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use gmm_io::state::{fence_key, StateRecord, StateValue};
use gmm_model::OnlineSettings;

/// Records read but not yet taken by the estimator (then the reader waits).
const EVENT_QUEUE: usize = 256;
const METADATA_TIMEOUT: Duration = Duration::from_secs(15);

#[derive(Debug, Error)]
pub enum StateTopicError {
    #[error("cannot create a Kafka client for the state topic: {0}")]
    Create(KafkaError),
    #[error("cannot reach the Kafka brokers {brokers} for the state topic: {error}")]
    Unreachable { brokers: String, error: KafkaError },
    #[error("the state topic {0} does not exist; create it first (one partition, cleanup.policy=compact: see the README, \"Scaling out\")")]
    Missing(String),
    #[error("cannot read the state topic {topic}: {error}")]
    Assign { topic: String, error: KafkaError },
    #[error("cannot publish to the state topic: {0}")]
    Produce(KafkaError),
    #[error("the state topic {topic} could not be read to its end within {waited:?} ({records} records read); is the broker reachable?")]
    CatchUp {
        topic: String,
        waited: Duration,
        records: u64,
    },
    #[error("the state topic's reader stopped")]
    ReaderGone,
}

impl StateTopicError {
    /// The settings are at fault (exit status 2), not the system.
    pub fn is_bad_input(&self) -> bool {
        matches!(self, Self::Missing(_))
    }
}

/// How a catch-up went.
#[derive(Clone, Copy, Debug)]
pub struct CaughtUp {
    pub records: u64,
    pub bytes: u64,
    pub took: Duration,
}

pub struct StateTopic {
    pub publisher: Arc<StatePublisher>,
    pub index: Arc<StateIndex>,
    /// The records read, in log order (taken by whoever applies them).
    pub events: Option<mpsc::Receiver<StateEvent>>,
    pub group: String,
    pub member: String,
    settings: OnlineSettings,
    cancel: CancellationToken,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl StateTopic {
    /// Checks that `topic` exists and starts reading it from its beginning.
    pub fn open(
        brokers: &str,
        properties: &BTreeMap<String, String>,
        topic: &str,
        group: &str,
        member: &str,
        settings: &OnlineSettings,
    ) -> Result<Self, StateTopicError> {
        let publisher = Arc::new(StatePublisher::new(brokers, properties, topic)?);
        let metadata = publisher
            .client()
            .fetch_metadata(Some(topic), METADATA_TIMEOUT)
            .map_err(|error| StateTopicError::Unreachable {
                brokers: brokers.to_string(),
                error,
            })?;
        let exists = metadata
            .topics()
            .iter()
            .any(|t| t.name() == topic && t.error().is_none() && !t.partitions().is_empty());
        if !exists {
            return Err(StateTopicError::Missing(topic.to_string()));
        }
        let consumer = reader_consumer(brokers, properties, group)?;
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(topic, 0, Offset::Beginning)
            .and_then(|()| consumer.assign(&tpl))
            .map_err(|error| StateTopicError::Assign {
                topic: topic.to_string(),
                error,
            })?;
        let index = Arc::new(StateIndex::default());
        let (tx, rx) = mpsc::channel(EVENT_QUEUE);
        let cancel = CancellationToken::new();
        let reader = reader::Reader {
            consumer,
            group: group.to_string(),
            index: index.clone(),
            events: tx,
            cancel: cancel.clone(),
        };
        let thread = std::thread::Builder::new()
            .name("gmm-stream-state".into())
            .spawn(move || reader.run())
            .map_err(|e| StateTopicError::Create(KafkaError::ClientCreation(e.to_string())))?;
        Ok(Self {
            publisher,
            index,
            events: Some(rx),
            group: group.to_string(),
            member: member.to_string(),
            settings: settings.clone(),
            cancel,
            reader: Some(thread),
        })
    }

    /// A record of this member, stamped now.
    pub fn record(&self, value: StateValue) -> StateRecord {
        StateRecord::new(&self.group, &self.member, now_ms(), &self.settings, value)
    }

    /// Publishes a record under its key; returns its sequence number.
    pub fn publish(&self, value: StateValue) -> Result<u64, StateTopicError> {
        let record = self.record(value);
        self.publisher.send(&record.key(), Some(&record.encode()))
    }

    /// Withdraws a key's record (a tombstone).
    pub fn withdraw(&self, key: &str) -> Result<u64, StateTopicError> {
        self.publisher.send(key, None)
    }

    /// Reads the topic up to now: writes a fence and hands every record before it to
    /// `take`, in log order (tansu's high watermark can lag behind what it has
    /// acknowledged, so the end is this member's own record, not the watermark).
    pub async fn catch_up(
        &mut self,
        timeout: Duration,
        mut take: impl FnMut(StateEvent),
    ) -> Result<CaughtUp, StateTopicError> {
        let started = Instant::now();
        let nonce: u64 = rand::random();
        self.publish(StateValue::Fence { nonce })?;
        let events = self.events.as_mut().ok_or(StateTopicError::ReaderGone)?;
        let mut records = 0u64;
        loop {
            let left = timeout.saturating_sub(started.elapsed());
            let event = match tokio::time::timeout(left, events.recv()).await {
                Ok(Some(event)) => event,
                Ok(None) => return Err(StateTopicError::ReaderGone),
                Err(_) => {
                    return Err(StateTopicError::CatchUp {
                        topic: self.publisher.topic().to_string(),
                        waited: timeout,
                        records,
                    })
                }
            };
            records += 1;
            if let StateEvent::Record { record, .. } = &event {
                if let StateValue::Fence { nonce: n } = record.value {
                    if n == nonce && record.meta.publisher == self.member {
                        break;
                    }
                }
            }
            take(event);
        }
        // The fence has done its work: let compaction drop it.
        self.withdraw(&fence_key(&self.member))?;
        Ok(CaughtUp {
            records,
            bytes: self.index.lock().bytes,
            took: started.elapsed(),
        })
    }

    /// Stops the reader.
    pub fn close(&mut self) {
        self.cancel.cancel();
        self.events = None;
        if let Some(t) = self.reader.take() {
            let _ = t.join();
        }
    }
}

impl Drop for StateTopic {
    fn drop(&mut self) {
        self.close();
    }
}

/// This member's name in the group's records: `group.instance.id` when set (static
/// membership: the same name across restarts), else host, process and a random part.
pub fn member_id(properties: &BTreeMap<String, String>) -> String {
    if let Some(id) = properties
        .get("group.instance.id")
        .filter(|s| !s.is_empty())
    {
        return id.clone();
    }
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "host".into());
    format!(
        "{host}-{}-{:08x}",
        std::process::id(),
        rand::random::<u32>()
    )
}

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// A consumer that reads the state topic without joining any group: it is assigned
/// the partition and commits nothing (librdkafka wants a group id all the same; this
/// one is never joined).
fn reader_consumer(
    brokers: &str,
    properties: &BTreeMap<String, String>,
    group: &str,
) -> Result<BaseConsumer, StateTopicError> {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", brokers)
        // Other members' records reach this one sooner: the group's models differ
        // by less (the broker answers a fetch as soon as there is a record anyway).
        .set("fetch.wait.max.ms", "50");
    for (k, v) in properties {
        // Group membership is the input consumer's business.
        if !k.starts_with("group.") && !k.starts_with("partition.assignment") {
            config.set(k, v);
        }
    }
    config
        .set("group.id", format!("{group}.state-reader"))
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("enable.partition.eof", "false")
        .set("auto.offset.reset", "earliest");
    config.create().map_err(StateTopicError::Create)
}
