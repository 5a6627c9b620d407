//! Online EM over mini-batches.
//!
//! The model keeps decayed sufficient statistics `s`. For each batch: an E-step under
//! the current model (which also scores the batch's points), the batch's statistics ŝ,
//! `s ← forget(s) ⊕ ŝ` by the [schedule](super::schedule), and an M-step from `s`.
//! With no forgetting and one batch holding all the data this is exactly one batch EM
//! iteration.
//!
//! Before the first update, points are buffered (warm-up); k-means++ seeds, Lloyd and
//! a few batch EM iterations on the buffer start the model. A component whose weight
//! withers is re-seeded at the batch's worst-explained point. Everything is
//! deterministic given the points and the batch boundaries, so a restored state
//! continues exactly where it stopped.

use nalgebra::{DMatrix, DVector};
use serde::{Deserialize, Serialize};

use super::covariance::{CovarianceType, Covariances};
use super::drift::{DriftSettings, DriftState};
use super::em::{fit, EmSettings, Start};
use super::error::{finite_at_least, invalid, ModelError, Result};
use super::estep::{EvalRequest, Evaluation};
use super::init::InitMethod;
use super::linalg::{points_from_rows, Points};
use super::mixture::GaussianMixture;
use super::mstep::{m_step, Prior};
use super::schedule::{decay_factor, elapsed, HalfLifeUnit, Schedule};
use super::stats::{Scatter, SufficientStats};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OnlineSettings {
    pub n_components: usize,
    pub covariance_type: CovarianceType,
    pub reg_covar: f64,
    pub schedule: Schedule,
    /// Points buffered before the model starts.
    pub warmup_points: usize,
    /// Batch EM iterations on the warm-up buffer.
    pub warmup_iterations: usize,
    pub seed: u64,
    /// A component whose share of the total weight falls below this is re-seeded.
    pub min_weight: f64,
    /// MAP estimation under a conjugate prior fitted to the warm-up points.
    pub map_prior: bool,
    pub drift: DriftSettings,
}

impl OnlineSettings {
    /// Defaults: decay with a half-life of 10 000 points, 2 000 warm-up points.
    pub fn new(n_components: usize) -> Self {
        Self {
            n_components,
            covariance_type: CovarianceType::Full,
            reg_covar: 1e-6,
            schedule: Schedule::Decay {
                half_life: Some(10_000.0),
                unit: HalfLifeUnit::Points,
            },
            warmup_points: 2_000,
            warmup_iterations: 20,
            seed: 0,
            min_weight: 1e-3,
            map_prior: false,
            drift: DriftSettings::default(),
        }
    }

    pub fn check(&self) -> Result<()> {
        if self.n_components == 0 {
            return Err(invalid("components", "must be at least 1"));
        }
        if !finite_at_least(self.reg_covar, 0.0) {
            return Err(invalid("reg_covar", "must be a finite number >= 0"));
        }
        if self.warmup_points < self.n_components {
            return Err(invalid(
                "warmup_points",
                format!(
                    "must be at least the number of components ({})",
                    self.n_components
                ),
            ));
        }
        if !(0.0..0.5).contains(&self.min_weight) {
            return Err(invalid("min_weight", "must be in [0, 0.5)"));
        }
        self.schedule.check()?;
        self.drift.check()
    }
}

/// Everything besides the parameters that an estimator needs to continue exactly.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OnlineState {
    pub n_features: Option<usize>,
    /// Row-major points waiting for the model to start.
    pub warmup: Vec<f64>,
    pub stats: Option<SufficientStats>,
    pub prior: Option<Prior>,
    pub drift: DriftState,
    /// Stepwise: `t + t0` for the next batch.
    pub step: f64,
    pub batches: u64,
    pub points_seen: u64,
    pub model_version: u64,
    pub reseeds: u64,
}

impl OnlineState {
    fn new(settings: &OnlineSettings) -> Self {
        let step = match settings.schedule {
            Schedule::Stepwise { t0, .. } => 1.0 + t0,
            Schedule::Decay { .. } => 1.0,
        };
        Self {
            n_features: None,
            warmup: Vec::new(),
            stats: None,
            prior: None,
            drift: DriftState::default(),
            step,
            batches: 0,
            points_seen: 0,
            model_version: 0,
            reseeds: 0,
        }
    }
}

/// Points scored by the model before they updated it.
#[derive(Clone, Debug)]
pub struct Scored {
    /// The version of the model that scored them.
    pub model_version: u64,
    /// Per point: log-density and responsibilities.
    pub evaluation: Evaluation,
}

