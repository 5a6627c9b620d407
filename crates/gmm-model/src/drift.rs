//! Detection of abrupt changes, and the faster forgetting that answers them.
//!
//! A model that forgets at a constant rate recovers from an abrupt change only as
//! fast as the stale statistics fade: several half-lives, during which they also
//! inflate the covariances to cover old and new data. So each batch's typical
//! log-density under the model before the batch (its median: a burst of outliers is
//! not a change of regime) is compared with what the model has been achieving (an
//! exponentially weighted mean and variance of recent batches' medians). A batch far
//! below it starts a recovery: for `recovery` half-lives the half-life is divided by
//! `speedup`, so stale statistics are gone within about one half-life instead of
//! several. Batches too small to say anything (a timeout batch of a few points) are
//! neither judged nor learned from.

use serde::{Deserialize, Serialize};

use super::error::{finite_above, finite_at_least, invalid, Result};

/// Batches with fewer points are neither judged nor learned from.
pub const MIN_JUDGED_POINTS: usize = 32;

/// The median log-density of a batch and the standard error of that median.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BatchLevel {
    pub median: f64,
    pub std_error: f64,
    pub points: usize,
}

impl BatchLevel {
    /// From a batch's log-densities. The spread comes from the median absolute
    /// deviation (robust to the outliers anomaly scoring is about); the median's
    /// standard error is about 1.2533 σ/√n for near-normal data.
    pub fn of(log_density: &[f64]) -> Self {
        let mut v: Vec<f64> = log_density
            .iter()
            .copied()
            .filter(|x| x.is_finite())
            .collect();
        let n = v.len();
        if n == 0 {
            return Self {
                median: f64::NAN,
                std_error: f64::INFINITY,
                points: 0,
            };
        }
        let median = select_median(&mut v);
        for x in v.iter_mut() {
            *x = (*x - median).abs();
        }
        let sigma = 1.4826 * select_median(&mut v);
        Self {
            median,
            std_error: 1.2533 * sigma / (n as f64).sqrt(),
            points: n,
        }
    }
}

/// The (upper) median, reordering `v`.
fn select_median(v: &mut [f64]) -> f64 {
    let mid = v.len() / 2;
    *v.select_nth_unstable_by(mid, f64::total_cmp).1
}

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct DriftSettings {
    pub enabled: bool,
    /// A change is a drop of more than `threshold` standard deviations of the
    /// baseline...
    pub threshold: f64,
    /// ...and of at least `min_drop` nats per point.
    pub min_drop: f64,
    /// The half-life is divided by this while recovering.
    pub speedup: f64,
    /// Length of a recovery, in (normal) half-lives.
    pub recovery: f64,
    /// Span of the baseline's moving average, in batches; it judges only after this
    /// many batches.
    pub baseline_batches: u32,
}

impl Default for DriftSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            threshold: 8.0,
            min_drop: 0.25,
            speedup: 8.0,
            recovery: 1.0,
            baseline_batches: 10,
        }
    }
}

impl DriftSettings {
    pub fn check(&self) -> Result<()> {
        if !finite_above(self.threshold, 0.0) {
            return Err(invalid("drift.threshold", "must be a finite number > 0"));
        }
        if !finite_at_least(self.min_drop, 0.0) {
            return Err(invalid("drift.min_drop", "must be a finite number >= 0"));
        }
        if !finite_at_least(self.speedup, 1.0) {
            return Err(invalid("drift.speedup", "must be a finite number >= 1"));
        }
        if !finite_at_least(self.recovery, 0.0) {
            return Err(invalid("drift.recovery", "must be a finite number >= 0"));
        }
        if self.baseline_batches < 2 {
            return Err(invalid("drift.baseline_batches", "must be at least 2"));
        }
        Ok(())
    }
}

/// The detector's memory, saved in snapshots.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DriftState {
    baseline_mean: f64,
    baseline_var: f64,
    baseline_count: u32,
    /// Recovery still to go, in half-lives.
    recovering: f64,
    /// Changes detected since the model was born.
    pub changes: u64,
}

