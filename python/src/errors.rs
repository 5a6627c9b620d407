//! Errors of the core as Python exceptions: bad input and invalid models are
//! `ValueError` (scikit-learn's convention), with scikit-learn's message where it has
//! one.

use gmm_io::FormatError;
use gmm_model::anomaly::AnomalyError;
use gmm_model::ModelError;
use pyo3::exceptions::PyValueError;
use pyo3::PyErr;

/// scikit-learn's message for a fit that hits a degenerate covariance.
const ILL_DEFINED: &str = "Fitting the mixture model failed because some components have \
     ill-defined empirical covariance (for instance caused by singleton or collapsed \
     samples). Try to decrease the number of components, increase reg_covar, or scale \
     the input data.";

pub fn model_error(e: ModelError) -> PyErr {
    match e {
        ModelError::IllDefinedCovariance { component } => PyValueError::new_err(format!(
            "{ILL_DEFINED} (The covariance of component {component} is not positive definite.)"
        )),
        ModelError::TooFewPoints {
            n_points,
            n_components,
        } => PyValueError::new_err(format!(
            "Expected n_samples >= n_components but got n_components = {n_components}, \
             n_samples = {n_points}"
        )),
        other => PyValueError::new_err(other.to_string()),
    }
}

pub fn format_error(e: FormatError) -> PyErr {
    match e {
        FormatError::Invalid(m) => model_error(m),
        other => PyValueError::new_err(other.to_string()),
    }
}

pub fn anomaly_error(e: AnomalyError) -> PyErr {
    PyValueError::new_err(e.to_string())
}
