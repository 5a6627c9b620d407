//! Start-up: the newest valid snapshot (a corrupt one is skipped with a warning)
//! gives the estimator, the anomaly threshold and the source positions to resume
//! from; without one the estimator starts with a warm-up.

use std::path::Path;

use super::DaemonError;
use crate::plan::EstimatorPlan;
use crate::sink::SnapshotStore;
use crate::telemetry::Chain;
use gmm_io::{FileIdentity, ModelFile, Positions};
use gmm_model::anomaly::AnomalyThreshold;
use gmm_model::OnlineEm;

pub struct Restored {
    pub estimator: OnlineEm,
    pub anomaly: AnomalyThreshold,
    /// Where the snapshot says the next unread point is.
    pub positions: Option<Positions>,
    /// The file source's identity at those positions, when the snapshot has one.
    pub source_file: Option<FileIdentity>,
    /// The restored model's dimension, which incoming points must have.
    pub n_features: Option<usize>,
}

/// The state to start from; `dim` is the configured dimension (`source.dim`),
/// which a restored model must have. The newest snapshot that restores wins;
/// newer ones that do not (any decoding or state error: truncated, corrupted, a
/// crafted length, an edited JSON snapshot, a state that does not hold together)
/// are skipped with a warning. One that does not fit the configuration is an
/// error: skipping it would throw the model away.
pub fn restore(
    plan: &EstimatorPlan,
    dim: Option<usize>,
    store: &SnapshotStore,
) -> Result<Restored, DaemonError> {
    let skip = |path: &Path, reason: String| {
        tracing::warn!(path = %path.display(), %reason, "skipping an unreadable snapshot");
    };
    for path in store.snapshots()?.into_iter().rev() {
        let file = match SnapshotStore::read(&path) {
            Ok(file) => file,
            Err(reason) => {
                skip(&path, reason);
                continue;
            }
        };
        check_fits(plan, dim, &path, &file)?;
        match restore_from(plan, &path, file) {
            Ok(restored) => return Ok(restored),
            Err(reason) => skip(&path, reason),
        }
    }
    tracing::info!(dir = %store.dir().display(), "no snapshot: starting with a warm-up");
    let anomaly = plan.anomaly;
    Ok(Restored {
        estimator: OnlineEm::new(plan.online.clone()).map_err(DaemonError::Settings)?,
        anomaly: AnomalyThreshold::new(anomaly.quantile, anomaly.window)
            .map_err(DaemonError::Anomaly)?,
        positions: None,
        source_file: None,
        n_features: None,
    })
}

/// The estimator and threshold a snapshot holds; an error says why it is corrupt.
fn restore_from(plan: &EstimatorPlan, path: &Path, file: ModelFile) -> Result<Restored, String> {
    let model = file.mixture().map_err(|e| Chain(&e).to_string())?;
    let state = file.online_state().ok_or("it holds no estimator state")?;
    let estimator = OnlineEm::restore(plan.online.clone(), state, Some(model))
        .map_err(|e| Chain(&e).to_string())?;
    // A threshold saved with other settings starts afresh.
    let anomaly = plan.anomaly;
    let (anomaly, _) =
        AnomalyThreshold::resume(file.anomaly_state.clone(), anomaly.quantile, anomaly.window)
            .map_err(|e| e.to_string())?;
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
        source_file: file.extensions.source_file,
        n_features: Some(file.n_features as usize),
    })
}

/// Whether a readable snapshot fits the configuration (else a start-up error).
fn check_fits(
    plan: &EstimatorPlan,
    dim: Option<usize>,
    path: &Path,
    file: &ModelFile,
) -> Result<(), DaemonError> {
    let incompatible = |reason: String| DaemonError::IncompatibleSnapshot {
        path: path.display().to_string(),
        reason,
    };
    let model = file
        .mixture()
        .map_err(|e| incompatible(Chain(&e).to_string()))?;
    let settings = &plan.online;
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
    if file.state.is_none() {
        return Err(incompatible(
            "it holds no estimator state (it was not written by `run`)".into(),
        ));
    }
    Ok(())
}
