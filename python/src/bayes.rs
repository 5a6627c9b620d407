//! Variational Bayesian mixtures (scikit-learn's `BayesianGaussianMixture`): the
//! batch fit, and `Posterior`, which scores as scikit-learn's does (the variational
//! E-step: expected log-weights and precisions, not the plug-in density).

use gmm_io::{BayesianInfo, ModelFile};
use gmm_model::{
    fit_variational, points_from_rows, CovariancePrior, CovarianceType, Iteration,
    Posterior as CorePosterior, PriorChoices, Start, VariationalPrior, VariationalSettings,
    WeightConcentration, WeightPriorType,
};
use nalgebra::{DMatrix, DVector};
use numpy::{PyReadonlyArray1, PyReadonlyArrayDyn, PyUntypedArrayMethods};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::batch::{progress_callback, EmParams};
use crate::errors::{format_error, model_error};
use crate::files::{batch_estimator, encoded};
use crate::input::{check_features, PyPoints};
use crate::mixture::Mixture;

/// The priors as scikit-learn's parameters (None: its default from the data).
#[derive(FromPyObject)]
#[pyo3(from_item_all)]
pub struct PriorParams {
    weight_concentration_prior_type: String,
    weight_concentration_prior: Option<f64>,
    mean_precision_prior: Option<f64>,
    mean_prior: Option<Vec<f64>>,
    degrees_of_freedom_prior: Option<f64>,
    /// Flattened: d×d row-major (full, tied), d (diag), one value (spherical).
    covariance_prior: Option<Vec<f64>>,
}

fn covariance_prior_of(t: CovarianceType, v: &[f64], d: usize) -> PyResult<CovariancePrior> {
    let bad = |n: &str| {
        PyValueError::new_err(format!(
            "covariance_prior for {t} covariances must have {n} values, got {}",
            v.len()
        ))
    };
    Ok(match t {
        CovarianceType::Full | CovarianceType::Tied if v.len() == d * d => {
            CovariancePrior::Matrix(DMatrix::from_row_slice(d, d, v))
        }
        CovarianceType::Full | CovarianceType::Tied => return Err(bad("d x d")),
        CovarianceType::Diag if v.len() == d => {
            CovariancePrior::Diagonal(DVector::from_column_slice(v))
        }
        CovarianceType::Diag => return Err(bad("d")),
        CovarianceType::Spherical if v.len() == 1 => CovariancePrior::Scalar(v[0]),
        CovarianceType::Spherical => return Err(bad("1")),
    })
}

/// A fitted or restored posterior with the priors it came from.
#[pyclass(frozen, module = "gmm_stream._core")]
pub struct Posterior {
    posterior: CorePosterior,
    prior: VariationalPrior,
}

/// Fits the posterior by coordinate ascent. With `start`, the initial
/// responsibilities are an E-step under that model (`fit --bayesian
/// --init-model`); otherwise they come from `init_params`.
#[pyfunction]
#[pyo3(signature = (x, params, priors, seed, start=None, progress=None))]
pub fn fit_bayesian(
    py: Python<'_>,
    x: PyPoints<'_>,
    params: EmParams,
    priors: PriorParams,
    seed: u64,
    start: Option<&Bound<'_, Mixture>>,
    progress: Option<Py<PyAny>>,
) -> PyResult<(Posterior, bool, usize, f64, Vec<f64>)> {
    let (mut em, _) = params.settings(seed)?;
    let d = x.n_features();
    if let Some(m) = start {
        check_features(d, m.get().inner.n_features())?;
        em.start = Start::Model(m.get().inner.clone());
    }
    let weight_prior: WeightPriorType = priors
        .weight_concentration_prior_type
        .parse()
        .map_err(model_error)?;
    let choices = PriorChoices {
        weight_concentration: priors.weight_concentration_prior,
        mean_precision: priors.mean_precision_prior,
        mean: priors.mean_prior.as_deref().map(DVector::from_column_slice),
        degrees_of_freedom: priors.degrees_of_freedom_prior,
        covariance: priors
            .covariance_prior
            .as_deref()
            .map(|v| covariance_prior_of(em.covariance_type, v, d))
            .transpose()?,
    };
    let settings = VariationalSettings {
        em,
        weight_prior,
        priors: choices,
    };
    let view = x.view();
    let report = py.detach(|| {
        let rows = view.all_rows();
        let points = points_from_rows(&rows, d).map_err(model_error)?;
        let mut failed = None;
        let mut callback = |it: &Iteration| progress_callback(&progress, &mut failed, it);
        let report = fit_variational(points, &settings, &mut callback);
        if let Some(e) = failed {
            return Err(e);
        }
        report.map_err(model_error)
    })?;
    Ok((
        Posterior {
            posterior: report.posterior,
            prior: report.prior,
        },
        report.converged,
        report.n_iter,
        report.lower_bound,
        report.history,
    ))
}

