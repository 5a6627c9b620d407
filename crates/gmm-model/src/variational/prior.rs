//! The priors of the variational mixture, with scikit-learn's defaults
//! (`BayesianGaussianMixture`): a Dirichlet process (stick-breaking) or a Dirichlet
//! distribution on the weights, and a Gaussian-Wishart prior on each component's mean
//! and precision: `μ_k | Λ_k ~ N(m₀, (β₀ Λ_k)⁻¹)`, `Λ_k ~ W(W₀, ν₀)` with
//! `W₀⁻¹` = the covariance prior.

use nalgebra::{DMatrix, DVector};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

use crate::covariance::{inverse_cholesky, CovarianceType};
use crate::error::{finite_above, invalid, ModelError, Result};
use crate::linalg::{add_scaled_outer, Points};

/// The prior on the weights (scikit-learn's `weight_concentration_prior_type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WeightPriorType {
    /// Truncated stick-breaking: `v_k ~ Beta(1, γ)`, `π_k = v_k Π_{j<k} (1 − v_j)`.
    #[serde(alias = "dirichlet-process")]
    DirichletProcess,
    /// `π ~ Dirichlet(α₀, …, α₀)`.
    #[serde(alias = "dirichlet-distribution")]
    DirichletDistribution,
}

impl WeightPriorType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::DirichletProcess => "dirichlet_process",
            Self::DirichletDistribution => "dirichlet_distribution",
        }
    }
}

impl fmt::Display for WeightPriorType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for WeightPriorType {
    type Err = ModelError;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "dirichlet-process" | "dirichlet_process" => Ok(Self::DirichletProcess),
            "dirichlet-distribution" | "dirichlet_distribution" => Ok(Self::DirichletDistribution),
            other => Err(invalid(
                "weight_concentration_prior_type",
                format!("`{other}` is not one of dirichlet-process, dirichlet-distribution"),
            )),
        }
    }
}

/// `W₀⁻¹` in the layout of the covariance type (scikit-learn's `covariance_prior`):
/// a d×d matrix for full and tied, d variances for diag, one for spherical.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CovariancePrior {
    Matrix(DMatrix<f64>),
    Diagonal(DVector<f64>),
    Scalar(f64),
}

impl CovariancePrior {
    /// The layout `cov_type` takes, from a d×d covariance: the matrix, its diagonal,
    /// or the mean of its diagonal.
    pub fn of_type(cov_type: CovarianceType, cov: &DMatrix<f64>) -> Self {
        match cov_type {
            CovarianceType::Full | CovarianceType::Tied => Self::Matrix(cov.clone()),
            CovarianceType::Diag => Self::Diagonal(cov.diagonal()),
            CovarianceType::Spherical => Self::Scalar(cov.diagonal().mean()),
        }
    }

    fn fits(&self, cov_type: CovarianceType, d: usize) -> bool {
        match (self, cov_type) {
            (Self::Matrix(m), CovarianceType::Full | CovarianceType::Tied) => m.shape() == (d, d),
            (Self::Diagonal(v), CovarianceType::Diag) => v.len() == d,
            (Self::Scalar(_), CovarianceType::Spherical) => true,
            _ => false,
        }
    }

    /// Symmetric positive definite (positive for diag and spherical), as
    /// scikit-learn requires of a given covariance prior.
    fn is_positive_definite(&self) -> bool {
        match self {
            Self::Matrix(m) => inverse_cholesky(m).is_some(),
            Self::Diagonal(v) => v.iter().all(|&x| finite_above(x, 0.0)),
            Self::Scalar(x) => finite_above(*x, 0.0),
        }
    }
}

/// Prior choices left open take scikit-learn's defaults (see [`VariationalPrior::resolve`]).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PriorChoices {
    /// γ (process) or α₀ (distribution); default 1/K.
    pub weight_concentration: Option<f64>,
    /// β₀; default 1.
    pub mean_precision: Option<f64>,
    /// m₀; default the data mean.
    pub mean: Option<DVector<f64>>,
    /// ν₀ > d − 1; default d.
    pub degrees_of_freedom: Option<f64>,
    /// W₀⁻¹; default the data covariance (unbiased) in the covariance type's layout.
    pub covariance: Option<CovariancePrior>,
}

