//! The generator's true mixture: drawn once from the seed, then moved by drift and
//! jumps as a pure function of the point index.

use nalgebra::{DMatrix, DVector};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

use super::GeneratorConfig;
use gmm_model::{Covariances, GaussianMixture};

use super::GeneratorError;

/// Range of the covariances' eigenvalues: moderate, and never degenerate.
const MIN_EIGENVALUE: f64 = 0.2;
const MAX_EIGENVALUE: f64 = 1.5;

/// Range of the unnormalised weights: no component is negligible.
const MIN_WEIGHT: f64 = 0.5;
const MAX_WEIGHT: f64 = 1.5;

/// Jumps per closed block of the jump walk (see [`Truth::offset_at`]); even.
const JUMPS_PER_BLOCK: u64 = 64;

/// An outlier lies at least `√d + OUTLIER_MARGIN` Mahalanobis units from every
/// component; inliers lie near `√d`, within about one unit.
const OUTLIER_MARGIN: f64 = 6.0;

/// The parameters drawn from the seed, and the keys of the per-point and per-jump
/// random streams.
#[derive(Clone, Debug)]
pub(super) struct Truth {
    pub dim: usize,
    spread: f64,
    drift_per_point: f64,
    jump_every: u64,
    jump_size: f64,
    pub outlier_fraction: f64,
    weights: Vec<f64>,
    /// Running sums of the weights, for picking a component with one uniform draw.
    pub cumulative: Vec<f64>,
    /// K×d, row-major: the means at index 0, before drift and jumps.
    base_means: Vec<f64>,
    /// K×d, row-major: each component's unit drift direction.
    directions: Vec<f64>,
    pub covariances: Vec<DMatrix<f64>>,
    /// Lower Cholesky factors of the covariances (for sampling).
    pub factors: Vec<DMatrix<f64>>,
    /// Their inverses (for Mahalanobis distances).
    pub inverse_factors: Vec<DMatrix<f64>>,
    /// Outliers are drawn uniformly from `[-h, h]^d`.
    pub outlier_half_width: f64,
    pub outlier_min_distance: f64,
    pub point_key: [u8; 32],
    jump_key: [u8; 32],
}

impl Truth {
    pub fn draw(config: &GeneratorConfig, dim: usize) -> Result<Self, GeneratorError> {
        let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
        // Keys first, so that they do not depend on the dimension or the count.
        let point_key: [u8; 32] = rng.random();
        let jump_key: [u8; 32] = rng.random();
        let k = config.components;
        let spread = config.spread;
        let raw: Vec<f64> = (0..k)
            .map(|_| rng.random_range(MIN_WEIGHT..MAX_WEIGHT))
            .collect();
        let total: f64 = raw.iter().sum();
        let weights: Vec<f64> = raw.iter().map(|w| w / total).collect();
        let cumulative = weights
            .iter()
            .scan(0.0, |acc, w| {
                *acc += w;
                Some(*acc)
            })
            .collect();
        let base_means = (0..k * dim)
            .map(|_| rng.random_range(-spread..=spread))
            .collect();
        let directions = (0..k).flat_map(|_| unit_vector(&mut rng, dim)).collect();
        let mut covariances = Vec::with_capacity(k);
        let (mut factors, mut inverse_factors) = (Vec::new(), Vec::new());
        for _ in 0..k {
            let cov = random_covariance(&mut rng, dim);
            let l = cov
                .clone()
                .cholesky()
                .ok_or_else(|| GeneratorError::Invalid {
                    key: "source.generator.dim",
                    reason: format!("no valid covariance could be drawn in {dim} dimensions"),
                })?
                .l();
            let inverse = l
                .solve_lower_triangular(&DMatrix::identity(dim, dim))
                .unwrap_or_else(|| DMatrix::identity(dim, dim));
            covariances.push(cov);
            factors.push(l);
            inverse_factors.push(inverse);
        }
        let outlier_min_distance = (dim as f64).sqrt() + OUTLIER_MARGIN;
        Ok(Self {
            dim,
            spread,
            drift_per_point: config.drift_per_10k / 10_000.0,
            jump_every: config.jump_every,
            jump_size: config.jump_size,
            outlier_fraction: config.outlier_fraction,
            weights,
            cumulative,
            base_means,
            directions,
            covariances,
            factors,
            inverse_factors,
            // Far enough that a point on a face of the box is an outlier whatever the
            // means (which stay within [-spread, spread]).
            outlier_half_width: 4.0 * spread + 2.0 * outlier_min_distance * MAX_EIGENVALUE.sqrt(),
            outlier_min_distance,
            point_key,
            jump_key,
        })
    }

    pub fn n_components(&self) -> usize {
        self.weights.len()
    }

    /// The number of jumps that happened before point `index`.
    pub fn epoch(&self, index: u64) -> u64 {
        match self.jump_every {
            0 => 0,
            every => index / every,
        }
    }

