//! Batch variational inference with scikit-learn's semantics
//! (`BayesianGaussianMixture.fit`).
//!
//! The start gives responsibilities (k-means labels and the other initialisations of
//! EM, or an E-step under a given model), and the posterior is updated from their
//! statistics. Each iteration is then the variational E-step under the posterior (the
//! EM kernel with the constants of `expectations`), the update from its statistics,
//! and the lower bound; the loop stops when the bound changes by less than `tol`
//! (a total over the points, as scikit-learn's), or after `max_iter` iterations. Of
//! `n_init` runs the one with the highest final bound is kept.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::posterior::Posterior;
use super::prior::{PriorChoices, VariationalPrior, WeightPriorType};
use crate::em::{iterate, EmSettings, Iteration, Start};
use crate::error::{ModelError, Result};
use crate::estep::EvalRequest;
use crate::init::initial_stats;
use crate::linalg::Points;
use crate::stats::SufficientStats;

#[derive(Clone, Debug)]
pub struct VariationalSettings {
    /// K, the start and the loop's settings, as for EM (`prior` and `init_trim`
    /// unused). `Start::Model(M)` starts from the responsibilities of an E-step
    /// under M.
    pub em: EmSettings,
    pub weight_prior: WeightPriorType,
    pub priors: PriorChoices,
}

impl VariationalSettings {
    /// scikit-learn's defaults for K components.
    pub fn new(n_components: usize, weight_prior: WeightPriorType) -> Self {
        Self {
            em: EmSettings::new(n_components),
            weight_prior,
            priors: PriorChoices::default(),
        }
    }
}

#[derive(Clone, Debug)]
pub struct VariationalReport {
    pub posterior: Posterior,
    pub prior: VariationalPrior,
    pub converged: bool,
    pub n_iter: usize,
    /// The best run's final lower bound (a total over the points).
    pub lower_bound: f64,
    /// The best run's lower bound at every iteration.
    pub history: Vec<f64>,
}

/// One iteration: the variational E-step under `posterior` and the update from its
/// statistics; returns the new posterior and its lower bound.
pub fn variational_step(
    posterior: &Posterior,
    x: Points<'_>,
    prior: &VariationalPrior,
    reg_covar: f64,
) -> Result<(Posterior, f64)> {
    let request = EvalRequest {
        resp_log_resp: true,
        ..EvalRequest::STATS
    };
    let eval = posterior.estep_kernel().evaluate(x, request)?;
    let stats = eval.stats.as_ref().ok_or(ModelError::Empty)?;
    let next = Posterior::update(stats, prior, reg_covar)?;
    let bound = next.lower_bound(eval.resp_log_resp);
    Ok((next, bound))
}

/// Fits the variational posterior of a K-component mixture to `x`; `progress` sees
/// every iteration (its `mean_log_likelihood` is the lower bound).
pub fn fit_variational(
    x: Points<'_>,
    settings: &VariationalSettings,
    progress: &mut dyn FnMut(&Iteration),
) -> Result<VariationalReport> {
    let em = &settings.em;
    em.check(x)?;
    let prior = VariationalPrior::resolve(
        x,
        em.n_components,
        em.covariance_type,
        settings.weight_prior,
        &settings.priors,
    )?;
    let mut rng = ChaCha8Rng::seed_from_u64(em.seed);
    let mut best: Option<VariationalReport> = None;
    for init in 0..em.n_init {
        let stats = start_stats(x, em, &mut rng)?;
        let start = Posterior::update(&stats, &prior, em.reg_covar)?;
        let run = run(start, x, &prior, em, init, progress)?;
        if best
            .as_ref()
            .is_none_or(|b| run.lower_bound > b.lower_bound)
        {
            best = Some(run);
        }
    }
    best.ok_or(ModelError::Empty)
}

/// The statistics of the initial responsibilities.
fn start_stats(x: Points<'_>, em: &EmSettings, rng: &mut ChaCha8Rng) -> Result<SufficientStats> {
    match &em.start {
        Start::Model(m) => m
            .evaluate(x, EvalRequest::STATS)?
            .stats
            .ok_or(ModelError::Empty),
        Start::Init(method) => {
            initial_stats(x, em.n_components, em.covariance_type, *method, rng, 0.0)
        }
    }
}

fn run(
    posterior: Posterior,
    x: Points<'_>,
    prior: &VariationalPrior,
    em: &EmSettings,
    init: usize,
    progress: &mut dyn FnMut(&Iteration),
) -> Result<VariationalReport> {
    let step = |p: &Posterior| variational_step(p, x, prior, em.reg_covar);
    let (posterior, run) = iterate(posterior, em, init, progress, step)?;
    Ok(VariationalReport {
        posterior,
        prior: prior.clone(),
        converged: run.converged,
        n_iter: run.history.len(),
        lower_bound: run.lower_bound,
        history: run.history,
    })
}
