//! The expectations the variational E-step needs (PRML 10.64–10.66):
//! `E[ln π_k]` under the weight posterior and, per component,
//! `E[ln |Λ_k|] = Σ_{i<d} ψ((ν_k − i)/2) + d ln 2 + ln |W_k|`, and the expected
//! quadratic form `E[(x − μ_k)ᵀ Λ_k (x − μ_k)] = d/β_k + ν_k (x − m_k)ᵀ W_k (x − m_k)`.
//!
//! The plug-in mixture already evaluates `ln N(x | m_k, W_k⁻¹/ν_k)`, which holds
//! `½ ln |ν_k W_k|` and the quadratic form `ν_k (x − m_k)ᵀ W_k (x − m_k)`. So the
//! variational log-probability is that density with `ln π_k` replaced by a per-component
//! constant: `E[ln π_k] + ½ (d ln 2 + Σ_i ψ((ν_k − i)/2) − d ln ν_k − d/β_k)`. The
//! E-step kernel is the EM one, given those constants.

use nalgebra::DVector;

use super::posterior::{Posterior, WeightConcentration};
use super::special::digamma;
use crate::mixture::GaussianMixture;

impl WeightConcentration {
    /// `E[ln π_k]`: `ψ(α_k) − ψ(Σα)` for the Dirichlet distribution; for the
    /// process `ψ(a_k) − ψ(a_k + b_k) + Σ_{j<k} (ψ(b_j) − ψ(a_j + b_j))`.
    pub fn expected_log_weights(&self) -> DVector<f64> {
        match self {
            Self::Distribution(alpha) => {
                let total = digamma(alpha.sum());
                alpha.map(|a| digamma(a) - total)
            }
            Self::Process { a, b } => {
                let mut before = 0.0;
                DVector::from_fn(a.len(), |k, _| {
                    let sum = digamma(a[k] + b[k]);
                    let v = digamma(a[k]) - sum + before;
                    before += digamma(b[k]) - sum;
                    v
                })
            }
        }
    }
}

/// `Σ_{i<d} ψ((ν − i)/2) + d ln 2`: E[ln |Λ|] less ln |W|.
pub(crate) fn expected_log_det_offset(nu: f64, d: usize) -> f64 {
    let psi: f64 = (0..d).map(|i| digamma(0.5 * (nu - i as f64))).sum();
    d as f64 * std::f64::consts::LN_2 + psi
}

impl Posterior {
    /// The per-component constants that stand for `ln π_k` in the variational
    /// E-step (see the module documentation).
    pub fn log_constants(&self) -> DVector<f64> {
        let d = self.n_features();
        let df = d as f64;
        let log_weights = self.weight_concentration.expected_log_weights();
        DVector::from_fn(self.n_components(), |k, _| {
            let nu = self.degrees_of_freedom[k];
            log_weights[k]
                + 0.5
                    * (expected_log_det_offset(nu, d) - df * nu.ln() - df / self.mean_precision[k])
        })
    }

    /// The mixture whose E-step is the variational E-step: the plug-in components
    /// with [`Posterior::log_constants`] in place of the log-weights. Its
    /// responsibilities are the variational ones; its "log-density" is the
    /// normaliser of the variational log-probabilities, not a density.
    pub fn estep_kernel(&self) -> GaussianMixture {
        self.mixture().with_log_weights(&self.log_constants())
    }
}