impl DriftState {
    /// Judges a batch by its level; returns true when the batch starts a recovery.
    pub fn observe(&mut self, settings: &DriftSettings, level: BatchLevel) -> bool {
        if !settings.enabled || level.points < MIN_JUDGED_POINTS || !level.median.is_finite() {
            return false;
        }
        let judged = self.baseline_count >= settings.baseline_batches && !self.is_recovering();
        if judged {
            let drop = self.baseline_mean - level.median;
            let sd = (self.baseline_var + level.std_error * level.std_error).sqrt();
            if drop > settings.min_drop && drop > settings.threshold * sd {
                self.changes += 1;
                self.recovering = settings.recovery;
                // The old level means nothing for the new regime.
                self.baseline_count = 0;
                return true;
            }
        }
        self.learn(settings, level.median);
        false
    }

    /// Exponentially weighted mean and variance; a plain average until the span fills.
    fn learn(&mut self, settings: &DriftSettings, x: f64) {
        self.baseline_count = self.baseline_count.saturating_add(1);
        let span = self.baseline_count.min(settings.baseline_batches);
        let w = 1.0 / f64::from(span);
        let diff = x - self.baseline_mean;
        self.baseline_mean += w * diff;
        self.baseline_var = (1.0 - w) * (self.baseline_var + w * diff * diff);
    }

    pub fn is_recovering(&self) -> bool {
        self.recovering > 0.0
    }

    /// The factor the half-life is divided by now.
    pub fn speedup(&self, settings: &DriftSettings) -> f64 {
        if self.is_recovering() {
            settings.speedup
        } else {
            1.0
        }
    }

    /// Uses up `half_lives` of recovery (measured at the normal rate).
    pub fn advance(&mut self, half_lives: f64) {
        self.recovering = (self.recovering - half_lives).max(0.0);
    }

    /// Ends a recovery early (the model was rebuilt for the new regime).
    pub fn end_recovery(&mut self) {
        self.recovering = 0.0;
    }

    /// The baseline level (mean log-likelihood per point of recent batches).
    pub fn baseline(&self) -> Option<f64> {
        (self.baseline_count > 0).then_some(self.baseline_mean)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn level(median: f64) -> BatchLevel {
        BatchLevel {
            median,
            std_error: 0.01,
            points: 1000,
        }
    }

    fn steady(state: &mut DriftState, s: &DriftSettings, n: usize) {
        for i in 0..n {
            let noise = if i % 2 == 0 { 0.01 } else { -0.01 };
            assert!(!state.observe(s, level(-10.0 + noise)));
        }
    }

    #[test]
    fn flags_a_sharp_drop_once_then_recovers() {
        let s = DriftSettings::default();
        let mut st = DriftState::default();
        steady(&mut st, &s, 20);
        assert!(st.observe(&s, level(-14.0)));
        assert!(st.is_recovering());
        assert_eq!(st.speedup(&s), s.speedup);
        // No second alarm while recovering, even at the low level.
        assert!(!st.observe(&s, level(-14.0)));
        st.advance(s.recovery);
        assert!(!st.is_recovering());
        assert_eq!(st.changes, 1);
    }

    #[test]
    fn ignores_noise_and_small_drops() {
        let s = DriftSettings::default();
        let mut st = DriftState::default();
        steady(&mut st, &s, 50);
        assert!(!st.observe(&s, level(-10.1)));
        assert_eq!(st.changes, 0);
    }

    #[test]
    fn tiny_batches_are_not_judged() {
        let s = DriftSettings::default();
        let mut st = DriftState::default();
        steady(&mut st, &s, 20);
        let one_point = BatchLevel::of(&[-30.0]);
        assert!(!st.observe(&s, one_point));
        assert_eq!(st.changes, 0);
    }

    #[test]
    fn the_level_ignores_a_burst_of_outliers() {
        // 10 % of a batch far out moves the mean by several nats, not the median.
        let mut values: Vec<f64> = (0..900).map(|i| -5.0 + (i % 10) as f64 * 0.1).collect();
        values.extend(std::iter::repeat_n(-80.0, 100));
        let level = BatchLevel::of(&values);
        assert!((level.median - (-4.6)).abs() < 0.11, "{level:?}");
        assert!(level.std_error < 0.02, "{level:?}");
    }

    #[test]
    fn needs_a_baseline_before_judging() {
        let s = DriftSettings::default();
        let mut st = DriftState::default();
        steady(&mut st, &s, 3);
        assert!(!st.observe(&s, level(-20.0)));
    }
}
