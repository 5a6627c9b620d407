//! Times batch EM (`gmm_model::fit`) on data and a starting model read from
//! raw little-endian f64 files, so that `scripts/bench_fit.py` can time scikit-learn
//! on exactly the same problem and compare the fitted parameters.
//!
//! Files: `--data` holds n points of d coordinates, row-major; `--init` holds the
//! weights (K), the means (K×d, a row per component) and the full covariances (K×d×d).
//! Prints one JSON object: per-iteration seconds of every repeat, the lower bounds,
//! and the fitted weights, means and covariances (row-major, as numpy reads them).

use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::Parser;
use gmm_model::{
    fit, points_from_rows, Covariances, EmSettings, GaussianMixture, Iteration, Start,
};
use nalgebra::{DMatrix, DVector};

#[derive(Parser)]
struct Args {
    /// Points, raw f64 little-endian, row-major n×d.
    #[arg(long)]
    data: std::path::PathBuf,
    /// Starting weights, means and full covariances, raw f64 little-endian.
    #[arg(long)]
    init: std::path::PathBuf,
    #[arg(long)]
    dim: usize,
    #[arg(long)]
    components: usize,
    /// EM iterations (tol is 0, so exactly this many run).
    #[arg(long, default_value_t = 10)]
    iters: usize,
    /// Rayon threads.
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Whole fits to time; the report keeps every one.
    #[arg(long, default_value_t = 3)]
    repeats: usize,
    #[arg(long, default_value_t = 1e-6)]
    reg_covar: f64,
}

fn read_f64s(path: &std::path::Path) -> Result<Vec<f64>> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    if bytes.len() % 8 != 0 {
        bail!("{} is not a whole number of f64", path.display());
    }
    Ok(bytes
        .chunks_exact(8)
        .map(|b| f64::from_le_bytes(b.try_into().expect("8 bytes")))
        .collect())
}

fn main() -> Result<()> {
    let args = Args::parse();
    let (d, k) = (args.dim, args.components);
    let data = read_f64s(&args.data)?;
    let x = points_from_rows(&data, d)?;
    let init = read_f64s(&args.init)?;
    if init.len() != k + k * d + k * d * d {
        bail!(
            "the init file holds {} values, expected {}",
            init.len(),
            k + k * d + k * d * d
        );
    }
    let weights = DVector::from_column_slice(&init[..k]);
    // A row per component, row-major, is the column-major d×K of column means.
    let means = DMatrix::from_column_slice(d, k, &init[k..k + k * d]);
    let covs = init[k + k * d..]
        .chunks_exact(d * d)
        .map(|c| DMatrix::from_row_slice(d, d, c))
        .collect();
    let start = GaussianMixture::new(weights, means, Covariances::Full(covs))?;
    let mut settings = EmSettings::new(k);
    settings.max_iter = args.iters;
    settings.tol = 0.0;
    settings.reg_covar = args.reg_covar;
    settings.start = Start::Model(start);

    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(args.threads)
        .build()?;
    let mut per_iter_runs = Vec::new();
    let mut total_runs = Vec::new();
    let mut last = None;
    for _ in 0..args.repeats {
        let mut times = Vec::with_capacity(args.iters);
        let began = Instant::now();
        let mut mark = began;
        let report = pool.install(|| {
            fit(x, &settings, &mut |_: &Iteration| {
                let now = Instant::now();
                times.push((now - mark).as_secs_f64());
                mark = now;
            })
        })?;
        total_runs.push(began.elapsed().as_secs_f64());
        per_iter_runs.push(times);
        last = Some(report);
    }
    let report = last.context("no repeats")?;
    let m = &report.model;
    let covariances: Vec<Vec<f64>> = match m.covariances() {
        // Symmetric, so column-major reads as row-major.
        Covariances::Full(c) => c.iter().map(|s| s.as_slice().to_vec()).collect(),
        _ => unreachable!("the fit is full"),
    };
    let out = serde_json::json!({
        "threads": args.threads,
        "n_points": x.ncols(),
        "dim": d,
        "components": k,
        "iters": report.n_iter,
        "seconds_per_iteration": per_iter_runs,
        "seconds_total": total_runs,
        "lower_bounds": report.history,
        "weights": m.weights().as_slice(),
        "means": m.means().as_slice(),
        "covariances": covariances,
    });
    println!("{out}");
    Ok(())
}
