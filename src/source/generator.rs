//! The built-in synthetic stream (`source.kind = "generator"`), for demos, tests and
//! load tests: points from a seeded Gaussian mixture that drifts, jumps, and emits
//! outliers, with its ground truth available for every point.
//!
//! Point i depends only on the seed and i: it is drawn from stream i of a ChaCha8
//! generator keyed by the seed (ChaCha's 2⁶⁴ streams per key are independent and
//! can be entered directly), so a restart resumes at any index, exactly. The
//! mixture itself:
//!
//! - `components` means uniform in `[-spread, spread]^dim`, covariances `Q Λ Qᵀ`
//!   with a random rotation Q and eigenvalues in [0.2, 1.5], weights drawn in
//!   [0.5, 1.5] and normalised;
//! - drift: every mean moves `drift_per_10k` per 10 000 points along its own fixed
//!   random direction, reflected at the walls of the box so that it stays there;
//! - jumps: every `jump_every` points all means move by `jump_size` in one random
//!   direction drawn for that jump (also reflected); the walk of the jumps returns
//!   to its start every 64 jumps, which keeps the state at any index a function of
//!   at most 64 of them;
//! - outliers: a fraction `outlier_fraction` of the points is uniform in a box about
//!   four times as wide, at least `√dim + 6` Mahalanobis units from every component.
//!
//! So [`Generator::seek`] is O(1). The rate (`rate`) is the pipeline's business.

mod config;
mod truth;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use thiserror::Error;

use gmm_model::{GaussianMixture, ModelError};

pub use config::GeneratorConfig;
use truth::Truth;

/// Outlier candidates drawn before falling back to a point on a face of the box.
const OUTLIER_TRIES: usize = 64;

/// Bound on `components × dim²`: the covariances (and two factors of each) are
/// dense, and this keeps them within a few hundred MiB.
const MAX_COVARIANCE_VALUES: usize = 1 << 24;

