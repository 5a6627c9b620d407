//! Online EM (or variational inference) shared by the members of a consumer group.
//!
//! Each member absorbs the points of the input partitions it owns into per-partition
//! statistics ([`PartitionState`]) and hands them out to be published, each with the
//! partition's position, in one record. It takes in the newest records of the other
//! partitions and the group's [`Structure`], and its model is the M-step (or the
//! variational update) on the sum of every partition's statistics, brought to one
//! [clock](GroupClock) and to the current structure, plus what the structure carries.
//! So every member scores with the model one estimator reading every partition would
//! hold, up to the delay with which the others' statistics arrive; on a quiet stream
//! the members' models are equal.
//!
//! Structural changes (the initial model, re-seeding, the refit after an abrupt change,
//! variational births, retirements and merges) are proposals ([`Structure`]) that the
//! caller publishes; the first one in the log for an epoch wins, and every member,
//! its proposer included, adopts it only when it reads it back. The initial model and a
//! refit are fitted on the union of the members' buffered points ([`Sample`]).
//!
//! Like the rest of this crate: no I/O and no clocks. Records arrive as values, time
//! as an argument, and what is to be published is taken from the estimator's outbox.

mod absorb;
mod clock;
mod collect;
mod partition;
mod propose;
mod receive;
mod restructure;
mod structure;
mod view;

pub use absorb::{GroupOutcome, Run};
pub use clock::GroupClock;
pub use collect::Sample;
pub use partition::{PartitionKey, PartitionState};
pub use receive::{Adoption, Incoming, Reaction};
pub use structure::{
    Ancestor, Carried, GroupVariational, SlotMap, Structure, StructureChange, StructureId, Used,
    MAX_ANCESTORS,
};

use std::collections::{BTreeMap, BTreeSet};

use super::{Inference, OnlineEm, OnlineSettings};
use crate::drift::DriftState;
use crate::error::Result;
use crate::mixture::GaussianMixture;
use crate::variational::Posterior;
use collect::Collection;

/// Coordinates a published sample holds at most: well inside Kafka's default limit
/// of 1 MB per message.
const SAMPLE_BYTES: usize = 768 * 1024;
/// A refit's buffer holds at most this many times `warmup_points`.
const REBUILD_BUFFER_FACTOR: usize = 8;
/// A member still warming up with this many times `warmup_points` buffered should
/// wait for the initial model before taking more (see [`GroupEstimator::warmup_full`]).
const WARMUP_BUFFER_FACTOR: usize = 8;

/// A member's sample to publish, or to withdraw once its collection is over.
#[derive(Clone, Debug, PartialEq)]
pub enum SampleUpdate {
    Publish(Sample),
    Delete,
}

/// What a snapshot keeps of a member, to restart from before the log is read again.
#[derive(Clone, Debug)]
pub struct GroupSaved {
    pub structure: Option<Structure>,
    /// The partitions the member owned.
    pub own: Vec<PartitionState>,
    pub drift: DriftState,
    pub model_version: u64,
}

pub struct GroupEstimator {
    /// The settings, and the warm-up fit, M-step and re-seeding of one estimator.
    tool: OnlineEm,
    clock: GroupClock,
    member: String,
    /// Sequence numbers of this member's proposals.
    next_seq: u64,
    /// Sequence numbers of buffered runs.
    next_run: u64,
    structure: Option<Structure>,
    /// A structure restored from a snapshot, until the log confirms or replaces it.
    provisional: bool,
    /// The partitions assigned to this member.
    owned: BTreeSet<PartitionKey>,
    /// Their positions while the group has no model yet (no state exists then).
    warmup_offsets: BTreeMap<PartitionKey, i64>,
    /// The owned partitions' states, at the current epoch.
    own: BTreeMap<PartitionKey, PartitionState>,
    /// The newest known state of every other partition.
    remote: BTreeMap<PartitionKey, PartitionState>,
    /// Owned partitions changed since their states were last taken for publishing.
    dirty: BTreeSet<PartitionKey>,
    collection: Option<Collection>,
    /// The other members' samples for the current collection.
    samples: BTreeMap<String, Sample>,
    sample_delete: bool,
    proposals: Vec<Structure>,
    /// The epoch of this member's proposal still unanswered by the log.
    pending: Option<u64>,
    drift: DriftState,
    trim: Option<f64>,
    model: Option<GaussianMixture>,
    posterior: Option<Posterior>,
    model_version: u64,
    /// Records arrived since the model was last computed.
    stale: bool,
    n_features: Option<usize>,
}