fn vector(a: &PyReadonlyArray1<'_, f64>) -> DVector<f64> {
    DVector::from_iterator(a.len(), a.as_array().iter().copied())
}

#[pymethods]
impl Posterior {
    /// A posterior from scikit-learn's attributes: the plug-in `mixture`
    /// (`weights_`, `means_`, `covariances_`), `weight_concentration_` (2×K for
    /// the Dirichlet process, K for the distribution), `mean_precision_`,
    /// `degrees_of_freedom_` (K, or one value for tied), and the priors.
    #[new]
    #[allow(clippy::too_many_arguments)]
    fn new(
        mixture: &Mixture,
        weight_concentration_prior_type: &str,
        weight_concentration: PyReadonlyArrayDyn<'_, f64>,
        mean_precision: PyReadonlyArray1<'_, f64>,
        degrees_of_freedom: PyReadonlyArrayDyn<'_, f64>,
        weight_concentration_prior: f64,
        mean_precision_prior: f64,
        mean_prior: PyReadonlyArray1<'_, f64>,
        degrees_of_freedom_prior: f64,
        covariance_prior: PyReadonlyArrayDyn<'_, f64>,
    ) -> PyResult<Self> {
        let model = &mixture.inner;
        let (k, d) = (model.n_components(), model.n_features());
        let kind: WeightPriorType = weight_concentration_prior_type
            .parse()
            .map_err(model_error)?;
        let flat =
            |a: &PyReadonlyArrayDyn<'_, f64>| a.as_array().iter().copied().collect::<Vec<f64>>();
        let wc = flat(&weight_concentration);
        let weight_concentration = match kind {
            WeightPriorType::DirichletProcess if wc.len() == 2 * k => {
                WeightConcentration::Process {
                    a: DVector::from_column_slice(&wc[..k]),
                    b: DVector::from_column_slice(&wc[k..]),
                }
            }
            WeightPriorType::DirichletDistribution if wc.len() == k => {
                WeightConcentration::Distribution(DVector::from_vec(wc))
            }
            _ => {
                return Err(PyValueError::new_err(format!(
                "weight_concentration_ has {} values; the {kind} prior of {k} components needs {}",
                wc.len(),
                if kind == WeightPriorType::DirichletProcess {
                    2 * k
                } else {
                    k
                }
            )))
            }
        };
        let nu = flat(&degrees_of_freedom);
        let degrees_of_freedom = if nu.len() == 1 {
            DVector::from_element(k, nu[0])
        } else {
            DVector::from_vec(nu)
        };
        let posterior = CorePosterior::from_parts(
            weight_concentration,
            vector(&mean_precision),
            degrees_of_freedom,
            model.clone(),
        )
        .map_err(model_error)?;
        let prior = VariationalPrior {
            weight_concentration_prior_type: kind,
            weight_concentration: weight_concentration_prior,
            mean_precision: mean_precision_prior,
            mean: vector(&mean_prior),
            degrees_of_freedom: degrees_of_freedom_prior,
            covariance: covariance_prior_of(model.covariance_type(), &flat(&covariance_prior), d)?,
        };
        prior
            .check(model.covariance_type(), d)
            .map_err(model_error)?;
        Ok(Self { posterior, prior })
    }

    /// The plug-in mixture of `weights_`, `means_`, `covariances_` (sampling).
    #[getter]
    fn mixture(&self) -> Mixture {
        Mixture::wrap(self.posterior.mixture().clone())
    }

    /// The mixture whose E-step is the variational one: its responsibilities and
    /// "log-densities" are scikit-learn's `predict_proba` and `score_samples`.
    #[getter]
    fn kernel(&self) -> Mixture {
        Mixture::wrap(self.posterior.estep_kernel())
    }

    /// scikit-learn's posterior and prior attributes, as a JSON object (the model
    /// file's `bayesian` object).
    fn attributes_json(&self) -> PyResult<String> {
        serde_json::to_string(&BayesianInfo::new(&self.posterior, &self.prior))
            .map_err(|e| PyValueError::new_err(e.to_string()))
    }

    /// The model file of the fit, in the form `path` asks for; `info` is the fit's
    /// settings and result (JSON), as for a batch fit.
    fn file_bytes<'py>(
        &self,
        py: Python<'py>,
        path: &str,
        updated_at: String,
        info: Option<&str>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let mut file = ModelFile::new(self.posterior.mixture(), batch_estimator(info)?, updated_at);
        file.extensions.bayesian = Some(BayesianInfo::new(&self.posterior, &self.prior));
        encoded(py, &file, path)
    }
}

impl Posterior {
    /// The posterior a model file's `bayesian` object describes.
    pub fn of_file(file: &ModelFile) -> PyResult<Option<Self>> {
        let Some(info) = &file.extensions.bayesian else {
            return Ok(None);
        };
        let mixture = file.mixture().map_err(format_error)?;
        Ok(Some(Self {
            posterior: info.posterior(mixture).map_err(model_error)?,
            prior: info.prior().map_err(model_error)?,
        }))
    }
}
