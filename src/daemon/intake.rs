//! A group member's intake: the points read, per partition, until the estimator
//! takes them. While the group collects points for a fit (the warm-up, a refit) each
//! member's published sample is the start of its buffer, and a consumer hands points
//! over partition by partition in fetch-sized chunks: fed as they arrive, a member's
//! sample could hold one of its partitions only. So points are handed on
//! round-robin over the partitions, a few at a time; otherwise all at once. Within a
//! partition the order is kept, and a partition's position moves only past whole
//! records, so that a state published meanwhile never claims a record whose points
//! wait here.

use std::collections::{BTreeMap, BTreeSet};

use super::batcher::Batch;
use crate::source::chunk::Origin;
use gmm_model::group::PartitionKey;

#[derive(Default)]
struct Queue {
    /// Row-major points.
    values: Vec<f64>,
    origins: Vec<Origin>,
    /// The point is its record's last.
    record_end: Vec<bool>,
    /// Points already handed on.
    head: usize,
}

impl Queue {
    fn len(&self) -> usize {
        self.origins.len() - self.head
    }

    fn compact(&mut self, d: usize) {
        if self.head > 0 && self.head * 2 >= self.origins.len() {
            self.values.drain(..self.head * d);
            self.origins.drain(..self.head);
            self.record_end.drain(..self.head);
            self.head = 0;
        }
    }
}

/// Consecutive points of one partition in a round.
pub struct Piece {
    pub key: PartitionKey,
    /// Columns of the round's points.
    pub start: usize,
    pub end: usize,
    pub origins: Vec<Origin>,
}

/// Points handed on together.
pub struct Round {
    /// Row-major.
    pub values: Vec<f64>,
    pub d: usize,
    pub pieces: Vec<Piece>,
    /// Partitions' next offsets, past the whole records handed on.
    pub offsets: Vec<(PartitionKey, i64)>,
}

#[derive(Default)]
pub struct Intake {
    d: usize,
    queues: BTreeMap<PartitionKey, Queue>,
}

impl Intake {
    /// Points waiting.
    pub fn len(&self) -> usize {
        self.queues.values().map(Queue::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Queues a batch's points of `owned` partitions; returns how many points of
    /// other partitions were dropped (their next owners read them again).
    pub fn push(&mut self, batch: &Batch, owned: &BTreeSet<PartitionKey>) -> usize {
        let d = batch.dim();
        if d == 0 {
            return 0;
        }
        self.d = d;
        let mut dropped = 0;
        let mut start = 0;
        for mark in &batch.marks {
            let end = mark.points_end;
            if let Origin::Kafka {
                topic, partition, ..
            } = &mark.origin
            {
                if end > start {
                    let key = PartitionKey::new(topic.to_string(), *partition);
                    if owned.contains(&key) {
                        let q = self.queues.entry(key).or_default();
                        q.values
                            .extend_from_slice(&batch.values[start * d..end * d]);
                        for i in start..end {
                            q.origins.push(mark.origin.clone());
                            q.record_end.push(i + 1 == end);
                        }
                    } else {
                        dropped += end - start;
                    }
                }
            }
            start = end;
        }
        dropped
    }

    /// Forgets a partition's waiting points (it was given up).
    pub fn drop_partition(&mut self, key: &PartitionKey) {
        self.queues.remove(key);
    }

    /// Up to `per_partition` points of every partition, in partition order.
    pub fn take(&mut self, per_partition: usize) -> Option<Round> {
        let d = self.d;
        let mut round = Round {
            values: Vec::new(),
            d,
            pieces: Vec::new(),
            offsets: Vec::new(),
        };
        let mut at = 0;
        for (key, q) in &mut self.queues {
            let n = q.len().min(per_partition);
            if n == 0 {
                continue;
            }
            let (from, to) = (q.head, q.head + n);
            round.values.extend_from_slice(&q.values[from * d..to * d]);
            let offset =
                (from..to)
                    .rev()
                    .find(|&i| q.record_end[i])
                    .and_then(|i| match &q.origins[i] {
                        Origin::Kafka { offset, .. } => Some(offset + 1),
                        _ => None,
                    });
            if let Some(o) = offset {
                round.offsets.push((key.clone(), o));
            }
            round.pieces.push(Piece {
                key: key.clone(),
                start: at,
                end: at + n,
                origins: q.origins[from..to].to_vec(),
            });
            at += n;
            q.head = to;
            q.compact(d);
        }
        self.queues.retain(|_, q| q.len() > 0);
        (at > 0).then_some(round)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::chunk::RecordMark;
    use gmm_io::Positions;
    use std::sync::Arc;

    fn mark(points_end: usize, partition: i32, offset: i64) -> RecordMark {
        RecordMark {
            points_end,
            origin: Origin::Kafka {
                topic: Arc::from("t"),
                partition,
                offset,
            },
        }
    }

    #[test]
    fn points_are_handed_on_round_robin_and_positions_move_past_whole_records_only() {
        // Partition 0: records 10 (3 points) and 11 (2); partition 1: record 7 (2);
        // partition 2 is not owned.
        let batch = Batch {
            values: (0..9).map(f64::from).collect(),
            n_points: 9,
            marks: vec![mark(3, 0, 10), mark(5, 0, 11), mark(7, 1, 7), mark(9, 2, 1)],
            positions: Positions::Stdin { points: 0 },
        };
        let owned: BTreeSet<PartitionKey> =
            [0, 1].iter().map(|&p| PartitionKey::new("t", p)).collect();
        let mut intake = Intake::default();
        assert_eq!(intake.push(&batch, &owned), 2);
        assert_eq!(intake.len(), 7);
        let r = intake.take(2).expect("a round");
        assert_eq!(r.values, vec![0.0, 1.0, 5.0, 6.0]);
        // Record 10 is not whole yet; record 7 is.
        assert_eq!(r.offsets, vec![(PartitionKey::new("t", 1), 8)]);
        let r = intake.take(2).expect("a round");
        assert_eq!(r.values, vec![2.0, 3.0]);
        assert_eq!(r.offsets, vec![(PartitionKey::new("t", 0), 11)]);
        let r = intake.take(usize::MAX).expect("a round");
        assert_eq!(r.values, vec![4.0]);
        assert_eq!(r.offsets, vec![(PartitionKey::new("t", 0), 12)]);
        assert!(intake.take(2).is_none());
    }
}
