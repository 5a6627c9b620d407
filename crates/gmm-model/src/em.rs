//! Batch EM with scikit-learn's semantics.
//!
//! One iteration is an E-step under the current parameters (its mean log-likelihood
//! is the iteration's "lower bound", as scikit-learn reports it) and an M-step from
//! the statistics it produced. The loop stops when the lower bound changes by less
//! than `tol`, or after `max_iter` iterations; of `n_init` runs the one with the
//! highest final lower bound is kept.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::covariance::CovarianceType;
use super::error::{finite_at_least, invalid, ModelError, Result};
use super::estep::EvalRequest;
use super::init::{initial_stats, InitMethod};
use super::linalg::Points;
use super::mixture::GaussianMixture;
use super::mstep::{m_step, Prior};

/// Where EM starts.
// Built once per fit: the size of the model variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug)]
pub enum Start {
    Init(InitMethod),
    /// A given model's weights, means and covariances (scikit-learn's
    /// `weights_init`, `means_init`, `precisions_init`).
    Model(GaussianMixture),
}

#[derive(Clone, Debug)]
pub struct EmSettings {
    pub n_components: usize,
    pub covariance_type: CovarianceType,
    pub max_iter: usize,
    pub tol: f64,
    pub reg_covar: f64,
    pub n_init: usize,
    pub start: Start,
    pub seed: u64,
    /// MAP estimation under this prior instead of maximum likelihood.
    pub prior: Option<Prior>,
    /// Fraction of outlying points the k-means start leaves out (0: scikit-learn's
    /// start; see [`initial_stats`]).
    pub init_trim: f64,
}

impl EmSettings {
    /// scikit-learn's defaults.
    pub fn new(n_components: usize) -> Self {
        Self {
            n_components,
            covariance_type: CovarianceType::Full,
            max_iter: 100,
            tol: 1e-3,
            reg_covar: 1e-6,
            n_init: 1,
            start: Start::Init(InitMethod::KMeans),
            seed: 0,
            prior: None,
            init_trim: 0.0,
        }
    }

    pub fn check(&self, x: Points<'_>) -> Result<()> {
        if self.n_components == 0 {
            return Err(invalid("components", "must be at least 1"));
        }
        if self.n_init == 0 {
            return Err(invalid("n_init", "must be at least 1"));
        }
        if !finite_at_least(self.tol, 0.0) {
            return Err(invalid("tol", "must be a finite number >= 0"));
        }
        if !finite_at_least(self.reg_covar, 0.0) {
            return Err(invalid("reg_covar", "must be a finite number >= 0"));
        }
        if x.ncols() < self.n_components {
            return Err(ModelError::TooFewPoints {
                n_points: x.ncols(),
                n_components: self.n_components,
            });
        }
        if let Start::Model(m) = &self.start {
            if m.n_components() != self.n_components || m.covariance_type() != self.covariance_type
            {
                return Err(invalid(
                    "init_model",
                    format!(
                        "the initial model has {} {} components, the fit asks for {} {}",
                        m.n_components(),
                        m.covariance_type(),
                        self.n_components,
                        self.covariance_type
                    ),
                ));
            }
            if m.n_features() != x.nrows() {
                return Err(ModelError::DimensionMismatch {
                    expected: m.n_features(),
                    got: x.nrows(),
                });
            }
        }
        Ok(())
    }
}

/// What one iteration reports to a progress callback.
#[derive(Clone, Copy, Debug)]
pub struct Iteration {
    /// 0-based index of the initialisation.
    pub init: usize,
    /// 1-based iteration number.
    pub iteration: usize,
    pub mean_log_likelihood: f64,
    pub change: f64,
}

#[derive(Clone, Debug)]
pub struct FitReport {
    pub model: GaussianMixture,
    pub converged: bool,
    pub n_iter: usize,
    /// The best run's final lower bound (mean log-likelihood per point).
    pub lower_bound: f64,
    /// The best run's lower bound at every iteration.
    pub history: Vec<f64>,
}

/// One EM iteration: the E-step's mean log-likelihood under `model`, and the model
/// after the M-step.
pub fn em_step(
    model: &GaussianMixture,
    x: Points<'_>,
    reg_covar: f64,
    prior: Option<&Prior>,
) -> Result<(GaussianMixture, f64)> {
    let eval = model.evaluate(x, EvalRequest::STATS)?;
    let stats = eval.stats.as_ref().ok_or(ModelError::Empty)?;
    let next = m_step(stats, reg_covar, prior, Some(model))?;
    Ok((next, eval.mean_log_likelihood()))
}

