//! A fresh start from buffered points: the warm-up, and the rebuild after a
//! detected change.

use nalgebra::DMatrix;

use super::{BatchOutcome, Inference, OnlineEm, Scored};
use crate::em::{fit, EmSettings, Start};
use crate::error::{ModelError, Result};
use crate::estep::{EvalRequest, Evaluation};
use crate::far::{gross_outliers, without};
use crate::init::InitMethod;
use crate::linalg::{points_from_rows, Points};
use crate::mixture::GaussianMixture;
use crate::mstep::Prior;
use crate::schedule::Schedule;
use crate::stats::SufficientStats;

/// Initialisations tried on the warm-up (and rebuild) buffer.
const WARMUP_INITS: usize = 4;

pub(super) struct FreshFit {
    pub(super) model: GaussianMixture,
    pub(super) stats: SufficientStats,
    pub(super) prior: Option<Prior>,
    /// All the points under the model before its last M-step.
    pub(super) evaluation: Evaluation,
    /// The mean log-likelihood of the fitted points (all but those screened out)
    /// under that model.
    pub(super) fit_mean_ll: f64,
    /// The fitted points, when some were screened out.
    pub(super) screened: Option<DMatrix<f64>>,
    pub(super) n_iter: u64,
}

impl OnlineEm {
    pub(super) fn start_from_warmup(&mut self) -> Result<BatchOutcome> {
        let d = self.state.n_features.ok_or(ModelError::Empty)?;
        let buffer = std::mem::take(&mut self.state.warmup);
        let result = self.initialise(&buffer, d);
        if result.is_err() {
            // Keep the points: nothing absorbed, nothing lost.
            self.state.warmup = buffer;
        }
        result
    }

    fn initialise(&mut self, buffer: &[f64], d: usize) -> Result<BatchOutcome> {
        let x = points_from_rows(buffer, d)?;
        if self.settings.inference == Inference::Variational {
            return self.initialise_variational(x);
        }
        let fresh = self.fresh_fit(x)?;
        // Points the model cannot score are left out, as in any update.
        let n = x.ncols() - fresh.evaluation.unscorable().len();
        self.state.prior = fresh.prior;
        Ok(self.started(fresh.stats, fresh.model, n, fresh.n_iter, fresh.evaluation))
    }

    fn initialise_variational(&mut self, x: Points<'_>) -> Result<BatchOutcome> {
        let fresh = self.fresh_variational(x)?;
        let n = x.ncols() - fresh.evaluation.unscorable().len();
        self.state.variational = Some(fresh.state);
        self.posterior = Some(fresh.posterior);
        Ok(self.started(fresh.stats, fresh.model, n, fresh.n_iter, fresh.evaluation))
    }

    /// Starts streaming with a model fitted to the `n` warm-up points in `n_iter`
    /// iterations; the outcome scores those points under the fit.
    fn started(
        &mut self,
        stats: SufficientStats,
        model: GaussianMixture,
        n: usize,
        n_iter: u64,
        evaluation: Evaluation,
    ) -> BatchOutcome {
        self.state.stats = Some(stats);
        self.state.points_seen = n as u64;
        self.state.model_version = n_iter + 1;
        self.state.batches = 1;
        self.model = Some(model);
        BatchOutcome {
            scored: Some(Scored {
                model_version: n_iter,
                evaluation,
            }),
            updated: true,
            ..BatchOutcome::default()
        }
    }

