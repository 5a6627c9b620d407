//! Covariance structures and their precision Cholesky factors.
//!
//! As scikit-learn does, densities are evaluated through the Cholesky factor of the
//! precision: with `Σ = L Lᵀ` (L lower triangular), `y = L⁻¹ (x − μ)` and
//! `log N(x | μ, Σ) = −½ (d ln 2π + ‖y‖²) − Σ ln diag(L)`.
//! scikit-learn stores `precisions_cholesky_ = L⁻ᵀ`; we keep its transpose `L⁻¹`, which
//! is the matrix applied to column points.

use nalgebra::{DMatrix, DVector};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

use super::error::{finite_above, ModelError, Result};

/// How the covariances of the components are parameterised (scikit-learn's names).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum CovarianceType {
    /// Each component has its own general covariance matrix.
    #[default]
    Full,
    /// Each component has its own diagonal covariance matrix.
    Diag,
    /// Each component has its own single variance.
    Spherical,
    /// All components share one general covariance matrix.
    Tied,
}

impl CovarianceType {
    pub const ALL: [CovarianceType; 4] = [Self::Full, Self::Diag, Self::Spherical, Self::Tied];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Full => "full",
            Self::Diag => "diag",
            Self::Spherical => "spherical",
            Self::Tied => "tied",
        }
    }

    /// Free parameters of the covariances (scikit-learn's `_n_parameters`).
    pub fn n_parameters(self, k: usize, d: usize) -> usize {
        match self {
            Self::Full => k * d * (d + 1) / 2,
            Self::Diag => k * d,
            Self::Spherical => k,
            Self::Tied => d * (d + 1) / 2,
        }
    }
}

impl fmt::Display for CovarianceType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for CovarianceType {
    type Err = ModelError;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "full" => Ok(Self::Full),
            "diag" => Ok(Self::Diag),
            "spherical" => Ok(Self::Spherical),
            "tied" => Ok(Self::Tied),
            other => Err(super::error::invalid(
                "covariance_type",
                format!("`{other}` is not one of full, diag, spherical, tied"),
            )),
        }
    }
}

/// The covariances of a mixture, in the layout of their type.
#[derive(Clone, Debug, PartialEq)]
pub enum Covariances {
    /// K matrices, d×d.
    Full(Vec<DMatrix<f64>>),
    /// d×K: column k holds the variances of component k.
    Diag(DMatrix<f64>),
    /// K variances.
    Spherical(DVector<f64>),
    /// One d×d matrix shared by all components.
    Tied(DMatrix<f64>),
}

impl Covariances {
    pub fn covariance_type(&self) -> CovarianceType {
        match self {
            Self::Full(_) => CovarianceType::Full,
            Self::Diag(_) => CovarianceType::Diag,
            Self::Spherical(_) => CovarianceType::Spherical,
            Self::Tied(_) => CovarianceType::Tied,
        }
    }

    /// The full d×d covariance of component `k`, whatever the parameterisation.
    pub fn component_matrix(&self, k: usize, d: usize) -> DMatrix<f64> {
        match self {
            Self::Full(m) => m[k].clone(),
            Self::Diag(v) => DMatrix::from_diagonal(&v.column(k).into_owned()),
            Self::Spherical(v) => DMatrix::identity(d, d) * v[k],
            Self::Tied(m) => m.clone(),
        }
    }

    /// Checks shapes against K and d and that every value is finite.
    pub(crate) fn check_shape(&self, k: usize, d: usize) -> Result<()> {
        let bad = |msg: String| Err(ModelError::InvalidShape(msg));
        match self {
            Self::Full(m) => {
                if m.len() != k {
                    return bad(format!("{} full covariances for {k} components", m.len()));
                }
                if let Some(c) = m.iter().find(|c| c.shape() != (d, d)) {
                    return bad(format!("a covariance is {:?}, expected {d}x{d}", c.shape()));
                }
            }
            Self::Diag(m) if m.shape() != (d, k) => {
                return bad(format!(
                    "diag covariances are {:?}, expected {d}x{k}",
                    m.shape()
                ))
            }
            Self::Spherical(v) if v.len() != k => {
                return bad(format!(
                    "{} spherical variances for {k} components",
                    v.len()
                ))
            }
            Self::Tied(m) if m.shape() != (d, d) => {
                return bad(format!(
                    "tied covariance is {:?}, expected {d}x{d}",
                    m.shape()
                ))
            }
            _ => {}
        }
        if !self.values().all(f64::is_finite) {
            return Err(ModelError::NonFinite {
                what: "covariances".into(),
            });
        }
        Ok(())
    }

    fn values(&self) -> Box<dyn Iterator<Item = f64> + '_> {
        match self {
            Self::Full(m) => Box::new(m.iter().flat_map(|c| c.iter().copied())),
            Self::Diag(m) | Self::Tied(m) => Box::new(m.iter().copied()),
            Self::Spherical(v) => Box::new(v.iter().copied()),
        }
    }
}

/// The precision Cholesky factors, in the layout the E-step kernel wants, and the
/// log-determinant term `Σ ln diag(L⁻¹)` of every component.
#[derive(Clone, Debug)]
pub(crate) struct PrecisionCholesky {
    pub factors: Factors,
    pub log_det: DVector<f64>,
}

