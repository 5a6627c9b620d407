//! The variational lower bound as scikit-learn computes it
//! (`_compute_lower_bound`): after the update from responsibilities r, the terms
//! that do not cancel, constants dropped,
//! `L = −Σ r ln r − Σ_k ln B(W_k, ν_k) − ln C(q(π)) − ½ d Σ_k ln β_k`,
//! with `ln B` the Wishart log-normaliser (less its `ln π` term) and `ln C` the
//! log-normaliser of the weight posterior. It is a total over the points, not a mean,
//! and never decreases from one iteration to the next.

use super::posterior::{Posterior, WeightConcentration};
use super::special::{ln_beta, ln_gamma};
use crate::covariance::CovarianceType;

/// `ln B(W, ν)` less `ln π` terms, from `½ ln |W|` (`half_log_det_w`):
/// `−(ν ½ ln |W| + ν d ½ ln 2 + Σ_{i<d} ln Γ((ν − i)/2))`.
fn log_wishart_norm(nu: f64, half_log_det_w: f64, d: usize) -> f64 {
    let gammas: f64 = (0..d).map(|i| ln_gamma(0.5 * (nu - i as f64))).sum();
    -(nu * half_log_det_w + nu * d as f64 * 0.5 * std::f64::consts::LN_2 + gammas)
}

impl WeightConcentration {
    /// The log-normaliser of the weight posterior.
    fn log_norm(&self) -> f64 {
        match self {
            Self::Process { a, b } => -a
                .iter()
                .zip(b.iter())
                .map(|(&a, &b)| ln_beta(a, b))
                .sum::<f64>(),
            Self::Distribution(alpha) => {
                ln_gamma(alpha.sum()) - alpha.iter().map(|&a| ln_gamma(a)).sum::<f64>()
            }
        }
    }
}

impl Posterior {
    /// The lower bound, given `Σ r ln r` of the responsibilities this posterior
    /// was updated from.
    pub fn lower_bound(&self, resp_log_resp: f64) -> f64 {
        let d = self.n_features();
        let k = self.n_components();
        let df = d as f64;
        let log_det = &self.mixture().precision.log_det;
        // ½ ln |W_k| = ½ ln |ν_k W_k| − ½ d ln ν_k: the factor's log-determinant less
        // the normalisation of covariances_ by ν.
        let half_log_det_w = |i: usize| log_det[i] - 0.5 * df * self.degrees_of_freedom[i].ln();
        let log_wishart = if self.mixture().covariance_type() == CovarianceType::Tied {
            k as f64 * log_wishart_norm(self.degrees_of_freedom[0], half_log_det_w(0), d)
        } else {
            (0..k)
                .map(|i| log_wishart_norm(self.degrees_of_freedom[i], half_log_det_w(i), d))
                .sum()
        };
        let log_beta: f64 = self.mean_precision.iter().map(|b| b.ln()).sum();
        -resp_log_resp - log_wishart - self.weight_concentration.log_norm() - 0.5 * df * log_beta
    }
}
