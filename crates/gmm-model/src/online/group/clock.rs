//! The group's decay clock: one reading shared by every member, so that statistics
//! published at different moments by different members can be brought to one moment
//! before they are summed.
//!
//! A single daemon multiplies its statistics by `0.5^(u/h)` before each batch, u the
//! batch's size in the half-life's unit. Spread over a group, each partition's
//! statistics are kept "as of" a clock reading `T_p` and brought to a later reading T by
//! `0.5^((T − T_p)/h)`, so that every point weighs `0.5^(elapsed/h)` whoever absorbed
//! it. The readings:
//! - `points`: the group's points, `Σ_p n_p` over the newest state of every partition;
//! - `batches`: the group's batches, `Σ_p b_p`, each batch shared among the partitions
//!   of its points in proportion to their points;
//! - `seconds`: wall-clock time (seconds since an epoch the caller chooses), the newest
//!   reading any partition was updated at.
//!
//! The first two are sums of never-decayed counts that travel with the statistics,
//! and the third a maximum of times that do, so every member that holds the same
//! records reads the same clock: on a quiet stream the members' models are equal.
//!
//! Stepwise EM has no such clock: its step `γ_t` is the position of a batch in one
//! sequence of batches (restarted after an abrupt change), which a group of members
//! cutting batches concurrently does not have.

use crate::error::{invalid, Result};
use crate::schedule::{HalfLifeUnit, Schedule};

/// How statistics kept at one clock reading are expressed at another.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GroupClock {
    pub unit: HalfLifeUnit,
    /// None: nothing is forgotten.
    pub half_life: Option<f64>,
}

impl GroupClock {
    /// The clock of a decay schedule; stepwise EM has none (see the module's doc).
    pub fn of(schedule: &Schedule) -> Result<Self> {
        match *schedule {
            Schedule::Decay { half_life, unit } => Ok(Self { unit, half_life }),
            Schedule::Stepwise { .. } => Err(invalid(
                "schedule",
                "stepwise EM cannot be shared by a group: its step follows one sequence of \
                 batches, which members cutting batches concurrently do not have; use \
                 schedule = \"decay\" with a state topic",
            )),
        }
    }

    /// The factor statistics kept at reading `from` take to be expressed at `to`,
    /// forgetting `speedup` times faster. A reading from the future (another member's
    /// clock a little ahead of this one's) is taken as now: statistics never grow.
    pub fn factor(&self, from: f64, to: f64, speedup: f64) -> f64 {
        match self.half_life {
            Some(h) => 0.5f64.powf((to - from).max(0.0) * speedup / h),
            None => 1.0,
        }
    }

    /// Half-lives between two readings (0 without a half-life).
    pub fn half_lives(&self, from: f64, to: f64) -> f64 {
        match self.half_life {
            Some(h) => (to - from).max(0.0) / h,
            None => 0.0,
        }
    }

    /// The reading after a batch of `points` absorbed at reading `before`, at wall-clock
    /// `now` (seconds).
    pub fn after_batch(&self, before: f64, points: usize, now: f64) -> f64 {
        match self.unit {
            HalfLifeUnit::Points => before + points as f64,
            HalfLifeUnit::Batches => before + 1.0,
            HalfLifeUnit::Seconds => before.max(now),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clock(unit: HalfLifeUnit, h: f64) -> GroupClock {
        GroupClock {
            unit,
            half_life: Some(h),
        }
    }

    #[test]
    fn a_half_life_later_statistics_weigh_half() {
        let c = clock(HalfLifeUnit::Points, 1000.0);
        assert!((c.factor(500.0, 1500.0, 1.0) - 0.5).abs() < 1e-15);
        assert!((c.factor(500.0, 1000.0, 2.0) - 0.5).abs() < 1e-15);
        assert_eq!(c.factor(1500.0, 500.0, 1.0), 1.0, "never grows");
        assert_eq!(c.half_lives(0.0, 2500.0), 2.5);
        let never = GroupClock {
            unit: HalfLifeUnit::Points,
            half_life: None,
        };
        assert_eq!(never.factor(0.0, 1e12, 8.0), 1.0);
    }

    #[test]
    fn readings_advance_by_the_unit() {
        assert_eq!(
            clock(HalfLifeUnit::Points, 1.0).after_batch(10.0, 5, 99.0),
            15.0
        );
        assert_eq!(
            clock(HalfLifeUnit::Batches, 1.0).after_batch(10.0, 5, 99.0),
            11.0
        );
        assert_eq!(
            clock(HalfLifeUnit::Seconds, 1.0).after_batch(10.0, 5, 99.0),
            99.0
        );
        assert_eq!(
            clock(HalfLifeUnit::Seconds, 1.0).after_batch(100.0, 5, 99.0),
            100.0,
            "a clock behind the group's does not go back"
        );
    }

    #[test]
    fn stepwise_is_refused_with_the_reason() {
        let err = GroupClock::of(&Schedule::Stepwise {
            alpha: 0.7,
            t0: 0.0,
        })
        .unwrap_err();
        assert!(err.to_string().contains("stepwise"), "{err}");
    }
}