    /// The displacement of the means after `epoch` jumps.
    ///
    /// Jumps come in blocks of [`JUMPS_PER_BLOCK`]: a block draws half as many
    /// random unit directions from its own stream of the jump key, takes each
    /// once forwards and once backwards, and shuffles the order. Every jump is
    /// then exactly `jump_size` long in a random direction, and each block's walk
    /// ends where it started, so the displacement at any epoch is the sum of at
    /// most a block of steps: O(1) in the index, always summed in the same order.
    pub fn offset_at(&self, epoch: u64) -> Vec<f64> {
        let mut offset = vec![0.0; self.dim];
        let done = (epoch % JUMPS_PER_BLOCK) as usize;
        if done == 0 || self.jump_size == 0.0 {
            return offset;
        }
        let steps = self.block_steps(epoch / JUMPS_PER_BLOCK);
        for step in steps.chunks(self.dim).take(done) {
            for (o, v) in offset.iter_mut().zip(step) {
                *o += self.jump_size * v;
            }
        }
        offset
    }

    /// The unit steps of jump block `block`, in order (row-major, d per step).
    fn block_steps(&self, block: u64) -> Vec<f64> {
        let mut rng = ChaCha8Rng::from_seed(self.jump_key);
        rng.set_stream(block);
        let half = JUMPS_PER_BLOCK as usize / 2;
        let forwards: Vec<Vec<f64>> = (0..half).map(|_| unit_vector(&mut rng, self.dim)).collect();
        let mut order: Vec<(usize, f64)> = (0..half).flat_map(|i| [(i, 1.0), (i, -1.0)]).collect();
        order.shuffle(&mut rng);
        order
            .iter()
            .flat_map(|&(i, sign)| forwards[i].iter().map(move |v| sign * v))
            .collect()
    }

    /// Component `k`'s mean at `index`, given the jump offset of that index:
    /// base + drift + jumps, folded back into `[-spread, spread]^d` (a reflection
    /// at the walls, so a long-running stream stays in its box and drifts at a
    /// constant speed).
    pub fn mean_into(&self, k: usize, index: u64, offset: &[f64], out: &mut [f64]) {
        let travelled = self.drift_per_point * index as f64;
        let row = k * self.dim..(k + 1) * self.dim;
        let base = &self.base_means[row.clone()];
        let dir = &self.directions[row];
        for (c, o) in out.iter_mut().enumerate() {
            *o = fold(base[c] + travelled * dir[c] + offset[c], self.spread);
        }
    }

    /// The true mixture at `index` (with the jump offset of that index).
    pub fn mixture(&self, index: u64, offset: &[f64]) -> Result<GaussianMixture, GeneratorError> {
        let (k, d) = (self.n_components(), self.dim);
        let mut means = DMatrix::zeros(d, k);
        for (j, mut col) in means.column_iter_mut().enumerate() {
            self.mean_into(j, index, offset, col.as_mut_slice());
        }
        Ok(GaussianMixture::new(
            DVector::from_vec(self.weights.clone()),
            means,
            Covariances::Full(self.covariances.clone()),
        )?)
    }
}

/// Reflects x into `[-half, half]` (a triangle wave of period 4·half).
fn fold(x: f64, half: f64) -> f64 {
    let period = 4.0 * half;
    let y = (x + half).rem_euclid(period);
    let y = if y > 2.0 * half { period - y } else { y };
    y - half
}

fn unit_vector<R: Rng>(rng: &mut R, dim: usize) -> Vec<f64> {
    loop {
        let v: Vec<f64> = (0..dim)
            .map(|_| -> f64 { StandardNormal.sample(rng) })
            .collect();
        let norm = v.iter().map(|x| x * x).sum::<f64>().sqrt();
        // A zero vector has probability zero; drawing again keeps this total.
        if norm > 1e-12 {
            return v.into_iter().map(|x| x / norm).collect();
        }
    }
}

/// `Q diag(λ) Qᵀ` with Q a random rotation and λ in the moderate range.
fn random_covariance<R: Rng>(rng: &mut R, dim: usize) -> DMatrix<f64> {
    let g = DMatrix::<f64>::from_fn(dim, dim, |_, _| StandardNormal.sample(rng));
    let q = g.qr().q();
    let lambda = DVector::from_fn(dim, |_, _| rng.random_range(MIN_EIGENVALUE..MAX_EIGENVALUE));
    let cov: DMatrix<f64> = &q * DMatrix::from_diagonal(&lambda) * q.transpose();
    // Exactly symmetric, as the mixture validation expects.
    (&cov + cov.transpose()) * 0.5
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fold_reflects_at_the_walls_and_keeps_speed() {
        assert_eq!(fold(0.5, 1.0), 0.5);
        assert_eq!(fold(1.5, 1.0), 0.5);
        assert_eq!(fold(-1.5, 1.0), -0.5);
        assert_eq!(fold(3.5, 1.0), -0.5);
        assert!((fold(4.25, 1.0) - 0.25).abs() < 1e-12);
        let step = 1e-3;
        for i in 0..10_000 {
            let x = i as f64 * step;
            let moved = (fold(x + step, 2.0) - fold(x, 2.0)).abs();
            assert!(moved <= step + 1e-12);
        }
    }

    #[test]
    fn covariances_have_the_moderate_eigenvalues() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        for dim in [1, 2, 7] {
            let cov = random_covariance(&mut rng, dim);
            let eig = cov.symmetric_eigenvalues();
            for e in eig.iter() {
                assert!(
                    (MIN_EIGENVALUE - 1e-9..MAX_EIGENVALUE + 1e-9).contains(e),
                    "{e}"
                );
            }
        }
    }
}