impl GroupEstimator {
    /// A member that warms up with the group (or adopts its model from the log).
    pub fn new(settings: OnlineSettings, member: impl Into<String>) -> Result<Self> {
        let clock = GroupClock::of(&settings.schedule)?;
        Ok(Self {
            tool: OnlineEm::new(settings)?,
            clock,
            member: member.into(),
            next_seq: 0,
            next_run: 0,
            structure: None,
            provisional: false,
            owned: BTreeSet::new(),
            warmup_offsets: BTreeMap::new(),
            own: BTreeMap::new(),
            remote: BTreeMap::new(),
            dirty: BTreeSet::new(),
            collection: Some(Collection::new(0, None)),
            samples: BTreeMap::new(),
            sample_delete: false,
            proposals: Vec::new(),
            pending: None,
            drift: DriftState::default(),
            trim: None,
            model: None,
            posterior: None,
            model_version: 0,
            stale: false,
            n_features: None,
        })
    }

    /// A member restarted from a snapshot: its structure and model serve until the
    /// log is read (the first structure read from it wins over the saved one), its
    /// partitions' saved states stand for them until newer records arrive.
    pub fn restore(
        settings: OnlineSettings,
        member: impl Into<String>,
        saved: GroupSaved,
    ) -> Result<Self> {
        let mut g = Self::new(settings, member)?;
        g.drift = saved.drift;
        g.model_version = saved.model_version;
        if let Some(s) = saved.structure {
            let (t, k) = (g.settings().covariance_type, g.settings().n_components);
            s.check(t, k, s.model.n_features())?;
            g.n_features = Some(s.model.n_features());
            g.collection = s
                .collecting
                .map(|p| Collection::new(p, Some(g.rebuild_cap())));
            g.structure = Some(s);
            g.provisional = true;
        }
        for st in saved.own {
            g.check_state(&st)?;
            g.remote.insert(st.key.clone(), st);
        }
        if g.structure.is_some() {
            g.recompute()?;
        }
        Ok(g)
    }

    pub fn settings(&self) -> &OnlineSettings {
        self.tool.settings()
    }

    pub fn member(&self) -> &str {
        &self.member
    }

    pub fn clock(&self) -> GroupClock {
        self.clock
    }

    /// The group's structure, once it has a model.
    pub fn structure(&self) -> Option<&Structure> {
        self.structure.as_ref()
    }

    /// Whether the structure is a snapshot's, not yet read from the log.
    pub fn is_provisional(&self) -> bool {
        self.provisional
    }

    /// The structure epoch (0 before the group has a model).
    pub fn epoch(&self) -> u64 {
        self.structure.as_ref().map_or(0, |s| s.epoch)
    }

    /// The group's model as this member knows it.
    pub fn model(&self) -> Option<&GaussianMixture> {
        self.model.as_ref()
    }

    /// +1 at every update of this member's model.
    pub fn model_version(&self) -> u64 {
        self.model_version
    }

    /// Points the group absorbed, as the newest known states of its partitions say.
    pub fn points_seen(&self) -> u64 {
        self.states().map(|s| s.points).sum()
    }

    /// Partitions with a known state (owned or not).
    pub fn partitions_known(&self) -> usize {
        self.own.len() + self.remote.len()
    }

