//! Online variational inference: the decayed (or stepwise-averaged) statistics of
//! online EM feed the variational posterior of `model::variational` in place of the
//! M-step, and the posterior chooses how many of the K slots the stream needs.
//!
//! Per batch: the points are scored by the plug-in mixture (as under EM), the
//! variational E-step under the current posterior gives the batch's statistics, the
//! schedule forgets, and the posterior is updated. Then the structure may change, one
//! step of each kind at most, each judged by the lower bound on the batch
//! (`batch`):
//! - a live component whose share of the weight is below `retire_weight` and still
//!   fading (its share fell over this batch) is retired: its slot is emptied;
//! - when the batch holds points that no live component explains (beyond the 1e-4
//!   tail of their best component) and a slot is free, a component is proposed there,
//!   seeded on the densest group of those points (`birth`), and born if the bound
//!   rises;
//! - the two live components that overlap most are proposed merged into the heavier
//!   one's slot (`merge`), if the bound rises.
//!
//! A retired slot takes no responsibility and has weight 0 in the plug-in mixture; no
//! live component ever changes its index. Everything is deterministic given the points
//! and batch boundaries, so a restored state continues bit for bit.

mod batch;
mod birth;
mod merge;
mod warmup;

use nalgebra::DVector;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

use super::{BatchOutcome, OnlineEm};
use crate::drift::BatchLevel;
use crate::error::{finite_above, invalid, ModelError, Result};
use crate::estep::EvalRequest;
use crate::linalg::Points;
use crate::mixture::GaussianMixture;
use crate::stats::SufficientStats;
use crate::variational::{Posterior, VariationalPrior, WeightPriorType};
pub(super) use batch::{kept_points, Configuration, Context};

/// How the online estimator turns statistics into a model.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Inference {
    /// Maximum likelihood (or MAP) M-steps with a fixed K.
    #[default]
    Em,
    /// The variational posterior, with up to K components.
    Variational,
}

impl Inference {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Em => "em",
            Self::Variational => "variational",
        }
    }
}

impl fmt::Display for Inference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Inference {
    type Err = ModelError;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "em" => Ok(Self::Em),
            "variational" => Ok(Self::Variational),
            other => Err(invalid(
                "inference",
                format!("`{other}` is not one of em, variational"),
            )),
        }
    }
}

/// Settings of online variational inference.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OnlineVariational {
    pub weight_prior: WeightPriorType,
    /// γ or α₀; None: 1/K.
    pub weight_concentration: Option<f64>,
    /// β₀, the prior's weight on the mean prior, in points. scikit-learn's 1 is
    /// negligible next to a batch's thousands of points per component, but decayed
    /// statistics stand for a few half-lives only, and a cluster far from the
    /// warm-up's mean would then see its covariance inflated by
    /// `β₀ (x̄ − m₀)(x̄ − m₀)ᵀ / ν`: hence a weaker default.
    pub mean_precision: f64,
    /// A fading component whose share of the weight is below this is retired.
    pub retire_weight: f64,
}

impl Default for OnlineVariational {
    fn default() -> Self {
        Self {
            weight_prior: WeightPriorType::DirichletDistribution,
            weight_concentration: None,
            mean_precision: 0.01,
            retire_weight: 0.005,
        }
    }
}

impl OnlineVariational {
    pub fn check(&self) -> Result<()> {
        if !(0.0..0.5).contains(&self.retire_weight) {
            return Err(invalid("retire_weight", "must be in [0, 0.5)"));
        }
        if !finite_above(self.mean_precision, 0.0) {
            return Err(invalid(
                "mean_precision_prior",
                "must be a finite number > 0",
            ));
        }
        if let Some(c) = self.weight_concentration {
            if !finite_above(c, 0.0) {
                return Err(invalid(
                    "weight_concentration_prior",
                    "must be a finite number > 0",
                ));
            }
        }
        Ok(())
    }
}

/// The part of the estimator state that only variational inference has.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VariationalState {
    pub prior: VariationalPrior,
    /// Which slots hold a live component.
    pub alive: Vec<bool>,
    /// How many points the statistics stand for (their weight under decay; `n/γ`
    /// under stepwise, whose statistics are per-point averages).
    pub count: f64,
    pub births: u64,
    pub retirements: u64,
    pub merges: u64,
}

