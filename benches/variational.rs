//! One variational iteration against one EM iteration, per point: the E-step (EM's
//! kernel with its statistics; the variational one with other per-component constants
//! and the `Σ r ln r` the lower bound needs) and the M-step (maximum likelihood
//! against the posterior update), on one thread.
//!
//! Throughput is in points for the E-steps and whole iterations; the M-steps do not
//! depend on the number of points and are reported per call.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use gmm_model::{
    em_step, m_step, variational_step, CovarianceType, EvalRequest, Posterior, PriorChoices,
    VariationalPrior, WeightPriorType,
};

#[path = "support/estep_problem.rs"]
mod estep_problem;
use estep_problem::{problem, N_POINTS};

const CASES: [(usize, usize, CovarianceType); 3] = [
    (2, 3, CovarianceType::Full),
    (8, 8, CovarianceType::Full),
    (16, 16, CovarianceType::Diag),
];

fn iterations(c: &mut Criterion) {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .expect("a thread pool");
    let mut per_point = c.benchmark_group("per_point");
    per_point.throughput(Throughput::Elements(N_POINTS as u64));
    let mut per_call = Vec::new();
    for (d, k, cov_type) in CASES {
        let (gmm, x) = problem(d, k, cov_type);
        let x = x.as_view();
        let prior = VariationalPrior::resolve(
            x,
            k,
            cov_type,
            WeightPriorType::DirichletProcess,
            &PriorChoices::default(),
        )
        .expect("priors");
        let stats = gmm
            .evaluate(x, EvalRequest::STATS)
            .expect("finite")
            .stats
            .expect("stats");
        let posterior = Posterior::update(&stats, &prior, 1e-6).expect("posterior");
        let kernel = posterior.estep_kernel();
        let shape = format!("{cov_type}_d{d}_k{k}");
        let vb_request = EvalRequest {
            resp_log_resp: true,
            ..EvalRequest::STATS
        };
        let mut bench = |name: &str, run: &mut (dyn FnMut() + Send)| {
            per_point.bench_function(BenchmarkId::new(name, &shape), |b| {
                pool.install(|| b.iter(&mut *run))
            });
        };
        bench("em_estep", &mut || {
            black_box(gmm.evaluate(black_box(x), EvalRequest::STATS).expect("ok"));
        });
        bench("vb_estep", &mut || {
            black_box(kernel.evaluate(black_box(x), vb_request).expect("ok"));
        });
        bench("em_iteration", &mut || {
            black_box(em_step(&gmm, black_box(x), 1e-6, None).expect("ok"));
        });
        bench("vb_iteration", &mut || {
            black_box(variational_step(&posterior, black_box(x), &prior, 1e-6).expect("ok"));
        });
        per_call.push((shape, gmm, stats, prior));
    }
    per_point.finish();
    let mut mstep = c.benchmark_group("mstep");
    for (shape, gmm, stats, prior) in &per_call {
        mstep.bench_function(BenchmarkId::new("em_mstep", shape), |b| {
            b.iter(|| m_step(black_box(stats), 1e-6, None, Some(gmm)).expect("ok"))
        });
        mstep.bench_function(BenchmarkId::new("vb_mstep", shape), |b| {
            b.iter(|| Posterior::update(black_box(stats), prior, 1e-6).expect("ok"))
        });
    }
    mstep.finish();
}

criterion_group! {
    name = benches;
    // A shared two-core machine: short samples rather than long runs.
    config = Criterion::default()
        .sample_size(15)
        .warm_up_time(std::time::Duration::from_millis(300))
        .measurement_time(std::time::Duration::from_secs(2))
        .noise_threshold(0.05);
    targets = iterations
}
criterion_main!(benches);
