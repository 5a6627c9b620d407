//! Structure changes this member proposes: re-seeding withered components, starting
//! a recovery after an abrupt change, and the fits on the group's collected points
//! (the initial model, the refit). A proposal goes to the outbox and waits for the
//! log's answer; one at a time.

use nalgebra::DMatrix;

use super::absorb::{BatchView, GroupOutcome, Run};
use super::collect::union;
use super::structure::{
    Carried, GroupVariational, SlotMap, Structure, StructureChange, StructureId, Used,
};
use super::GroupEstimator;
use crate::error::{ModelError, Result};
use crate::estep::Evaluation;
use crate::linalg::{points_from_rows, Points};
use crate::mstep::m_step;
use crate::online::fresh::lower_quantile;
use crate::schedule::HalfLifeUnit;
use crate::stats::{ComponentScatter, Scatter, SufficientStats};

impl GroupEstimator {
    /// Sets the first sequence number of this member's proposals. Proposal ids must
    /// never repeat, across restarts too: give a value that grows with time.
    pub fn set_first_proposal_seq(&mut self, seq: u64) {
        self.next_seq = self.next_seq.max(seq);
    }

    fn new_id(&mut self) -> StructureId {
        let id = StructureId {
            proposer: self.member.clone(),
            seq: self.next_seq,
        };
        self.next_seq += 1;
        id
    }

    /// The clock reading for statistics new at wall-clock `now`.
    fn clock_at(&self, now: f64) -> f64 {
        match self.clock.unit {
            HalfLifeUnit::Seconds => self.clock_now().max(now),
            _ => self.clock_now(),
        }
    }

    fn submit(&mut self, proposal: Structure, outcome: &mut GroupOutcome) {
        self.pending = Some(proposal.epoch);
        outcome.proposed = Some(proposal.change.clone());
        self.proposals.push(proposal);
    }

    /// After a batch: re-seeding, the start of a recovery, a variational
    /// restructuring, or a fit on the collected points, whichever is due (at most one).
    /// `forgotten`: the group's statistics before the batch (variational inference),
    /// `global`: after it, both at clock reading `at`.
    pub(super) fn propose_after_batch(
        &mut self,
        batch: &BatchView<'_, '_>,
        forgotten: Option<&SufficientStats>,
        global: &SufficientStats,
        at: f64,
        now: f64,
        outcome: &mut GroupOutcome,
    ) {
        if self.pending.is_some() {
            return;
        }
        let result = match forgotten {
            // Variational inference answers changes by births in free slots, not by a
            // refit (as one estimator does).
            Some(forgotten) => self.propose_variational(batch, forgotten, global, at, outcome),
            None => self.propose_em(batch, global, at, outcome),
        };
        if let Err(e) = result {
            outcome.proposal_error = Some(e);
        }
        if self.structure.as_ref().and_then(|s| s.collecting).is_some() {
            self.propose_from_collection(now, outcome);
        }
    }

    fn propose_em(
        &mut self,
        batch: &BatchView<'_, '_>,
        global: &SufficientStats,
        at: f64,
        outcome: &mut GroupOutcome,
    ) -> Result<()> {
        let empty = SufficientStats::new(
            global.covariance_type(),
            global.n_components(),
            global.n_features(),
        );
        let withered = self.tool.withered(global, &empty);
        let collecting = self.structure.as_ref().and_then(|s| s.collecting).is_some();
        if !withered.is_empty() {
            self.propose_reseed(batch, global, &withered, at, outcome)
        } else if outcome.change_detected && !collecting {
            self.propose_recovery(outcome)
        } else {
            Ok(())
        }
    }