/// What one call to [`OnlineEm::partial_fit`] did.
#[derive(Clone, Debug, Default)]
pub struct BatchOutcome {
    /// Scores of the points absorbed by this call, in order. When the warm-up
    /// completes this covers every buffered point; while it lasts, nothing.
    pub scored: Option<Scored>,
    /// An M-step happened.
    pub updated: bool,
    /// The batch started a recovery from an abrupt change.
    pub change_detected: bool,
    /// Components re-seeded after this batch.
    pub reseeded: Vec<usize>,
}

pub struct OnlineEm {
    settings: OnlineSettings,
    state: OnlineState,
    model: Option<GaussianMixture>,
}

impl OnlineEm {
    /// A new estimator that warms up on the first points.
    pub fn new(settings: OnlineSettings) -> Result<Self> {
        settings.check()?;
        let state = OnlineState::new(&settings);
        Ok(Self {
            settings,
            state,
            model: None,
        })
    }

    /// An estimator that starts streaming from `model` at once. Its statistics stand
    /// for `pseudo_count` points drawn from the model (0: none, so the first batch
    /// alone makes the next model).
    pub fn from_model(
        settings: OnlineSettings,
        model: GaussianMixture,
        pseudo_count: f64,
    ) -> Result<Self> {
        settings.check()?;
        if model.n_components() != settings.n_components
            || model.covariance_type() != settings.covariance_type
        {
            return Err(invalid(
                "model",
                format!(
                    "the model has {} {} components, the settings ask for {} {}",
                    model.n_components(),
                    model.covariance_type(),
                    settings.n_components,
                    settings.covariance_type
                ),
            ));
        }
        let mut state = OnlineState::new(&settings);
        state.n_features = Some(model.n_features());
        state.stats = Some(stats_of_model(&model, pseudo_count, settings.reg_covar)?);
        Ok(Self {
            settings,
            state,
            model: Some(model),
        })
    }

    /// Restores an estimator saved as `(settings, state, model)`.
    pub fn restore(
        settings: OnlineSettings,
        state: OnlineState,
        model: Option<GaussianMixture>,
    ) -> Result<Self> {
        settings.check()?;
        let consistent = match (&model, &state.stats) {
            (Some(m), Some(s)) => {
                s.n_components() == m.n_components()
                    && s.n_features() == m.n_features()
                    && s.covariance_type() == m.covariance_type()
                    && m.n_components() == settings.n_components
                    && state.n_features == Some(m.n_features())
            }
            (None, None) => state
                .n_features
                .is_none_or(|d| d > 0 && state.warmup.len() % d == 0),
            _ => false,
        };
        if !consistent {
            return Err(ModelError::IncompatibleStats(
                "the saved estimator state does not match its model or settings".into(),
            ));
        }
        Ok(Self {
            settings,
            state,
            model,
        })
    }

    pub fn settings(&self) -> &OnlineSettings {
        &self.settings
    }

    pub fn state(&self) -> &OnlineState {
        &self.state
    }

    /// The current model, once the warm-up is over.
    pub fn model(&self) -> Option<&GaussianMixture> {
        self.model.as_ref()
    }

    pub fn points_seen(&self) -> u64 {
        self.state.points_seen
    }

    pub fn model_version(&self) -> u64 {
        self.state.model_version
    }

    /// Points waiting in the warm-up buffer.
    pub fn warmup_len(&self) -> usize {
        self.state
            .n_features
            .map_or(0, |d| self.state.warmup.len() / d)
    }

    /// Absorbs a batch (d×n points) that arrived `elapsed_seconds` after the previous
    /// one (used only by a half-life in seconds).
    pub fn partial_fit(&mut self, x: Points<'_>, elapsed_seconds: f64) -> Result<BatchOutcome> {
        self.check_batch(x)?;
        if x.ncols() == 0 {
            return Ok(BatchOutcome::default());
        }
        if self.model.is_none() {
            self.state.warmup.extend(x.iter());
            if self.warmup_len() < self.settings.warmup_points {
                return Ok(BatchOutcome::default());
            }
            return self.start_from_warmup();
        }
        self.update(x, elapsed_seconds)
    }

    /// Starts the model from whatever the warm-up buffer holds (at the end of a
    /// finite stream). Nothing to do if the model already runs or nothing is buffered.
    pub fn finish_warmup(&mut self) -> Result<BatchOutcome> {
        if self.model.is_some() || self.warmup_len() == 0 {
            return Ok(BatchOutcome::default());
        }
        self.start_from_warmup()
    }

