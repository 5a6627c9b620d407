//! `OnlineEstimator`: the daemon's streaming estimator (online EM and the anomaly
//! threshold of its points, [`StreamEstimator`]) driven from Python, batch by batch
//! as the daemon drives it.

use gmm_io::ModelFile;
use gmm_model::anomaly::AnomalyThreshold;
use gmm_model::{
    points_from_rows, DriftSettings, HalfLifeUnit, Inference, OnlineEm, OnlineSettings,
    OnlineVariational, Schedule, StreamEstimator,
};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyTuple};
use serde::{Deserialize, Serialize};

use crate::errors::{anomaly_error, format_error, model_error};
use crate::input::PyPoints;
use crate::mixture::Mixture;

/// The estimator's settings as the Python class's parameters (the daemon's
/// configuration keys; `stepwise_t0` already resolved, `half_life` None for never).
#[derive(FromPyObject, IntoPyObject)]
#[pyo3(from_item_all)]
pub struct Params {
    n_components: usize,
    covariance_type: String,
    reg_covar: f64,
    schedule: String,
    half_life: Option<f64>,
    half_life_unit: String,
    stepwise_alpha: f64,
    stepwise_t0: f64,
    warmup_points: usize,
    warmup_iterations: usize,
    seed: u64,
    min_weight: f64,
    map_prior: bool,
    trim_anomalies: bool,
    anomaly_quantile: f64,
    anomaly_window: usize,
    drift_detection: bool,
    drift_threshold: f64,
    drift_min_drop: f64,
    drift_speedup: f64,
    drift_recovery: f64,
    drift_baseline_batches: u32,
    inference: String,
    weight_prior: String,
    weight_concentration_prior: Option<f64>,
    mean_precision_prior: f64,
    retire_weight: f64,
}

impl Params {
    fn settings(&self) -> PyResult<OnlineSettings> {
        let unit: HalfLifeUnit = self.half_life_unit.parse().map_err(model_error)?;
        let schedule = match self.schedule.as_str() {
            "decay" => Schedule::Decay {
                half_life: self.half_life.filter(|h| h.is_finite() || h.is_nan()),
                unit,
            },
            "stepwise" => Schedule::Stepwise {
                alpha: self.stepwise_alpha,
                t0: self.stepwise_t0,
            },
            other => {
                return Err(PyValueError::new_err(format!(
                    "schedule must be 'decay' or 'stepwise', got {other:?}"
                )))
            }
        };
        let settings = OnlineSettings {
            n_components: self.n_components,
            covariance_type: self.covariance_type.parse().map_err(model_error)?,
            reg_covar: self.reg_covar,
            schedule,
            warmup_points: self.warmup_points,
            warmup_iterations: self.warmup_iterations,
            seed: self.seed,
            min_weight: self.min_weight,
            map_prior: self.map_prior,
            drift: DriftSettings {
                enabled: self.drift_detection,
                threshold: self.drift_threshold,
                min_drop: self.drift_min_drop,
                speedup: self.drift_speedup,
                recovery: self.drift_recovery,
                baseline_batches: self.drift_baseline_batches,
            },
            warmup_trim: OnlineSettings::warmup_trim_for(
                self.trim_anomalies,
                self.anomaly_quantile,
            ),
            inference: match self.inference.as_str() {
                "em" => Inference::Em,
                "variational" => Inference::Variational,
                other => {
                    return Err(PyValueError::new_err(format!(
                        "inference must be 'em' or 'variational', got {other:?}"
                    )))
                }
            },
            variational: OnlineVariational {
                weight_prior: self.weight_prior.parse().map_err(model_error)?,
                weight_concentration: self.weight_concentration_prior,
                mean_precision: self.mean_precision_prior,
                retire_weight: self.retire_weight,
            },
        };
        settings.check().map_err(model_error)?;
        Ok(settings)
    }

