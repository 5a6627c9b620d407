//! What the rebalance callback needs from the state topic, kept by the reader as it
//! reads: each partition's newest state (where an assigned partition resumes), and
//! the fences read back. Shared between threads; waiters are woken at every record.

use std::collections::BTreeMap;
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use gmm_model::group::{PartitionKey, PartitionState};

/// A partition's newest state and who published it when.
#[derive(Clone, Debug)]
pub struct Indexed {
    pub state: PartitionState,
    pub publisher: String,
    pub published_ms: u64,
}

#[derive(Default)]
pub struct IndexData {
    pub partitions: BTreeMap<PartitionKey, Indexed>,
    /// Fences read back: member → nonce.
    pub fences: BTreeMap<String, u64>,
    /// Records read so far (this run).
    pub records: u64,
    /// Bytes of record values read so far.
    pub bytes: u64,
    /// The next offset of the state topic's partition 0 to read.
    pub next_offset: i64,
}

#[derive(Default)]
pub struct StateIndex {
    data: Mutex<IndexData>,
    changed: Condvar,
}

impl StateIndex {
    pub fn lock(&self) -> MutexGuard<'_, IndexData> {
        self.data.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `update` and wakes the waiters.
    pub fn update(&self, update: impl FnOnce(&mut IndexData)) {
        update(&mut self.lock());
        self.changed.notify_all();
    }

    /// Waits until `done` holds, or `timeout` passes; returns whether it held.
    pub fn wait_for(&self, timeout: Duration, mut done: impl FnMut(&IndexData) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        let mut data = self.lock();
        loop {
            if done(&data) {
                return true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            data = self
                .changed
                .wait_timeout(data, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    /// A partition's newest known state.
    pub fn state(&self, key: &PartitionKey) -> Option<Indexed> {
        self.lock().partitions.get(key).cloned()
    }
}
