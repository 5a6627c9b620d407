//! The variational posterior and its update from sufficient statistics (the
//! variational M-step, Bishop's PRML 10.58–10.63 with scikit-learn's conventions).
//!
//! With `n_k`, `x̄_k`, `M2_k` the weight, mean and centred scatter of component k:
//! `β_k = β₀ + n_k`, `m_k = m₀ + (n_k/β_k)(x̄_k − m₀)`, `ν_k = ν₀ + n_k`,
//! `W_k⁻¹ = W₀⁻¹ + M2_k + n_k·reg·I + (β₀ n_k/β_k)(x̄_k − m₀)(x̄_k − m₀)ᵀ`, and the
//! covariance reported is scikit-learn's `covariances_ = W_k⁻¹ / ν_k`. Diag keeps the
//! diagonals, spherical their mean; tied pools every component with
//! `ν = ν₀ + Σn/K`. Kept in this centred form, the update is exact however far the data
//! sit from the origin. The weights: Dirichlet `α_k = α₀ + n_k`, or the
//! stick-breaking pair `(1 + n_k, γ + Σ_{j>k} n_j)`.

use nalgebra::{DMatrix, DVector};
use serde::{Deserialize, Serialize};

use super::prior::{CovariancePrior, VariationalPrior, WeightPriorType};
use crate::covariance::Covariances;
use crate::error::{ModelError, Result};
use crate::linalg::add_scaled_outer;
use crate::mixture::GaussianMixture;
use crate::stats::{Scatter, SufficientStats};

/// The posterior on the weights (scikit-learn's `weight_concentration_`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WeightConcentration {
    /// Beta(a_k, b_k) on each stick-breaking proportion.
    Process { a: DVector<f64>, b: DVector<f64> },
    /// Dirichlet(α).
    Distribution(DVector<f64>),
}

impl WeightConcentration {
    fn update(prior: &VariationalPrior, n: &DVector<f64>) -> Self {
        let c = prior.weight_concentration;
        match prior.weight_concentration_prior_type {
            WeightPriorType::DirichletProcess => {
                let k = n.len();
                let mut b = DVector::from_element(k, c);
                // Σ_{j>k} n_j, accumulated from the end as scikit-learn does.
                let mut tail = 0.0;
                for i in (0..k.saturating_sub(1)).rev() {
                    tail += n[i + 1];
                    b[i] = c + tail;
                }
                Self::Process {
                    a: n.map(|nk| 1.0 + nk),
                    b,
                }
            }
            WeightPriorType::DirichletDistribution => Self::Distribution(n.map(|nk| c + nk)),
        }
    }

    /// The posterior mean of the weights (scikit-learn's `weights_`).
    pub fn mean_weights(&self) -> DVector<f64> {
        let w = match self {
            Self::Process { a, b } => {
                let mut remaining = 1.0;
                DVector::from_fn(a.len(), |k, _| {
                    let total = a[k] + b[k];
                    let w = a[k] / total * remaining;
                    remaining *= b[k] / total;
                    w
                })
            }
            Self::Distribution(alpha) => alpha.clone(),
        };
        let total = w.sum();
        w / total
    }
}

/// The variational posterior of a mixture: `q(π)`, and per component a
/// Gaussian-Wishart `q(μ_k, Λ_k)` with parameters `m_k`, `β_k`, `W_k`, `ν_k`.
#[derive(Clone, Debug)]
pub struct Posterior {
    pub weight_concentration: WeightConcentration,
    /// β_k.
    pub mean_precision: DVector<f64>,
    /// ν_k (tied: the shared value, repeated K times).
    pub degrees_of_freedom: DVector<f64>,
    /// Weights `weights_`, means `m_k` and covariances `W_k⁻¹/ν_k`: scikit-learn's
    /// `weights_`, `means_`, `covariances_`, and the plug-in mixture they make.
    mixture: GaussianMixture,
}

impl Posterior {
    /// The posterior given the statistics of the responsibilities (scikit-learn's
    /// `_m_step`, and `_initialize` from initial responsibilities).
    pub fn update(
        stats: &SufficientStats,
        prior: &VariationalPrior,
        reg_covar: f64,
    ) -> Result<Self> {
        let (k, d) = (stats.n_components(), stats.n_features());
        let cov_type = stats.covariance_type();
        prior.check(cov_type, d)?;
        let n = stats.weights();
        let beta0 = prior.mean_precision;
        let beta = n.map(|nk| beta0 + nk);
        // x̄_k − m₀, and the weight (β₀ n_k / β_k) of its outer product.
        let diffs: Vec<DVector<f64>> = (0..k)
            .map(|i| stats.means().column(i) - &prior.mean)
            .collect();
        let shrink = DVector::from_fn(k, |i, _| beta0 * n[i] / beta[i]);
        let means = DMatrix::from_fn(d, k, |j, i| prior.mean[j] + n[i] / beta[i] * diffs[i][j]);
        let (covariances, dof) = wishart_update(stats, prior, reg_covar, &diffs, &shrink, &beta)?;
        let weight_concentration = WeightConcentration::update(prior, n);
        let weights = weight_concentration.mean_weights();
        let mixture = GaussianMixture::new(weights, means, covariances).map_err(|e| match e {
            ModelError::NotPositiveDefinite { component } => {
                ModelError::IllDefinedCovariance { component }
            }
            other => other,
        })?;
        debug_assert_eq!(mixture.covariance_type(), cov_type);
        Ok(Self {
            weight_concentration,
            mean_precision: beta,
            degrees_of_freedom: dof,
            mixture,
        })
    }

