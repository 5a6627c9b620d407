//! The input partitions this member owns, as the rebalance callback sets them, each
//! with the state it resumes from. The callback decides where an assigned partition
//! starts (its newest state record's next offset); the group stage takes the same
//! state as the partition's statistics, so that statistics and position agree.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use gmm_model::group::{PartitionKey, PartitionState};

use super::StateIndex;

/// A partition assigned to this member.
#[derive(Clone, Debug)]
pub struct Assigned {
    /// Grows with every assignment: a partition revoked and assigned again between
    /// two looks of the group stage is told apart from one that stayed.
    pub generation: u64,
    /// The state it resumes from (None: from the group's committed offset or
    /// `auto.offset.reset`, with empty statistics).
    pub start: Option<PartitionState>,
}

#[derive(Default)]
struct Owned {
    next_generation: u64,
    partitions: BTreeMap<PartitionKey, Assigned>,
}

pub struct Assignment {
    index: Arc<StateIndex>,
    /// How long an assignment waits for the previous owner's last state.
    wait: Duration,
    owned: Mutex<Owned>,
    /// Grows at every change of the owned partitions.
    version: AtomicU64,
}

impl Assignment {
    pub fn new(index: Arc<StateIndex>, wait: Duration) -> Self {
        Self {
            index,
            wait,
            owned: Mutex::new(Owned::default()),
            version: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Owned> {
        self.owned.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Changes whenever the owned partitions may have changed.
    pub fn version(&self) -> u64 {
        self.version.load(SeqCst)
    }

    /// Takes `partitions` on, each with the group's committed offset (if any), and
    /// returns where each starts: its newest state's next offset, else the committed
    /// offset. Offsets are committed only once the states holding them are
    /// acknowledged, so a state at least as far as the committed offset is the
    /// previous owner's last record: it is waited for (up to the configured wait),
    /// then the newest state known serves (self-consistent, so nothing is counted
    /// twice; the points after it are read again).
    pub fn assign(
        &self,
        partitions: &[(PartitionKey, Option<i64>)],
    ) -> Vec<(PartitionKey, Option<i64>)> {
        let caught_up = |d: &super::IndexData| {
            partitions.iter().all(|(key, committed)| match committed {
                None => true,
                Some(c) => d
                    .partitions
                    .get(key)
                    .is_some_and(|i| i.state.next_offset >= *c),
            })
        };
        if !self.index.wait_for(self.wait, caught_up) {
            tracing::warn!(
                waited = ?self.wait,
                "the state topic holds no state of some assigned partitions as far as the group's committed offsets: resuming from the newest states known (the points after them are read again)"
            );
        }
        let index = self.index.lock();
        let mut owned = self.lock();
        let starts = partitions
            .iter()
            .map(|(key, committed)| {
                let start = index.partitions.get(key).map(|i| i.state.clone());
                let offset = start.as_ref().map(|s| s.next_offset).or(*committed);
                owned.next_generation += 1;
                let generation = owned.next_generation;
                owned
                    .partitions
                    .insert(key.clone(), Assigned { generation, start });
                (key.clone(), offset)
            })
            .collect();
        drop(owned);
        self.version.fetch_add(1, SeqCst);
        starts
    }

    /// Gives `keys` up (before the pipeline is flushed for the revocation).
    pub fn revoke(&self, keys: &[PartitionKey]) {
        let mut owned = self.lock();
        for key in keys {
            owned.partitions.remove(key);
        }
        drop(owned);
        self.version.fetch_add(1, SeqCst);
    }

    pub fn revoke_all(&self) {
        self.lock().partitions.clear();
        self.version.fetch_add(1, SeqCst);
    }

    /// The partitions owned now.
    pub fn current(&self) -> BTreeMap<PartitionKey, Assigned> {
        self.lock().partitions.clone()
    }
}
