//! One batch under a candidate structure: the variational E-step of the batch,
//! its statistics absorbed into the forgotten ones, the posterior, and the lower
//! bound by which candidates (as is, a birth, a merge) are compared.
//!
//! The bound is scikit-learn's (see `model::variational`) on the statistics that the
//! posterior is updated from. The past points' own `−Σ r ln r` is not known (only
//! their statistics are kept) and is the same for every candidate, so it is left out:
//! candidates differ by the batch's entropy and the posterior's normalisers.

use nalgebra::DMatrix;

use super::{live_kernel, posterior_of};
use crate::error::{ModelError, Result};
use crate::estep::EvalRequest;
use crate::linalg::Points;
use crate::stats::{Scatter, SufficientStats};
use crate::variational::{Posterior, VariationalPrior};

/// What every candidate of one batch shares.
pub(in crate::online) struct Context<'a> {
    pub prior: &'a VariationalPrior,
    pub reg_covar: f64,
    /// The factor the batch's statistics take (1 under decay).
    pub batch_scale: f64,
    /// How many points the statistics stand for once the batch is absorbed.
    pub count: f64,
    /// The batch's points that feed the statistics (trimmed ones left out).
    pub points: Points<'a>,
}

/// A structure (which slots live) with its statistics, posterior and bound.
pub(in crate::online) struct Configuration {
    /// The statistics before the batch, with this structure's edits.
    pub forgotten: SufficientStats,
    /// `forgotten` with the batch absorbed.
    pub stats: SufficientStats,
    pub alive: Vec<bool>,
    pub posterior: Posterior,
    /// `Σ r ln r` of the batch, scaled as its statistics.
    pub r_ln_r: f64,
    pub bound: f64,
}

impl Configuration {
    /// The batch's E-step under `kernel` (its live slots only), absorbed into
    /// `forgotten`.
    pub fn from_kernel(
        ctx: &Context<'_>,
        forgotten: SufficientStats,
        alive: Vec<bool>,
        kernel: &Posterior,
    ) -> Result<Self> {
        let request = EvalRequest {
            resp_log_resp: true,
            ..EvalRequest::STATS
        };
        let eval = live_kernel(kernel, &alive).evaluate(ctx.points, request)?;
        let mut batch = eval.stats.ok_or(ModelError::Empty)?;
        batch.scale(ctx.batch_scale);
        let r_ln_r = eval.resp_log_resp * ctx.batch_scale;
        let mut stats = forgotten.clone();
        stats.merge(&batch)?;
        Self::settled(ctx, forgotten, stats, alive, r_ln_r)
    }

    /// The posterior and bound of given statistics.
    pub fn settled(
        ctx: &Context<'_>,
        forgotten: SufficientStats,
        stats: SufficientStats,
        alive: Vec<bool>,
        r_ln_r: f64,
    ) -> Result<Self> {
        let posterior = posterior_of(&stats, ctx.prior, ctx.reg_covar, ctx.count)?;
        let total = stats.total_weight();
        let factor = if total > 0.0 { ctx.count / total } else { 1.0 };
        let bound = posterior.lower_bound(r_ln_r * factor);
        Ok(Self {
            forgotten,
            stats,
            alive,
            posterior,
            r_ln_r,
            bound,
        })
    }

    /// One more variational iteration on the batch: its E-step under this
    /// configuration's own posterior.
    pub fn refined(&self, ctx: &Context<'_>) -> Result<Self> {
        Self::from_kernel(
            ctx,
            self.forgotten.clone(),
            self.alive.clone(),
            &self.posterior,
        )
    }

    /// Empties slot k (in both statistics) and marks it retired.
    pub fn retire(&mut self, k: usize) -> Result<()> {
        clear_slot(&mut self.forgotten, k)?;
        clear_slot(&mut self.stats, k)?;
        self.alive[k] = false;
        Ok(())
    }
}

/// The points whose log-density is at least `trim` (all of them without one).
pub(in crate::online) fn kept_points(
    x: Points<'_>,
    log_density: &[f64],
    trim: Option<f64>,
) -> DMatrix<f64> {
    match trim {
        None => x.into_owned(),
        Some(t) => {
            let keep: Vec<usize> = (0..x.ncols()).filter(|&j| log_density[j] >= t).collect();
            DMatrix::from_fn(x.nrows(), keep.len(), |i, j| x[(i, keep[j])])
        }
    }
}

/// Slot k without weight, mean or scatter. (Tied statistics pool the scatter; a
/// retired slot's share of it stays, as it does under EM's re-seeding.)
pub(super) fn clear_slot(stats: &mut SufficientStats, k: usize) -> Result<()> {
    let mut weights = stats.weights().clone();
    let mut means = stats.means().clone();
    let mut scatter = stats.scatter().clone();
    weights[k] = 0.0;
    means.column_mut(k).fill(0.0);
    match &mut scatter {
        Scatter::Full(m) => m[k].fill(0.0),
        Scatter::Diag(m) => m.column_mut(k).fill(0.0),
        Scatter::Spherical(v) => v[k] = 0.0,
        Scatter::Tied(_) => {}
    }
    *stats = SufficientStats::from_parts(weights, means, scatter)?;
    Ok(())
}