    /// A posterior from its parts (one saved as scikit-learn's attributes):
    /// `mixture` is the plug-in mixture of `weights_`, `means_`, `covariances_`;
    /// for tied covariances `degrees_of_freedom` is the shared ν repeated K times.
    pub fn from_parts(
        weight_concentration: WeightConcentration,
        mean_precision: DVector<f64>,
        degrees_of_freedom: DVector<f64>,
        mixture: GaussianMixture,
    ) -> Result<Self> {
        let k = mixture.n_components();
        let concentration_len = match &weight_concentration {
            WeightConcentration::Process { a, b } => (a.len() == b.len()).then_some(a.len()),
            WeightConcentration::Distribution(alpha) => Some(alpha.len()),
        };
        if concentration_len != Some(k)
            || mean_precision.len() != k
            || degrees_of_freedom.len() != k
        {
            return Err(ModelError::InvalidShape(format!(
                "the posterior's weight concentration, mean precisions and degrees of \
                 freedom must have one value per component ({k})"
            )));
        }
        let positive = |v: &DVector<f64>| v.iter().all(|&x| x.is_finite() && x > 0.0);
        let concentration_ok = match &weight_concentration {
            WeightConcentration::Process { a, b } => positive(a) && positive(b),
            WeightConcentration::Distribution(alpha) => positive(alpha),
        };
        if !(concentration_ok && positive(&mean_precision) && positive(&degrees_of_freedom)) {
            return Err(ModelError::NonFinite {
                what: "the posterior (its concentrations, precisions and degrees of freedom \
                       must be finite and positive)"
                    .into(),
            });
        }
        Ok(Self {
            weight_concentration,
            mean_precision,
            degrees_of_freedom,
            mixture,
        })
    }

    /// The plug-in mixture of scikit-learn's `weights_`, `means_`, `covariances_`.
    pub fn mixture(&self) -> &GaussianMixture {
        &self.mixture
    }

    pub fn into_mixture(self) -> GaussianMixture {
        self.mixture
    }

    pub fn n_components(&self) -> usize {
        self.mixture.n_components()
    }

    pub fn n_features(&self) -> usize {
        self.mixture.n_features()
    }
}

/// `W_k⁻¹/ν_k` in the covariance type's layout, and ν_k.
fn wishart_update(
    stats: &SufficientStats,
    prior: &VariationalPrior,
    reg_covar: f64,
    diffs: &[DVector<f64>],
    shrink: &DVector<f64>,
    beta: &DVector<f64>,
) -> Result<(Covariances, DVector<f64>)> {
    let (k, d) = (stats.n_components(), stats.n_features());
    let n = stats.weights();
    let nu0 = prior.degrees_of_freedom;
    let nu = n.map(|nk| nu0 + nk);
    let mismatch = || {
        ModelError::InvalidShape(format!(
            "the covariance prior does not fit {} statistics",
            stats.covariance_type()
        ))
    };
    Ok(match (stats.scatter(), &prior.covariance) {
        (Scatter::Full(m2), CovariancePrior::Matrix(psi)) => {
            let covs = (0..k)
                .map(|i| {
                    let mut w = psi + &m2[i];
                    add_diagonal(&mut w, n[i] * reg_covar);
                    add_scaled_outer(&mut w, shrink[i], &diffs[i]);
                    w / nu[i]
                })
                .collect();
            (Covariances::Full(covs), nu)
        }
        (Scatter::Diag(m2), CovariancePrior::Diagonal(psi)) => {
            let v = DMatrix::from_fn(d, k, |j, i| {
                (psi[j] + m2[(j, i)] + n[i] * reg_covar + shrink[i] * diffs[i][j].powi(2)) / nu[i]
            });
            (Covariances::Diag(v), nu)
        }
        (Scatter::Spherical(m2), CovariancePrior::Scalar(psi)) => {
            let df = d as f64;
            let v = DVector::from_fn(k, |i, _| {
                (psi + m2[i] / df + n[i] * reg_covar + shrink[i] * diffs[i].norm_squared() / df)
                    / nu[i]
            });
            (Covariances::Spherical(v), nu)
        }
        (Scatter::Tied(m2), CovariancePrior::Matrix(psi)) => {
            let kf = k as f64;
            let total = n.sum();
            let nu = nu0 + total / kf;
            let mut w = psi + m2 / kf;
            add_diagonal(&mut w, total / kf * reg_covar);
            for i in 0..k {
                // β₀/K · (n_k/β_k) (x̄_k − m₀)(x̄_k − m₀)ᵀ
                add_scaled_outer(
                    &mut w,
                    prior.mean_precision / kf * n[i] / beta[i],
                    &diffs[i],
                );
            }
            (Covariances::Tied(w / nu), DVector::from_element(k, nu))
        }
        _ => return Err(mismatch()),
    })
}

fn add_diagonal(m: &mut DMatrix<f64>, v: f64) {
    for i in 0..m.nrows() {
        m[(i, i)] += v;
    }
}
