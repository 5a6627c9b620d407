//! One input partition's share of the group's statistics, as its owner publishes it.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::covariance::CovarianceType;
use crate::stats::SufficientStats;

/// An input partition: topic and partition number.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct PartitionKey {
    pub topic: String,
    pub partition: i32,
}

impl PartitionKey {
    pub fn new(topic: impl Into<String>, partition: i32) -> Self {
        Self {
            topic: topic.into(),
            partition,
        }
    }
}

impl fmt::Display for PartitionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}[{}]", self.topic, self.partition)
    }
}

/// A partition's decayed statistics with the position they reflect: the points before
/// `next_offset` are in `stats` (and in `points`), those from it on are not. One value,
/// so that statistics and position never disagree.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PartitionState {
    pub key: PartitionKey,
    /// The structure epoch the statistics' component indices refer to.
    pub epoch: u64,
    /// The offset of the next record to read; -1 before any was read.
    pub next_offset: i64,
    /// Points absorbed from the partition since the group's model was born (never
    /// decayed): the partition's share of the group's points clock.
    pub points: u64,
    /// The partition's share of the group's batches (each batch is shared among its
    /// partitions in proportion to their points).
    pub batches: f64,
    /// The clock reading `stats` are expressed at.
    pub clock: f64,
    pub stats: SufficientStats,
}

impl PartitionState {
    /// A partition with nothing absorbed yet.
    pub fn empty(
        key: PartitionKey,
        epoch: u64,
        clock: f64,
        covariance_type: CovarianceType,
        n_components: usize,
        n_features: usize,
    ) -> Self {
        Self {
            key,
            epoch,
            next_offset: -1,
            points: 0,
            batches: 0.0,
            clock,
            stats: SufficientStats::new(covariance_type, n_components, n_features),
        }
    }
}
