//! The producer of state records, with every delivery tracked: offsets may be
//! committed only once the state records holding them are acknowledged, and a record
//! the broker never took must be published again. A producer of its own (not the
//! outputs' one), so that a state topic out of reach delays commits but never the
//! scores.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::ClientContext;

use super::StateTopicError;

/// How long to wait for room in a full producer queue before trying again.
const QUEUE_FULL_BACKOFF: Duration = Duration::from_millis(20);

/// What became of the records sent up to some sequence number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Settled {
    /// Some are still in flight.
    Pending,
    /// All acknowledged.
    Delivered,
    /// All answered, and at least one was not delivered.
    Failed,
}

#[derive(Default)]
struct Flight {
    in_flight: BTreeSet<u64>,
    /// Undelivered records not yet superseded by a full republication.
    failed: BTreeSet<u64>,
    /// A delivery failed since the caller last asked.
    failure_news: bool,
}

/// Delivery reports, shared with the producer's thread.
#[derive(Default)]
pub struct Deliveries {
    flight: Mutex<Flight>,
    settled: Condvar,
    bytes: AtomicU64,
    records: AtomicU64,
}

impl Deliveries {
    fn lock(&self) -> MutexGuard<'_, Flight> {
        self.flight.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, seq: usize) {
        let seq = seq as u64;
        let mut f = self.lock();
        f.in_flight.remove(&seq);
        if let Err((error, _)) = result {
            tracing::error!(%error, "a state record was not delivered; the member's states will be published again");
            f.failed.insert(seq);
            f.failure_news = true;
        }
        drop(f);
        self.settled.notify_all();
    }
}

pub struct StatePublisher {
    producer: ThreadedProducer<Deliveries>,
    topic: String,
    next_seq: AtomicU64,
}

impl StatePublisher {
    /// An idempotent producer (records of one key are never reordered or repeated by
    /// its own retries); `properties` apply after ours.
    pub fn new(
        brokers: &str,
        properties: &BTreeMap<String, String>,
        topic: &str,
    ) -> Result<Self, StateTopicError> {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", brokers)
            .set("enable.idempotence", "true")
            .set("compression.type", "lz4")
            .set("linger.ms", "5");
        for (k, v) in properties {
            if !crate::sink::kafka::is_consumer_only(k) {
                config.set(k, v);
            }
        }
        let producer = config
            .create_with_context(Deliveries::default())
            .map_err(StateTopicError::Create)?;
        Ok(Self {
            producer,
            topic: topic.to_string(),
            next_seq: AtomicU64::new(1),
        })
    }

    /// Queues a record (None: a tombstone) for partition 0, waiting while
    /// librdkafka's queue is full; returns its sequence number.
    pub fn send(&self, key: &str, value: Option<&[u8]>) -> Result<u64, StateTopicError> {
        let seq = self.next_seq.fetch_add(1, Relaxed);
        let context = self.producer.context();
        context.lock().in_flight.insert(seq);
        let mut record = BaseRecord::<str, [u8], usize>::with_opaque_to(&self.topic, seq as usize)
            .key(key)
            .partition(0);
        if let Some(v) = value {
            record = record.payload(v);
        }
        loop {
            match self.producer.send(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    record = back;
                    std::thread::sleep(QUEUE_FULL_BACKOFF);
                }
                Err((error, _)) => {
                    context.lock().in_flight.remove(&seq);
                    return Err(StateTopicError::Produce(error));
                }
            }
        }
        let size = key.len() + value.map_or(0, <[u8]>::len);
        context.bytes.fetch_add(size as u64, Relaxed);
        context.records.fetch_add(1, Relaxed);
        Ok(seq)
    }

    /// The sequence number of the last record sent (0: none).
    pub fn last_sent(&self) -> u64 {
        self.next_seq.load(Relaxed) - 1
    }

    /// What became of every record sent up to `upto`.
    pub fn settled(&self, upto: u64) -> Settled {
        let f = self.producer.context().lock();
        if f.in_flight.range(..=upto).next().is_some() {
            Settled::Pending
        } else if f.failed.range(..=upto).next().is_some() {
            Settled::Failed
        } else {
            Settled::Delivered
        }
    }

    /// Waits until every record up to `upto` is answered, or `timeout` passes.
    pub fn wait_settled(&self, upto: u64, timeout: Duration) -> Settled {
        let deadline = Instant::now() + timeout;
        let context = self.producer.context();
        let mut f = context.lock();
        loop {
            if f.in_flight.range(..=upto).next().is_none() {
                break;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Settled::Pending;
            }
            f = context
                .settled
                .wait_timeout(f, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        drop(f);
        self.settled(upto)
    }

    /// Whether a delivery failed since the last call: the member must publish all its
    /// states again (then [`StatePublisher::republished_from`]).
    pub fn take_failure_news(&self) -> bool {
        std::mem::take(&mut self.producer.context().lock().failure_news)
    }

    /// Every state was published again from sequence number `seq` on: failures before
    /// it no longer block commits.
    pub fn republished_from(&self, seq: u64) {
        let mut f = self.producer.context().lock();
        f.failed = f.failed.split_off(&seq);
    }

    /// Bytes (keys and values) and records handed to the producer so far.
    pub fn published(&self) -> (u64, u64) {
        let c = self.producer.context();
        (c.bytes.load(Relaxed), c.records.load(Relaxed))
    }

    /// Waits until everything queued is acknowledged, up to `timeout`.
    pub fn flush(&self, timeout: Duration) -> Settled {
        self.wait_settled(self.last_sent(), timeout)
    }

    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// The producer's client (metadata requests).
    pub fn client(&self) -> &rdkafka::client::Client<Deliveries> {
        self.producer.client()
    }
}