    /// k-means++ seeds, Lloyd and a few batch EM iterations on `x`; then the
    /// statistics of `x` under that model, and the model one M-step on. Points too
    /// far from the others to learn from (see `far`) are left out of the fit and of
    /// the statistics, but scored like the rest.
    pub(super) fn fresh_fit(&self, all: Points<'_>) -> Result<FreshFit> {
        let screened = gross_outliers(all).map(|far| without(all, &far));
        let x = screened.as_ref().map_or(all, |m| m.as_view());
        let s = &self.settings;
        let prior = if s.map_prior {
            Some(Prior::from_data(x, s.n_components, s.covariance_type)?)
        } else {
            None
        };
        let em = EmSettings {
            n_components: s.n_components,
            covariance_type: s.covariance_type,
            max_iter: s.warmup_iterations,
            tol: 1e-3,
            reg_covar: s.reg_covar,
            // One unlucky start would stay with the stream (a cluster split in two
            // beside two others merged): keep the best of a few, cheap on a buffer.
            n_init: WARMUP_INITS,
            start: Start::Init(InitMethod::KMeans),
            seed: s.seed,
            prior: prior.clone(),
            init_trim: s.warmup_trim,
        };
        let report = fit(x, &em, &mut |_| {})?;
        let mut evaluation = report.model.evaluate(x, EvalRequest::SCORES)?;
        // The first statistics leave out the least likely points too, as the
        // start did, and any too far to learn from, as every update does.
        let floor = report.model.far_floor();
        let trim_below = match s.warmup_trim > 0.0 {
            true => lower_quantile(&evaluation.log_density, s.warmup_trim).max(floor),
            false => floor,
        };
        let request = EvalRequest {
            trim_below: Some(trim_below),
            ..EvalRequest::STATS
        };
        let mut stats = report
            .model
            .evaluate(x, request)?
            .stats
            .ok_or(ModelError::Empty)?;
        let n = stats.total_weight();
        if matches!(s.schedule, Schedule::Stepwise { .. }) {
            // Stepwise statistics are per-point averages.
            stats.scale(1.0 / n);
        }
        let model = self.m_step(&stats, prior.as_ref(), &report.model, n)?;
        let fit_mean_ll = evaluation.mean_log_likelihood();
        if screened.is_some() {
            evaluation = report.model.evaluate(all, EvalRequest::SCORES)?;
        }
        Ok(FreshFit {
            model,
            stats,
            prior,
            evaluation,
            fit_mean_ll,
            screened,
            n_iter: report.n_iter as u64,
        })
    }

    /// After a detected change, forgetting faster removes stale statistics but
    /// cannot undo a wrong structure (one component stretched over two shifted
    /// clusters, another stranded). So the points since the change are collected
    /// and, once there are `warmup_points` of them, fitted afresh; the fresh model
    /// replaces the running one if it explains those points better by more than its
    /// in-sample optimism (AIC: one nat per free parameter). Returns true when it did.
    pub(super) fn collect_for_rebuild(&mut self, x: Points<'_>, change: bool) -> Result<bool> {
        if change {
            self.state.rebuild = Some(Vec::new());
        }
        let Some(buffer) = self.state.rebuild.as_mut() else {
            return Ok(false);
        };
        buffer.extend(x.iter());
        let d = x.nrows();
        if buffer.len() / d < self.settings.warmup_points {
            return Ok(false);
        }
        let buffer = self.state.rebuild.take().unwrap_or_default();
        let points = points_from_rows(&buffer, d)?;
        let Some(current) = self.model.as_ref() else {
            return Ok(false);
        };
        // A fit that fails (degenerate points) just leaves the running model alone.
        let Ok(fresh) = self.fresh_fit(points) else {
            return Ok(false);
        };
        // Judged on the points the fit used: those too far to learn from would
        // decide it alone.
        let fitted = fresh.screened.as_ref().map_or(points, |m| m.as_view());
        let n = points.ncols() as f64;
        let penalty = fresh.model.n_parameters() as f64 / fitted.ncols() as f64;
        let fresh_ll = fresh.fit_mean_ll - penalty;
        if fresh_ll <= current.score(fitted)? {
            return Ok(false);
        }
        if let Schedule::Stepwise { .. } = self.settings.schedule {
            // The fresh statistics stand for the buffer: continue as if the stream
            // had started with it.
            self.state.step = 1.0 + n / x.ncols() as f64;
        }
        self.state.prior = fresh.prior;
        self.state.stats = Some(fresh.stats);
        self.state.drift.end_recovery();
        self.state.model_version += 1;
        self.state.rebuilds += 1;
        self.model = Some(fresh.model);
        Ok(true)
    }
}

/// The value below which a fraction `q` of `values` lies.
pub(super) fn lower_quantile(values: &[f64], q: f64) -> f64 {
    let mut v = values.to_vec();
    let k = ((q * v.len() as f64) as usize).min(v.len().saturating_sub(1));
    *v.select_nth_unstable_by(k, f64::total_cmp).1
}