    /// The parameters of an estimator restored from a file.
    fn of(stream: &StreamEstimator) -> Self {
        let s = stream.em.settings();
        let (schedule, half_life, unit, alpha, t0) = match s.schedule {
            Schedule::Decay { half_life, unit } => ("decay", half_life, unit, 0.7, -1.0),
            Schedule::Stepwise { alpha, t0 } => {
                ("stepwise", Some(10_000.0), HalfLifeUnit::Points, alpha, t0)
            }
        };
        Self {
            n_components: s.n_components,
            covariance_type: s.covariance_type.as_str().to_owned(),
            reg_covar: s.reg_covar,
            schedule: schedule.to_owned(),
            half_life,
            half_life_unit: unit.as_str().to_owned(),
            stepwise_alpha: alpha,
            stepwise_t0: t0,
            warmup_points: s.warmup_points,
            warmup_iterations: s.warmup_iterations,
            seed: s.seed,
            min_weight: s.min_weight,
            map_prior: s.map_prior,
            trim_anomalies: stream.trim_anomalies,
            anomaly_quantile: stream.anomaly.quantile(),
            anomaly_window: stream.anomaly.window(),
            drift_detection: s.drift.enabled,
            drift_threshold: s.drift.threshold,
            drift_min_drop: s.drift.min_drop,
            drift_speedup: s.drift.speedup,
            drift_recovery: s.drift.recovery,
            drift_baseline_batches: s.drift.baseline_batches,
            inference: s.inference.as_str().to_owned(),
            weight_prior: s.variational.weight_prior.as_str().to_owned(),
            weight_concentration_prior: s.variational.weight_concentration,
            mean_precision_prior: s.variational.mean_precision,
            retire_weight: s.variational.retire_weight,
        }
    }
}

#[pyclass(module = "gmm_stream._core")]
pub struct OnlineEstimator {
    pub inner: StreamEstimator,
}

/// Everything an estimator is, for pickling (the warm-up included, when no model
/// file can be written yet).
#[derive(Serialize, Deserialize)]
struct Saved {
    settings: OnlineSettings,
    state: gmm_model::OnlineState,
    /// What the settings' and the state's serialised forms leave to the model
    /// file's `variational` extension.
    inference: Inference,
    variational: OnlineVariational,
    variational_state: Option<gmm_model::VariationalState>,
    model: Option<ModelFile>,
    anomaly: AnomalyThreshold,
    trim_anomalies: bool,
}

#[pymethods]
impl OnlineEstimator {
    /// A new estimator that warms up on its first points.
    #[new]
    fn new(params: Params) -> PyResult<Self> {
        let em = OnlineEm::new(params.settings()?).map_err(model_error)?;
        let anomaly = AnomalyThreshold::new(params.anomaly_quantile, params.anomaly_window)
            .map_err(anomaly_error)?;
        Ok(Self {
            inner: StreamEstimator {
                em,
                anomaly,
                trim_anomalies: params.trim_anomalies,
            },
        })
    }

    /// Absorbs the points in batches of `batch_size` (the last one may be smaller),
    /// as the daemon absorbs its mini-batches; `elapsed_seconds` since the previous
    /// batch is given to the first (it matters to a half-life in seconds only).
    /// Returns how many points were flagged as anomalies on the way.
    fn partial_fit(
        &mut self,
        py: Python<'_>,
        x: PyPoints<'_>,
        batch_size: usize,
        elapsed_seconds: f64,
    ) -> PyResult<usize> {
        if batch_size == 0 {
            return Err(PyValueError::new_err("batch_size must be at least 1"));
        }
        let view = x.view();
        let d = view.n_features();
        let stream = &mut self.inner;
        py.detach(|| {
            let n = view.n_points();
            let (mut start, mut elapsed, mut anomalies) = (0, elapsed_seconds, 0);
            while start < n {
                let len = batch_size.min(n - start);
                let rows = view.rows(start, len);
                let points = points_from_rows(&rows, d).map_err(model_error)?;
                anomalies += stream
                    .absorb(points, elapsed)
                    .map_err(model_error)?
                    .anomalies;
                elapsed = 0.0;
                start += len;
            }
            Ok(anomalies)
        })
    }

