//! `gmm_stream._core`: the compiled half of the Python package `gmm_stream`.
//! The scikit-learn estimators (python/gmm_stream) are a thin layer over it; every
//! computation runs here, in the same crates as the daemon and the CLI, with the
//! interpreter lock released.

use pyo3::prelude::*;

mod batch;
mod bayes;
mod errors;
mod files;
mod input;
mod mixture;
mod stream;

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<mixture::Mixture>()?;
    m.add_class::<stream::OnlineEstimator>()?;
    m.add_class::<files::LoadedFile>()?;
    m.add_class::<bayes::Posterior>()?;
    m.add_function(wrap_pyfunction!(bayes::fit_bayesian, m)?)?;
    m.add_function(wrap_pyfunction!(batch::fit_em, m)?)?;
    m.add_function(wrap_pyfunction!(batch::initial_model, m)?)?;
    m.add_function(wrap_pyfunction!(files::read_model_file, m)?)?;
    m.add_function(wrap_pyfunction!(files::batch_model_file, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
