//! Variational restructuring proposed by a member: the retirements, births and merge
//! one estimator would make on this batch, judged by the same lower bound on the
//! group's statistics, become an epoch. Retired and absorbed slots are dropped from
//! every partition's statistics; a newborn component's statistics (its share of this
//! batch) are carried by the structure.

use super::absorb::{BatchView, GroupOutcome};
use super::propose::{concatenated, copy_slot};
use super::structure::{Carried, GroupVariational, SlotMap, Structure, StructureChange};
use super::GroupEstimator;
use crate::error::{ModelError, Result};
use crate::online::variational::{kept_points, live_mixture, posterior_of, Configuration, Context};
use crate::online::StructureChanges;
use crate::stats::SufficientStats;

impl GroupEstimator {
    pub(super) fn propose_variational(
        &mut self,
        batch: &BatchView<'_, '_>,
        forgotten: &SufficientStats,
        global: &SufficientStats,
        at: f64,
        outcome: &mut GroupOutcome,
    ) -> Result<()> {
        let s = self.structure.as_ref().ok_or(ModelError::Empty)?;
        let vb = s.variational.as_ref().ok_or(ModelError::Empty)?;
        let posterior = self.posterior.as_ref().ok_or(ModelError::Empty)?;
        let model = self.model.as_ref().ok_or(ModelError::Empty)?;
        let reg_covar = self.settings().reg_covar;
        let x = concatenated(batch.runs);
        let kept = kept_points(x.as_view(), &batch.evaluation.log_density, batch.trim);
        let ctx = Context {
            prior: &vb.prior,
            reg_covar,
            batch_scale: 1.0,
            count: forgotten.total_weight() + kept.ncols() as f64,
            points: kept.as_view(),
        };
        let before = forgotten.weights().clone();
        let current =
            Configuration::from_kernel(&ctx, forgotten.clone(), vb.alive.clone(), posterior)?;
        // Births leave out the points trimmed as anomalies, as in one estimator.
        self.tool.set_trim_threshold(batch.trim);
        let (config, mut changes) =
            self.tool
                .restructure(&ctx, current, &before, model, x.as_view(), batch.evaluation)?;
        // A newborn component's statistics are this batch's share of it; merged in
        // the same batch they would also hold another slot's past. Such a merge waits
        // for a later batch.
        changes
            .merged
            .retain(|(a, b)| !changes.born.contains(a) && !changes.born.contains(b));
        if changes == StructureChanges::default() {
            return Ok(());
        }
        let k = global.n_components();
        let mut dropped = changes.retired.clone();
        dropped.extend(&changes.born);
        let clear = SlotMap::dropping(k, &dropped);
        let mut merge = SlotMap::identity(k);
        let mut alive = vb.alive.clone();
        for &slot in &changes.retired {
            alive[slot] = false;
        }
        for &slot in &changes.born {
            alive[slot] = true;
        }
        for &(kept_slot, absorbed) in &changes.merged {
            merge.0[absorbed] = Some(kept_slot);
            alive[absorbed] = false;
        }
        let with_births = |stats: &SufficientStats| -> Result<SufficientStats> {
            let mut out = clear.apply(stats)?;
            for &slot in &changes.born {
                copy_slot(&config.stats, &mut out, slot)?;
            }
            merge.apply(&out)
        };
        let next = with_births(global)?;
        let mut carried = s.carried.stats.clone();
        carried.scale(self.clock.factor(s.carried.clock, at, 1.0));
        let carried = with_births(&carried)?;
        let next_posterior = posterior_of(&next, &vb.prior, reg_covar, next.total_weight())?;
        let next_model = live_mixture(&next_posterior, &alive)?;
        let map = clear.then(&merge);
        let change = StructureChange::Variational {
            born: changes.born,
            retired: changes.retired,
            merged: changes.merged,
        };
        let proposal = Structure {
            carried: Carried {
                clock: at,
                stats: carried,
            },
            prior: None,
            variational: Some(GroupVariational {
                prior: vb.prior.clone(),
                alive,
            }),
            ..s.successor(change, &map, next_model)
        };
        self.submit_new(proposal, outcome);
        Ok(())
    }
}