#[derive(Debug, Error)]
pub enum GeneratorError {
    #[error("{key}: {reason}")]
    Invalid { key: &'static str, reason: String },
    #[error("the generator's mixture is invalid")]
    Model(#[from] ModelError),
}

/// The synthetic stream; see the module documentation.
#[derive(Clone, Debug)]
pub struct Generator {
    truth: Truth,
    /// Points in the stream; None never ends.
    limit: Option<u64>,
    /// Index of the next point.
    next: u64,
    /// The jump offset of `epoch`, kept for sequential reading.
    epoch: u64,
    offset: Vec<f64>,
}

impl Generator {
    /// The stream `config` describes, in `dim` dimensions (the caller resolves
    /// `source.dim` against `source.generator.dim`). Starts at index 0.
    pub fn new(config: &GeneratorConfig, dim: usize) -> Result<Self, GeneratorError> {
        validate(config, dim)?;
        let truth = Truth::draw(config, dim)?;
        Ok(Self {
            limit: (config.limit > 0).then_some(config.limit),
            next: 0,
            epoch: 0,
            offset: vec![0.0; dim],
            truth,
        })
    }

    pub fn dim(&self) -> usize {
        self.truth.dim
    }

    pub fn n_components(&self) -> usize {
        self.truth.n_components()
    }

    /// Index of the next point (what a snapshot records as the position).
    pub fn index(&self) -> u64 {
        self.next
    }

    /// Continues from point `index` (the jump offset follows on the next read).
    pub fn seek(&mut self, index: u64) {
        self.next = index;
    }

    /// The stream's length, when `limit` bounds it.
    pub fn limit(&self) -> Option<u64> {
        self.limit
    }

    /// True once every point up to the limit has been read.
    pub fn is_finished(&self) -> bool {
        self.limit.is_some_and(|l| self.next >= l)
    }

    /// Appends up to `n` points, row-major (`dim` values each), to `out` and returns
    /// how many: fewer than `n` only at the limit.
    pub fn next_points(&mut self, n: usize, out: &mut Vec<f64>) -> usize {
        let available = self
            .limit
            .map_or(n as u64, |l| l.saturating_sub(self.next).min(n as u64));
        let count = available as usize;
        out.reserve(count * self.dim());
        let mut point = vec![0.0; self.dim()];
        for _ in 0..count {
            self.catch_up_jumps(self.next);
            self.point_into(self.next, &self.offset, &mut point);
            out.extend_from_slice(&point);
            self.next += 1;
        }
        count
    }

    /// Brings the cached jump offset to the epoch of `index`.
    fn catch_up_jumps(&mut self, index: u64) {
        let epoch = self.truth.epoch(index);
        if epoch != self.epoch {
            self.epoch = epoch;
            self.offset = self.truth.offset_at(epoch);
        }
    }

    /// The true mixture that point `index` is drawn from (outliers aside).
    pub fn truth_at(&self, index: u64) -> Result<GaussianMixture, GeneratorError> {
        let offset = self.offset_for(index);
        self.truth.mixture(index, &offset)
    }

    /// Whether point `index` is an outlier.
    pub fn is_outlier(&self, index: u64) -> bool {
        self.draw_kind(&mut self.point_rng(index)).is_none()
    }

    /// The component point `index` is drawn from; None for an outlier.
    pub fn component_of(&self, index: u64) -> Option<usize> {
        self.draw_kind(&mut self.point_rng(index))
    }

    /// Point `index` alone (for tests and spot checks; reading uses `next_points`).
    pub fn point_at(&self, index: u64) -> Vec<f64> {
        let mut point = vec![0.0; self.dim()];
        self.point_into(index, &self.offset_for(index), &mut point);
        point
    }

    fn offset_for(&self, index: u64) -> Vec<f64> {
        let epoch = self.truth.epoch(index);
        if epoch == self.epoch {
            self.offset.clone()
        } else {
            self.truth.offset_at(epoch)
        }
    }

    fn point_rng(&self, index: u64) -> ChaCha8Rng {
        let mut rng = ChaCha8Rng::from_seed(self.truth.point_key);
        rng.set_stream(index);
        rng
    }

    /// The first draw of a point's stream: outlier (None) or which component.
    fn draw_kind(&self, rng: &mut ChaCha8Rng) -> Option<usize> {
        let u: f64 = rng.random();
        if u < self.truth.outlier_fraction {
            return None;
        }
        let v: f64 = rng.random();
        let c = &self.truth.cumulative;
        // The last running sum may round below 1; the last component takes the rest.
        Some(c.iter().position(|&s| v < s).unwrap_or(c.len() - 1))
    }

    fn point_into(&self, index: u64, offset: &[f64], out: &mut [f64]) {
        let mut rng = self.point_rng(index);
        match self.draw_kind(&mut rng) {
            Some(k) => self.inlier_into(&mut rng, k, index, offset, out),
            None => self.outlier_into(&mut rng, index, offset, out),
        }
    }

    /// `μ_k(index) + L_k z` with z standard normal.
    fn inlier_into(
        &self,
        rng: &mut ChaCha8Rng,
        k: usize,
        index: u64,
        offset: &[f64],
        out: &mut [f64],
    ) {
        self.truth.mean_into(k, index, offset, out);
        let l = &self.truth.factors[k];
        let z: Vec<f64> = (0..self.dim())
            .map(|_| -> f64 { StandardNormal.sample(rng) })
            .collect();
        // L is lower triangular: row r uses z[..=r].
        for (r, o) in out.iter_mut().enumerate() {
            *o += (0..=r).map(|c| l[(r, c)] * z[c]).sum::<f64>();
        }
    }

    /// Uniform in the outlier box, redrawn until far from every component; after
    /// [`OUTLIER_TRIES`] a face of the box, which is far by construction.
    fn outlier_into(&self, rng: &mut ChaCha8Rng, index: u64, offset: &[f64], out: &mut [f64]) {
        let h = self.truth.outlier_half_width;
        for _ in 0..OUTLIER_TRIES {
            for o in out.iter_mut() {
                *o = rng.random_range(-h..=h);
            }
            if self.far_from_every_component(out, index, offset) {
                return;
            }
        }
        out[0] = if out[0] < 0.0 { -h } else { h };
    }

    fn far_from_every_component(&self, x: &[f64], index: u64, offset: &[f64]) -> bool {
        let d = self.dim();
        let mut diff = vec![0.0; d];
        (0..self.n_components()).all(|k| {
            self.truth.mean_into(k, index, offset, &mut diff);
            for (e, xi) in diff.iter_mut().zip(x) {
                *e = xi - *e;
            }
            let inv = &self.truth.inverse_factors[k];
            let squared: f64 = (0..d)
                .map(|r| {
                    let y: f64 = (0..=r).map(|c| inv[(r, c)] * diff[c]).sum();
                    y * y
                })
                .sum();
            squared.sqrt() >= self.truth.outlier_min_distance
        })
    }
}

/// Refuses settings the generator cannot honour, naming the key.
fn validate(config: &GeneratorConfig, dim: usize) -> Result<(), GeneratorError> {
    let invalid = |key: &'static str, reason: &str| {
        Err(GeneratorError::Invalid {
            key,
            reason: reason.into(),
        })
    };
    let non_negative = |v: f64| v.is_finite() && v >= 0.0;
    if dim == 0 {
        return invalid("source.generator.dim", "must be at least 1");
    }
    if config.components == 0 {
        return invalid("source.generator.components", "must be at least 1");
    }
    let values = dim
        .checked_mul(dim)
        .and_then(|d2| d2.checked_mul(config.components));
    if values.is_none_or(|v| v > MAX_COVARIANCE_VALUES) {
        return invalid(
            "source.generator.components",
            "components × dim² must be at most 16 777 216 (dense covariances)",
        );
    }
    if !(config.spread.is_finite() && config.spread > 0.0) {
        return invalid("source.generator.spread", "must be a finite number > 0");
    }
    if !non_negative(config.drift_per_10k) {
        return invalid(
            "source.generator.drift_per_10k",
            "must be a finite number >= 0",
        );
    }
    if !non_negative(config.jump_size) {
        return invalid("source.generator.jump_size", "must be a finite number >= 0");
    }
    if !(0.0..1.0).contains(&config.outlier_fraction) {
        return invalid("source.generator.outlier_fraction", "must be in [0, 1)");
    }
    Ok(())
}

#[cfg(test)]
mod tests;
