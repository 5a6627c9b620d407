//! A batch of the member's own points: scored under the group's model, absorbed into
//! their partitions' statistics, the model updated from the group's sum.

use std::collections::BTreeMap;

use nalgebra::DMatrix;

use super::partition::PartitionKey;
use super::structure::StructureChange;
use super::GroupEstimator;
use crate::drift::BatchLevel;
use crate::error::{ModelError, Result};
use crate::estep::{EvalRequest, Evaluation};
use crate::linalg::Points;
use crate::online::variational::{kept_points, live_kernel};
use crate::online::Scored;
use crate::stats::SufficientStats;

/// Consecutive points of one partition, in the batch's order.
#[derive(Clone, Copy, Debug)]
pub struct Run<'a> {
    pub key: &'a PartitionKey,
    /// d×n: a column per point.
    pub points: Points<'a>,
}

/// What one batch did.
#[derive(Clone, Debug, Default)]
pub struct GroupOutcome {
    /// The batch's points in order, scored by the model before they updated it (None
    /// while the group has no model: they are buffered, and scored when it comes).
    pub scored: Option<Scored>,
    /// While warming up: the sequence numbers given to the batch's runs (non-empty
    /// ones, in order), by which [`Adoption::scored`](super::Adoption) reports them.
    pub buffered: Vec<u64>,
    pub change_detected: bool,
    /// A structure change this member proposed after the batch.
    pub proposed: Option<StructureChange>,
    /// A proposal that could not be made (a fit that failed): tried again later.
    pub proposal_error: Option<ModelError>,
    /// The model could not be updated from the group's statistics (the batch is in
    /// them all the same); the previous model stays.
    pub model_error: Option<ModelError>,
}

/// A scored batch, as proposals look at it.
pub(super) struct BatchView<'a, 'b> {
    pub runs: &'a [Run<'b>],
    /// The batch's points in order, under the model before the batch.
    pub evaluation: &'a Evaluation,
    /// Points scored below this were left out of the statistics.
    pub trim: Option<f64>,
}

/// The batch's points per partition: the run itself when there is one (no copy),
/// else the runs gathered.
struct PerPartition<'a> {
    key: &'a PartitionKey,
    points: Gathered<'a>,
}

enum Gathered<'a> {
    One(Points<'a>),
    Many(DMatrix<f64>),
}

impl Gathered<'_> {
    fn view(&self) -> Points<'_> {
        match self {
            Self::One(x) => *x,
            Self::Many(m) => m.as_view(),
        }
    }

    fn ncols(&self) -> usize {
        self.view().ncols()
    }
}