    pub fn owned(&self) -> impl Iterator<Item = &PartitionKey> + '_ {
        self.owned.iter()
    }

    /// The owned partitions' current states.
    pub fn own_states(&self) -> impl Iterator<Item = &PartitionState> + '_ {
        self.own.values()
    }

    /// The newest known states of the partitions this member does not own.
    pub fn remote_states(&self) -> impl Iterator<Item = &PartitionState> + '_ {
        self.remote.values()
    }

    /// The state this member knows of a partition, owned or not.
    pub fn state_of(&self, key: &PartitionKey) -> Option<&PartitionState> {
        self.own.get(key).or_else(|| self.remote.get(key))
    }

    pub fn drift(&self) -> &DriftState {
        &self.drift
    }

    /// Live components (K under EM); None before the group has a model.
    pub fn effective_components(&self) -> Option<usize> {
        let s = self.structure.as_ref()?;
        Some(match &s.variational {
            Some(v) => v.alive.iter().filter(|&&a| a).count(),
            None => s.model.n_components(),
        })
    }

    /// Whether the group has no model yet and this member buffers its points.
    pub fn is_warming_up(&self) -> bool {
        self.structure.is_none()
    }

    /// Points buffered for the warm-up or a refit.
    pub fn buffered(&self) -> usize {
        self.collection.as_ref().map_or(0, |c| c.points)
    }

    /// True while warming up with a buffer so large that the caller should wait for
    /// the initial model (from the log) before giving more points: the buffer then
    /// stays bounded whatever happens to the log.
    pub fn warmup_full(&self) -> bool {
        self.is_warming_up()
            && self.buffered() >= WARMUP_BUFFER_FACTOR * self.settings().warmup_points
    }

    /// Whether a proposal of this member awaits the log's answer.
    pub fn proposal_pending(&self) -> bool {
        self.pending.is_some()
    }

    /// The log never got this member's proposal (its delivery failed): stop waiting
    /// for the answer, so that the change can be proposed again.
    pub fn proposal_undelivered(&mut self) {
        self.pending = None;
    }

    /// From the next batch on, points scored below `threshold` are left out of the
    /// statistics (as [`OnlineEm::set_trim_threshold`]).
    pub fn set_trim_threshold(&mut self, threshold: Option<f64>) {
        self.trim = threshold;
    }

    /// What a snapshot keeps.
    pub fn saved(&self) -> GroupSaved {
        GroupSaved {
            structure: self.structure.clone(),
            own: self.own.values().cloned().collect(),
            drift: self.drift.clone(),
            model_version: self.model_version,
        }
    }

    /// Takes partition `key` on, from `start` (its newest state, as the log or a
    /// snapshot has it) or from nothing.
    pub fn assign(&mut self, key: PartitionKey, start: Option<PartitionState>) -> Result<()> {
        if let Some(st) = &start {
            self.check_state(st)?;
        }
        self.remote.remove(&key);
        self.owned.insert(key.clone());
        let Some(structure) = &self.structure else {
            if let Some(st) = start {
                self.warmup_offsets.insert(key, st.next_offset);
            }
            return Ok(());
        };
        let state = match start {
            Some(mut st) => {
                if st.epoch < structure.epoch {
                    structure.adopt_state(&mut st)?;
                }
                st
            }
            None => self.empty_state(key.clone()),
        };
        self.own.insert(key.clone(), state);
        self.dirty.insert(key);
        self.stale = true;
        Ok(())
    }

    /// Gives partition `key` up; its final state (to publish) stays known as the
    /// others' are. Points of it buffered for the warm-up are dropped: its next owner
    /// reads them again.
    pub fn revoke(&mut self, key: &PartitionKey) -> Option<PartitionState> {
        self.owned.remove(key);
        self.warmup_offsets.remove(key);
        self.dirty.remove(key);
        if let Some(c) = self.collection.as_mut() {
            for run in c.runs.iter_mut().filter(|r| &r.key == key) {
                run.dropped = true;
            }
        }
        let state = self.own.remove(key)?;
        self.remote.insert(key.clone(), state.clone());
        Some(state)
    }

    /// Moves owned partitions' positions on (records read that held no points).
    pub fn set_offsets(&mut self, offsets: &[(PartitionKey, i64)]) {
        for (key, offset) in offsets {
            if let Some(st) = self.own.get_mut(key) {
                if st.next_offset != *offset {
                    st.next_offset = *offset;
                    self.dirty.insert(key.clone());
                }
            } else if self.owned.contains(key) {
                self.warmup_offsets.insert(key.clone(), *offset);
            }
        }
    }

    /// The owned partitions' states changed since the last call, to publish (those
    /// with nothing read yet are left out).
    pub fn take_dirty(&mut self) -> Vec<PartitionState> {
        std::mem::take(&mut self.dirty)
            .iter()
            .filter_map(|k| self.own.get(k))
            .filter(|s| s.next_offset >= 0 || s.points > 0)
            .cloned()
            .collect()
    }

    /// Marks every owned partition's state to be published again.
    pub fn mark_all_dirty(&mut self) {
        self.dirty.extend(self.own.keys().cloned());
    }

    /// Structure proposals to publish.
    pub fn take_proposals(&mut self) -> Vec<Structure> {
        std::mem::take(&mut self.proposals)
    }

    /// This member's sample to publish when its buffer grew, or its withdrawal.
    pub fn take_sample(&mut self) -> Option<SampleUpdate> {
        if std::mem::take(&mut self.sample_delete) {
            return Some(SampleUpdate::Delete);
        }
        let cap = self.sample_cap();
        let c = self.collection.as_mut()?;
        let n = c.points.min(cap);
        if n <= c.published {
            return None;
        }
        c.published = n;
        Some(SampleUpdate::Publish(c.sample(&self.member, cap)))
    }

    fn sample_cap(&self) -> usize {
        let d = self.n_features.unwrap_or(1).max(1);
        (SAMPLE_BYTES / (8 * d))
            .max(1)
            .min(self.settings().warmup_points)
    }

    fn rebuild_cap(&self) -> usize {
        REBUILD_BUFFER_FACTOR * self.settings().warmup_points
    }

    fn is_variational(&self) -> bool {
        self.settings().inference == Inference::Variational
    }
}