/// The Cholesky factors of the precisions: with `Σ = L Lᵀ`, `L⁻¹` (scikit-learn's
/// `precisions_cholesky_` holds their transposes).
#[derive(Clone, Debug)]
pub enum Factors {
    /// L⁻¹ for each component (lower triangular).
    Full(Vec<DMatrix<f64>>),
    /// d×K: 1/σ per coordinate and component.
    Diag(DMatrix<f64>),
    /// 1/σ per component.
    Spherical(DVector<f64>),
    /// The shared L⁻¹.
    Tied(DMatrix<f64>),
}

impl PrecisionCholesky {
    /// Factors covariances that have already passed `check_shape`. A matrix that is
    /// not symmetric or not positive definite is reported with its component index.
    pub fn new(cov: &Covariances, k: usize, d: usize) -> Result<Self> {
        match cov {
            Covariances::Full(ms) => {
                let mut factors = Vec::with_capacity(ms.len());
                let mut log_det = DVector::zeros(ms.len());
                for (i, m) in ms.iter().enumerate() {
                    let (inv, ld) = inverse_cholesky(m)
                        .ok_or(ModelError::NotPositiveDefinite { component: i })?;
                    factors.push(inv);
                    log_det[i] = ld;
                }
                Ok(Self {
                    factors: Factors::Full(factors),
                    log_det,
                })
            }
            Covariances::Tied(m) => {
                let (inv, ld) =
                    inverse_cholesky(m).ok_or(ModelError::NotPositiveDefinite { component: 0 })?;
                Ok(Self {
                    factors: Factors::Tied(inv),
                    log_det: DVector::from_element(k, ld),
                })
            }
            Covariances::Diag(v) => {
                if let Some(i) = first_non_positive(v.column_iter().map(|c| c.min())) {
                    return Err(ModelError::NotPositiveDefinite { component: i });
                }
                let inv_sd = v.map(|x| 1.0 / x.sqrt());
                let log_det = DVector::from_iterator(
                    v.ncols(),
                    inv_sd.column_iter().map(|c| c.iter().map(|x| x.ln()).sum()),
                );
                Ok(Self {
                    factors: Factors::Diag(inv_sd),
                    log_det,
                })
            }
            Covariances::Spherical(v) => {
                if let Some(i) = first_non_positive(v.iter().copied()) {
                    return Err(ModelError::NotPositiveDefinite { component: i });
                }
                let inv_sd = v.map(|x| 1.0 / x.sqrt());
                let log_det = inv_sd.map(|x| x.ln() * d as f64);
                Ok(Self {
                    factors: Factors::Spherical(inv_sd),
                    log_det,
                })
            }
        }
    }
}

fn first_non_positive(mut it: impl Iterator<Item = f64>) -> Option<usize> {
    it.position(|x| x.is_nan() || x <= 0.0)
}

/// Relative asymmetry above which a matrix is refused rather than symmetrised.
const SYMMETRY_TOLERANCE: f64 = 1e-8;

/// `(L⁻¹, Σ ln diag(L⁻¹))` for a symmetric positive definite `m = L Lᵀ`, or None.
pub(crate) fn inverse_cholesky(m: &DMatrix<f64>) -> Option<(DMatrix<f64>, f64)> {
    if !is_symmetric(m) {
        return None;
    }
    let chol = nalgebra::Cholesky::new(m.clone())?;
    let l = chol.l();
    if l.diagonal().iter().any(|&x| !finite_above(x, 0.0)) {
        return None;
    }
    let d = m.nrows();
    let inv = l.solve_lower_triangular(&DMatrix::identity(d, d))?;
    let log_det = -l.diagonal().iter().map(|x| x.ln()).sum::<f64>();
    log_det.is_finite().then_some((inv, log_det))
}

fn is_symmetric(m: &DMatrix<f64>) -> bool {
    let d = m.nrows();
    (0..d).all(|i| {
        (0..i).all(|j| {
            let scale = (m[(i, i)].abs() * m[(j, j)].abs())
                .sqrt()
                .max(f64::MIN_POSITIVE);
            (m[(i, j)] - m[(j, i)]).abs() <= SYMMETRY_TOLERANCE * scale
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inverse_cholesky_whitens() {
        let m = DMatrix::from_row_slice(2, 2, &[4.0, 1.0, 1.0, 3.0]);
        let (inv, log_det) = inverse_cholesky(&m).expect("SPD");
        let w = &inv * &m * inv.transpose();
        assert!((w - DMatrix::<f64>::identity(2, 2)).norm() < 1e-12);
        assert!((log_det + 0.5 * m.determinant().ln()).abs() < 1e-12);
    }

    #[test]
    fn rejects_indefinite_and_asymmetric() {
        let indefinite = DMatrix::from_row_slice(2, 2, &[1.0, 2.0, 2.0, 1.0]);
        assert!(inverse_cholesky(&indefinite).is_none());
        let asymmetric = DMatrix::from_row_slice(2, 2, &[2.0, 0.5, 0.0, 2.0]);
        assert!(inverse_cholesky(&asymmetric).is_none());
    }

    #[test]
    fn parses_names() {
        for t in CovarianceType::ALL {
            assert_eq!(t.as_str().parse::<CovarianceType>().ok(), Some(t));
        }
        assert!("banana".parse::<CovarianceType>().is_err());
    }
}
