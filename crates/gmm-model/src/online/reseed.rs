//! Re-seeding of components whose weight withers.

use nalgebra::{DMatrix, DVector};

use super::OnlineEm;
use crate::error::{finite_above, Result};
use crate::linalg::Points;
use crate::mixture::GaussianMixture;
use crate::stats::{Scatter, SufficientStats};

impl OnlineEm {
    /// Components whose share of the weight, once the batch is absorbed, falls
    /// below `min_weight`.
    pub(super) fn withered(&self, stats: &SufficientStats, batch: &SufficientStats) -> Vec<usize> {
        let min = self.settings.min_weight;
        let weights = stats.weights() + batch.weights();
        let total = weights.sum();
        if min == 0.0 || !finite_above(total, 0.0) || stats.total_weight() <= 0.0 {
            return Vec::new();
        }
        (0..weights.len())
            .filter(|&k| weights[k] < min * total)
            .collect()
    }

    /// Re-seeds the `withered` components at the batch's worst-explained points,
    /// spread apart (farthest-point choice among the worst 5 %), with the
    /// covariance of a median-sized component and a small weight. Deterministic.
    pub(super) fn reseed(
        &self,
        stats: &mut SufficientStats,
        withered: &[usize],
        model: &GaussianMixture,
        x: Points<'_>,
        log_density: &[f64],
        trimmed_below: Option<f64>,
    ) -> Result<()> {
        let seeds = spread_worst_points(x, log_density, trimmed_below, withered.len());
        let weight = 4.0 * self.settings.min_weight * stats.total_weight();
        let cov = median_covariance(model, withered);
        for (&k, j) in withered.iter().zip(seeds) {
            reset_component(stats, k, weight, &x.column(j).into_owned(), &cov)?;
        }
        Ok(())
    }
}

/// `count` indices of badly explained points, far from each other: the worst point,
/// then repeatedly the candidate farthest from those chosen, among the worst 5 %.
/// Trimmed points (outliers) are passed over while there are others.
pub(super) fn spread_worst_points(
    x: Points<'_>,
    log_density: &[f64],
    trimmed_below: Option<f64>,
    count: usize,
) -> Vec<usize> {
    let kept = |j: &usize| trimmed_below.is_none_or(|t| log_density[*j] >= t);
    let mut order: Vec<usize> = (0..log_density.len()).filter(kept).collect();
    if order.is_empty() {
        order = (0..log_density.len())
            .filter(|&j| log_density[j].is_finite())
            .collect();
    }
    order.sort_by(|&a, &b| log_density[a].total_cmp(&log_density[b]));
    let pool = order.len().div_ceil(20).max(count).min(order.len());
    let candidates = &order[..pool];
    let mut chosen: Vec<usize> = candidates.first().copied().into_iter().collect();
    let mut nearest: Vec<f64> = vec![f64::INFINITY; pool];
    while chosen.len() < count.min(pool) {
        let last = x.column(chosen[chosen.len() - 1]);
        for (slot, &j) in nearest.iter_mut().zip(candidates) {
            *slot = slot.min((x.column(j) - last).norm_squared());
        }
        let Some(next) = (0..pool).max_by(|&a, &b| nearest[a].total_cmp(&nearest[b])) else {
            break;
        };
        chosen.push(candidates[next]);
    }
    chosen
}

/// The covariance of the component of median size (by trace) among those that
/// did not wither: a typical cluster shape that one stretched component cannot
/// inflate.
pub(super) fn median_covariance(model: &GaussianMixture, withered: &[usize]) -> DMatrix<f64> {
    let d = model.n_features();
    let mut alive: Vec<DMatrix<f64>> = (0..model.n_components())
        .filter(|k| !withered.contains(k))
        .map(|k| model.covariances().component_matrix(k, d))
        .collect();
    if alive.is_empty() {
        alive = (0..model.n_components())
            .map(|k| model.covariances().component_matrix(k, d))
            .collect();
    }
    alive.sort_by(|a, b| a.trace().total_cmp(&b.trace()));
    // The lower median: with two components, the smaller one.
    alive.swap_remove((alive.len() - 1) / 2)
}

/// Replaces component k's statistics by `weight` points with the given mean and
/// covariance. (Tied statistics pool the scatter, which the shared covariance
/// already describes; only the weight and mean change.)
pub(super) fn reset_component(
    stats: &mut SufficientStats,
    k: usize,
    weight: f64,
    mean: &DVector<f64>,
    cov: &DMatrix<f64>,
) -> Result<()> {
    let mut weights = stats.weights().clone();
    let mut means = stats.means().clone();
    weights[k] = weight;
    means.set_column(k, mean);
    let mut scatter = stats.scatter().clone();
    match &mut scatter {
        Scatter::Full(m) => m[k] = cov * weight,
        Scatter::Diag(m) => m.set_column(k, &(cov.diagonal() * weight)),
        Scatter::Spherical(v) => v[k] = cov.trace() * weight,
        Scatter::Tied(_) => {}
    }
    *stats = SufficientStats::from_parts(weights, means, scatter)?;
    Ok(())
}
