//! The Kafka outputs: score records, dead letters and snapshots, through one
//! idempotent producer (no duplicates from its own retries, order kept per
//! partition).
//!
//! `send` waits for room when librdkafka's queue is full (the output thread then
//! blocks and the pipeline slows down) rather than dropping. `flush` waits for
//! every message to be acknowledged; the daemon flushes before it commits source
//! offsets, so a committed offset never runs ahead of the outputs of its points.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::ClientContext;
use thiserror::Error;

use super::KafkaMessage;
use crate::kafka::{check_topics, TopicsError};

#[derive(Debug, Error)]
pub enum KafkaSinkError {
    #[error("cannot create the Kafka producer")]
    Create(#[source] KafkaError),
    #[error("cannot produce to topic {topic}")]
    Produce {
        topic: String,
        #[source]
        error: KafkaError,
    },
    #[error("cannot flush the Kafka producer")]
    Flush(#[source] KafkaError),
    #[error("{0} messages could not be delivered to Kafka")]
    Undelivered(u64),
    #[error(transparent)]
    Topics(#[from] TopicsError),
}

impl KafkaSinkError {
    /// The settings are at fault (exit status 2), not the system.
    pub fn is_bad_input(&self) -> bool {
        matches!(self, Self::Topics(TopicsError::Missing(_)))
    }
}

/// Counts deliveries that failed for good (after librdkafka's own retries).
#[derive(Default)]
pub struct DeliveryCounter {
    failed: AtomicU64,
}

impl ClientContext for DeliveryCounter {}

impl ProducerContext for DeliveryCounter {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: Self::DeliveryOpaque) {
        if let Err((error, message)) = result {
            self.failed.fetch_add(1, Relaxed);
            tracing::error!(topic = %rdkafka::Message::topic(message), %error, "a Kafka message was not delivered");
        }
    }
}

/// How long to wait for a full producer queue before trying again.
const QUEUE_FULL_BACKOFF: Duration = Duration::from_millis(20);

pub struct KafkaSink {
    producer: ThreadedProducer<DeliveryCounter>,
    /// Failures already reported by a previous flush.
    failed_seen: AtomicU64,
    /// How long a flush waits before it says that it is still waiting.
    pub flush_warn_after: Duration,
}

impl KafkaSink {
    /// A producer for `brokers`, with librdkafka `properties` applied after our
    /// defaults (so they can override them).
    pub fn new(
        brokers: &str,
        properties: &BTreeMap<String, String>,
    ) -> Result<Self, KafkaSinkError> {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", brokers)
            .set("enable.idempotence", "true")
            .set("compression.type", "lz4")
            .set("linger.ms", "5");
        for (k, v) in properties {
            if !is_consumer_only(k) {
                config.set(k, v);
            }
        }
        let producer = config
            .create_with_context(DeliveryCounter::default())
            .map_err(KafkaSinkError::Create)?;
        Ok(Self {
            producer,
            failed_seen: AtomicU64::new(0),
            flush_warn_after: Duration::from_secs(10),
        })
    }

    /// Fails, listing them, if any of `topics` does not exist.
    pub fn check_topics(&self, brokers: &str, topics: &[String]) -> Result<(), KafkaSinkError> {
        Ok(check_topics(self.producer.client(), brokers, topics)?)
    }

    /// Queues one message of a sink (see [`KafkaSink::send`]).
    pub fn send_message(
        &self,
        topic: &str,
        message: &KafkaMessage<'_>,
    ) -> Result<(), KafkaSinkError> {
        let headers = (!message.headers.is_empty()).then(|| {
            message
                .headers
                .iter()
                .fold(OwnedHeaders::new(), |headers, (key, value)| {
                    headers.insert(Header {
                        key,
                        value: Some(value.as_ref()),
                    })
                })
        });
        let key = message.key.as_deref().map(str::as_bytes);
        self.send(topic, key, message.payload, headers)
    }

    /// Queues one message, waiting while librdkafka's queue is full.
    pub fn send(
        &self,
        topic: &str,
        key: Option<&[u8]>,
        payload: &[u8],
        headers: Option<OwnedHeaders>,
    ) -> Result<(), KafkaSinkError> {
        let mut record = BaseRecord::to(topic).payload(payload);
        if let Some(k) = key {
            record = record.key(k);
        }
        if let Some(h) = headers {
            record = record.headers(h);
        }
        loop {
            match self.producer.send(record) {
                Ok(()) => return Ok(()),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    record = back;
                    std::thread::sleep(QUEUE_FULL_BACKOFF);
                }
                Err((error, _)) => {
                    return Err(KafkaSinkError::Produce {
                        topic: topic.to_string(),
                        error,
                    })
                }
            }
        }
    }

    /// Waits until every queued message is acknowledged; fails if some could not
    /// be delivered since the last flush.
    ///
    /// A broker outage stalls the pipeline here (nothing is committed meanwhile)
    /// rather than ending the run: librdkafka retries each message until its
    /// `message.timeout.ms` (default 5 minutes), after which it counts as failed.
    pub fn flush(&self) -> Result<(), KafkaSinkError> {
        let started = Instant::now();
        loop {
            match self.producer.flush(self.flush_warn_after) {
                Ok(()) => break,
                Err(KafkaError::Flush(RDKafkaErrorCode::OperationTimedOut)) => {
                    tracing::warn!(
                        waiting = ?started.elapsed(),
                        unacknowledged = self.producer.in_flight_count(),
                        "Kafka has not acknowledged every message yet (is the broker reachable?); still waiting"
                    );
                }
                Err(error) => return Err(KafkaSinkError::Flush(error)),
            }
        }
        let failed = self.producer.context().failed.load(Relaxed);
        let new = failed.saturating_sub(self.failed_seen.swap(failed, Relaxed));
        if new > 0 {
            return Err(KafkaSinkError::Undelivered(new));
        }
        Ok(())
    }
}

/// Properties meant for the consumer (librdkafka's CONFIGURATION.md marks them
/// `C`), which the producer would warn about.
pub(crate) fn is_consumer_only(key: &str) -> bool {
    key.starts_with("group.")
        || key.starts_with("auto.offset.")
        || key.starts_with("enable.auto.")
        || key.starts_with("auto.commit")
        || key.starts_with("fetch.")
        || key.starts_with("session.timeout")
        || key.starts_with("heartbeat.")
        || key.starts_with("coordinator.query")
        || key.starts_with("max.poll")
        || key.starts_with("max.partition.fetch")
        || key.starts_with("partition.assignment")
        || key.starts_with("queued.")
        || key.starts_with("offset.store")
        || key == "isolation.level"
        || key == "check.crcs"
        || key == "enable.partition.eof"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consumer_properties_are_kept_from_the_producer() {
        for key in [
            "group.instance.id",
            "session.timeout.ms",
            "heartbeat.interval.ms",
            "max.poll.interval.ms",
            "queued.min.messages",
            "fetch.wait.max.ms",
            "max.partition.fetch.bytes",
            "enable.partition.eof",
        ] {
            assert!(is_consumer_only(key), "{key}");
        }
        for key in [
            "bootstrap.servers",
            "security.protocol",
            "sasl.mechanism",
            "message.max.bytes",
            "linger.ms",
            "client.id",
        ] {
            assert!(!is_consumer_only(key), "{key}");
        }
    }
}
