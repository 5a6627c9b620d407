//! `Mixture`: a validated Gaussian mixture (weights, means, covariances in
//! scikit-learn's layouts) and what it says about points.

use gmm_io::{CovarianceValues, EstimatorInfo, ModelFile};
use gmm_model::{EvalRequest, GaussianMixture, PrecisionFactors};
use numpy::ndarray::Array2;
use numpy::{IntoPyArray, PyArray1, PyArray2, PyArrayDyn, PyReadonlyArray1, PyReadonlyArrayDyn};
use numpy::{PyArrayMethods, PyUntypedArrayMethods};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyTuple;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::errors::{format_error, model_error};
use crate::input::{check_features, PyPoints};

/// Drawn points (n×d) and their components.
type Sample<'py> = (Bound<'py, PyArray2<f64>>, Bound<'py, PyArray1<i64>>);

#[pyclass(frozen, module = "gmm_stream._core")]
pub struct Mixture {
    pub inner: GaussianMixture,
}

impl Mixture {
    pub fn wrap(inner: GaussianMixture) -> Self {
        Self { inner }
    }
}

/// What one pass over points produced.
struct Scores {
    log_density: Vec<f64>,
    /// n×K row-major.
    responsibilities: Vec<f64>,
    log_likelihood: f64,
}

impl Mixture {
    /// One E-step over the points, by blocks, without the interpreter lock.
    fn scores(&self, py: Python<'_>, x: &PyPoints<'_>, request: EvalRequest) -> PyResult<Scores> {
        let model = &self.inner;
        check_features(x.n_features(), model.n_features())?;
        let view = x.view();
        let k = model.n_components();
        py.detach(|| {
            let n = view.n_points();
            let mut out = Scores {
                log_density: Vec::with_capacity(if request.log_density { n } else { 0 }),
                responsibilities: Vec::with_capacity(if request.responsibilities {
                    n * k
                } else {
                    0
                }),
                log_likelihood: 0.0,
            };
            view.for_each_block(|_, points| {
                let eval = model.evaluate(points, request)?;
                out.log_likelihood += eval.log_likelihood;
                out.log_density.extend_from_slice(&eval.log_density);
                // K×n column-major is n×K row-major.
                out.responsibilities
                    .extend_from_slice(eval.responsibilities.as_slice());
                Ok::<_, gmm_model::ModelError>(())
            })
            .map_err(model_error)?;
            Ok(out)
        })
    }
}