    /// Re-seeds the withered components at the batch's worst-explained points, as one
    /// estimator does: the seeds are statistics the structure carries.
    fn propose_reseed(
        &mut self,
        batch: &BatchView<'_, '_>,
        global: &SufficientStats,
        withered: &[usize],
        at: f64,
        outcome: &mut GroupOutcome,
    ) -> Result<()> {
        let s = self.structure.as_ref().ok_or(ModelError::Empty)?;
        let model = self.model.as_ref().ok_or(ModelError::Empty)?;
        let k = model.n_components();
        let map = SlotMap::dropping(k, withered);
        let x = concatenated(batch.runs);
        let mut next = map.apply(global)?;
        self.tool.reseed(
            &mut next,
            withered,
            model,
            x.as_view(),
            &batch.evaluation.log_density,
            batch.trim,
        )?;
        let mut carried = map.apply(&s.carried.stats)?;
        carried.scale(self.clock.factor(s.carried.clock, at, 1.0));
        for &slot in withered {
            copy_slot(&next, &mut carried, slot)?;
        }
        let next_model = m_step(
            &next,
            self.settings().reg_covar,
            s.prior.as_ref(),
            Some(model),
        )?;
        let change = StructureChange::Reseeded {
            slots: withered.to_vec(),
        };
        let proposal = Structure {
            carried: Carried {
                clock: at,
                stats: carried,
            },
            ..s.successor(change, &map, next_model)
        };
        self.submit_new(proposal, outcome);
        Ok(())
    }

    /// An abrupt change: every member collects its points from now on, for a refit on
    /// the group's points.
    fn propose_recovery(&mut self, outcome: &mut GroupOutcome) -> Result<()> {
        let s = self.structure.as_ref().ok_or(ModelError::Empty)?;
        let model = self.model.clone().ok_or(ModelError::Empty)?;
        let k = model.n_components();
        let proposal = Structure {
            collecting: Some(s.epoch + 1),
            ..s.successor(StructureChange::Recovery, &SlotMap::identity(k), model)
        };
        self.submit_new(proposal, outcome);
        Ok(())
    }

    pub(super) fn submit_new(&mut self, mut proposal: Structure, outcome: &mut GroupOutcome) {
        proposal.id = self.new_id();
        self.submit(proposal, outcome);
    }

    /// When the union of this member's buffer and the others' samples holds enough
    /// points: the initial model (warm-up), or the refit after a change.
    pub(super) fn propose_from_collection(&mut self, now: f64, outcome: &mut GroupOutcome) {
        if self.pending.is_some() {
            return;
        }
        let Some(c) = self.collection.as_ref() else {
            return;
        };
        let others: usize = self
            .samples
            .values()
            .filter(|s| s.purpose == c.purpose && s.member != self.member)
            .map(|s| s.len())
            .sum();
        if c.points + others < self.settings().warmup_points || c.n_features.is_none() {
            return;
        }
        let purpose = c.purpose;
        let result = if purpose == 0 {
            self.propose_initial(now)
        } else {
            self.propose_refit(purpose, now)
        };
        match result {
            Ok(proposal) => self.submit_new(proposal, outcome),
            Err(e) => outcome.proposal_error = Some(e),
        }
    }

    /// The union of the collected points (row-major, and their dimension), and the
    /// samples it used.
    fn collected(&self) -> Result<Collected> {
        let c = self.collection.as_ref().ok_or(ModelError::Empty)?;
        let d = c.n_features.ok_or(ModelError::Empty)?;
        let others = self
            .samples
            .iter()
            .filter(|(_, s)| s.purpose == c.purpose && s.n_features == d)
            .map(|(m, s)| (m.clone(), s.clone()))
            .collect();
        let (points, used) = union(&self.member, c, &others);
        Ok((points, d, used))
    }

