//! Committing offsets after durable snapshots, and retrying failed commits.

use std::sync::Arc;

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};

use gmm_io::KafkaOffsets;

use super::context::{locked, SourceContext};
use super::DurablePositions;

/// Commits offsets to the group once the snapshot holding them is durable, for
/// partitions still assigned; records them as where a reassigned partition starts.
pub struct KafkaCommitter {
    pub consumer: Arc<BaseConsumer<SourceContext>>,
    pub durable: DurablePositions,
}

impl KafkaCommitter {
    pub fn commit(&self, positions: &KafkaOffsets) {
        locked(&self.durable).extend(positions);
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
    positions: &KafkaOffsets,
) -> Option<TopicPartitionList> {
    let assigned = consumer.assignment().ok()?;
    let mut tpl = TopicPartitionList::new();
    for e in assigned.elements() {
        if let Some(offset) = positions.get(e.topic(), e.partition()) {
            let _ = tpl.add_partition_offset(e.topic(), e.partition(), Offset::Offset(offset));
        }
    }
    (tpl.count() > 0).then_some(tpl)
}

/// Commits again the offsets whose commit failed, unless a commit is under way
/// (it supersedes them).
pub(super) fn retry_failed_commit(consumer: &BaseConsumer<SourceContext>) {
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
