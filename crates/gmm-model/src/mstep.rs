//! The M-step: parameters from sufficient statistics, by maximum likelihood or as
//! the posterior mode under conjugate priors (Fraley and Raftery 2007).
//!
//! Maximum likelihood, as scikit-learn: `π_k = n_k / Σn`, `μ_k = m_k`,
//! `Σ_k = M2_k / n_k + reg·I` (diag keeps the diagonal, spherical its mean, tied pools
//! every component's scatter over Σn).
//!
//! MAP, with a Dirichlet(α) prior on π and a Normal-inverse-Wishart prior on (μ, Σ):
//! `μ | Σ ~ N(μ_P, Σ/κ_P)`, `Σ ~ IW(Λ_P, ν_P)`. With `κ_n = κ_P + n_k` and
//! `δ = m_k − μ_P`, the joint posterior mode is
//!   `μ_k = (n_k m_k + κ_P μ_P) / κ_n`,
//!   `Σ_k = (Λ_P + M2_k + (κ_P n_k/κ_n) δδᵀ) / (ν_P + n_k + d + 2)`   (full),
//!   `σ²_kj = (λ_j + M2_kjj + (κ_P n_k/κ_n) δ_j²) / (ν_P + n_k + 3)`   (diag),
//!   `σ²_k = (λ + tr M2_k + (κ_P n_k/κ_n) ‖δ‖²) / (ν_P + (n_k + 1) d + 2)`   (spherical),
//!   `Σ = (Λ_P + Σ_k [M2_k + (κ_P n_k/κ_n) δ_kδ_kᵀ]) / (ν_P + Σn + K + d + 1)`   (tied),
//!   `π_k = (n_k + α − 1) / (Σn + K(α − 1))`.
//! Every covariance is then well defined, even for a component with no weight.

use nalgebra::{DMatrix, DVector};
use serde::{Deserialize, Serialize};

use super::covariance::{CovarianceType, Covariances};
use super::error::{finite_above, finite_at_least, invalid, ModelError, Result};
use super::linalg::{add_scaled_outer, Points};
use super::mixture::GaussianMixture;
use super::stats::{Scatter, SufficientStats};

/// Hyperparameters of the conjugate prior.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Prior {
    /// Dirichlet concentration α ≥ 1 on the weights (1: no smoothing).
    pub weight_concentration: f64,
    /// μ_P.
    #[serde(with = "super::checked_serde::vector")]
    pub mean: DVector<f64>,
    /// κ_P > 0: the prior's weight on μ_P, in points.
    pub mean_precision: f64,
    /// ν_P > d − 1: the inverse-Wishart degrees of freedom.
    pub dof: f64,
    /// Λ_P (d×d, symmetric positive definite). Diag uses its diagonal, spherical the
    /// mean of its diagonal.
    #[serde(with = "super::checked_serde::matrix")]
    pub scale: DMatrix<f64>,
}

impl Prior {
    /// Fraley and Raftery's defaults from data: μ_P the data mean, κ_P = 0.01,
    /// ν_P = d + 2, Λ_P the data covariance divided by K^(2/d) (its diagonal for
    /// diag, its mean variance for spherical).
    pub fn from_data(x: Points<'_>, n_components: usize, cov_type: CovarianceType) -> Result<Self> {
        let (d, n) = x.shape();
        if n < 2 {
            return Err(ModelError::TooFewPoints {
                n_points: n,
                n_components,
            });
        }
        let mean = x.column_mean();
        let mut cov = DMatrix::zeros(d, d);
        for col in x.column_iter() {
            add_scaled_outer(&mut cov, 1.0, &(col - &mean));
        }
        cov /= (n - 1) as f64;
        let shrink = (n_components as f64).powf(2.0 / d as f64);
        let scale = match cov_type {
            CovarianceType::Full | CovarianceType::Tied => cov / shrink,
            CovarianceType::Diag => DMatrix::from_diagonal(&cov.diagonal()) / shrink,
            CovarianceType::Spherical => {
                DMatrix::identity(d, d) * (cov.trace() / d as f64 / shrink)
            }
        };
        let prior = Self {
            weight_concentration: 1.0,
            mean,
            mean_precision: 0.01,
            dof: d as f64 + 2.0,
            scale,
        };
        prior.check(d)?;
        Ok(prior)
    }

    pub fn check(&self, d: usize) -> Result<()> {
        if self.mean.len() != d || self.scale.shape() != (d, d) {
            return Err(ModelError::InvalidShape(format!(
                "the prior is for {} features, the model has {d}",
                self.mean.len()
            )));
        }
        if !finite_at_least(self.weight_concentration, 1.0) {
            return Err(invalid(
                "prior.weight_concentration",
                "must be a finite number >= 1",
            ));
        }
        if !finite_above(self.mean_precision, 0.0) {
            return Err(invalid(
                "prior.mean_precision",
                "must be a finite number > 0",
            ));
        }
        if !finite_above(self.dof, d as f64 - 1.0) {
            return Err(invalid(
                "prior.dof",
                format!("must exceed d - 1 = {}", d as f64 - 1.0),
            ));
        }
        if super::covariance::inverse_cholesky(&self.scale).is_none() {
            return Err(invalid(
                "prior.scale",
                "must be symmetric positive definite (is the data constant in some coordinate?)",
            ));
        }
        Ok(())
    }
}