#[pymethods]
impl Mixture {
    /// A mixture from scikit-learn's `weights_`, `means_` and `covariances_`;
    /// refuses anything that is not a valid mixture, saying why.
    #[new]
    fn new(
        covariance_type: &str,
        weights: PyReadonlyArray1<'_, f64>,
        means: PyReadonlyArrayDyn<'_, f64>,
        covariances: PyReadonlyArrayDyn<'_, f64>,
    ) -> PyResult<Self> {
        let nested = |a: &PyReadonlyArrayDyn<'_, f64>| -> serde_json::Value {
            let v = a.as_array();
            match v.ndim() {
                0 => serde_json::json!(v.iter().next().copied()),
                1 => serde_json::json!(v.iter().copied().collect::<Vec<f64>>()),
                _ => serde_json::json!(v
                    .outer_iter()
                    .map(|sub| if sub.ndim() == 1 {
                        serde_json::json!(sub.iter().copied().collect::<Vec<f64>>())
                    } else {
                        serde_json::json!(sub
                            .outer_iter()
                            .map(|r| r.iter().copied().collect::<Vec<f64>>())
                            .collect::<Vec<_>>())
                    })
                    .collect::<Vec<_>>()),
            }
        };
        if means.ndim() != 2 {
            return Err(PyValueError::new_err(format!(
                "means must be a 2-d array (n_components, n_features), got {} dimensions",
                means.ndim()
            )));
        }
        if covariances.ndim() > 3 {
            return Err(PyValueError::new_err(
                "covariances must have at most 3 dimensions",
            ));
        }
        let (k, d) = (means.shape()[0], means.shape()[1]);
        // The same path as a model file holding only the mixture fields, so the
        // same checks and messages apply.
        let fields = serde_json::json!({
            "format": gmm_io::FORMAT_NAME,
            "version": gmm_io::FORMAT_VERSION,
            "covariance_type": covariance_type,
            "n_components": k,
            "n_features": d,
            "weights": weights.as_array().iter().copied().collect::<Vec<f64>>(),
            "means": nested(&means),
            "covariances": nested(&covariances),
        });
        let file: ModelFile = serde_json::from_value(fields)
            .map_err(|e| PyValueError::new_err(format!("invalid mixture: {e}")))?;
        Ok(Self::wrap(file.mixture().map_err(format_error)?))
    }

    #[getter]
    fn covariance_type(&self) -> &'static str {
        self.inner.covariance_type().as_str()
    }

    #[getter]
    fn n_components(&self) -> usize {
        self.inner.n_components()
    }

    #[getter]
    fn n_features(&self) -> usize {
        self.inner.n_features()
    }

    /// Free parameters, for BIC and AIC.
    #[getter]
    fn n_parameters(&self) -> usize {
        self.inner.n_parameters()
    }

    #[getter]
    fn weights<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<f64>> {
        self.inner.weights().as_slice().to_vec().into_pyarray(py)
    }

    /// (n_components, n_features).
    #[getter]
    fn means<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyArray2<f64>>> {
        let (k, d) = (self.inner.n_components(), self.inner.n_features());
        // d×K column-major is K×d row-major.
        matrix(py, k, d, self.inner.means().as_slice().to_vec())
    }

    /// scikit-learn's `covariances_` layout: full (K, d, d), diag (K, d),
    /// spherical (K,), tied (d, d).
    #[getter]
    fn covariances<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyArrayDyn<f64>>> {
        let file = ModelFile::new(&self.inner, EstimatorInfo::Unspecified, String::new());
        let (shape, flat): (Vec<usize>, Vec<f64>) = match file.covariances {
            CovarianceValues::Scalars(v) => (vec![v.len()], v),
            CovarianceValues::Rows(r) => (vec![r.len(), r[0].len()], r.concat()),
            CovarianceValues::Matrices(m) => {
                let d = self.inner.n_features();
                (vec![m.len(), d, d], m.concat().concat())
            }
        };
        flat.into_pyarray(py).reshape(shape)
    }

    /// scikit-learn's `precisions_cholesky_` (the transposed inverse Cholesky
    /// factors the core scores with): full (K, d, d), diag (K, d), spherical (K,),
    /// tied (d, d).
    #[getter]
    fn precisions_cholesky<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyArrayDyn<f64>>> {
        let (k, d) = (self.inner.n_components(), self.inner.n_features());
        // A column-major L⁻¹ is its transpose row-major; d×K column-major is K×d
        // row-major.
        let (shape, flat): (Vec<usize>, Vec<f64>) = match self.inner.precision_factors() {
            PrecisionFactors::Full(inv) => (
                vec![k, d, d],
                inv.iter()
                    .flat_map(|m| m.as_slice().iter().copied())
                    .collect(),
            ),
            PrecisionFactors::Tied(inv) => (vec![d, d], inv.as_slice().to_vec()),
            PrecisionFactors::Diag(p) => (vec![k, d], p.as_slice().to_vec()),
            PrecisionFactors::Spherical(p) => (vec![k], p.as_slice().to_vec()),
        };
        flat.into_pyarray(py).reshape(shape)
    }

    /// `ln p(x)` of every point (scikit-learn's `score_samples`).
    fn score_samples<'py>(
        &self,
        py: Python<'py>,
        x: PyPoints<'py>,
    ) -> PyResult<Bound<'py, PyArray1<f64>>> {
        let s = self.scores(py, &x, EvalRequest::LOG_DENSITY)?;
        Ok(s.log_density.into_pyarray(py))
    }

    /// Responsibilities, (n_samples, n_components).
    fn predict_proba<'py>(
        &self,
        py: Python<'py>,
        x: PyPoints<'py>,
    ) -> PyResult<Bound<'py, PyArray2<f64>>> {
        let n = x.view().n_points();
        let s = self.scores(py, &x, EvalRequest::RESPONSIBILITIES)?;
        matrix(py, n, self.inner.n_components(), s.responsibilities)
    }

    /// The most responsible component of every point (the first of equals).
    fn predict<'py>(
        &self,
        py: Python<'py>,
        x: PyPoints<'py>,
    ) -> PyResult<Bound<'py, PyArray1<i64>>> {
        let k = self.inner.n_components();
        let s = self.scores(py, &x, EvalRequest::RESPONSIBILITIES)?;
        let labels: Vec<i64> = s
            .responsibilities
            .chunks_exact(k)
            .map(|r| gmm_model::most_responsible(r) as i64)
            .collect();
        Ok(labels.into_pyarray(py))
    }

    /// Total log-likelihood `Σ ln p(x)` and the number of points.
    fn log_likelihood(&self, py: Python<'_>, x: PyPoints<'_>) -> PyResult<(f64, usize)> {
        let n = x.view().n_points();
        let s = self.scores(py, &x, EvalRequest::NOTHING)?;
        Ok((s.log_likelihood, n))
    }

    /// n points and their components, drawn as `gmm-stream sample --seed` draws them.
    fn sample<'py>(&self, py: Python<'py>, n: usize, seed: u64) -> PyResult<Sample<'py>> {
        let model = &self.inner;
        let (x, labels) = py.detach(|| {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            model.sample(n, &mut rng)
        });
        let d = model.n_features();
        // d×n column-major is n×d row-major.
        let points = matrix(py, n, d, x.as_slice().to_vec())?;
        let labels: Vec<i64> = labels.into_iter().map(|l| l as i64).collect();
        Ok((points, labels.into_pyarray(py)))
    }

    /// Pickling: rebuilt from its parameters, which gives back the same bits.
    fn __reduce__<'py>(
        slf: &Bound<'py, Self>,
    ) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyTuple>)> {
        let py = slf.py();
        let me = slf.get();
        let args = PyTuple::new(
            py,
            [
                me.covariance_type().into_pyobject(py)?.into_any(),
                me.weights(py).into_any(),
                me.means(py)?.into_any(),
                me.covariances(py)?.into_any(),
            ],
        )?;
        Ok((py.get_type::<Self>().into_any(), args))
    }

    fn __repr__(&self) -> String {
        format!(
            "Mixture({} components, {} features, {})",
            self.inner.n_components(),
            self.inner.n_features(),
            self.inner.covariance_type()
        )
    }
}

/// A rows×cols float64 array from row-major values.
pub fn matrix<'py>(
    py: Python<'py>,
    rows: usize,
    cols: usize,
    values: Vec<f64>,
) -> PyResult<Bound<'py, PyArray2<f64>>> {
    let array = Array2::from_shape_vec((rows, cols), values)
        .map_err(|e| PyValueError::new_err(e.to_string()))?;
    Ok(array.into_pyarray(py))
}