impl GroupEstimator {
    /// Absorbs a batch of points of owned partitions (`runs`, in order) that left the
    /// partitions at `offsets`; `now` is the wall-clock time in seconds (used by a
    /// half-life in seconds).
    pub fn absorb(
        &mut self,
        runs: &[Run<'_>],
        offsets: &[(PartitionKey, i64)],
        now: f64,
    ) -> Result<GroupOutcome> {
        self.check_runs(runs)?;
        let runs: Vec<Run<'_>> = runs
            .iter()
            .copied()
            .filter(|r| r.points.ncols() > 0)
            .collect();
        if self.structure.is_none() {
            let outcome = self.buffer_warmup(&runs, now);
            self.set_offsets(offsets);
            return Ok(outcome);
        }
        if runs.is_empty() {
            self.set_offsets(offsets);
            return Ok(GroupOutcome::default());
        }
        let outcome = self.update(&runs, now)?;
        self.set_offsets(offsets);
        Ok(outcome)
    }

    fn check_runs(&mut self, runs: &[Run<'_>]) -> Result<()> {
        for run in runs {
            if !self.owned.contains(run.key) {
                return Err(ModelError::InvalidShape(format!(
                    "points of partition {}, which this member does not own",
                    run.key
                )));
            }
            let d = run.points.nrows();
            match self.n_features {
                Some(expected) if expected != d => {
                    return Err(ModelError::DimensionMismatch { expected, got: d })
                }
                None if d == 0 => {
                    return Err(ModelError::InvalidShape(
                        "points with no coordinates".into(),
                    ))
                }
                _ => {}
            }
            if !run.points.iter().all(|v| v.is_finite()) {
                return Err(ModelError::NonFinite {
                    what: "the batch".into(),
                });
            }
            if run.points.ncols() > 0 {
                self.n_features = Some(d);
            }
        }
        Ok(())
    }

    fn buffer_warmup(&mut self, runs: &[Run<'_>], now: f64) -> GroupOutcome {
        let mut outcome = GroupOutcome::default();
        let Some(c) = self.collection.as_mut() else {
            return outcome;
        };
        for run in runs {
            let seq = self.next_run;
            self.next_run += 1;
            c.push(seq, run.key, run.points);
            outcome.buffered.push(seq);
        }
        self.propose_from_collection(now, &mut outcome);
        outcome
    }

    /// Scores and absorbs a batch under the group's model.
    fn update(&mut self, runs: &[Run<'_>], now: f64) -> Result<GroupOutcome> {
        let model = self.model.clone().ok_or(ModelError::Empty)?;
        let collecting = self.structure.as_ref().and_then(|s| s.collecting).is_some();
        let recovering = self.drift.is_recovering() || collecting;
        // Points too far from every component to learn from (see `far`) are scored
        // but never absorbed, whatever the trimming, as in one estimator.
        let floor = model.far_floor();
        let trim = Some(
            self.trim
                .filter(|_| !recovering)
                .map_or(floor, |t| t.max(floor)),
        );
        let parts = per_partition(runs);
        // Everything that can fail comes before the first change of state.
        let mut evaluations = Vec::with_capacity(parts.len());
        let mut batch_stats = Vec::with_capacity(parts.len());
        for part in &parts {
            let (eval, stats) = self.evaluate_part(part.points.view(), trim)?;
            evaluations.push(eval);
            batch_stats.push(stats);
        }
        let evaluation = in_run_order(runs, &parts, evaluations, model.n_components());
        let scored_version = self.model_version;
        let drift_settings = self.settings().drift;
        let mut outcome = GroupOutcome {
            change_detected: self
                .drift
                .observe(&drift_settings, BatchLevel::of(&evaluation.log_density)),
            ..GroupOutcome::default()
        };
        let n = evaluation.n_points;
        let after = self.clock.after_batch(self.clock_now(), n, now);
        // Variational restructuring compares candidates on the statistics before the
        // batch, as one estimator does.
        let forgotten = if self.is_variational() {
            self.global_stats(after)
        } else {
            None
        };
        self.absorb_parts(&parts, batch_stats, after);
        if collecting {
            self.buffer_rebuild(runs);
        }
        let global = self.global_stats(after).ok_or(ModelError::Empty)?;
        let batch = BatchView {
            runs,
            evaluation: &evaluation,
            trim,
        };
        self.propose_after_batch(
            &batch,
            forgotten.as_ref(),
            &global,
            after,
            now,
            &mut outcome,
        );
        if let Err(e) = self.set_model_from(&global) {
            outcome.model_error = Some(e);
        }
        outcome.scored = Some(Scored {
            model_version: scored_version,
            evaluation,
        });
        Ok(outcome)
    }

    /// A partition's points scored by the model (plug-in mixture), and their
    /// statistics: EM's from the same E-step, variational inference's from its own
    /// E-step under the posterior.
    fn evaluate_part(
        &self,
        x: Points<'_>,
        trim: Option<f64>,
    ) -> Result<(Evaluation, SufficientStats)> {
        let model = self.model.as_ref().ok_or(ModelError::Empty)?;
        let Some(posterior) = self.posterior.as_ref().filter(|_| self.is_variational()) else {
            let mut eval = model.evaluate(
                x,
                EvalRequest {
                    trim_below: trim,
                    ..EvalRequest::ALL
                },
            )?;
            let stats = eval.stats.take().ok_or(ModelError::Empty)?;
            return Ok((eval, stats));
        };
        let eval = model.evaluate(x, EvalRequest::SCORES)?;
        let alive = self
            .structure
            .as_ref()
            .and_then(|s| s.variational.as_ref())
            .map(|v| v.alive.clone())
            .ok_or(ModelError::Empty)?;
        let kept = kept_points(x, &eval.log_density, trim);
        let stats = live_kernel(posterior, &alive)
            .evaluate(kept.as_view(), EvalRequest::STATS)?
            .stats
            .ok_or(ModelError::Empty)?;
        Ok((eval, stats))
    }

    /// Counts the batch's points, forgets (faster while recovering from a change
    /// this member detected) and absorbs each partition's statistics, bringing them to
    /// clock reading `after`.
    fn absorb_parts(
        &mut self,
        parts: &[PerPartition<'_>],
        batch_stats: Vec<SufficientStats>,
        after: f64,
    ) {
        let n: usize = parts.iter().map(|p| p.points.ncols()).sum();
        let before = self.clock_now();
        for part in parts {
            if let Some(st) = self.own.get_mut(part.key) {
                st.points += part.points.ncols() as u64;
                st.batches += part.points.ncols() as f64 / n as f64;
            }
        }
        let speedup = self.drift.speedup(&self.settings().drift);
        for (part, stats) in parts.iter().zip(batch_stats) {
            if let Some(st) = self.own.get_mut(part.key) {
                st.stats.scale(self.clock.factor(st.clock, after, speedup));
                // Same shape: both come from this member's model.
                let _ = st.stats.merge(&stats);
                st.clock = after;
                self.dirty.insert(part.key.clone());
            }
        }
        if speedup > 1.0 {
            // Forgetting faster applies to every owned partition, not only to those
            // in the batch (the others' clocks would otherwise keep the old rate).
            for (key, st) in self.own.iter_mut().filter(|(_, st)| st.clock < after) {
                st.stats.scale(self.clock.factor(st.clock, after, speedup));
                st.clock = after;
                self.dirty.insert(key.clone());
            }
        }
        self.drift.advance(self.clock.half_lives(before, after));
    }

    fn buffer_rebuild(&mut self, runs: &[Run<'_>]) {
        let Some(c) = self.collection.as_mut() else {
            return;
        };
        for run in runs {
            let seq = self.next_run;
            self.next_run += 1;
            c.push(seq, run.key, run.points);
        }
    }
}

/// The batch's points gathered by partition, partitions in order of first appearance.
fn per_partition<'a>(runs: &[Run<'a>]) -> Vec<PerPartition<'a>> {
    let mut order: Vec<(&'a PartitionKey, Vec<Points<'a>>)> = Vec::new();
    let mut index: BTreeMap<&'a PartitionKey, usize> = BTreeMap::new();
    for run in runs {
        let i = *index.entry(run.key).or_insert_with(|| {
            order.push((run.key, Vec::new()));
            order.len() - 1
        });
        order[i].1.push(run.points);
    }
    order
        .into_iter()
        .map(|(key, parts)| {
            let points = match parts.as_slice() {
                [one] => Gathered::One(*one),
                _ => {
                    let d = parts[0].nrows();
                    let values: Vec<f64> = parts.iter().flat_map(|p| p.iter().copied()).collect();
                    let n = values.len() / d;
                    Gathered::Many(DMatrix::from_vec(d, n, values))
                }
            };
            PerPartition { key, points }
        })
        .collect()
}

/// One evaluation of the whole batch, in the order of its runs, from the
/// evaluations of its partitions.
fn in_run_order(
    runs: &[Run<'_>],
    parts: &[PerPartition<'_>],
    mut evaluations: Vec<Evaluation>,
    k: usize,
) -> Evaluation {
    if evaluations.len() == 1 && runs.len() == 1 {
        // One run: its partition's evaluation is the batch's.
        let mut e = evaluations.swap_remove(0);
        e.stats = None;
        return e;
    }
    let n: usize = runs.iter().map(|r| r.points.ncols()).sum();
    let mut log_density = Vec::with_capacity(n);
    let mut responsibilities = DMatrix::zeros(k, n);
    let mut next: Vec<usize> = vec![0; parts.len()];
    let mut column = 0;
    for run in runs {
        let Some(p) = parts.iter().position(|p| p.key == run.key) else {
            continue;
        };
        let (e, j, len) = (&evaluations[p], next[p], run.points.ncols());
        log_density.extend_from_slice(&e.log_density[j..j + len]);
        responsibilities
            .columns_mut(column, len)
            .copy_from(&e.responsibilities.columns(j, len));
        next[p] += len;
        column += len;
    }
    Evaluation {
        log_likelihood: evaluations.iter().map(|e| e.log_likelihood).sum(),
        n_points: n,
        log_density,
        responsibilities,
        stats: None,
        resp_log_resp: 0.0,
    }
}