/// Fits a mixture to `x` by EM; `progress` sees every iteration.
pub fn fit(
    x: Points<'_>,
    settings: &EmSettings,
    progress: &mut dyn FnMut(&Iteration),
) -> Result<FitReport> {
    settings.check(x)?;
    if let Some(p) = &settings.prior {
        p.check(x.nrows())?;
    }
    let mut rng = ChaCha8Rng::seed_from_u64(settings.seed);
    let mut best: Option<FitReport> = None;
    for init in 0..settings.n_init {
        let start = match &settings.start {
            Start::Model(m) => m.clone(),
            Start::Init(method) => {
                let stats = initial_stats(
                    x,
                    settings.n_components,
                    settings.covariance_type,
                    *method,
                    &mut rng,
                    settings.init_trim,
                )?;
                m_step(&stats, settings.reg_covar, settings.prior.as_ref(), None)?
            }
        };
        let run = run_em(start, f64::NEG_INFINITY, x, settings, init, progress)?;
        if best
            .as_ref()
            .is_none_or(|b| run.lower_bound > b.lower_bound)
        {
            best = Some(run);
        }
    }
    best.ok_or(ModelError::Empty)
}

/// Continues EM from `model`, whose earlier fit ended at `lower_bound`
/// (scikit-learn's `warm_start`): the first iteration's change is measured from it,
/// so a model that had converged stops after one iteration. One run; `settings`
/// give everything but the start and `n_init`.
pub fn resume(
    model: GaussianMixture,
    lower_bound: f64,
    x: Points<'_>,
    settings: &EmSettings,
    progress: &mut dyn FnMut(&Iteration),
) -> Result<FitReport> {
    let settings = EmSettings {
        start: Start::Model(model),
        n_init: 1,
        ..settings.clone()
    };
    settings.check(x)?;
    if let Some(p) = &settings.prior {
        p.check(x.nrows())?;
    }
    let Start::Model(model) = &settings.start else {
        return Err(ModelError::Empty);
    };
    run_em(model.clone(), lower_bound, x, &settings, 0, progress)
}

fn run_em(
    model: GaussianMixture,
    lower_bound: f64,
    x: Points<'_>,
    settings: &EmSettings,
    init: usize,
    progress: &mut dyn FnMut(&Iteration),
) -> Result<FitReport> {
    let step = |m: &GaussianMixture| em_step(m, x, settings.reg_covar, settings.prior.as_ref());
    let (model, run) = iterate_from(model, lower_bound, settings, init, progress, step)?;
    Ok(FitReport {
        model,
        converged: run.converged,
        n_iter: run.history.len(),
        lower_bound: run.lower_bound,
        history: run.history,
    })
}

/// How a run of iterations went.
pub(crate) struct Run {
    pub converged: bool,
    pub lower_bound: f64,
    pub history: Vec<f64>,
}

/// Iterates `step` (the next state and its lower bound) from `state` until the bound
/// changes by less than `settings.tol` or `settings.max_iter` iterations have run,
/// reporting each to `progress`: the loop of EM and of variational inference.
pub(crate) fn iterate<T>(
    state: T,
    settings: &EmSettings,
    init: usize,
    progress: &mut dyn FnMut(&Iteration),
    step: impl FnMut(&T) -> Result<(T, f64)>,
) -> Result<(T, Run)> {
    iterate_from(state, f64::NEG_INFINITY, settings, init, progress, step)
}

/// [`iterate`] with the first change measured from `lower_bound` (a warm start).
fn iterate_from<T>(
    mut state: T,
    lower_bound: f64,
    settings: &EmSettings,
    init: usize,
    progress: &mut dyn FnMut(&Iteration),
    mut step: impl FnMut(&T) -> Result<(T, f64)>,
) -> Result<(T, Run)> {
    let mut run = Run {
        converged: false,
        lower_bound,
        history: Vec::new(),
    };
    for iteration in 1..=settings.max_iter {
        let (next, bound) = step(&state)?;
        state = next;
        let change = bound - run.lower_bound;
        run.lower_bound = bound;
        run.history.push(bound);
        progress(&Iteration {
            init,
            iteration,
            mean_log_likelihood: bound,
            change,
        });
        if change.abs() < settings.tol {
            run.converged = true;
            break;
        }
    }
    Ok((state, run))
}