    /// Starts the model from the warm-up buffer, however short (the end of a finite
    /// stream). Returns the anomalies flagged among the buffered points.
    fn finish_warmup(&mut self, py: Python<'_>) -> PyResult<usize> {
        let stream = &mut self.inner;
        let absorbed = py.detach(|| stream.finish_warmup()).map_err(model_error)?;
        Ok(absorbed.anomalies)
    }

    /// The current model; None while warming up.
    #[getter]
    fn model(&self) -> Option<Mixture> {
        self.inner.em.model().cloned().map(Mixture::wrap)
    }

    #[getter]
    fn n_features(&self) -> Option<usize> {
        self.inner.em.state().n_features
    }

    #[getter]
    fn points_seen(&self) -> u64 {
        self.inner.em.points_seen()
    }

    #[getter]
    fn model_version(&self) -> u64 {
        self.inner.em.model_version()
    }

    #[getter]
    fn anomaly_threshold(&self) -> Option<f64> {
        self.inner.anomaly.threshold()
    }

    /// Points waiting for the warm-up to end.
    #[getter]
    fn warmup_len(&self) -> usize {
        self.inner.em.warmup_len()
    }

    /// Abrupt changes detected since the model was born.
    #[getter]
    fn changes_detected(&self) -> u64 {
        self.inner.em.state().drift.changes
    }

    /// The parameters the estimator runs with.
    fn params<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        Ok(Params::of(&self.inner).into_pyobject(py)?.into_any())
    }

    /// The model file (with the estimator's state: a snapshot) in the form `path`
    /// asks for: JSON for `.json`, else binary.
    fn file_bytes<'py>(
        &self,
        py: Python<'py>,
        path: &str,
        updated_at: String,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let file = ModelFile::of_stream(&self.inner, true, updated_at).ok_or_else(|| {
            PyValueError::new_err(format!(
                "no model to save yet: the estimator is warming up ({} of {} points)",
                self.inner.em.warmup_len(),
                self.inner.em.settings().warmup_points
            ))
        })?;
        crate::files::encoded(py, &file, path)
    }

    #[staticmethod]
    fn from_pickle(bytes: &[u8]) -> PyResult<Self> {
        let mut saved: Saved = serde_json::from_slice(bytes)
            .map_err(|e| PyValueError::new_err(format!("not a pickled estimator: {e}")))?;
        saved.settings.inference = saved.inference;
        saved.settings.variational = saved.variational.clone();
        saved.state.variational = saved.variational_state.take();
        let model = match &saved.model {
            Some(file) => Some(file.mixture().map_err(format_error)?),
            None => None,
        };
        let em = OnlineEm::restore(saved.settings, saved.state, model).map_err(model_error)?;
        Ok(Self {
            inner: StreamEstimator {
                em,
                anomaly: saved.anomaly,
                trim_anomalies: saved.trim_anomalies,
            },
        })
    }

    fn __reduce__<'py>(
        slf: &Bound<'py, Self>,
    ) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyTuple>)> {
        let py = slf.py();
        let me = slf.borrow();
        let em = &me.inner.em;
        let saved = Saved {
            settings: em.settings().clone(),
            state: em.state().clone(),
            inference: em.settings().inference,
            variational: em.settings().variational.clone(),
            variational_state: em.state().variational.clone(),
            model: em
                .model()
                .map(|m| ModelFile::new(m, gmm_io::EstimatorInfo::Unspecified, String::new())),
            anomaly: me.inner.anomaly.clone(),
            trim_anomalies: me.inner.trim_anomalies,
        };
        // JSON, as snapshots: every part of the state is made to survive it exactly.
        let bytes = serde_json::to_vec(&saved).map_err(|e| PyValueError::new_err(e.to_string()))?;
        let rebuild = py.get_type::<Self>().getattr("from_pickle")?;
        let args = PyTuple::new(py, [PyBytes::new(py, &bytes)])?;
        Ok((rebuild, args))
    }
}

impl OnlineEstimator {
    pub fn wrap(inner: StreamEstimator) -> Self {
        Self { inner }
    }
}
