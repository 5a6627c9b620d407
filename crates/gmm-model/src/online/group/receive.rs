//! Records from the state topic: other partitions' states, the structure, samples.
//!
//! The log orders them. Of the structure proposals for epoch e + 1 built on epoch e,
//! the first read wins; later ones are ignored, and a member that reads its own losing
//! proposal republishes the winner, so that the newest record of the structure key is
//! a winner (what a compacted topic keeps).

use super::collect::Sample;
use super::partition::{PartitionKey, PartitionState};
use super::structure::{Structure, StructureChange};
use super::GroupEstimator;
use crate::error::{ModelError, Result};
use crate::estep::EvalRequest;
use crate::linalg::points_from_rows;
use crate::online::variational::live_kernel;
use crate::online::Scored;

/// A record read from the state topic.
#[derive(Clone, Debug)]
pub enum Incoming {
    Partition {
        state: PartitionState,
        /// The member that published it.
        publisher: String,
    },
    Structure(Box<Structure>),
    Sample(Sample),
    /// A member withdrew its sample.
    SampleDeleted {
        member: String,
    },
}

/// What a record did.
#[derive(Clone, Debug)]
pub enum Reaction {
    /// Nothing (an echo of this member's own record, an old structure, a sample of
    /// another collection).
    Ignored,
    /// Taken into this member's view of the group.
    Updated,
    /// Another member wrote a partition this member owns (two owners at once, or the
    /// previous owner's late last record): the partition's state is published again,
    /// so that the newest record is the owner's.
    ForeignWrite {
        key: PartitionKey,
        publisher: String,
    },
    /// A new structure epoch was adopted.
    Adopted(Adoption),
    /// This member's proposal lost: `winner` should be published again.
    Lost { winner: Box<Structure> },
}

/// A structure epoch adopted.
#[derive(Clone, Debug)]
pub struct Adoption {
    pub epoch: u64,
    pub change: StructureChange,
    pub proposer: String,
    /// This member proposed it.
    pub ours: bool,
    /// The initial model: this member's buffered warm-up points, scored, by the
    /// sequence numbers their runs were given.
    pub scored: Vec<(u64, Scored)>,
    /// Partition states whose epoch was too old to map: their statistics restarted
    /// empty.
    pub unmapped: usize,
}

impl GroupEstimator {
    /// Takes a record in; `now` is the wall-clock time in seconds.
    pub fn receive(&mut self, incoming: Incoming, now: f64) -> Result<Reaction> {
        match incoming {
            Incoming::Partition { state, publisher } => self.receive_state(state, publisher),
            Incoming::Structure(s) => self.receive_structure(*s),
            Incoming::Sample(sample) => Ok(self.receive_sample(sample, now)),
            Incoming::SampleDeleted { member } => {
                self.samples.remove(&member);
                Ok(Reaction::Ignored)
            }
        }
    }

    fn receive_state(&mut self, mut state: PartitionState, publisher: String) -> Result<Reaction> {
        self.check_state(&state)?;
        if self.owned.contains(&state.key) {
            if publisher == self.member {
                return Ok(Reaction::Ignored);
            }
            self.dirty.insert(state.key.clone());
            return Ok(Reaction::ForeignWrite {
                key: state.key,
                publisher,
            });
        }
        if let Some(s) = &self.structure {
            if state.epoch < s.epoch {
                s.adopt_state(&mut state)?;
            }
        }
        if self.n_features.is_none() && state.stats.n_features() > 0 {
            self.n_features = Some(state.stats.n_features());
        }
        self.remote.insert(state.key.clone(), state);
        self.stale = true;
        Ok(Reaction::Updated)
    }

    fn receive_structure(&mut self, s: Structure) -> Result<Reaction> {
        let (t, k) = (
            self.settings().covariance_type,
            self.settings().n_components,
        );
        let d = self.n_features.unwrap_or(s.model.n_features());
        s.check(t, k, d)?;
        let Some(cur) = &self.structure else {
            return self.adopt(s).map(Reaction::Adopted);
        };
        if self.provisional {
            // The log is the truth: the first structure read replaces a snapshot's.
            self.provisional = false;
            if s.id == cur.id {
                return Ok(Reaction::Ignored);
            }
            return self.adopt(s).map(Reaction::Adopted);
        }
        let next = s.epoch == cur.epoch + 1 && s.parent.as_ref() == Some(&cur.id);
        let past_gap = s.epoch > cur.epoch + 1;
        if next || past_gap {
            return self.adopt(s).map(Reaction::Adopted);
        }
        let ours_lost = s.id.proposer == self.member && s.id != cur.id && !cur.descends_from(&s.id);
        if s.epoch <= cur.epoch && ours_lost {
            return Ok(Reaction::Lost {
                winner: Box::new(cur.clone()),
            });
        }
        Ok(Reaction::Ignored)
    }

    fn receive_sample(&mut self, sample: Sample, now: f64) -> Reaction {
        if sample.member == self.member {
            return Reaction::Ignored;
        }
        let Some(c) = &self.collection else {
            return Reaction::Ignored;
        };
        if sample.purpose != c.purpose || self.n_features.is_some_and(|d| d != sample.n_features) {
            return Reaction::Ignored;
        }
        self.samples.insert(sample.member.clone(), sample);
        let mut outcome = super::GroupOutcome::default();
        self.propose_from_collection(now, &mut outcome);
        Reaction::Updated
    }

