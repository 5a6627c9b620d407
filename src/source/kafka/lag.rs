//! Consumer lag of every partition of the input topics, owned by this member or
//! not: the group's committed offset against the partition's end. librdkafka's
//! statistics cover only the partitions a consumer fetches, so a partition that no
//! member owns (a rebalance gone wrong) would show no lag at all; here its lag grows.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use tokio_util::sync::CancellationToken;

use crate::telemetry::metrics;

/// How often the lag is measured.
const EVERY: Duration = Duration::from_secs(10);
const TIMEOUT: Duration = Duration::from_secs(5);

/// Measures the lag every [`EVERY`] on a thread of its own until `cancel`.
pub fn watch(
    brokers: &str,
    group_id: &str,
    properties: &BTreeMap<String, String>,
    topics: &[String],
    cancel: CancellationToken,
) {
    let mut config = ClientConfig::new();
    for (k, v) in properties {
        // Never a member of the group: it only reads the group's offsets.
        if !k.starts_with("group.") {
            config.set(k, v);
        }
    }
    config
        .set("bootstrap.servers", brokers)
        .set("group.id", group_id)
        .set("enable.auto.commit", "false");
    let consumer: BaseConsumer = match config.create() {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(error = %e, "cannot create the consumer lag watcher; lag is reported for owned partitions only");
            return;
        }
    };
    let topics = topics.to_vec();
    let spawned = std::thread::Builder::new()
        .name("gmm-stream-lag".into())
        .spawn(move || {
            let mut last: Option<Instant> = None;
            while !cancel.is_cancelled() {
                if last.is_none_or(|t| t.elapsed() >= EVERY) {
                    measure(&consumer, &topics);
                    last = Some(Instant::now());
                }
                std::thread::sleep(Duration::from_millis(200));
            }
        });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "cannot start the consumer lag watcher");
    }
}

fn measure(consumer: &BaseConsumer, topics: &[String]) {
    let mut tpl = TopicPartitionList::new();
    for topic in topics {
        let Ok(metadata) = consumer.fetch_metadata(Some(topic), TIMEOUT) else {
            return;
        };
        for t in metadata.topics() {
            for p in t.partitions() {
                tpl.add_partition(t.name(), p.id());
            }
        }
    }
    let Ok(committed) = consumer.committed_offsets(tpl, TIMEOUT) else {
        return;
    };
    for e in committed.elements() {
        let Ok((low, high)) = consumer.fetch_watermarks(e.topic(), e.partition(), TIMEOUT) else {
            continue;
        };
        let from = match e.offset() {
            Offset::Offset(o) => o,
            _ => low,
        };
        metrics::record_consumer_lag(e.topic(), e.partition(), (high - from).max(0));
    }
}
