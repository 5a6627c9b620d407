//! Errors of the numerical core. Each message says what went wrong and, where there
//! is one, what to do about it.

use thiserror::Error;

#[derive(Debug, Error, Clone, PartialEq)]
pub enum ModelError {
    #[error("points have {got} coordinates but the model has {expected} features")]
    DimensionMismatch { expected: usize, got: usize },

    #[error("{what} contains a non-finite value (NaN or infinity)")]
    NonFinite { what: String },

    #[error(
        "{what} holds {value:e}, beyond ±{max:e}, the largest coordinate the estimator \
         accepts"
    )]
    OutOfRange { what: String, value: f64, max: f64 },

    #[error("invalid weights: {0}")]
    InvalidWeights(String),

    #[error("invalid shape: {0}")]
    InvalidShape(String),

    #[error(
        "the covariance of component {component} is not symmetric positive definite; \
         check the model, or increase reg_covar"
    )]
    NotPositiveDefinite { component: usize },

    #[error(
        "fitting the mixture failed because component {component} has an ill-defined \
         empirical covariance (for instance caused by singleton or collapsed samples); \
         decrease the number of components, or increase reg_covar"
    )]
    IllDefinedCovariance { component: usize },

    #[error("invalid setting {name}: {reason}")]
    InvalidParameter { name: &'static str, reason: String },

    #[error("{n_points} points are too few for {n_components} components")]
    TooFewPoints {
        n_points: usize,
        n_components: usize,
    },

    #[error("no points to work on")]
    Empty,

    #[error("statistics are incompatible: {0}")]
    IncompatibleStats(String),
}

pub type Result<T, E = ModelError> = std::result::Result<T, E>;

pub(crate) fn invalid(name: &'static str, reason: impl Into<String>) -> ModelError {
    ModelError::InvalidParameter {
        name,
        reason: reason.into(),
    }
}

/// A finite number strictly above `min` (NaN and infinities are not).
pub(crate) fn finite_above(x: f64, min: f64) -> bool {
    x.is_finite() && x > min
}

/// A finite number at least `min` (NaN and infinities are not).
pub(crate) fn finite_at_least(x: f64, min: f64) -> bool {
    x.is_finite() && x >= min
}
