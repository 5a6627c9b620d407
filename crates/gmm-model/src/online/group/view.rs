//! What a member knows of the group: the clock reading, the sum of every partition's
//! statistics brought to it, and the model from that sum.

use super::partition::{PartitionKey, PartitionState};
use super::GroupEstimator;
use crate::error::{ModelError, Result};
use crate::mstep::m_step;
use crate::online::variational::{live_mixture, posterior_of};
use crate::schedule::HalfLifeUnit;
use crate::stats::SufficientStats;

impl GroupEstimator {
    /// Every known partition state, owned or not, in partition order (so that every
    /// member sums the same states in the same order, bit for bit).
    pub(super) fn states(&self) -> impl Iterator<Item = &PartitionState> + '_ {
        let mut all: Vec<&PartitionState> = self.own.values().chain(self.remote.values()).collect();
        all.sort_by(|a, b| a.key.cmp(&b.key));
        all.into_iter()
    }

    /// The group's clock as this member knows it (see [`GroupClock`](super::GroupClock)).
    pub fn clock_now(&self) -> f64 {
        match self.clock.unit {
            HalfLifeUnit::Points => self.states().map(|s| s.points).sum::<u64>() as f64,
            HalfLifeUnit::Batches => self.states().map(|s| s.batches).sum(),
            HalfLifeUnit::Seconds => self
                .states()
                .map(|s| s.clock)
                .chain(self.structure.as_ref().map(|s| s.carried.clock))
                .fold(0.0, f64::max),
        }
    }

    /// The sum of every partition's statistics and the structure's, expressed at
    /// clock reading `at`. States not yet at the current epoch (none, normally) are
    /// left out until they are.
    pub(super) fn global_stats(&self, at: f64) -> Option<SufficientStats> {
        let s = self.structure.as_ref()?;
        let c = &s.carried.stats;
        let mut total = SufficientStats::new(c.covariance_type(), c.n_components(), c.n_features());
        let mut add = |stats: &SufficientStats, clock: f64| {
            if stats.total_weight() > 0.0 {
                let mut x = stats.clone();
                x.scale(self.clock.factor(clock, at, 1.0));
                // Shapes were checked when the states arrived.
                let _ = total.merge(&x);
            }
        };
        for st in self.states().filter(|st| st.epoch == s.epoch) {
            add(&st.stats, st.clock);
        }
        add(c, s.carried.clock);
        Some(total)
    }

    /// The model of the group's statistics: the M-step under EM, the posterior's
    /// plug-in mixture under variational inference. Without any weight, the
    /// structure's own model.
    pub(super) fn set_model_from(&mut self, global: &SufficientStats) -> Result<()> {
        let s = self.structure.as_ref().ok_or(ModelError::Empty)?;
        let reg = self.settings().reg_covar;
        let total = global.total_weight();
        let (model, posterior) = match (&s.variational, total > 0.0) {
            (_, false) => (s.model.clone(), None),
            (None, true) => (m_step(global, reg, s.prior.as_ref(), Some(&s.model))?, None),
            (Some(v), true) => {
                let posterior = posterior_of(global, &v.prior, reg, total)?;
                (live_mixture(&posterior, &v.alive)?, Some(posterior))
            }
        };
        self.model = Some(model);
        self.posterior = posterior;
        self.model_version += 1;
        self.stale = false;
        Ok(())
    }

    /// Computes the model again from everything known.
    pub(super) fn recompute(&mut self) -> Result<()> {
        let Some(global) = self.global_stats(self.clock_now()) else {
            return Ok(());
        };
        self.set_model_from(&global)
    }

    /// Computes the model again if records arrived since it was last computed; true
    /// when it did.
    pub fn refresh(&mut self) -> Result<bool> {
        if !self.stale || self.structure.is_none() {
            return Ok(false);
        }
        self.recompute()?;
        Ok(true)
    }

    /// Refuses a state of another shape, naming its partition.
    pub(super) fn check_state(&self, st: &PartitionState) -> Result<()> {
        let s = &st.stats;
        let (t, k) = (
            self.settings().covariance_type,
            self.settings().n_components,
        );
        let d_ok = self.n_features.is_none_or(|d| d == s.n_features());
        if s.covariance_type() != t || s.n_components() != k || !d_ok {
            return Err(ModelError::IncompatibleStats(format!(
                "the state of partition {} holds {} statistics with K = {}, d = {}; this \
                 member's model is {t} with K = {k}{}",
                st.key,
                s.covariance_type(),
                s.n_components(),
                s.n_features(),
                self.n_features
                    .map(|d| format!(", d = {d}"))
                    .unwrap_or_default()
            )));
        }
        if !st.clock.is_finite() || !st.batches.is_finite() || st.batches < 0.0 {
            return Err(ModelError::NonFinite {
                what: format!("the clock of partition {}", st.key),
            });
        }
        Ok(())
    }

    /// A partition with nothing absorbed, at the current epoch and clock.
    pub(super) fn empty_state(&self, key: PartitionKey) -> PartitionState {
        let s = self.settings();
        let d = self.n_features.unwrap_or(1);
        let mut st = PartitionState::empty(
            key,
            self.epoch(),
            self.clock_now(),
            s.covariance_type,
            s.n_components,
            d,
        );
        if let Some(&o) = self.warmup_offsets.get(&st.key) {
            st.next_offset = o;
        }
        st
    }
}
