//! Start-up: the newest valid snapshot (a corrupt one is skipped with a warning)
//! gives the estimator, the anomaly threshold and the source positions to resume
//! from; without one the estimator starts with a warm-up.

use std::path::Path;

use super::DaemonError;
use crate::plan::EstimatorPlan;
use crate::sink::SnapshotStore;
use crate::telemetry::Chain;
use gmm_io::{ModelFile, Positions};
use gmm_model::anomaly::AnomalyThreshold;
use gmm_model::OnlineEm;

pub struct Restored {
    pub estimator: OnlineEm,
    pub anomaly: AnomalyThreshold,
    /// Where the snapshot says the next unread point is.
    pub positions: Option<Positions>,
    /// The restored model's dimension, which incoming points must have.
    pub n_features: Option<usize>,
}

/// The state to start from; `dim` is the configured dimension (`source.dim`),
/// which a restored model must have.
pub fn restore(
    plan: &EstimatorPlan,
    dim: Option<usize>,
    store: &SnapshotStore,
) -> Result<Restored, DaemonError> {
    let outcome = store.load_newest()?;
    for skipped in &outcome.skipped {
        tracing::warn!(path = %skipped.path.display(), reason = %skipped.reason, "skipping an unreadable snapshot");
    }
    let anomaly = plan.anomaly;
    let fresh_threshold =
        || AnomalyThreshold::new(anomaly.quantile, anomaly.window).map_err(DaemonError::Anomaly);
    let Some((path, file)) = outcome.newest else {
        tracing::info!(dir = %store.dir().display(), "no snapshot: starting with a warm-up");
        return Ok(Restored {
            estimator: OnlineEm::new(plan.online.clone()).map_err(DaemonError::Settings)?,
            anomaly: fresh_threshold()?,
            positions: None,
            n_features: None,
        });
    };
    let estimator = estimator_from(plan, dim, &path, &file)?;
    // A threshold saved with other settings starts afresh.
    let (anomaly, _) =
        AnomalyThreshold::resume(file.anomaly_state.clone(), anomaly.quantile, anomaly.window)
            .map_err(DaemonError::Anomaly)?;
    tracing::info!(
        path = %path.display(),
        model_version = file.model_version,
        points_seen = file.points_seen,
        "restored the newest snapshot"
    );
    Ok(Restored {
        estimator,
        anomaly,
        positions: file.positions,
        n_features: Some(file.n_features as usize),
    })
}

fn estimator_from(
    plan: &EstimatorPlan,
    dim: Option<usize>,
    path: &Path,
    file: &ModelFile,
) -> Result<OnlineEm, DaemonError> {
    let incompatible = |reason: String| DaemonError::IncompatibleSnapshot {
        path: path.display().to_string(),
        reason,
    };
    let model = file
        .mixture()
        .map_err(|e| incompatible(Chain(&e).to_string()))?;
    let settings = plan.online.clone();
    if model.n_components() != settings.n_components {
        return Err(incompatible(format!(
            "it has {} components, model.components is {}",
            model.n_components(),
            settings.n_components
        )));
    }
    if model.covariance_type() != settings.covariance_type {
        return Err(incompatible(format!(
            "its covariance type is {}, model.covariance_type is {}",
            model.covariance_type(),
            settings.covariance_type
        )));
    }
    if let Some(dim) = dim.filter(|&d| d != model.n_features()) {
        return Err(incompatible(format!(
            "it has {} features, source.dim is {dim}",
            model.n_features()
        )));
    }
    let state = file.online_state().ok_or_else(|| {
        incompatible("it holds no estimator state (it was not written by `run`)".into())
    })?;
    OnlineEm::restore(settings, state, Some(model)).map_err(|e| incompatible(Chain(&e).to_string()))
}
