//! The E-step kernel with sufficient statistics (`evaluate` with `EvalRequest::STATS`,
//! one batch-EM iteration less its M-step), throughput in points per second.
//!
//! Every case runs on a one-thread and a two-thread rayon pool: the one-thread number
//! is the kernel's own speed, the two-thread number what EM sees on this machine.
//! Data is sampled from the model it is evaluated under, so responsibilities are
//! spread as they are in a real fit (neither all-zero nor uniform).

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use gmm_stream::model::{CovarianceType, Covariances, EvalRequest, GaussianMixture};
use nalgebra::{DMatrix, DVector};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Points per evaluation: 16 chunks of 1024, enough to keep two threads busy.
const N_POINTS: usize = 16 * 1024;

/// A mixture with well-separated means and random, well-conditioned covariances.
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

fn estep_stats(c: &mut Criterion) {
    let cases = [
        (2, 3, CovarianceType::Full),
        (8, 8, CovarianceType::Full),
        (16, 16, CovarianceType::Full),
        (32, 8, CovarianceType::Full),
        (16, 16, CovarianceType::Diag),
    ];
    let pools: Vec<(usize, rayon::ThreadPool)> = [1, 2]
        .into_iter()
        .map(|t| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(t)
                .build()
                .expect("a thread pool");
            (t, pool)
        })
        .collect();
    let mut group = c.benchmark_group("estep_stats");
    group.throughput(Throughput::Elements(N_POINTS as u64));
    for (d, k, cov_type) in cases {
        let mut rng = ChaCha8Rng::seed_from_u64(0x5eed + (d * 100 + k) as u64);
        let gmm = model(d, k, cov_type, &mut rng);
        let (x, _) = gmm.sample(N_POINTS, &mut rng);
        for (threads, pool) in &pools {
            let id = BenchmarkId::new(format!("{cov_type}_d{d}_k{k}"), format!("{threads}t"));
            group.bench_with_input(id, &x, |b, x| {
                pool.install(|| {
                    b.iter(|| {
                        let eval = gmm
                            .evaluate(black_box(x.as_view()), EvalRequest::STATS)
                            .expect("finite points");
                        black_box(eval.log_likelihood);
                        eval
                    })
                })
            });
        }
    }
    group.finish();
}

criterion_group! {
    name = benches;
    // A shared two-core machine: short, repeated samples and a tolerant noise
    // threshold rather than long runs that soak up other people's build time.
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(std::time::Duration::from_millis(500))
        .measurement_time(std::time::Duration::from_secs(3))
        .noise_threshold(0.05);
    targets = estep_stats
}
criterion_main!(benches);
