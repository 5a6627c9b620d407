//! Births: a free slot is given to a new component when the batch holds points that
//! no live component explains and the lower bound says the new component pays.
//!
//! A point is badly explained when its squared Mahalanobis distance to its most
//! responsible component is beyond the 1 − 1e-4 quantile of χ²_d (a model that fits
//! expects one such point in 10 000). Births are proposed when at least
//! `max(d + 2, 0.5 %)` of the batch are: the densest group of them (the one with
//! most others within two typical component radii), then the densest of the rest, and
//! so on while free slots remain and groups are that large. Each group's weight, mean
//! and scatter start a slot for one E-step of the batch, the posterior is updated, one
//! more E-step refines it, and the births stand if the bound beats the structure
//! without them refined alike. Seeding every new cluster of the batch at once
//! matters: a cluster left out would be absorbed by a neighbour and stretch it.

use nalgebra::{DMatrix, DVector};

use super::batch::{Configuration, Context};
use super::{posterior_of, OnlineEm};
use crate::error::Result;
use crate::estep::{most_responsible, Evaluation};
use crate::linalg::Points;
use crate::mixture::GaussianMixture;
use crate::stats::{ComponentScatter, SufficientStats};

/// z of the upper 1e-4 quantile of the standard normal: the tail beyond which a
/// point is badly explained.
const TAIL_Z: f64 = 3.719;
/// The least share of a batch that is badly explained before a birth is proposed.
const MIN_SHARE: f64 = 0.005;
/// At most this many badly explained points are searched for the densest group.
const MAX_CANDIDATES: usize = 512;

/// The χ²_d quantile at `1 − 1e-4` (Wilson and Hilferty's cube approximation, a few
/// per cent off in the far tail, which is all a threshold needs).
fn chi2_tail(d: usize) -> f64 {
    let df = d as f64;
    let v = 2.0 / (9.0 * df);
    df * (1.0 - v + TAIL_Z * v.sqrt()).powi(3)
}

/// Indices of the batch's points (columns of `x`) that no live component of `model`
/// explains, by the scores of `evaluation` (under `model`).
fn badly_explained(model: &GaussianMixture, evaluation: &Evaluation, kept: &[bool]) -> Vec<usize> {
    let d = model.n_features();
    let cutoff = chi2_tail(d);
    let half_log_2pi = 0.5 * d as f64 * (2.0 * std::f64::consts::PI).ln();
    let resp = &evaluation.responsibilities;
    (0..evaluation.log_density.len())
        .filter(|&j| kept[j])
        .filter(|&j| {
            let col = resp.column(j);
            let k = most_responsible(col.as_slice());
            let (r, w) = (col[k], model.weights()[k]);
            if !(r > 0.0 && w > 0.0) {
                return true;
            }
            // ln N_k(x) = ln r_k + ln p(x) − ln w_k, and ln N_k(x) = c_k − q/2.
            let log_n = r.ln() + evaluation.log_density[j] - w.ln();
            let q = 2.0 * (model.precision.log_det[k] - half_log_2pi - log_n);
            q > cutoff
        })
        .collect()
}

/// The densest group among `candidates`: the members within `radius²` of the
/// candidate with most such neighbours (the first of equals).
fn densest_group(x: Points<'_>, candidates: &[usize], radius2: f64) -> Vec<usize> {
    let pool = &candidates[..candidates.len().min(MAX_CANDIDATES)];
    let near = |a: usize, b: usize| (x.column(a) - x.column(b)).norm_squared() <= radius2;
    let mut best: Vec<usize> = Vec::new();
    for &c in pool {
        let group: Vec<usize> = pool.iter().copied().filter(|&o| near(c, o)).collect();
        if group.len() > best.len() {
            best = group;
        }
    }
    best
}

/// The median of the live components' mean variances (the square of a typical
/// radius per coordinate).
fn typical_variance(model: &GaussianMixture, alive: &[bool]) -> f64 {
    let d = model.n_features();
    let mut v: Vec<f64> = (0..model.n_components())
        .filter(|&k| alive[k])
        .map(|k| model.covariances().component_matrix(k, d).trace() / d as f64)
        .collect();
    if v.is_empty() {
        return 1.0;
    }
    v.sort_by(f64::total_cmp);
    v[(v.len() - 1) / 2]
}

