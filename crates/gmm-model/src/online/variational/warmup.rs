//! The variational start from the warm-up buffer: a batch variational fit with K
//! components (k-means starts, the best of a few), its slots under `retire_weight`
//! retired, and the statistics of the buffer under the live components.

use super::batch::clear_slot;
use super::{live_kernel, live_mixture, posterior_of, VariationalState};
use crate::em::{EmSettings, Start};
use crate::error::{ModelError, Result};
use crate::estep::{EvalRequest, Evaluation};
use crate::far::{gross_outliers, without};
use crate::init::InitMethod;
use crate::linalg::Points;
use crate::mixture::GaussianMixture;
use crate::online::OnlineEm;
use crate::schedule::Schedule;
use crate::stats::SufficientStats;
use crate::variational::{
    fit_variational, CovariancePrior, Posterior, PriorChoices, VariationalPrior,
    VariationalSettings as BatchSettings,
};

/// Initialisations tried on the warm-up buffer.
const WARMUP_INITS: usize = 4;
/// Variational iterations converge more slowly than EM's: this many per EM
/// warm-up iteration.
const ITERATIONS_PER_EM_ITERATION: usize = 5;

pub(in crate::online) struct FreshVariational {
    pub model: GaussianMixture,
    pub posterior: Posterior,
    pub stats: SufficientStats,
    pub state: VariationalState,
    /// The buffer scored by the fitted model before its last update.
    pub evaluation: Evaluation,
    pub n_iter: u64,
}

impl OnlineEm {
    /// Points too far from the others to learn from (see `far`) are left out of
    /// the fit and of the statistics, but scored like the rest.
    pub(in crate::online) fn fresh_variational(&self, all: Points<'_>) -> Result<FreshVariational> {
        let screened = gross_outliers(all).map(|far| without(all, &far));
        let x = screened.as_ref().map_or(all, |m| m.as_view());
        let s = &self.settings;
        let v = &s.variational;
        let mut prior = VariationalPrior::resolve(
            x,
            s.n_components,
            s.covariance_type,
            v.weight_prior,
            &PriorChoices {
                weight_concentration: v.weight_concentration,
                mean_precision: Some(v.mean_precision),
                ..PriorChoices::default()
            },
        )?;
        // A retired slot is the prior alone: keep it a proper Gaussian even if the
        // warm-up is flat in some coordinate.
        regularise(&mut prior.covariance, s.reg_covar);
        let settings = BatchSettings {
            em: EmSettings {
                n_components: s.n_components,
                covariance_type: s.covariance_type,
                max_iter: s.warmup_iterations * ITERATIONS_PER_EM_ITERATION,
                tol: 1e-3,
                reg_covar: s.reg_covar,
                n_init: WARMUP_INITS,
                start: Start::Init(InitMethod::KMeans),
                seed: s.seed,
                prior: None,
                init_trim: s.warmup_trim,
            },
            weight_prior: v.weight_prior,
            priors: PriorChoices {
                weight_concentration: Some(prior.weight_concentration),
                mean_precision: Some(prior.mean_precision),
                mean: Some(prior.mean.clone()),
                degrees_of_freedom: Some(prior.degrees_of_freedom),
                covariance: Some(prior.covariance.clone()),
            },
        };
        let report = fit_variational(x, &settings, &mut |_| {})?;
        let weights = report.posterior.mixture().weights();
        let mut alive: Vec<bool> = weights.iter().map(|&w| w >= v.retire_weight).collect();
        if !alive.iter().any(|&a| a) {
            alive[weights.imax()] = true;
        }
        let fitted = live_mixture(&report.posterior, &alive)?;
        let mut evaluation = fitted.evaluate(x, EvalRequest::SCORES)?;
        let floor = fitted.far_floor();
        let trim = Some(match s.warmup_trim > 0.0 {
            true => super::super::fresh::lower_quantile(&evaluation.log_density, s.warmup_trim)
                .max(floor),
            false => floor,
        });
        let kept = super::batch::kept_points(x, &evaluation.log_density, trim);
        let mut stats = live_kernel(&report.posterior, &alive)
            .evaluate(kept.as_view(), EvalRequest::STATS)?
            .stats
            .ok_or(ModelError::Empty)?;
        for k in (0..alive.len()).filter(|&k| !alive[k]) {
            clear_slot(&mut stats, k)?;
        }
        let count = stats.total_weight();
        if matches!(s.schedule, Schedule::Stepwise { .. }) {
            // Stepwise statistics are per-point averages.
            stats.scale(1.0 / count);
        }
        let posterior = posterior_of(&stats, &prior, s.reg_covar, count)?;
        let model = live_mixture(&posterior, &alive)?;
        if screened.is_some() {
            evaluation = fitted.evaluate(all, EvalRequest::SCORES)?;
        }
        Ok(FreshVariational {
            model,
            posterior,
            stats,
            state: VariationalState {
                prior,
                alive,
                count,
                births: 0,
                retirements: 0,
                merges: 0,
            },
            evaluation,
            n_iter: report.n_iter as u64,
        })
    }
}

fn regularise(c: &mut CovariancePrior, reg: f64) {
    match c {
        CovariancePrior::Matrix(m) => {
            for i in 0..m.nrows() {
                m[(i, i)] += reg;
            }
        }
        CovariancePrior::Diagonal(v) => v.add_scalar_mut(reg),
        CovariancePrior::Scalar(s) => *s += reg,
    }
}
