//! A consumer-group member's part of a snapshot (the model file's `group` object):
//! enough to serve the group's model at once after a restart, while the state topic
//! is read again, and to see what the member owned.
//!
//! The structure and the owned partitions' states are kept as state records (the
//! state topic's own encoding, checksummed; base64 in JSON), so that one codec reads
//! them wherever they come from.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use bincode::{Decode, Encode};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use gmm_model::group::{GroupEstimator, GroupSaved};
use gmm_model::DriftState;

use crate::state::{RecordMeta, Shape, StateRecord, StateRecordError, StateValue};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Encode, Decode)]
pub struct GroupInfo {
    /// The consumer group.
    pub group: String,
    /// The member that wrote the snapshot.
    pub member: String,
    /// The structure epoch of the model.
    pub epoch: u64,
    /// Partitions whose state the member knew (owned or not).
    pub partitions_known: u64,
    /// The member's change detector.
    #[bincode(with_serde)]
    pub drift: DriftState,
    /// The structure, then the owned partitions' states, as state records.
    #[serde(serialize_with = "to_base64", deserialize_with = "from_base64")]
    pub records: Vec<Vec<u8>>,
}

impl GroupInfo {
    /// What `estimator` knows, for a snapshot; `now_ms` stamps the records.
    pub fn of(estimator: &GroupEstimator, group: &str, now_ms: u64) -> Self {
        let saved = estimator.saved();
        let d = saved.structure.as_ref().map_or(0, |s| s.model.n_features());
        let meta = RecordMeta {
            group: group.to_string(),
            publisher: estimator.member().to_string(),
            published_ms: now_ms,
            shape: Shape::of(estimator.settings(), d),
        };
        let record = |value| StateRecord {
            meta: meta.clone(),
            value,
        };
        let mut records = Vec::new();
        if let Some(s) = saved.structure {
            records.push(record(StateValue::Structure(Box::new(s))).encode());
        }
        for st in saved.own {
            records.push(record(StateValue::Partition(st)).encode());
        }
        Self {
            group: group.to_string(),
            member: estimator.member().to_string(),
            epoch: estimator.epoch(),
            partitions_known: estimator.partitions_known() as u64,
            drift: saved.drift,
            records,
        }
    }

    /// The saved state, for a member of shape `shape`: a record of another shape (the
    /// configuration changed) is refused, naming what differs.
    pub fn saved(&self, shape: &Shape, model_version: u64) -> Result<GroupSaved, StateRecordError> {
        let mut saved = GroupSaved {
            structure: None,
            own: Vec::new(),
            drift: self.drift.clone(),
            model_version,
        };
        for bytes in &self.records {
            let record = StateRecord::decode(bytes)?;
            if let Some(why) = record.meta.shape.mismatch(shape) {
                return Err(StateRecordError::Malformed(format!(
                    "the snapshot's group state is for another model: {why}"
                )));
            }
            match record.value {
                StateValue::Structure(s) => saved.structure = Some(*s),
                StateValue::Partition(p) => saved.own.push(p),
                StateValue::Sample(_) | StateValue::Fence { .. } => {}
            }
        }
        Ok(saved)
    }
}

fn to_base64<S: Serializer>(records: &[Vec<u8>], s: S) -> Result<S::Ok, S::Error> {
    let encoded: Vec<String> = records.iter().map(|r| STANDARD.encode(r)).collect();
    encoded.serialize(s)
}

fn from_base64<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Vec<u8>>, D::Error> {
    let encoded = Vec::<String>::deserialize(d)?;
    encoded
        .iter()
        .map(|e| STANDARD.decode(e).map_err(serde::de::Error::custom))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{EstimatorInfo, ModelFile};
    use gmm_model::group::{Incoming, PartitionKey, Run};
    use gmm_model::{points_from_rows, OnlineSettings};

    /// A member of a group of one, past its warm-up.
    fn member() -> GroupEstimator {
        let settings = OnlineSettings {
            warmup_points: 200,
            ..OnlineSettings::new(2)
        };
        let mut g = GroupEstimator::new(settings, "member-a").expect("member");
        let key = PartitionKey::new("points", 3);
        g.assign(key.clone(), None).expect("assign");
        let values: Vec<f64> = (0..300)
            .flat_map(|i| {
                let c = if i % 2 == 0 { 0.0 } else { 10.0 };
                [c + (i as f64 * 0.37).sin(), c + (i as f64 * 0.11).cos()]
            })
            .collect();
        let runs = [Run {
            key: &key,
            points: points_from_rows(&values, 2).expect("points"),
        }];
        g.absorb(&runs, &[(key.clone(), 77)], 0.0).expect("absorb");
        for p in g.take_proposals() {
            g.receive(Incoming::Structure(Box::new(p)), 0.0)
                .expect("adopted");
        }
        g
    }

    #[test]
    fn a_snapshot_keeps_the_member_in_both_encodings() {
        let g = member();
        let model = g.model().expect("a model").clone();
        let info = GroupInfo::of(&g, "group-1", 5);
        assert_eq!(info.records.len(), 2, "the structure and one partition");
        let mut file = ModelFile::new(
            &model,
            EstimatorInfo::Online(g.settings().clone()),
            "2026-01-01T00:00:00Z".into(),
        );
        file.model_version = g.model_version();
        file.extensions.group = Some(info.clone());
        for bytes in [
            file.to_json().expect("json"),
            file.to_binary().expect("bin"),
        ] {
            let back = ModelFile::from_bytes(&bytes).expect("loads");
            assert_eq!(back.extensions.group.as_ref(), Some(&info));
            let shape = Shape::of(g.settings(), 2);
            let saved = info.saved(&shape, back.model_version).expect("saved");
            let restored =
                GroupEstimator::restore(g.settings().clone(), "member-a", saved).expect("restore");
            assert_eq!(restored.model(), Some(&model));
            assert_eq!(restored.epoch(), g.epoch());
            assert!(restored.is_provisional());
            let st = restored
                .state_of(&PartitionKey::new("points", 3))
                .expect("the partition's state");
            assert_eq!(st.next_offset, 77);
            assert_eq!(st.points, 300);
        }
        let other = Shape {
            n_components: 3,
            ..Shape::of(g.settings(), 2)
        };
        let err = info.saved(&other, 0).expect_err("another shape");
        assert!(
            err.to_string().contains("2 components (this member: 3)"),
            "{err}"
        );
    }
}