impl VariationalState {
    /// The number of live components.
    pub fn effective_components(&self) -> usize {
        self.alive.iter().filter(|&&a| a).count()
    }
}

/// What the structure did in one batch.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StructureChanges {
    pub born: Vec<usize>,
    pub retired: Vec<usize>,
    /// (kept, absorbed) slots.
    pub merged: Vec<(usize, usize)>,
}

/// The posterior of `stats` standing for `count` points.
pub(super) fn posterior_of(
    stats: &SufficientStats,
    prior: &VariationalPrior,
    reg_covar: f64,
    count: f64,
) -> Result<Posterior> {
    let total = stats.total_weight();
    if total > 0.0 && (total - count).abs() > f64::EPSILON * count {
        let mut scaled = stats.clone();
        scaled.scale(count / total);
        Posterior::update(&scaled, prior, reg_covar)
    } else {
        Posterior::update(stats, prior, reg_covar)
    }
}

/// The plug-in mixture with the retired slots at weight 0 (what scores, snapshots
/// and samples use).
pub(super) fn live_mixture(posterior: &Posterior, alive: &[bool]) -> Result<GaussianMixture> {
    let m = posterior.mixture();
    let mut w = DVector::from_fn(m.n_components(), |k, _| {
        if alive[k] {
            m.weights()[k]
        } else {
            0.0
        }
    });
    let total = w.sum();
    if !finite_above(total, 0.0) {
        return Err(ModelError::Empty);
    }
    w /= total;
    GaussianMixture::new(w, m.means().clone(), m.covariances().clone())
}

/// The variational E-step kernel with the retired slots taking no responsibility.
pub(super) fn live_kernel(posterior: &Posterior, alive: &[bool]) -> GaussianMixture {
    let mut c = posterior.log_constants();
    for (v, &a) in c.iter_mut().zip(alive) {
        if !a {
            *v = f64::NEG_INFINITY;
        }
    }
    posterior.mixture().with_log_weights(&c)
}

impl OnlineEm {
    pub(super) fn variational_state(&self) -> Result<&VariationalState> {
        self.state.variational.as_ref().ok_or_else(|| {
            ModelError::IncompatibleStats("variational inference without its state".into())
        })
    }

    /// The number of live components (K under EM).
    pub fn effective_components(&self) -> Option<usize> {
        match (&self.state.variational, &self.model) {
            (Some(v), _) => Some(v.effective_components()),
            (None, Some(m)) => Some(m.n_components()),
            (None, None) => None,
        }
    }

    pub(super) fn update_variational(
        &mut self,
        x: Points<'_>,
        elapsed_seconds: f64,
    ) -> Result<BatchOutcome> {
        let model = self.model.as_ref().ok_or(ModelError::Empty)?;
        let posterior = self.posterior.as_ref().ok_or(ModelError::Empty)?;
        let vb = self.variational_state()?.clone();
        // Points too far from every component to learn from, and those the model
        // cannot score at all, are left out of the statistics (see `far`).
        let floor = model.far_floor();
        let trim = Some(
            self.trim
                .filter(|_| !self.state.drift.is_recovering())
                .map_or(floor, |t| t.max(floor)),
        );
        let evaluation = model.evaluate(x, EvalRequest::SCORES)?;
        let mut drift = self.state.drift.clone();
        let change = drift.observe(
            &self.settings.drift,
            BatchLevel::of(&evaluation.log_density),
        );
        let kept_points = batch::kept_points(x, &evaluation.log_density, trim);
        let kept: Points<'_> = kept_points.as_view();
        let n = x.ncols() - evaluation.unscorable().len();
        let forgotten = self.forget(n, kept.ncols() as f64, elapsed_seconds, change, &mut drift)?;
        let count = self.stats_count(&forgotten, kept.ncols() as f64);
        let ctx = batch::Context {
            prior: &vb.prior,
            reg_covar: self.settings.reg_covar,
            batch_scale: forgotten.batch_scale,
            count,
            points: kept,
        };
        let before = forgotten.stats.weights().clone();
        let current =
            Configuration::from_kernel(&ctx, forgotten.stats, vb.alive.clone(), posterior)?;
        let (current, changes) = self.restructure(&ctx, current, &before, model, x, &evaluation)?;
        let mut state = vb.clone();
        let next_model = live_mixture(&current.posterior, &current.alive)?;
        // Commit only now: a failed step leaves the estimator as it was.
        state.alive = current.alive.clone();
        state.count = count;
        state.births += changes.born.len() as u64;
        state.retirements += changes.retired.len() as u64;
        state.merges += changes.merged.len() as u64;
        let scored_version = self.commit_batch(current.stats, drift, forgotten.step, n);
        self.state.variational = Some(state);
        self.posterior = Some(current.posterior);
        self.model = Some(next_model);
        Ok(BatchOutcome {
            structure: changes,
            ..BatchOutcome::update(scored_version, evaluation, change)
        })
    }

