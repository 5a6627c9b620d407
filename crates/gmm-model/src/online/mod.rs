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
//!
//! [`fresh`] starts a model from buffered points (warm-up, rebuild after a change);
//! [`reseed`] revives withered components; [`stream`] pairs the estimator with the
//! anomaly threshold of the points it absorbs.

mod fresh;
pub mod group;
mod reseed;
mod stream;
mod variational;

pub use stream::{Absorbed, StreamEstimator};
pub use variational::{Inference, OnlineVariational, StructureChanges, VariationalState};

use nalgebra::{DMatrix, DVector};
use serde::{Deserialize, Serialize};

use super::covariance::{CovarianceType, Covariances};
use super::drift::{BatchLevel, DriftSettings, DriftState};
use super::error::{finite_at_least, invalid, ModelError, Result};
use super::estep::{EvalRequest, Evaluation};
use super::far::{first_out_of_range, MAX_ABS_COORDINATE};
use super::linalg::Points;
use super::mixture::GaussianMixture;
use super::mstep::{m_step, Prior};
use super::schedule::{decay_factor, elapsed, stepwise_gamma, HalfLifeUnit, Schedule};
use super::stats::{Scatter, SufficientStats};
use super::variational::Posterior;

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
    /// Fraction of the warm-up points, the least likely, left out of the start
    /// (trimmed k-means seeds and centres) and of the first statistics, so that
    /// outliers do not capture a component from the beginning. 0 keeps them all.
    #[serde(default)]
    pub warmup_trim: f64,
    /// EM, or variational inference with up to `n_components` components. (Kept
    /// out of this struct's serialised form, whose layout older snapshots have:
    /// model files carry it in their `variational` extension.)
    #[serde(skip)]
    pub inference: Inference,
    /// Settings of variational inference (unused under EM; serialised as
    /// `inference`).
    #[serde(skip)]
    pub variational: OnlineVariational,
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
            warmup_trim: 0.0,
            inference: Inference::Em,
            variational: OnlineVariational::default(),
        }
    }

    /// The `warmup_trim` that goes with anomaly trimming: the warm-up also leaves
    /// out its least likely points, at least 1 % or the anomaly quantile when that
    /// is larger; nothing without trimming.
    pub fn warmup_trim_for(trim_anomalies: bool, anomaly_quantile: f64) -> f64 {
        if trim_anomalies {
            anomaly_quantile.max(0.01)
        } else {
            0.0
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
        if !(0.0..0.5).contains(&self.warmup_trim) {
            return Err(invalid("warmup_trim", "must be in [0, 0.5)"));
        }
        if !(0.0..0.5).contains(&self.min_weight) {
            return Err(invalid("min_weight", "must be in [0, 0.5)"));
        }
        self.schedule.check()?;
        self.variational.check()?;
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
    /// Row-major points collected since a detected change, for a fresh fit.
    pub rebuild: Option<Vec<f64>>,
    /// Times a fresh fit replaced the model after a change.
    pub rebuilds: u64,
    /// Variational inference only: the priors and which slots live. (Serialised
    /// in the model file's `variational` extension, as the settings are.)
    #[serde(skip)]
    pub variational: Option<VariationalState>,
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
            rebuild: None,
            rebuilds: 0,
            variational: None,
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
    /// A fresh fit on the points since a detected change replaced the model.
    pub rebuilt: bool,
    /// Variational inference: components born, retired and merged in this batch.
    pub structure: StructureChanges,
}

impl BatchOutcome {
    /// An update of the model from points that `model_version` scored.
    fn update(model_version: u64, evaluation: Evaluation, change_detected: bool) -> Self {
        Self {
            scored: Some(Scored {
                model_version,
                evaluation,
            }),
            updated: true,
            change_detected,
            ..Self::default()
        }
    }
}

pub struct OnlineEm {
    settings: OnlineSettings,
    state: OnlineState,
    model: Option<GaussianMixture>,
    /// Variational inference: the posterior that `model` is the plug-in mixture of
    /// (derived from the statistics, never saved).
    posterior: Option<Posterior>,
    /// Points scored below this are left out of the statistics (see
    /// [`OnlineEm::set_trim_threshold`]).
    trim: Option<f64>,
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
            posterior: None,
            trim: None,
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
        if settings.inference == Inference::Variational {
            return Err(invalid(
                "inference",
                "variational inference starts from its warm-up, not from a given model",
            ));
        }
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
            posterior: None,
            trim: None,
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
        // A snapshot is input: every part must hold together before it is used.
        if let Some(stats) = &state.stats {
            stats.check()?;
        }
        let d = state.n_features.unwrap_or(0);
        if let (Some(prior), Some(d)) = (&state.prior, state.n_features) {
            prior.check(d)?;
        }
        let whole = |buffer: &[f64]| d > 0 && buffer.len() % d == 0 || buffer.is_empty();
        if !whole(&state.warmup) || !state.rebuild.as_deref().is_none_or(whole) {
            return Err(ModelError::IncompatibleStats(
                "the saved point buffers are not whole points".into(),
            ));
        }
        let (model, posterior) = variational::restored(&settings, &state, model)?;
        Ok(Self {
            settings,
            state,
            model,
            posterior,
            trim: None,
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

    /// From the next batch on, points whose log-density under the model is below
    /// `threshold` (the anomaly threshold) are scored and counted but left out of
    /// the statistics, so outliers cannot pull a component to themselves or inflate
    /// covariances. Trimming pauses while recovering from a detected change: then
    /// every point of the new regime looks anomalous. None absorbs every point.
    pub fn set_trim_threshold(&mut self, threshold: Option<f64>) {
        self.trim = threshold;
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
        match self.settings.inference {
            Inference::Em => self.update(x, elapsed_seconds),
            Inference::Variational => self.update_variational(x, elapsed_seconds),
        }
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
        if !x.iter().all(|v| v.is_finite()) {
            return Err(ModelError::NonFinite {
                what: "the batch".into(),
            });
        }
        match first_out_of_range(x.iter().copied()) {
            Some((_, value)) => Err(ModelError::OutOfRange {
                what: "the batch".into(),
                value,
                max: MAX_ABS_COORDINATE,
            }),
            None => Ok(()),
        }
    }

    /// One update. Points the model cannot score finitely are left out of it
    /// altogether (the others are absorbed) and show as non-finite in the scores.
    fn update(&mut self, x: Points<'_>, elapsed_seconds: f64) -> Result<BatchOutcome> {
        let model = self.model.as_ref().ok_or(ModelError::Empty)?;
        let trim = self.trim_below(model);
        let request = EvalRequest {
            trim_below: Some(trim),
            ..EvalRequest::ALL
        };
        let evaluation = model.evaluate(x, request)?;
        let unscorable = evaluation.unscorable();
        if unscorable.is_empty() {
            return self.update_scorable(x, elapsed_seconds, evaluation, trim);
        }
        // Rare: score the batch again without them; a point's score does not
        // depend on the others, so the scores of the rest are the same.
        let scored_version = self.state.model_version;
        let keep: Vec<usize> = (0..x.ncols())
            .filter(|j| unscorable.binary_search(j).is_err())
            .collect();
        let kept = x.select_columns(&keep);
        let mut outcome = if keep.is_empty() {
            BatchOutcome::default()
        } else {
            let again = model.evaluate(kept.as_view(), request)?;
            self.update_scorable(kept.as_view(), elapsed_seconds, again, trim)?
        };
        let mut all = evaluation;
        all.stats = None;
        outcome.scored = Some(Scored {
            model_version: scored_version,
            evaluation: all,
        });
        Ok(outcome)
    }

    /// The log-density below which points are scored but not absorbed: the anomaly
    /// threshold when trimming (paused while recovering from a change: then every
    /// point of the new regime looks anomalous), and always the points too far
    /// from every component to learn from (see `far`).
    fn trim_below(&self, model: &GaussianMixture) -> f64 {
        let recovering = self.state.drift.is_recovering() || self.state.rebuild.is_some();
        let floor = model.far_floor();
        match self.trim.filter(|_| !recovering) {
            Some(t) => t.max(floor),
            None => floor,
        }
    }

    fn update_scorable(
        &mut self,
        x: Points<'_>,
        elapsed_seconds: f64,
        mut evaluation: Evaluation,
        trim: f64,
    ) -> Result<BatchOutcome> {
        let model = self.model.as_ref().ok_or(ModelError::Empty)?;
        let trim = Some(trim);
        let mut batch = evaluation.stats.take().ok_or(ModelError::Empty)?;
        let mut drift = self.state.drift.clone();
        let level = BatchLevel::of(&evaluation.log_density);
        let change = drift.observe(&self.settings.drift, level);
        let n = x.ncols();
        let absorbed = batch.total_weight();
        let forgotten = self.forget(n, absorbed, elapsed_seconds, change, &mut drift)?;
        let mut stats = forgotten.stats;
        batch.scale(forgotten.batch_scale);
        let prior = self.state.prior.as_ref();
        let withered = self.withered(&stats, &batch);
        let mut previous = model;
        let reseeded_model;
        if !withered.is_empty() {
            // Re-seed before absorbing, and let the re-seeded components claim their
            // points of this very batch: absorbed first, those points would stretch a
            // neighbour that is then hard to shrink back.
            self.reseed(
                &mut stats,
                &withered,
                model,
                x,
                &evaluation.log_density,
                trim,
            )?;
            reseeded_model = self.m_step(
                &stats,
                prior,
                model,
                self.count(&stats, forgotten.stepwise_count),
            )?;
            let again = reseeded_model.evaluate(
                x,
                EvalRequest {
                    trim_below: trim,
                    ..EvalRequest::STATS
                },
            )?;
            batch = again.stats.ok_or(ModelError::Empty)?;
            batch.scale(forgotten.batch_scale);
            previous = &reseeded_model;
        }
        stats.merge(&batch)?;
        let next = self.m_step(
            &stats,
            prior,
            previous,
            self.count(&stats, forgotten.stepwise_count),
        )?;
        let step = forgotten.step;
        let reseeded = withered;
        // Commit only now: a failed step leaves the estimator as it was.
        let scored_version = self.commit_batch(stats, drift, step, n);
        self.state.reseeds += reseeded.len() as u64;
        self.model = Some(next);
        let rebuilt = self.collect_for_rebuild(x, change)?;
        Ok(BatchOutcome {
            reseeded,
            rebuilt,
            ..BatchOutcome::update(scored_version, evaluation, change)
        })
    }

    /// Records a batch of `n` points absorbed into `stats`, with the drift state and
    /// step it left; returns the version of the model that scored it.
    fn commit_batch(
        &mut self,
        stats: SufficientStats,
        drift: DriftState,
        step: f64,
        n: usize,
    ) -> u64 {
        let scored_version = self.state.model_version;
        self.state.stats = Some(stats);
        self.state.drift = drift;
        self.state.step = step;
        self.state.batches += 1;
        self.state.points_seen += n as u64;
        self.state.model_version += 1;
        scored_version
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

    /// Applies the schedule's forgetting to the statistics before a batch of `n`
    /// points: the forgotten statistics, the factor the batch's statistics take,
    /// and under stepwise the points the result stands for and the next step.
    /// `n` points arrived, `absorbed` of them (their total weight) were not trimmed.
    fn forget(
        &self,
        n: usize,
        absorbed: f64,
        elapsed_seconds: f64,
        change: bool,
        drift: &mut DriftState,
    ) -> Result<Forgotten> {
        let mut stats = self.state.stats.clone().ok_or(ModelError::Empty)?;
        let mut step = self.state.step;
        let (batch_scale, stepwise_count) = match self.settings.schedule {
            Schedule::Decay { half_life, unit } => {
                let speedup = drift.speedup(&self.settings.drift);
                stats.scale(decay_factor(half_life, unit, n, elapsed_seconds, speedup));
                if let Some(h) = half_life {
                    drift.advance(elapsed(unit, n, elapsed_seconds) / h);
                }
                (1.0, f64::NAN)
            }
            Schedule::Stepwise { alpha, .. } => {
                if change {
                    // Restart the steps: the next batches weigh as if the stream began.
                    step = step.min(2.0);
                }
                if absorbed <= 0.0 {
                    // Every point was trimmed: nothing to average, no step taken.
                    return Ok(Forgotten {
                        stats,
                        batch_scale: 0.0,
                        stepwise_count: f64::NAN,
                        step,
                    });
                }
                let gamma = stepwise_gamma(alpha, step);
                stats.scale(1.0 - gamma);
                step += 1.0;
                (gamma / absorbed, absorbed / gamma)
            }
        };
        Ok(Forgotten {
            stats,
            batch_scale,
            stepwise_count,
            step,
        })
    }

    /// How many points `stats` stand for, which sets a prior's relative strength:
    /// their weight under decay; `n / γ` under stepwise, whose statistics are
    /// per-point averages.
    fn count(&self, stats: &SufficientStats, stepwise_count: f64) -> f64 {
        match self.settings.schedule {
            Schedule::Decay { .. } => stats.total_weight(),
            Schedule::Stepwise { .. } => stepwise_count,
        }
    }
}

struct Forgotten {
    stats: SufficientStats,
    batch_scale: f64,
    /// `n / γ` (stepwise only).
    stepwise_count: f64,
    step: f64,
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