    fn check_batch(&mut self, x: Points<'_>) -> Result<()> {
        match self.state.n_features {
            Some(d) if d != x.nrows() => {
                return Err(ModelError::DimensionMismatch {
                    expected: d,
                    got: x.nrows(),
                })
            }
            None if x.nrows() == 0 => {
                return Err(ModelError::InvalidShape(
                    "points with no coordinates".into(),
                ))
            }
            None => self.state.n_features = Some(x.nrows()),
            _ => {}
        }
        if x.iter().all(|v| v.is_finite()) {
            Ok(())
        } else {
            Err(ModelError::NonFinite {
                what: "the batch".into(),
            })
        }
    }

    fn start_from_warmup(&mut self) -> Result<BatchOutcome> {
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
        let s = &self.settings;
        let x = points_from_rows(buffer, d)?;
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
            n_init: 1,
            start: Start::Init(InitMethod::KMeans),
            seed: s.seed,
            prior: prior.clone(),
        };
        let report = fit(x, &em, &mut |_| {})?;
        let mut evaluation = report.model.evaluate(x, EvalRequest::ALL)?;
        let mut stats = evaluation.stats.take().ok_or(ModelError::Empty)?;
        if matches!(s.schedule, Schedule::Stepwise { .. }) {
            // Stepwise statistics are per-point averages.
            stats.scale(1.0 / x.ncols() as f64);
        }
        let n = x.ncols() as u64;
        let model = self.m_step(&stats, prior.as_ref(), &report.model, n as f64)?;
        let scored_version = report.n_iter as u64;
        self.state.prior = prior;
        self.state.stats = Some(stats);
        self.state.points_seen = n;
        self.state.model_version = scored_version + 1;
        self.state.batches = 1;
        self.model = Some(model);
        Ok(BatchOutcome {
            scored: Some(Scored {
                model_version: scored_version,
                evaluation,
            }),
            updated: true,
            ..BatchOutcome::default()
        })
    }

    fn update(&mut self, x: Points<'_>, elapsed_seconds: f64) -> Result<BatchOutcome> {
        let model = self.model.as_ref().ok_or(ModelError::Empty)?;
        let mut evaluation = model.evaluate(x, EvalRequest::ALL)?;
        let mut batch = evaluation.stats.take().ok_or(ModelError::Empty)?;
        let mut stats = self.state.stats.clone().ok_or(ModelError::Empty)?;
        let mut drift = self.state.drift.clone();
        let (mean_ll, std_error) = mean_and_std_error(&evaluation.log_density);
        let change = drift.observe(&self.settings.drift, mean_ll, std_error);
        let n = x.ncols();
        let mut step = self.state.step;
        // `count`: how many points the statistics stand for, which sets a prior's
        // relative strength (stepwise statistics are per-point averages).
        let count = match self.settings.schedule {
            Schedule::Decay { half_life, unit } => {
                let speedup = drift.speedup(&self.settings.drift);
                stats.scale(decay_factor(half_life, unit, n, elapsed_seconds, speedup));
                if let Some(h) = half_life {
                    drift.advance(elapsed(unit, n, elapsed_seconds) / h);
                }
                stats.merge(&batch)?;
                stats.total_weight()
            }
            Schedule::Stepwise { alpha, .. } => {
                if change {
                    // Restart the steps: the next batches weigh as if the stream began.
                    step = step.min(2.0);
                }
                let gamma = step.powf(-alpha).min(1.0);
                stats.scale(1.0 - gamma);
                batch.scale(gamma / n as f64);
                stats.merge(&batch)?;
                step += 1.0;
                n as f64 / gamma
            }
        };
        let prior = self.state.prior.as_ref();
        let mut next = self.m_step(&stats, prior, model, count)?;
        let reseeded = self.reseed_withered(&mut stats, &next, x, &evaluation.log_density)?;
        if !reseeded.is_empty() {
            next = self.m_step(&stats, prior, &next, count)?;
        }
        // Commit only now: a failed step leaves the estimator as it was.
        let scored_version = self.state.model_version;
        self.state.stats = Some(stats);
        self.state.drift = drift;
        self.state.step = step;
        self.state.batches += 1;
        self.state.points_seen += n as u64;
        self.state.model_version += 1;
        self.state.reseeds += reseeded.len() as u64;
        self.model = Some(next);
        Ok(BatchOutcome {
            scored: Some(Scored {
                model_version: scored_version,
                evaluation,
            }),
            updated: true,
            change_detected: change,
            reseeded,
        })
    }

    fn m_step(
        &self,
        stats: &SufficientStats,
        prior: Option<&Prior>,
        previous: &GaussianMixture,
        count: f64,
    ) -> Result<GaussianMixture> {
        match prior {
            Some(p) if (stats.total_weight() - count).abs() > f64::EPSILON * count => {
                let mut scaled = stats.clone();
                scaled.scale(count / stats.total_weight());
                m_step(&scaled, self.settings.reg_covar, Some(p), Some(previous))
            }
            _ => m_step(stats, self.settings.reg_covar, prior, Some(previous)),
        }
    }

    /// Re-seeds every component whose share of the weight fell below `min_weight` at
    /// the batch's worst-explained points (lowest log-density first), with the
    /// mixture's average covariance and a small weight. Deterministic.
    fn reseed_withered(
        &self,
        stats: &mut SufficientStats,
        model: &GaussianMixture,
        x: Points<'_>,
        log_density: &[f64],
    ) -> Result<Vec<usize>> {
        let total = stats.total_weight();
        let withered: Vec<usize> = (0..stats.n_components())
            .filter(|&k| stats.weights()[k] < self.settings.min_weight * total)
            .collect();
        if withered.is_empty() || self.settings.min_weight == 0.0 {
            return Ok(Vec::new());
        }
        let mut worst: Vec<usize> = (0..log_density.len()).collect();
        worst.sort_by(|&a, &b| log_density[a].total_cmp(&log_density[b]));
        let weight = 4.0 * self.settings.min_weight * total;
        let cov = average_covariance(model);
        let mut reseeded = Vec::with_capacity(withered.len());
        for (k, j) in withered.into_iter().zip(worst) {
            reset_component(stats, k, weight, &x.column(j).into_owned(), &cov)?;
            reseeded.push(k);
        }
        Ok(reseeded)
    }
}

