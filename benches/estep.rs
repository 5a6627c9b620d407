//! The E-step kernel with sufficient statistics (`evaluate` with `EvalRequest::STATS`,
//! one batch-EM iteration less its M-step), throughput in points per second.
//!
//! Every case runs on a one-thread and a two-thread rayon pool: the one-thread number
//! is the kernel's own speed, the two-thread number what EM sees on this machine.
//! Data is sampled from the model it is evaluated under, so responsibilities are
//! spread as they are in a real fit (neither all-zero nor uniform).

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use gmm_model::{CovarianceType, EvalRequest};

#[path = "support/estep_problem.rs"]
mod estep_problem;
use estep_problem::{problem, N_POINTS};

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
        let (gmm, x) = problem(d, k, cov_type);
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
