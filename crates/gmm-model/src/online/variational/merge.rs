//! Merges: the two live components that overlap most are proposed as one, in the
//! heavier one's slot (the other slot is freed), and merged if the lower bound rises.
//!
//! Overlap is the Bhattacharyya coefficient of the two plug-in Gaussians,
//! `exp(−(⅛ δᵀ Σ̄⁻¹ δ + ½ ln(|Σ̄| / √(|Σ₁||Σ₂|))))` with `Σ̄ = (Σ₁ + Σ₂)/2`: 1 for
//! identical components, e⁻⁸ for unit-variance ones eight standard deviations apart.
//! Pairs below [`MIN_OVERLAP`] are not worth an E-step. The merged statistics are
//! Chan's merge of the two; one E-step of the batch under their posterior and one more
//! to refine it give the bound compared with the structure as is, refined alike.

use nalgebra::DMatrix;

use super::batch::{clear_slot, Configuration, Context};
use super::{posterior_of, OnlineEm};
use crate::error::Result;
use crate::mixture::GaussianMixture;
use crate::stats::{ComponentScatter, Scatter, SufficientStats};

/// Pairs overlapping less than this are not proposed.
const MIN_OVERLAP: f64 = 0.1;

/// The Bhattacharyya coefficient of components a and b (0 when a covariance is not
/// positive definite).
fn overlap(model: &GaussianMixture, a: usize, b: usize) -> f64 {
    let d = model.n_features();
    let (ca, cb) = (
        model.covariances().component_matrix(a, d),
        model.covariances().component_matrix(b, d),
    );
    let mean = (&ca + &cb) * 0.5;
    let log_det = |m: &DMatrix<f64>| {
        nalgebra::Cholesky::new(m.clone())
            .map(|c| 2.0 * c.l().diagonal().iter().map(|v| v.ln()).sum::<f64>())
    };
    let (Some(chol), Some(la), Some(lb)) = (
        nalgebra::Cholesky::new(mean.clone()),
        log_det(&ca),
        log_det(&cb),
    ) else {
        return 0.0;
    };
    let delta = model.means().column(a) - model.means().column(b);
    let maha = delta.dot(&chol.solve(&delta));
    let lm = 2.0 * chol.l().diagonal().iter().map(|v| v.ln()).sum::<f64>();
    (-(maha / 8.0 + 0.5 * (lm - 0.5 * (la + lb)))).exp()
}

/// The live pair that overlaps most, if it overlaps at least [`MIN_OVERLAP`].
fn closest_pair(model: &GaussianMixture, alive: &[bool]) -> Option<(usize, usize)> {
    let live: Vec<usize> = (0..alive.len()).filter(|&k| alive[k]).collect();
    let mut best: Option<(f64, usize, usize)> = None;
    for (i, &a) in live.iter().enumerate() {
        for &b in &live[i + 1..] {
            let o = overlap(model, a, b);
            if o >= MIN_OVERLAP && best.is_none_or(|(bo, _, _)| o > bo) {
                best = Some((o, a, b));
            }
        }
    }
    best.map(|(_, a, b)| (a, b))
}

/// Merges slot `absorbed` into slot `kept` and empties it.
fn merge_slots(stats: &mut SufficientStats, kept: usize, absorbed: usize) -> Result<()> {
    let n = stats.weights()[absorbed];
    let mean = stats.means().column(absorbed).into_owned();
    let scatter = stats.scatter().clone();
    let part = match &scatter {
        Scatter::Full(m) => ComponentScatter::Full(&m[absorbed]),
        Scatter::Diag(m) => ComponentScatter::Diag(m.column(absorbed).into_owned()),
        Scatter::Spherical(v) => ComponentScatter::Spherical(v[absorbed]),
        Scatter::Tied(_) => ComponentScatter::PooledElsewhere,
    };
    stats.merge_component(kept, n, &mean, part);
    clear_slot(stats, absorbed)
}

impl OnlineEm {
    /// Proposes merging the closest live pair; returns the new configuration and
    /// (kept, absorbed) if the bound rises.
    pub(super) fn propose_merge(
        &self,
        ctx: &Context<'_>,
        current: &Configuration,
    ) -> Result<Option<(Configuration, (usize, usize))>> {
        let model = current.posterior.mixture();
        let Some((a, b)) = closest_pair(model, &current.alive) else {
            return Ok(None);
        };
        let w = current.stats.weights();
        let (kept, absorbed) = if w[b] > w[a] { (b, a) } else { (a, b) };
        let mut forgotten = current.forgotten.clone();
        merge_slots(&mut forgotten, kept, absorbed)?;
        let mut alive = current.alive.clone();
        alive[absorbed] = false;
        let kernel = posterior_of(&forgotten, ctx.prior, ctx.reg_covar, ctx.count)?;
        let first = Configuration::from_kernel(ctx, forgotten, alive, &kernel)?;
        let merged = first.refined(ctx)?;
        let without = current.refined(ctx)?;
        Ok((merged.bound > without.bound).then_some((merged, (kept, absorbed))))
    }
}