/// Mean of the values and the standard error of that mean.
fn mean_and_std_error(values: &[f64]) -> (f64, f64) {
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let var = values.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / (n - 1.0).max(1.0);
    (mean, (var / n).sqrt())
}

/// `Σ_k π_k Σ_k`: the typical shape of a component.
fn average_covariance(model: &GaussianMixture) -> DMatrix<f64> {
    let d = model.n_features();
    let mut avg = DMatrix::zeros(d, d);
    for k in 0..model.n_components() {
        avg += model.covariances().component_matrix(k, d) * model.weights()[k];
    }
    avg
}

/// Replaces component k's statistics by `weight` points with the given mean and
/// covariance. (Tied statistics pool the scatter, which the shared covariance
/// already describes; only the weight and mean change.)
fn reset_component(
    stats: &mut SufficientStats,
    k: usize,
    weight: f64,
    mean: &DVector<f64>,
    cov: &DMatrix<f64>,
) -> Result<()> {
    let mut weights = stats.weights().clone();
    let mut means = stats.means().clone();
    weights[k] = weight;
    means.set_column(k, mean);
    let mut scatter = stats.scatter().clone();
    match &mut scatter {
        Scatter::Full(m) => m[k] = cov * weight,
        Scatter::Diag(m) => m.set_column(k, &(cov.diagonal() * weight)),
        Scatter::Spherical(v) => v[k] = cov.trace() * weight,
        Scatter::Tied(_) => {}
    }
    *stats = SufficientStats::from_parts(weights, means, scatter)?;
    Ok(())
}

/// Statistics that `count` points drawn from `model` would have (before the
/// `reg_covar` the M-step adds back).
fn stats_of_model(model: &GaussianMixture, count: f64, reg_covar: f64) -> Result<SufficientStats> {
    let (k_count, d) = (model.n_components(), model.n_features());
    let weights = model.weights() * count;
    let unreg = |m: DMatrix<f64>| m - DMatrix::identity(d, d) * reg_covar;
    let scatter = match model.covariances() {
        Covariances::Full(m) => Scatter::Full(
            (0..k_count)
                .map(|k| unreg(m[k].clone()) * weights[k])
                .collect(),
        ),
        Covariances::Diag(v) => Scatter::Diag(DMatrix::from_fn(d, k_count, |i, k| {
            (v[(i, k)] - reg_covar) * weights[k]
        })),
        Covariances::Spherical(v) => Scatter::Spherical(DVector::from_fn(k_count, |k, _| {
            (v[k] - reg_covar) * d as f64 * weights[k]
        })),
        Covariances::Tied(m) => Scatter::Tied(unreg(m.clone()) * count),
    };
    SufficientStats::from_parts(weights, model.means().clone(), scatter)
}
