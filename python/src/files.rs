//! Model files and daemon snapshots, both forms: read into a [`LoadedFile`] (the
//! mixture, what the file says about it, and the streaming estimator a snapshot
//! holds), and written for a batch fit.

use gmm_io::{BatchInfo, Encoding, EstimatorInfo, ModelFile};
use gmm_model::anomaly::AnomalyThreshold;
use gmm_model::{OnlineEm, Schedule, StreamEstimator};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::bayes::Posterior;
use crate::errors::{anomaly_error, format_error, model_error};
use crate::mixture::Mixture;
use crate::stream::OnlineEstimator;

/// The anomaly threshold's settings when a file does not carry them (the daemon's
/// defaults: `scores.anomaly_quantile`, `scores.anomaly_window`).
const DEFAULT_QUANTILE: f64 = 0.001;
const DEFAULT_WINDOW: usize = 100_000;

#[pyclass(frozen, module = "gmm_stream._core")]
pub struct LoadedFile {
    file: ModelFile,
}

/// Reads either form of a model file or snapshot from its bytes (recognised by its
/// first bytes), validating the mixture.
#[pyfunction]
pub fn read_model_file(py: Python<'_>, bytes: &[u8]) -> PyResult<LoadedFile> {
    let file = py
        .detach(|| ModelFile::from_bytes(bytes))
        .map_err(format_error)?;
    Ok(LoadedFile { file })
}

/// The model file of a batch fit, in the form `path` asks for. `info` is the fit's
/// settings and result as JSON (the model file's `estimator` object less its
/// `kind`), or None when they are not known.
#[pyfunction]
#[pyo3(signature = (mixture, path, updated_at, info=None))]
pub fn batch_model_file<'py>(
    py: Python<'py>,
    mixture: &Mixture,
    path: &str,
    updated_at: String,
    info: Option<&str>,
) -> PyResult<Bound<'py, PyBytes>> {
    let file = ModelFile::new(&mixture.inner, batch_estimator(info)?, updated_at);
    encoded(py, &file, path)
}

/// A batch fit's `estimator` object from its JSON (None: not recorded).
pub(crate) fn batch_estimator(info: Option<&str>) -> PyResult<EstimatorInfo> {
    Ok(match info {
        Some(json) => EstimatorInfo::Batch(
            serde_json::from_str::<BatchInfo>(json)
                .map_err(|e| PyValueError::new_err(format!("invalid fit information: {e}")))?,
        ),
        None => EstimatorInfo::Unspecified,
    })
}

/// The file in the form `path` asks for: JSON for `.json`, else binary.
pub(crate) fn encoded<'py>(
    py: Python<'py>,
    file: &ModelFile,
    path: &str,
) -> PyResult<Bound<'py, PyBytes>> {
    let bytes = file
        .encode(Encoding::for_path(std::path::Path::new(path)))
        .map_err(format_error)?;
    Ok(PyBytes::new(py, &bytes))
}

#[pymethods]
impl LoadedFile {
    fn mixture(&self) -> PyResult<Mixture> {
        Ok(Mixture::wrap(self.file.mixture().map_err(format_error)?))
    }

    /// `bayesian` (a variational fit), `batch`, `online`, or None when the file
    /// names no estimator.
    #[getter]
    fn kind(&self) -> Option<&'static str> {
        if self.file.extensions.bayesian.is_some() {
            return Some("bayesian");
        }
        match &self.file.estimator {
            EstimatorInfo::Batch(_) => Some("batch"),
            EstimatorInfo::Online(_) => Some("online"),
            EstimatorInfo::Unspecified => None,
        }
    }

    /// The posterior of a variational fit (None for other files).
    fn posterior(&self) -> PyResult<Option<Posterior>> {
        Posterior::of_file(&self.file)
    }

    /// Whether the file holds an online estimator's state (a daemon snapshot).
    #[getter]
    fn has_state(&self) -> bool {
        self.file.state.is_some()
    }

    /// The file as JSON without the estimator's and the threshold's state (the
    /// mixture, counters, settings, threshold and positions).
    fn metadata_json(&self) -> PyResult<String> {
        let mut light = self.file.clone();
        light.state = None;
        light.anomaly_state = None;
        let bytes = light.to_json().map_err(format_error)?;
        String::from_utf8(bytes).map_err(|e| PyValueError::new_err(e.to_string()))
    }

    /// The streaming estimator of an online model file. A snapshot continues exactly
    /// where the daemon stopped (its settings, statistics and anomaly threshold).
    /// Without a state, the model starts streaming with statistics that stand for
    /// the points it summarises (`points_seen`, at most what the schedule remembers;
    /// the warm-up size when the file does not say).
    fn online_estimator(&self) -> PyResult<OnlineEstimator> {
        // The settings and state whole again (variational inference keeps its part
        // of them beside).
        let Some(settings) = self.file.online_settings() else {
            return Err(PyValueError::new_err(
                "the file does not hold an online model (its estimator is not `online`)",
            ));
        };
        let model = self.file.mixture().map_err(format_error)?;
        let em = match self.file.online_state() {
            Some(state) => OnlineEm::restore(settings.clone(), state, Some(model)),
            None => {
                let count = pseudo_count(self.file.points_seen, &settings);
                OnlineEm::from_model(settings.clone(), model, count)
            }
        }
        .map_err(model_error)?;
        let (quantile, window) = self
            .file
            .anomaly_state
            .as_ref()
            .map_or((DEFAULT_QUANTILE, DEFAULT_WINDOW), |a| {
                (a.quantile(), a.window())
            });
        let (anomaly, _) =
            AnomalyThreshold::resume(self.file.anomaly_state.clone(), quantile, window)
                .map_err(anomaly_error)?;
        Ok(OnlineEstimator::wrap(StreamEstimator {
            em,
            anomaly,
            // The daemon trims the warm-up exactly when it trims anomalies.
            trim_anomalies: settings.warmup_trim > 0.0,
        }))
    }
}

/// How many points a model without statistics stands for: those it has seen, at
/// most the effective memory of a half-life in points (h / ln 2); the warm-up size
/// when the count is unknown.
fn pseudo_count(points_seen: u64, settings: &gmm_model::OnlineSettings) -> f64 {
    if points_seen == 0 {
        return settings.warmup_points as f64;
    }
    let seen = points_seen as f64;
    match settings.schedule {
        Schedule::Decay {
            half_life: Some(h),
            unit: gmm_model::HalfLifeUnit::Points,
        } => seen.min(h / std::f64::consts::LN_2),
        _ => seen,
    }
}