/// Parameters from statistics. Components without weight keep their parameters from
/// `previous` under maximum likelihood (there is nothing to estimate them from).
pub fn m_step(
    stats: &SufficientStats,
    reg_covar: f64,
    prior: Option<&Prior>,
    previous: Option<&GaussianMixture>,
) -> Result<GaussianMixture> {
    match prior {
        Some(p) => map_step(stats, reg_covar, p),
        None => ml_step(stats, reg_covar, previous),
    }
}

fn ml_step(
    stats: &SufficientStats,
    reg_covar: f64,
    previous: Option<&GaussianMixture>,
) -> Result<GaussianMixture> {
    let (k_count, d) = (stats.n_components(), stats.n_features());
    let n = stats.weights();
    let total = n.sum();
    if !finite_above(total, 0.0) {
        return Err(ModelError::Empty);
    }
    let empty = |k: usize| n[k] <= 0.0;
    let fallback = |k: usize| -> Result<&GaussianMixture> {
        previous.ok_or(ModelError::IllDefinedCovariance { component: k })
    };
    let mut means = stats.means().clone();
    for k in (0..k_count).filter(|&k| empty(k)) {
        means.set_column(k, &fallback(k)?.means().column(k));
    }
    let covariances = match stats.scatter() {
        Scatter::Full(m2) => {
            let mut covs = Vec::with_capacity(k_count);
            for k in 0..k_count {
                covs.push(if empty(k) {
                    fallback(k)?.covariances().component_matrix(k, d)
                } else {
                    &m2[k] / n[k] + DMatrix::identity(d, d) * reg_covar
                });
            }
            Covariances::Full(covs)
        }
        Scatter::Diag(m2) => {
            let mut v = DMatrix::zeros(d, k_count);
            for k in 0..k_count {
                v.set_column(
                    k,
                    &if empty(k) {
                        fallback(k)?.covariances().component_matrix(k, d).diagonal()
                    } else {
                        m2.column(k).map(|s| s / n[k] + reg_covar)
                    },
                );
            }
            Covariances::Diag(v)
        }
        Scatter::Spherical(m2) => {
            let mut v = DVector::zeros(k_count);
            for k in 0..k_count {
                v[k] = if empty(k) {
                    fallback(k)?.covariances().component_matrix(k, d)[(0, 0)]
                } else {
                    m2[k] / n[k] / d as f64 + reg_covar
                };
            }
            Covariances::Spherical(v)
        }
        Scatter::Tied(m2) => Covariances::Tied(m2 / total + DMatrix::identity(d, d) * reg_covar),
    };
    let weights = n / total;
    GaussianMixture::new(weights, means, covariances).map_err(ill_defined)
}

fn map_step(stats: &SufficientStats, reg_covar: f64, prior: &Prior) -> Result<GaussianMixture> {
    let (k_count, d) = (stats.n_components(), stats.n_features());
    prior.check(d)?;
    let n = stats.weights();
    let total = n.sum();
    let alpha = prior.weight_concentration;
    let kappa = prior.mean_precision;
    let mut means = DMatrix::zeros(d, k_count);
    // δ_k = m_k − μ_P and its weight κ_P n_k / κ_n, per component.
    let mut deltas = Vec::with_capacity(k_count);
    for k in 0..k_count {
        let kappa_n = kappa + n[k];
        let m_k = stats.means().column(k);
        means.set_column(k, &((m_k * n[k] + &prior.mean * kappa) / kappa_n));
        deltas.push((m_k - &prior.mean, kappa * n[k] / kappa_n));
    }
    let reg = DMatrix::identity(d, d) * reg_covar;
    let covariances = match stats.scatter() {
        Scatter::Full(m2) => Covariances::Full(
            (0..k_count)
                .map(|k| {
                    let mut s = &prior.scale + &m2[k];
                    add_scaled_outer(&mut s, deltas[k].1, &deltas[k].0);
                    s / (prior.dof + n[k] + d as f64 + 2.0) + &reg
                })
                .collect(),
        ),
        Scatter::Diag(m2) => Covariances::Diag(DMatrix::from_fn(d, k_count, |j, k| {
            let (delta, w) = &deltas[k];
            (prior.scale[(j, j)] + m2[(j, k)] + w * delta[j] * delta[j]) / (prior.dof + n[k] + 3.0)
                + reg_covar
        })),
        Scatter::Spherical(m2) => {
            let lambda = prior.scale.trace() / d as f64;
            Covariances::Spherical(DVector::from_fn(k_count, |k, _| {
                let (delta, w) = &deltas[k];
                (lambda + m2[k] + w * delta.norm_squared())
                    / (prior.dof + (n[k] + 1.0) * d as f64 + 2.0)
                    + reg_covar
            }))
        }
        Scatter::Tied(m2) => {
            let mut s = &prior.scale + m2;
            for (delta, w) in &deltas {
                add_scaled_outer(&mut s, *w, delta);
            }
            Covariances::Tied(s / (prior.dof + total + k_count as f64 + d as f64 + 1.0) + reg)
        }
    };
    let weights = n.map(|nk| nk + alpha - 1.0) / (total + k_count as f64 * (alpha - 1.0));
    GaussianMixture::new(weights, means, covariances).map_err(ill_defined)
}

/// A covariance that fails its factorisation after an M-step is an estimation
/// failure, reported with scikit-learn's advice.
fn ill_defined(e: ModelError) -> ModelError {
    match e {
        ModelError::NotPositiveDefinite { component } => {
            ModelError::IllDefinedCovariance { component }
        }
        other => other,
    }
}