/// The resolved priors (scikit-learn's `*_prior_` attributes).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VariationalPrior {
    pub weight_concentration_prior_type: WeightPriorType,
    pub weight_concentration: f64,
    pub mean_precision: f64,
    pub mean: DVector<f64>,
    pub degrees_of_freedom: f64,
    pub covariance: CovariancePrior,
}

impl VariationalPrior {
    /// Fills the open choices with scikit-learn's defaults from the data `x` and
    /// checks every value.
    pub fn resolve(
        x: Points<'_>,
        n_components: usize,
        cov_type: CovarianceType,
        weight_prior: WeightPriorType,
        choices: &PriorChoices,
    ) -> Result<Self> {
        let d = x.nrows();
        let needs_data = choices.mean.is_none() || choices.covariance.is_none();
        let (mean, cov) = if needs_data {
            data_moments(x)?
        } else {
            (DVector::zeros(d), DMatrix::zeros(d, d))
        };
        let covariance = match &choices.covariance {
            Some(c) => {
                if !c.is_positive_definite() {
                    return Err(invalid(
                        "covariance_prior",
                        "must be symmetric positive definite (positive for diag and spherical)",
                    ));
                }
                c.clone()
            }
            None => CovariancePrior::of_type(cov_type, &cov),
        };
        let prior = Self {
            weight_concentration_prior_type: weight_prior,
            weight_concentration: choices
                .weight_concentration
                .unwrap_or(1.0 / n_components.max(1) as f64),
            mean_precision: choices.mean_precision.unwrap_or(1.0),
            mean: choices.mean.clone().unwrap_or(mean),
            degrees_of_freedom: choices.degrees_of_freedom.unwrap_or(d as f64),
            covariance,
        };
        prior.check(cov_type, d)?;
        Ok(prior)
    }

    /// Checks shapes against the covariance type and d, and the ranges of the
    /// hyperparameters.
    pub fn check(&self, cov_type: CovarianceType, d: usize) -> Result<()> {
        if self.mean.len() != d || !self.covariance.fits(cov_type, d) {
            return Err(ModelError::InvalidShape(format!(
                "the priors do not fit {cov_type} covariances of {d} features \
                 (mean prior [d]; covariance prior full/tied [d][d], diag [d], spherical a number)"
            )));
        }
        if !finite_above(self.weight_concentration, 0.0) {
            return Err(invalid(
                "weight_concentration_prior",
                "must be a finite number > 0",
            ));
        }
        if !finite_above(self.mean_precision, 0.0) {
            return Err(invalid(
                "mean_precision_prior",
                "must be a finite number > 0",
            ));
        }
        if !self.mean.iter().all(|v| v.is_finite()) {
            return Err(ModelError::NonFinite {
                what: "the mean prior".into(),
            });
        }
        if !finite_above(self.degrees_of_freedom, d as f64 - 1.0) {
            return Err(invalid(
                "degrees_of_freedom_prior",
                format!("must be greater than d - 1 = {}", d as f64 - 1.0),
            ));
        }
        let finite = match &self.covariance {
            CovariancePrior::Matrix(m) => m.iter().all(|v| v.is_finite()),
            CovariancePrior::Diagonal(v) => v.iter().all(|v| v.is_finite()),
            CovariancePrior::Scalar(v) => v.is_finite(),
        };
        if !finite {
            return Err(ModelError::NonFinite {
                what: "the covariance prior".into(),
            });
        }
        Ok(())
    }
}

/// The data mean and unbiased covariance (numpy's `mean` and `cov`), in two passes so
/// that data far from the origin keep their digits: the mean, corrected by the mean
/// of the residuals, then the scatter of the residuals.
fn data_moments(x: Points<'_>) -> Result<(DVector<f64>, DMatrix<f64>)> {
    let (d, n) = x.shape();
    if n < 2 {
        return Err(invalid(
            "priors",
            "the default mean and covariance priors need at least 2 points",
        ));
    }
    let rough = x.column_mean();
    let mut correction = DVector::zeros(d);
    for col in x.column_iter() {
        correction += col - &rough;
    }
    let mean = rough + correction / n as f64;
    let mut cov = DMatrix::zeros(d, d);
    for col in x.column_iter() {
        add_scaled_outer(&mut cov, 1.0, &(col - &mean));
    }
    Ok((mean, cov / (n - 1) as f64))
}
