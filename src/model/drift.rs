//! Detection of abrupt changes, and the faster forgetting that answers them.
//!
//! A model that forgets at a constant rate recovers from an abrupt change only as
//! fast as the stale statistics fade: several half-lives, during which they also
//! inflate the covariances to cover old and new data. So each batch's mean
//! log-likelihood, under the model before the batch, is compared with what the model
//! has been achieving (an exponentially weighted mean and variance of recent batches'
//! values). A batch far below it starts a recovery: for `recovery` half-lives the
//! half-life is divided by `speedup`, so stale statistics are gone within about one
//! half-life instead of several.

use serde::{Deserialize, Serialize};

use super::error::{finite_above, finite_at_least, invalid, Result};

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
    /// Judges a batch by its mean log-likelihood and the standard error of that mean;
    /// returns true when the batch starts a recovery.
    pub fn observe(&mut self, settings: &DriftSettings, mean_ll: f64, std_error: f64) -> bool {
        if !settings.enabled || !mean_ll.is_finite() {
            return false;
        }
        let judged = self.baseline_count >= settings.baseline_batches && !self.is_recovering();
        if judged {
            let drop = self.baseline_mean - mean_ll;
            let sd = (self.baseline_var + std_error * std_error).sqrt();
            if drop > settings.min_drop && drop > settings.threshold * sd {
                self.changes += 1;
                self.recovering = settings.recovery;
                // The old level means nothing for the new regime.
                self.baseline_count = 0;
                return true;
            }
        }
        self.learn(settings, mean_ll);
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

    fn steady(state: &mut DriftState, s: &DriftSettings, n: usize) {
        for i in 0..n {
            let noise = if i % 2 == 0 { 0.01 } else { -0.01 };
            assert!(!state.observe(s, -10.0 + noise, 0.01));
        }
    }

    #[test]
    fn flags_a_sharp_drop_once_then_recovers() {
        let s = DriftSettings::default();
        let mut st = DriftState::default();
        steady(&mut st, &s, 20);
        assert!(st.observe(&s, -14.0, 0.01));
        assert!(st.is_recovering());
        assert_eq!(st.speedup(&s), s.speedup);
        // No second alarm while recovering, even at the low level.
        assert!(!st.observe(&s, -14.0, 0.01));
        st.advance(s.recovery);
        assert!(!st.is_recovering());
        assert_eq!(st.changes, 1);
    }

    #[test]
    fn ignores_noise_and_small_drops() {
        let s = DriftSettings::default();
        let mut st = DriftState::default();
        steady(&mut st, &s, 50);
        assert!(!st.observe(&s, -10.1, 0.01));
        assert_eq!(st.changes, 0);
    }

    #[test]
    fn needs_a_baseline_before_judging() {
        let s = DriftSettings::default();
        let mut st = DriftState::default();
        steady(&mut st, &s, 3);
        assert!(!st.observe(&s, -20.0, 0.01));
    }
}
