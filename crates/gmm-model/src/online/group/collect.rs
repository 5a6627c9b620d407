//! Collections of points for a fit on the whole group's data: the warm-up (before
//! the group has a model) and the refit after an abrupt change.
//!
//! Each member buffers the points of its partitions and publishes the start of its
//! buffer as a [`Sample`]. A member that holds, in its own buffer and the samples of the
//! others, as many points as the warm-up needs fits on their union and proposes the
//! result. A fit on one member's points alone would describe only the clusters of its
//! partitions. The winning proposal names the samples it used; each member then absorbs
//! the rest of its buffer itself, so that every point is in the statistics once.

use super::partition::PartitionKey;
use crate::linalg::Points;

/// The start of a member's buffer, as published.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    pub member: String,
    /// The collection: 0 for the warm-up, else the epoch whose change started it.
    pub purpose: u64,
    pub n_features: usize,
    /// Row-major points.
    pub points: Vec<f64>,
}

impl Sample {
    pub fn len(&self) -> usize {
        self.points.len().checked_div(self.n_features).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Points of one partition, buffered in arrival order.
#[derive(Clone, Debug)]
pub(super) struct BufferedRun {
    /// Identifies the run to the caller, which keeps its records' origins.
    pub seq: u64,
    pub key: PartitionKey,
    /// Row-major.
    pub values: Vec<f64>,
    /// The partition was given up: its next owner reads these points again, so they
    /// are never absorbed here (they stay in the buffer, which samples index by point).
    pub dropped: bool,
}

/// A member's buffer for one collection.
#[derive(Clone, Debug)]
pub(super) struct Collection {
    pub purpose: u64,
    pub runs: Vec<BufferedRun>,
    pub points: usize,
    pub n_features: Option<usize>,
    /// Points buffered at most (None: all, as the warm-up must).
    pub cap: Option<usize>,
    /// Points in the sample last handed out for publishing.
    pub published: usize,
}

impl Collection {
    pub fn new(purpose: u64, cap: Option<usize>) -> Self {
        Self {
            purpose,
            runs: Vec::new(),
            points: 0,
            n_features: None,
            cap,
            published: 0,
        }
    }

    /// Buffers a run's points (all, or as many as the cap leaves room for).
    pub fn push(&mut self, seq: u64, key: &PartitionKey, x: Points<'_>) {
        let room = self
            .cap
            .map_or(usize::MAX, |c| c.saturating_sub(self.points));
        let n = x.ncols().min(room);
        if n == 0 {
            return;
        }
        self.n_features = Some(x.nrows());
        // Columns of x are points: column-major d×n is row-major n×d.
        let values = x.columns(0, n).iter().copied().collect();
        self.runs.push(BufferedRun {
            seq,
            key: key.clone(),
            values,
            dropped: false,
        });
        self.points += n;
    }

    /// The first `cap` points, as this member's sample.
    pub fn sample(&self, member: &str, cap: usize) -> Sample {
        let d = self.n_features.unwrap_or(1);
        let mut points = Vec::with_capacity(cap.min(self.points) * d);
        for run in &self.runs {
            let room = cap * d - points.len();
            if room == 0 {
                break;
            }
            points.extend_from_slice(&run.values[..run.values.len().min(room)]);
        }
        Sample {
            member: member.to_string(),
            purpose: self.purpose,
            n_features: d,
            points,
        }
    }

    /// The buffered points from point `from` on, run by run: (seq, key, row-major
    /// points), for absorbing what a fit did not use. Dropped runs are left out.
    pub fn after_point(&self, from: usize) -> Vec<(u64, &PartitionKey, &[f64])> {
        let d = self.n_features.unwrap_or(1);
        let mut skip = from * d;
        let mut out = Vec::new();
        for run in &self.runs {
            if skip >= run.values.len() {
                skip -= run.values.len();
                continue;
            }
            if !run.dropped {
                out.push((run.seq, &run.key, &run.values[skip..]));
            }
            skip = 0;
        }
        out
    }
}

/// The union of this member's buffer and the others' samples, in member order (so
/// that any member holding the same samples fits the same points), with the points
/// used of each.
pub(super) fn union(
    member: &str,
    own: &Collection,
    others: &std::collections::BTreeMap<String, Sample>,
) -> (Vec<f64>, Vec<(String, u64)>) {
    let own_sample = own.sample(member, own.points);
    let mut all: Vec<&Sample> = others.values().filter(|s| s.member != member).collect();
    all.push(&own_sample);
    all.sort_by(|a, b| a.member.cmp(&b.member));
    let mut points = Vec::new();
    let mut used = Vec::new();
    for s in all {
        if s.is_empty() {
            continue;
        }
        points.extend_from_slice(&s.points);
        used.push((s.member.clone(), s.len() as u64));
    }
    (points, used)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::linalg::points_from_rows;

    #[test]
    fn samples_are_the_start_of_the_buffer_and_the_rest_is_found_by_point() {
        let mut c = Collection::new(0, None);
        let a = PartitionKey::new("t", 0);
        let b = PartitionKey::new("t", 1);
        c.push(
            0,
            &a,
            points_from_rows(&[1.0, 1.0, 2.0, 2.0], 2).expect("x"),
        );
        c.push(
            1,
            &b,
            points_from_rows(&[3.0, 3.0, 4.0, 4.0, 5.0, 5.0], 2).expect("x"),
        );
        assert_eq!(c.points, 5);
        let s = c.sample("m", 3);
        assert_eq!(s.points, vec![1.0, 1.0, 2.0, 2.0, 3.0, 3.0]);
        assert_eq!(s.len(), 3);
        let rest = c.after_point(3);
        assert_eq!(rest.len(), 1);
        assert_eq!(rest[0].0, 1);
        assert_eq!(rest[0].2, &[4.0, 4.0, 5.0, 5.0]);
        assert_eq!(c.after_point(0).len(), 2);
        assert!(c.after_point(5).is_empty());
        c.runs[0].dropped = true;
        let rest = c.after_point(1);
        assert_eq!(
            rest.len(),
            1,
            "a dropped run still counts towards the prefix"
        );
        assert_eq!(rest[0].2, &[3.0, 3.0, 4.0, 4.0, 5.0, 5.0]);
    }

    #[test]
    fn a_capped_buffer_keeps_its_first_points() {
        let mut c = Collection::new(3, Some(2));
        let a = PartitionKey::new("t", 0);
        c.push(0, &a, points_from_rows(&[1.0, 2.0, 3.0], 1).expect("x"));
        c.push(1, &a, points_from_rows(&[4.0], 1).expect("x"));
        assert_eq!(c.points, 2);
        assert_eq!(c.runs.len(), 1);
    }

    #[test]
    fn the_union_is_in_member_order_whoever_builds_it() {
        let a = PartitionKey::new("t", 0);
        let mut mine = Collection::new(0, None);
        mine.push(0, &a, points_from_rows(&[2.0], 1).expect("x"));
        let mut others = std::collections::BTreeMap::new();
        for (m, v) in [("c", 3.0), ("a", 1.0)] {
            others.insert(
                m.to_string(),
                Sample {
                    member: m.into(),
                    purpose: 0,
                    n_features: 1,
                    points: vec![v],
                },
            );
        }
        let (points, used) = union("b", &mine, &others);
        assert_eq!(points, vec![1.0, 2.0, 3.0]);
        assert_eq!(
            used,
            vec![("a".to_string(), 1), ("b".into(), 1), ("c".into(), 1)]
        );
    }
}