    /// The group's first model, fitted as one estimator fits its warm-up, on the
    /// members' collected points.
    fn propose_initial(&mut self, now: f64) -> Result<Structure> {
        let (points, d, used) = self.collected()?;
        let x = points_from_rows(&points, d)?;
        let trim_q = self.settings().warmup_trim;
        let trim =
            |eval: &Evaluation| (trim_q > 0.0).then(|| lower_quantile(&eval.log_density, trim_q));
        let (model, stats, prior, variational, trim_below) = if self.is_variational() {
            let fresh = self.tool.fresh_variational(x)?;
            let vb = GroupVariational {
                prior: fresh.state.prior,
                alive: fresh.state.alive,
            };
            let t = trim(&fresh.evaluation);
            (fresh.model, fresh.stats, None, Some(vb), t)
        } else {
            let fresh = self.tool.fresh_fit(x)?;
            let t = trim(&fresh.evaluation);
            (fresh.model, fresh.stats, fresh.prior, None, t)
        };
        // The fitted points are not in any partition's count yet: the clock after them.
        let clock = match self.clock.unit {
            HalfLifeUnit::Points => self.clock_now() + x.ncols() as f64,
            HalfLifeUnit::Batches => self.clock_now() + 1.0,
            HalfLifeUnit::Seconds => self.clock_at(now),
        };
        Ok(Structure {
            epoch: 1,
            id: StructureId {
                proposer: String::new(),
                seq: 0,
            },
            parent: None,
            change: StructureChange::Initial,
            ancestors: Vec::new(),
            carried: Carried { clock, stats },
            model,
            prior,
            variational,
            collecting: None,
            used: Some(Used {
                purpose: 0,
                samples: used,
            }),
            trim_below,
        })
    }

    /// The refit after a change, as one estimator's: a fresh fit on the points since
    /// the change replaces the model if it explains them better by more than its
    /// in-sample optimism (one nat per free parameter); otherwise the recovery ends.
    fn propose_refit(&mut self, purpose: u64, now: f64) -> Result<Structure> {
        let (points, d, used) = self.collected()?;
        let x: Points<'_> = points_from_rows(&points, d)?;
        let s = self.structure.as_ref().ok_or(ModelError::Empty)?;
        let current = self.model.clone().ok_or(ModelError::Empty)?;
        let k = current.n_components();
        let fresh = self.tool.fresh_fit(x)?;
        // Judged on the points the fit used, as one estimator judges its rebuild.
        let fitted = fresh.screened.as_ref().map_or(x, |m| m.as_view());
        let penalty = fresh.model.n_parameters() as f64 / fitted.ncols() as f64;
        let better = fresh.fit_mean_ll - penalty > current.score(fitted)?;
        let base = Structure {
            collecting: None,
            ..s.successor(
                StructureChange::RecoveryEnded,
                &SlotMap::identity(k),
                current,
            )
        };
        if !better {
            return Ok(base);
        }
        let trim_q = self.settings().warmup_trim;
        let trim_below =
            (trim_q > 0.0).then(|| lower_quantile(&fresh.evaluation.log_density, trim_q));
        let reset = SlotMap::reset(k);
        Ok(Structure {
            change: StructureChange::Rebuilt,
            ancestors: s.ancestors_after(&reset),
            carried: Carried {
                clock: self.clock_at(now),
                stats: fresh.stats,
            },
            model: fresh.model,
            prior: fresh.prior,
            used: Some(Used {
                purpose,
                samples: used,
            }),
            trim_below,
            ..base
        })
    }
}

/// Collected points (row-major), their dimension, and the samples used.
type Collected = (Vec<f64>, usize, Vec<(String, u64)>);

/// The batch's points, in the order of its runs.
pub(super) fn concatenated(runs: &[Run<'_>]) -> DMatrix<f64> {
    let d = runs.first().map_or(1, |r| r.points.nrows());
    let values: Vec<f64> = runs.iter().flat_map(|r| r.points.iter().copied()).collect();
    let n = values.len() / d;
    DMatrix::from_vec(d, n, values)
}

/// Replaces slot k of `to` by slot k of `from` (under tied covariances, the weight and
/// mean: the pooled scatter is not per slot).
pub(super) fn copy_slot(from: &SufficientStats, to: &mut SufficientStats, k: usize) -> Result<()> {
    let mut emptied = SlotMap::dropping(to.n_components(), &[k]).apply(to)?;
    let mean = from.means().column(k).into_owned();
    let part = match from.scatter() {
        Scatter::Full(m) => ComponentScatter::Full(&m[k]),
        Scatter::Diag(m) => ComponentScatter::Diag(m.column(k).into_owned()),
        Scatter::Spherical(v) => ComponentScatter::Spherical(v[k]),
        Scatter::Tied(_) => ComponentScatter::PooledElsewhere,
    };
    emptied.merge_component(k, from.weights()[k], &mean, part);
    *to = emptied;
    Ok(())
}