    /// How many points the statistics stand for once `absorbed` points of the batch
    /// join the forgotten ones: their weight under decay, `n/γ` under stepwise.
    fn stats_count(&self, forgotten: &super::Forgotten, absorbed: f64) -> f64 {
        match self.settings.schedule {
            crate::schedule::Schedule::Decay { .. } => {
                forgotten.stats.total_weight() + absorbed * forgotten.batch_scale
            }
            crate::schedule::Schedule::Stepwise { .. } => forgotten.stepwise_count,
        }
    }

    /// This batch's retirements, then births, then a merge, each judged by the
    /// bound: the configuration they leave and what changed.
    pub(in crate::online) fn restructure(
        &self,
        ctx: &batch::Context<'_>,
        mut current: Configuration,
        before: &DVector<f64>,
        model: &GaussianMixture,
        x: Points<'_>,
        evaluation: &crate::estep::Evaluation,
    ) -> Result<(Configuration, StructureChanges)> {
        let mut changes = StructureChanges::default();
        self.retire_fading(ctx, &mut current, before, &mut changes)?;
        if let Some((born, slots)) = self.propose_birth(ctx, &current, model, x, evaluation)? {
            changes.born = slots;
            current = born;
        }
        if let Some((merged, pair)) = self.propose_merge(ctx, &current)? {
            changes.merged.push(pair);
            current = merged;
        }
        Ok((current, changes))
    }

    /// Retires the live components whose share is below `retire_weight` and fell
    /// over this batch (never the last one).
    fn retire_fading(
        &self,
        ctx: &batch::Context<'_>,
        current: &mut Configuration,
        before: &DVector<f64>,
        changes: &mut StructureChanges,
    ) -> Result<()> {
        let min = self.settings.variational.retire_weight;
        let w = current.stats.weights();
        let (total, total_before) = (w.sum(), before.sum());
        if min == 0.0 || !finite_above(total, 0.0) || !finite_above(total_before, 0.0) {
            return Ok(());
        }
        let fading: Vec<usize> = (0..w.len())
            .filter(|&k| current.alive[k])
            .filter(|&k| w[k] < min * total && w[k] / total < before[k] / total_before)
            .collect();
        let live = current.alive.iter().filter(|&&a| a).count();
        let fading: Vec<usize> = fading.into_iter().take(live.saturating_sub(1)).collect();
        if fading.is_empty() {
            return Ok(());
        }
        for &k in &fading {
            current.retire(k)?;
        }
        *current = Configuration::settled(
            ctx,
            current.forgotten.clone(),
            current.stats.clone(),
            current.alive.clone(),
            current.r_ln_r,
        )?;
        changes.retired = fading;
        Ok(())
    }
}

/// The model and posterior of a restored state. Under variational inference both
/// are derived from the saved statistics again, by the same computation as before
/// the save, so the restored estimator continues bit for bit.
pub(super) fn restored(
    settings: &super::OnlineSettings,
    state: &super::OnlineState,
    model: Option<GaussianMixture>,
) -> Result<(Option<GaussianMixture>, Option<Posterior>)> {
    if settings.inference != Inference::Variational {
        return Ok((model, None));
    }
    match (&state.stats, &state.variational) {
        (None, None) => Ok((None, None)),
        (Some(stats), Some(vb)) if vb.alive.len() == stats.n_components() => {
            let posterior = posterior_of(stats, &vb.prior, settings.reg_covar, vb.count)?;
            let live = live_mixture(&posterior, &vb.alive)?;
            Ok((Some(live), Some(posterior)))
        }
        _ => Err(ModelError::IncompatibleStats(
            "the saved variational state does not match its statistics".into(),
        )),
    }
}
