//! What a fitted mixture says about points: log-densities, responsibilities,
//! predictions and information criteria, all through the one E-step of `estep`.
//! Kept apart from `mixture` (the parameters) so that the E-step can depend on the
//! parameters without the parameters depending back on the E-step.

use nalgebra::DMatrix;

use super::error::{ModelError, Result};
use super::estep::{evaluate, EvalRequest, Evaluation};
use super::linalg::Points;
use super::mixture::GaussianMixture;

impl GaussianMixture {
    /// `ln p(x)` of every point (scikit-learn's `score_samples`).
    pub fn score_samples(&self, x: Points<'_>) -> Result<Vec<f64>> {
        Ok(self.evaluate(x, EvalRequest::LOG_DENSITY)?.log_density)
    }

    /// Mean log-likelihood per point (scikit-learn's `score`).
    pub fn score(&self, x: Points<'_>) -> Result<f64> {
        if x.ncols() == 0 {
            return Err(ModelError::Empty);
        }
        Ok(self
            .evaluate(x, EvalRequest::NOTHING)?
            .mean_log_likelihood())
    }

    /// Responsibilities `γ_jk` as a K×n matrix (column j sums to 1).
    pub fn predict_proba(&self, x: Points<'_>) -> Result<DMatrix<f64>> {
        Ok(self
            .evaluate(x, EvalRequest::RESPONSIBILITIES)?
            .responsibilities)
    }

    /// The most responsible component of every point.
    pub fn predict(&self, x: Points<'_>) -> Result<Vec<usize>> {
        let resp = self.predict_proba(x)?;
        Ok(resp.column_iter().map(|c| c.imax()).collect())
    }

    /// Bayesian information criterion on `x` (lower is better).
    pub fn bic(&self, x: Points<'_>) -> Result<f64> {
        if x.ncols() == 0 {
            return Err(ModelError::Empty);
        }
        let total = self.evaluate(x, EvalRequest::NOTHING)?.log_likelihood;
        Ok(-2.0 * total + self.n_parameters() as f64 * (x.ncols() as f64).ln())
    }

    /// Akaike information criterion on `x` (lower is better).
    pub fn aic(&self, x: Points<'_>) -> Result<f64> {
        if x.ncols() == 0 {
            return Err(ModelError::Empty);
        }
        let total = self.evaluate(x, EvalRequest::NOTHING)?.log_likelihood;
        Ok(-2.0 * total + 2.0 * self.n_parameters() as f64)
    }

    /// Evaluates the mixture on points: log-likelihood always, and on request each
    /// point's log-density, its responsibilities and the sufficient statistics that
    /// the responsibilities weight. See [`EvalRequest`] for what it can compute.
    pub fn evaluate(&self, x: Points<'_>, request: EvalRequest) -> Result<Evaluation> {
        self.check_points(x)?;
        Ok(evaluate(self, x, request))
    }
}
