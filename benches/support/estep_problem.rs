//! The E-step benchmark's problem, shared by `benches/estep.rs` and
//! `examples/estep_cpu.rs` so that both measure the same thing.

use gmm_model::{CovarianceType, Covariances, GaussianMixture};
use nalgebra::{DMatrix, DVector};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Points per evaluation: 16 chunks of 1024, enough to keep two threads busy.
pub const N_POINTS: usize = 16 * 1024;

/// A mixture with well-separated means and random, well-conditioned covariances,
/// and `N_POINTS` sampled from it (d×n), seeded by the shape: responsibilities are
/// spread as they are in a real fit (neither all-zero nor uniform).
pub fn problem(d: usize, k: usize, cov_type: CovarianceType) -> (GaussianMixture, DMatrix<f64>) {
    let mut rng = ChaCha8Rng::seed_from_u64(0x5eed + (d * 100 + k) as u64);
    let gmm = model(d, k, cov_type, &mut rng);
    let (x, _) = gmm.sample(N_POINTS, &mut rng);
    (gmm, x)
}

fn model(d: usize, k: usize, cov_type: CovarianceType, rng: &mut ChaCha8Rng) -> GaussianMixture {
    let weights = DVector::from_element(k, 1.0 / k as f64);
    let means = DMatrix::from_fn(d, k, |_, _| rng.random_range(-6.0..6.0));
    let spd = |rng: &mut ChaCha8Rng| {
        let a = DMatrix::from_fn(d, d, |_, _| rng.random_range(-1.0..1.0));
        &a * a.transpose() / d as f64 + DMatrix::identity(d, d) * 0.5
    };
    let covariances = match cov_type {
        CovarianceType::Full => Covariances::Full((0..k).map(|_| spd(rng)).collect()),
        CovarianceType::Tied => Covariances::Tied(spd(rng)),
        CovarianceType::Diag => {
            Covariances::Diag(DMatrix::from_fn(d, k, |_, _| rng.random_range(0.5..2.0)))
        }
        CovarianceType::Spherical => {
            Covariances::Spherical(DVector::from_fn(k, |_, _| rng.random_range(0.5..2.0)))
        }
    };
    GaussianMixture::new(weights, means, covariances).expect("a valid mixture")
}
