//! The consumer's context: librdkafka's callbacks (rebalances, statistics, global
//! errors), run on the polling thread inside `poll`.

use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, RebalanceProtocol};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::types::RDKafkaRespErr;
use rdkafka::ClientContext;
use tokio::sync::mpsc;

use super::{DurablePositions, COMMITTED_TIMEOUT, FLUSH_TIMEOUT};
use crate::source::chunk::{Chunk, SourceMsg};
use crate::state_topic::Assignment;
use crate::telemetry::metrics;
use gmm_io::KafkaOffsets;
use gmm_model::group::PartitionKey;

/// The chunk being assembled, shared with the rebalance callback (which runs on
/// the polling thread, inside `poll`).
pub(super) struct Link {
    pub(super) tx: mpsc::Sender<SourceMsg>,
    pub(super) pending: Chunk,
}

pub struct SourceContext {
    durable: DurablePositions,
    pub(super) link: Mutex<Option<Link>>,
    /// Offsets whose commit failed and that no later commit has superseded:
    /// retried by the polling thread, so that a quiet stream's lag still reaches
    /// zero. Held while committing, so that commits never go backwards.
    pub(super) failed_commit: Mutex<Option<KafkaOffsets>>,
    /// True while no broker can be reached (readiness reports it).
    pub(super) brokers_down: Arc<AtomicBool>,
    /// With a state topic: partitions resume from their newest states, and the
    /// group stage learns what this member owns (docs/scale-out.md).
    group: Option<Arc<Assignment>>,
}

impl SourceContext {
    pub(super) fn new(
        durable: DurablePositions,
        brokers_down: Arc<AtomicBool>,
        group: Option<Arc<Assignment>>,
    ) -> Self {
        Self {
            durable,
            link: Mutex::new(None),
            failed_commit: Mutex::new(None),
            brokers_down,
            group,
        }
    }
}

/// Locks `mutex`, going on after a panic elsewhere: every holder leaves the data
/// whole between statements, and the snapshot, not this state, is the truth.
pub(super) fn locked<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
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
                    metrics::record_consumer_lag(topic, *partition, p.consumer_lag);
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
                match &self.group {
                    Some(group) => group_start_offsets(group, consumer, tpl),
                    None => self.set_start_offsets(consumer, tpl),
                }
                tracing::info!(partitions = %describe(tpl), "partitions assigned");
                if cooperative {
                    consumer.incremental_assign(tpl)
                } else {
                    consumer.assign(tpl)
                }
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                let partitions = describe(tpl);
                tracing::info!(%partitions, "partitions revoked: absorbing, snapshotting and committing first");
                if let Some(group) = &self.group {
                    group.revoke(&keys(tpl));
                }
                self.flush_pipeline();
                let result = if cooperative {
                    consumer.incremental_unassign(tpl)
                } else {
                    consumer.unassign()
                };
                tracing::info!(%partitions, "partitions given up");
                result
            }
            other => {
                tracing::error!(error = ?other, "rebalance failed");
                if let Some(group) = &self.group {
                    group.revoke_all();
                }
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
                let offset = durable.get(e.topic(), e.partition())?;
                Some((e.topic().to_string(), e.partition(), offset))
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
                let pending = failed.get_or_insert_with(KafkaOffsets::new);
                pending.remove(&topic, partition);
                if group.is_none_or(|c| c < snapshot) {
                    pending.set(&topic, partition, snapshot);
                }
            }
            if let Err(e) = tpl.set_partition_offset(&topic, partition, Offset::Offset(offset)) {
                tracing::warn!(topic, partition, offset, error = %e, "cannot set the start offset");
            }
        }
        if failed.as_ref().is_some_and(KafkaOffsets::is_empty) {
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

fn keys(tpl: &TopicPartitionList) -> Vec<PartitionKey> {
    tpl.elements()
        .iter()
        .map(|e| PartitionKey::new(e.topic(), e.partition()))
        .collect()
}

/// Each assigned partition starts at its newest state record's next offset, else at
/// the group's committed offset, else at `auto.offset.reset`.
fn group_start_offsets(
    group: &Assignment,
    consumer: &BaseConsumer<SourceContext>,
    tpl: &mut TopicPartitionList,
) {
    let committed = match consumer.committed_offsets(tpl.clone(), COMMITTED_TIMEOUT) {
        Ok(c) => Some(c),
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the group's committed offsets; resuming from the state topic's records alone");
            None
        }
    };
    let partitions: Vec<(PartitionKey, Option<i64>)> = keys(tpl)
        .into_iter()
        .map(|key| {
            let c = committed
                .as_ref()
                .and_then(|c| c.find_partition(&key.topic, key.partition))
                .and_then(|e| match e.offset() {
                    Offset::Offset(o) => Some(o),
                    _ => None,
                });
            (key, c)
        })
        .collect();
    for (key, start) in group.assign(&partitions) {
        let Some(offset) = start else { continue };
        tracing::info!(
            topic = key.topic,
            partition = key.partition,
            offset,
            "resuming the partition"
        );
        if let Err(e) = tpl.set_partition_offset(&key.topic, key.partition, Offset::Offset(offset))
        {
            tracing::warn!(topic = key.topic, partition = key.partition, offset, error = %e, "cannot set the start offset");
        }
    }
}

fn describe(tpl: &TopicPartitionList) -> String {
    tpl.elements()
        .iter()
        .map(|e| format!("{}[{}]", e.topic(), e.partition()))
        .collect::<Vec<_>>()
        .join(", ")
}
