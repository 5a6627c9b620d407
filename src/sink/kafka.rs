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

#[derive(Debug, Error)]
pub enum KafkaSinkError {
    #[error("cannot create the Kafka producer: {0}")]
    Create(KafkaError),
    #[error("cannot produce to topic {topic}: {error}")]
    Produce { topic: String, error: KafkaError },
    #[error("cannot flush the Kafka producer: {0}")]
    Flush(KafkaError),
    #[error("{0} messages could not be delivered to Kafka")]
    Undelivered(u64),
    #[error("cannot reach the Kafka brokers {brokers}: {error}")]
    Unreachable { brokers: String, error: KafkaError },
    #[error("these Kafka topics do not exist: {}; create them first (gmm-stream never relies on auto-creation)", .0.join(", "))]
    MissingTopics(Vec<String>),
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
    failed_seen: u64,
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
            failed_seen: 0,
            flush_warn_after: Duration::from_secs(10),
        })
    }

    /// Fails, listing them, if any of `topics` does not exist.
    pub fn check_topics(&self, brokers: &str, topics: &[String]) -> Result<(), KafkaSinkError> {
        let metadata = self
            .producer
            .client()
            .fetch_metadata(None, Duration::from_secs(15))
            .map_err(|error| KafkaSinkError::Unreachable {
                brokers: brokers.to_string(),
                error,
            })?;
        let missing = crate::kafka::missing_topics(&metadata, topics);
        if missing.is_empty() {
            Ok(())
        } else {
            Err(KafkaSinkError::MissingTopics(missing))
        }
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
    pub fn flush(&mut self) -> Result<(), KafkaSinkError> {
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
        let new = failed - self.failed_seen;
        self.failed_seen = failed;
        if new > 0 {
            return Err(KafkaSinkError::Undelivered(new));
        }
        Ok(())
    }
}

/// Headers of a dead letter: why, and where the record came from.
pub fn dead_letter_headers(
    reason: &str,
    detail: &str,
    origin: Option<(&str, i32, i64)>,
) -> OwnedHeaders {
    let mut headers = OwnedHeaders::new()
        .insert(Header {
            key: "reason",
            value: Some(reason),
        })
        .insert(Header {
            key: "detail",
            value: Some(detail),
        });
    if let Some((topic, partition, offset)) = origin {
        let (p, o) = (partition.to_string(), offset.to_string());
        headers = headers
            .insert(Header {
                key: "source_topic",
                value: Some(topic),
            })
            .insert(Header {
                key: "source_partition",
                value: Some(p.as_str()),
            })
            .insert(Header {
                key: "source_offset",
                value: Some(o.as_str()),
            });
    }
    headers
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
