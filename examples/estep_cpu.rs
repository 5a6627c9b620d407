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

use gmm_model::{CovarianceType, EvalRequest};

#[path = "../benches/support/estep_problem.rs"]
mod estep_problem;
use estep_problem::problem;

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
    let (gmm, x) = problem(d, k, cov_type);
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
