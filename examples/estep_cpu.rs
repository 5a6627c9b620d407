//! A fixed amount of E-step work on one thread, for CPU-time measurements that stay
//! meaningful on a loaded machine (where criterion's wall-clock times are not):
//!
//! ```text
//! cargo build --release --example estep_cpu
//! perf stat -r 5 -e task-clock target/release/examples/estep_cpu full 16 16 100
//! perf stat -r 5 -e task-clock target/release/examples/estep_cpu full 16 16 0   # set-up only
//! ```
//!
//! The model and data are those of `benches/estep.rs` (16384 points sampled from the
//! model); each repetition is one `evaluate(x, EvalRequest::STATS)`, or with a fifth
//! argument `ll` one `evaluate(x, EvalRequest::NOTHING)` (densities and log-sum-exp
//! only), which separates the cost of the statistics.

use gmm_stream::model::{CovarianceType, Covariances, EvalRequest, GaussianMixture};
use nalgebra::{DMatrix, DVector};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const N_POINTS: usize = 16 * 1024;

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

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: estep_cpu <full|diag|spherical|tied> <d> <K> <repetitions> [ll]";
    let (cov_type, d, k, reps, request) = match args.as_slice() {
        [_, c, d, k, r] => (c, d, k, r, EvalRequest::STATS),
        [_, c, d, k, r, ll] if ll == "ll" => (c, d, k, r, EvalRequest::NOTHING),
        _ => {
            eprintln!("{usage}");
            std::process::exit(2);
        }
    };
    let cov_type: CovarianceType = cov_type.parse().expect("a covariance type");
    let (d, k, reps): (usize, usize, usize) = (
        d.parse().expect(usage),
        k.parse().expect(usage),
        reps.parse().expect(usage),
    );
    // Seeded as in benches/estep.rs, so both measure the same problem.
    let mut rng = ChaCha8Rng::seed_from_u64(0x5eed + (d * 100 + k) as u64);
    let gmm = model(d, k, cov_type, &mut rng);
    let (x, _) = gmm.sample(N_POINTS, &mut rng);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .expect("a thread pool");
    let mut total = 0.0;
    pool.install(|| {
        for _ in 0..reps {
            let eval = gmm
                .evaluate(std::hint::black_box(x.as_view()), request)
                .expect("finite points");
            total += eval.log_likelihood;
        }
    });
    println!("{total}");
}
