//! Batch EM (scikit-learn's `GaussianMixture.fit`), and the initial model of an
//! initialisation method (for starts where only some of `weights_init`,
//! `means_init`, `precisions_init` are given).

use gmm_model::{
    fit, initial_stats, m_step, points_from_rows, resume, CovarianceType, EmSettings, InitMethod,
    Iteration, Start,
};
use pyo3::prelude::*;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::errors::model_error;
use crate::input::{check_features, PyPoints};
use crate::mixture::Mixture;

/// What a fit hands back: the best run's model, whether it converged, its
/// iterations and its lower bound at each one (scikit-learn's `lower_bounds_`).
type FitOutcome = (Mixture, bool, usize, f64, Vec<f64>);

/// scikit-learn's fitting parameters, from a dict.
#[derive(FromPyObject)]
#[pyo3(from_item_all)]
pub struct EmParams {
    n_components: usize,
    covariance_type: String,
    max_iter: usize,
    tol: f64,
    reg_covar: f64,
    n_init: usize,
    init_params: String,
}

impl EmParams {
    pub(crate) fn settings(&self, seed: u64) -> PyResult<(EmSettings, InitMethod)> {
        let covariance_type: CovarianceType = self.covariance_type.parse().map_err(model_error)?;
        let method: InitMethod = self.init_params.parse().map_err(model_error)?;
        let settings = EmSettings {
            covariance_type,
            max_iter: self.max_iter,
            tol: self.tol,
            reg_covar: self.reg_covar,
            n_init: self.n_init,
            start: Start::Init(method),
            seed,
            ..EmSettings::new(self.n_components)
        };
        Ok((settings, method))
    }
}

/// Fits by EM. With `start`, every run begins from that model; with
/// `previous_lower_bound` as well, it is a warm start (one run whose first change is
/// measured from that bound). `progress(init, iteration, lower_bound, change)` is
/// called at every iteration when given (scikit-learn's `verbose`).
#[pyfunction]
#[pyo3(signature = (x, params, seed, start=None, previous_lower_bound=None, progress=None))]
pub fn fit_em(
    py: Python<'_>,
    x: PyPoints<'_>,
    params: EmParams,
    seed: u64,
    start: Option<&Bound<'_, Mixture>>,
    previous_lower_bound: Option<f64>,
    progress: Option<Py<PyAny>>,
) -> PyResult<FitOutcome> {
    let (mut settings, _) = params.settings(seed)?;
    let start = start.map(|m| m.get().inner.clone());
    if let Some(m) = &start {
        check_features(x.n_features(), m.n_features())?;
    }
    let view = x.view();
    let d = view.n_features();
    let report = py.detach(|| {
        let rows = view.all_rows();
        let points = points_from_rows(&rows, d).map_err(model_error)?;
        let mut failed: Option<PyErr> = None;
        let mut callback = |it: &Iteration| progress_callback(&progress, &mut failed, it);
        let report = match (start, previous_lower_bound) {
            (Some(model), Some(bound)) => resume(model, bound, points, &settings, &mut callback),
            (Some(model), None) => {
                settings.start = Start::Model(model);
                fit(points, &settings, &mut callback)
            }
            (None, _) => fit(points, &settings, &mut callback),
        };
        if let Some(e) = failed {
            return Err(e);
        }
        report.map_err(model_error)
    })?;
    Ok((
        Mixture::wrap(report.model),
        report.converged,
        report.n_iter,
        report.lower_bound,
        report.history,
    ))
}

/// Calls `progress(init, iteration, lower_bound, change)` from the core's loop
/// (taking the interpreter lock for it); the first error stops the calls and is
/// kept in `failed`.
pub(crate) fn progress_callback(
    progress: &Option<Py<PyAny>>,
    failed: &mut Option<PyErr>,
    it: &Iteration,
) {
    let (Some(f), None) = (progress, &failed) else {
        return;
    };
    let called = Python::attach(|py| {
        f.call1(
            py,
            (it.init, it.iteration, it.mean_log_likelihood, it.change),
        )
        .map(drop)
    });
    *failed = called.err();
}

/// The model an initialisation method starts EM from (the first run of `fit_em`
/// with the same seed starts from it too): responsibilities from the method, then
/// an M-step with `reg_covar`.
#[pyfunction]
pub fn initial_model(
    py: Python<'_>,
    x: PyPoints<'_>,
    params: EmParams,
    seed: u64,
) -> PyResult<Mixture> {
    let (s, method) = params.settings(seed)?;
    let view = x.view();
    let d = view.n_features();
    let model = py.detach(|| {
        let rows = view.all_rows();
        let points = points_from_rows(&rows, d)?;
        s.check(points)?;
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let stats = initial_stats(
            points,
            s.n_components,
            s.covariance_type,
            method,
            &mut rng,
            0.0,
        )?;
        m_step(&stats, s.reg_covar, None, None)
    });
    Ok(Mixture::wrap(model.map_err(model_error)?))
}
