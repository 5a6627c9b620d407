//! Start-up of a consumer-group member (`kafka.state_topic` set): open the state
//! topic, restore the newest snapshot's group state (it serves until the log is
//! read), read the log up to now, and only then subscribe to the input.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use super::restore::Restored;
use super::DaemonError;
use crate::plan::{EstimatorPlan, GroupPlan};
use crate::sink::SnapshotStore;
use crate::state_topic::{member_id, Assignment, StateEvent, StateTopic};
use gmm_io::state::Shape;
use gmm_io::ModelFile;
use gmm_model::anomaly::AnomalyThreshold;
use gmm_model::group::GroupEstimator;
use gmm_model::OnlineEm;

/// How long the start-up may take to read the state topic to its end.
const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(120);

/// A member ready to run: the stage's parts, before the input is subscribed.
pub struct Member {
    pub group: GroupEstimator,
    pub anomaly: AnomalyThreshold,
    pub topic: StateTopic,
    pub events: mpsc::Receiver<StateEvent>,
    /// The records read up to now, in log order.
    pub caught_up: Vec<StateEvent>,
    pub assignment: Arc<Assignment>,
}

pub async fn start(
    plan: &GroupPlan,
    estimator: &EstimatorPlan,
    dim: Option<usize>,
    store: &SnapshotStore,
) -> Result<(Member, Restored), DaemonError> {
    let member = member_id(&plan.client.properties);
    let settings = estimator.online.clone();
    let (p, s) = (plan.clone(), settings.clone());
    let name = member.clone();
    let mut topic = tokio::task::spawn_blocking(move || {
        StateTopic::open(
            &p.client.brokers,
            &p.client.properties,
            &p.state_topic,
            &p.group_id,
            &name,
            &s,
        )
    })
    .await
    .map_err(|error| DaemonError::Crashed {
        stage: "state topic set-up",
        error,
    })??;
    let (group, anomaly) = restore(estimator, dim, store, &member, &plan.group_id)?;
    let mut caught_up = Vec::new();
    let took = topic
        .catch_up(CATCH_UP_TIMEOUT, |e| caught_up.push(e))
        .await?;
    tracing::info!(
        member,
        records = took.records,
        bytes = took.bytes,
        took = ?took.took,
        "read the state topic up to now"
    );
    let events = topic
        .events
        .take()
        .ok_or(crate::state_topic::StateTopicError::ReaderGone)?;
    let assignment = Arc::new(Assignment::new(topic.index.clone(), plan.state_wait));
    let n_features = group.model().map(|m| m.n_features());
    // What the source needs of a restore (no positions: the state topic has them).
    let restored = Restored {
        estimator: OnlineEm::new(settings).map_err(DaemonError::Settings)?,
        anomaly: anomaly.clone(),
        positions: None,
        source_file: None,
        n_features,
    };
    let member = Member {
        group,
        anomaly,
        topic,
        events,
        caught_up,
        assignment,
    };
    Ok((member, restored))
}

/// The member's group state from the newest snapshot that has one, else a member
/// that warms up with the group (or adopts its model from the log).
fn restore(
    plan: &EstimatorPlan,
    dim: Option<usize>,
    store: &SnapshotStore,
    member: &str,
    group_id: &str,
) -> Result<(GroupEstimator, AnomalyThreshold), DaemonError> {
    let settings = plan.online.clone();
    let a = plan.anomaly;
    let outcome = store.load_newest()?;
    for skipped in &outcome.skipped {
        tracing::warn!(path = %skipped.path.display(), reason = %skipped.reason, "skipping an unreadable snapshot");
    }
    let saved = outcome
        .newest
        .and_then(|(path, file)| file.extensions.group.clone().map(|g| (path, file, g)));
    let Some((path, file, info)) = saved else {
        let fresh = GroupEstimator::new(settings, member).map_err(DaemonError::Settings)?;
        let anomaly = AnomalyThreshold::new(a.quantile, a.window).map_err(DaemonError::Anomaly)?;
        return Ok((fresh, anomaly));
    };
    let incompatible = |reason: String| DaemonError::IncompatibleSnapshot {
        path: path.display().to_string(),
        reason,
    };
    if info.group != group_id {
        return Err(incompatible(format!(
            "it is a snapshot of consumer group {:?}, kafka.group_id is {group_id:?}",
            info.group
        )));
    }
    let d = dim.unwrap_or(file.n_features as usize);
    let shape = Shape::of(&settings, d);
    let group_saved = info
        .saved(&shape, file.model_version)
        .map_err(|e| incompatible(e.to_string()))?;
    let group = GroupEstimator::restore(settings, member, group_saved)
        .map_err(|e| incompatible(e.to_string()))?;
    let (anomaly, _) = AnomalyThreshold::resume(file.anomaly_state.clone(), a.quantile, a.window)
        .map_err(DaemonError::Anomaly)?;
    log_restored(&path, &file);
    Ok((group, anomaly))
}

fn log_restored(path: &Path, file: &ModelFile) {
    tracing::info!(
        path = %path.display(),
        points_seen = file.points_seen,
        "restored the group's model from the newest snapshot until the state topic is read"
    );
}