impl OnlineEm {
    /// Proposes births in free slots, one per dense group of badly explained points
    /// (disjoint groups, densest first, as many as there are free slots); returns the
    /// new configuration and the slots if the bound rises. When it does not, the
    /// densest group alone is tried.
    pub(super) fn propose_birth(
        &self,
        ctx: &Context<'_>,
        current: &Configuration,
        model: &GaussianMixture,
        x: Points<'_>,
        evaluation: &Evaluation,
    ) -> Result<Option<(Configuration, Vec<usize>)>> {
        let free: Vec<usize> = (0..current.alive.len())
            .filter(|&k| !current.alive[k])
            .collect();
        if free.is_empty() {
            return Ok(None);
        }
        let d = x.nrows();
        // Never born of points too far to learn from, or that cannot be scored.
        let floor = model.far_floor();
        let t = self
            .trim
            .filter(|_| !self.state.drift.is_recovering())
            .map_or(floor, |t| t.max(floor));
        let kept: Vec<bool> = evaluation.log_density.iter().map(|&l| l >= t).collect();
        let mut bad = badly_explained(model, evaluation, &kept);
        let least = ((MIN_SHARE * x.ncols() as f64).ceil() as usize).max(d + 2);
        if bad.len() < least {
            return Ok(None);
        }
        // Two typical radii in every coordinate: 4 σ² per coordinate.
        let radius2 = 4.0 * d as f64 * typical_variance(model, &current.alive);
        let mut groups = Vec::new();
        while groups.len() < free.len() {
            let group = densest_group(x, &bad, radius2);
            if group.len() < least {
                break;
            }
            bad.retain(|j| !group.contains(j));
            groups.push(group);
        }
        let mut tries = vec![groups.len()];
        if groups.len() > 1 {
            tries.push(1);
        }
        let without = current.refined(ctx)?;
        for count in tries.into_iter().filter(|&c| c > 0) {
            let slots = &free[..count];
            let born = self.with_births(ctx, current, x, slots, &groups[..count])?;
            if born.bound > without.bound && slots.iter().all(|&k| born.stats.weights()[k] > 0.0) {
                return Ok(Some((born, slots.to_vec())));
            }
        }
        Ok(None)
    }

    /// The configuration with a component seeded on each group, in its slot: one
    /// E-step of the batch with the seeds, then one more under the posterior.
    fn with_births(
        &self,
        ctx: &Context<'_>,
        current: &Configuration,
        x: Points<'_>,
        slots: &[usize],
        groups: &[Vec<usize>],
    ) -> Result<Configuration> {
        let mut seeded = current.forgotten.clone();
        let mut alive = current.alive.clone();
        for (&slot, group) in slots.iter().zip(groups) {
            seed_slot(&mut seeded, slot, x, group, ctx.batch_scale);
            alive[slot] = true;
        }
        let kernel = posterior_of(&seeded, ctx.prior, ctx.reg_covar, ctx.count)?;
        let first = Configuration::from_kernel(ctx, current.forgotten.clone(), alive, &kernel)?;
        first.refined(ctx)
    }
}

/// Puts the group's points into slot k (which is empty): weight, mean and scatter.
fn seed_slot(stats: &mut SufficientStats, k: usize, x: Points<'_>, group: &[usize], scale: f64) {
    let d = x.nrows();
    let n = group.len() as f64;
    let mut mean = DVector::zeros(d);
    for &j in group {
        mean += x.column(j);
    }
    mean /= n;
    let mut scatter = DMatrix::zeros(d, d);
    for &j in group {
        let dv = x.column(j) - &mean;
        scatter += &dv * dv.transpose();
    }
    scatter *= scale;
    let part = match stats.covariance_type() {
        crate::covariance::CovarianceType::Full | crate::covariance::CovarianceType::Tied => {
            ComponentScatter::Full(&scatter)
        }
        crate::covariance::CovarianceType::Diag => ComponentScatter::Diag(scatter.diagonal()),
        crate::covariance::CovarianceType::Spherical => {
            ComponentScatter::Spherical(scatter.trace())
        }
    };
    stats.merge_component(k, n * scale, &mean, part);
}
