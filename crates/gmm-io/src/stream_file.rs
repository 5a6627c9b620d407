//! The model file of a streaming estimator: what the daemon snapshots and the
//! Python package's `OnlineGaussianMixture.save` writes, from one place.

use gmm_model::StreamEstimator;

use crate::model_file::{EstimatorInfo, ModelFile};

impl ModelFile {
    /// The file of the estimator's current model (None during the warm-up), with its
    /// counters and anomaly threshold; `with_state` adds the estimator's and the
    /// threshold's state, so that a restored estimator continues exactly. Positions
    /// are the caller's to set.
    pub fn of_stream(
        stream: &StreamEstimator,
        with_state: bool,
        updated_at: String,
    ) -> Option<Self> {
        let em = &stream.em;
        let model = em.model()?;
        let mut file = Self::new(
            model,
            EstimatorInfo::Online(em.settings().clone()),
            updated_at,
        );
        file.points_seen = em.points_seen();
        file.model_version = em.model_version();
        file.anomaly_threshold = stream.anomaly.threshold();
        if with_state {
            file.anomaly_state = Some(stream.anomaly.clone());
            file.set_online_state(em.settings(), em.state().clone());
        }
        Some(file)
    }
}