    /// Adopts epoch `s`: every known state is brought to it, the buffered points are
    /// absorbed (initial model, refit) or collecting starts or stops, and the model is
    /// computed again.
    fn adopt(&mut self, s: Structure) -> Result<Adoption> {
        let mut unmapped = 0;
        for st in self.own.values_mut().chain(self.remote.values_mut()) {
            if st.epoch < s.epoch && !s.adopt_state(st)? {
                unmapped += 1;
            }
        }
        self.n_features = Some(s.model.n_features());
        let first = self.structure.is_none();
        let ours = s.id.proposer == self.member;
        if self.pending.is_some_and(|e| s.epoch >= e) {
            self.pending = None;
        }
        self.proposals.retain(|p| p.epoch > s.epoch);
        let mut adoption = Adoption {
            epoch: s.epoch,
            change: s.change.clone(),
            proposer: s.id.proposer.clone(),
            ours,
            scored: Vec::new(),
            unmapped,
        };
        self.structure = Some(s);
        self.provisional = false;
        if first {
            self.start_partitions();
        }
        self.recompute()?;
        self.settle_collection(&mut adoption)?;
        self.recompute()?;
        self.mark_all_dirty();
        Ok(adoption)
    }

    /// States for the owned partitions, once the group has a model.
    fn start_partitions(&mut self) {
        let keys: Vec<PartitionKey> = self
            .owned
            .iter()
            .filter(|k| !self.own.contains_key(*k))
            .cloned()
            .collect();
        for key in keys {
            let st = self.empty_state(key.clone());
            self.own.insert(key, st);
        }
    }

    /// What the new epoch means for this member's buffer: absorb it (initial model,
    /// refit), start collecting (recovery) or drop it (recovery over).
    fn settle_collection(&mut self, adoption: &mut Adoption) -> Result<()> {
        let Some(s) = self.structure.clone() else {
            return Ok(());
        };
        let purpose = self.collection.as_ref().map(|c| c.purpose);
        let used = s.used.as_ref().filter(|u| Some(u.purpose) == purpose);
        match (&s.change, used) {
            (StructureChange::Initial, Some(used)) => {
                let from = used.points_of(&self.member) as usize;
                adoption.scored = self.absorb_buffer(&s, from, true)?;
            }
            (StructureChange::Rebuilt, Some(used)) => {
                let from = used.points_of(&self.member) as usize;
                self.absorb_buffer(&s, from, false)?;
                self.drift.end_recovery();
            }
            _ => {}
        }
        let keep = match (s.collecting, purpose) {
            (Some(p), Some(q)) => p == q,
            _ => false,
        };
        if !keep {
            if let Some(c) = self.collection.take() {
                // A sample published is withdrawn (the warm-up's and the refits').
                self.sample_delete |= c.published > 0;
            }
            self.samples.clear();
            if let Some(p) = s.collecting {
                self.collection = Some(super::Collection::new(p, Some(self.rebuild_cap())));
            }
        }
        Ok(())
    }

    /// Absorbs the buffered points of owned partitions from point `from` on (those
    /// the fit did not use) into their partitions' statistics, under the epoch's
    /// model. At the initial model every buffered point of an owned partition is
    /// also counted and scored (they were neither before).
    fn absorb_buffer(
        &mut self,
        s: &Structure,
        from: usize,
        initial: bool,
    ) -> Result<Vec<(u64, Scored)>> {
        let Some(c) = self.collection.take() else {
            return Ok(Vec::new());
        };
        let d = s.model.n_features();
        let kernel = match (&s.variational, &self.posterior) {
            (Some(v), Some(p)) => live_kernel(p, &v.alive),
            _ => s.model.clone(),
        };
        let stats_request = EvalRequest {
            trim_below: s.trim_below,
            ..EvalRequest::STATS
        };
        let mut scored = Vec::new();
        if initial {
            let total: usize = c
                .runs
                .iter()
                .filter(|r| !r.dropped && self.own.contains_key(&r.key))
                .map(|r| r.values.len() / d)
                .sum();
            for run in c.runs.iter().filter(|r| !r.dropped) {
                let Some(st) = self.own.get_mut(&run.key) else {
                    continue;
                };
                let x = points_from_rows(&run.values, d)?;
                st.points += x.ncols() as u64;
                st.batches += x.ncols() as f64 / total.max(1) as f64;
                let evaluation = s.model.evaluate(x, EvalRequest::SCORES)?;
                scored.push((
                    run.seq,
                    Scored {
                        model_version: self.model_version,
                        evaluation,
                    },
                ));
            }
        }
        let at = self.clock_now();
        for (_, key, values) in c.after_point(from) {
            let Some(st) = self.own.get_mut(key) else {
                continue;
            };
            let x = points_from_rows(values, d)?;
            let stats = kernel
                .evaluate(x, stats_request)?
                .stats
                .ok_or(ModelError::Empty)?;
            st.stats.scale(self.clock.factor(st.clock, at, 1.0));
            st.stats.merge(&stats)?;
            st.clock = at;
        }
        for st in self.own.values_mut() {
            if st.stats.total_weight() == 0.0 {
                st.clock = at;
            }
        }
        if c.published > 0 {
            self.sample_delete = true;
        }
        Ok(scored)
    }
}
