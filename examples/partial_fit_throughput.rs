//! The online EM alone, without the daemon around it: `OnlineEm::partial_fit` on
//! batches of a raw f64le file held in memory, with the daemon's default estimator
//! settings. `scripts/bench_run.py` compares the daemon's throughput with this, to
//! show what the pipeline (reading, decoding, channels, batching, output) costs.
//!
//! `cargo run --release --example partial_fit_throughput -- --data points.f64
//!  --dim 16 --components 16 [--batch 4096] [--points N]`
//!
//! Prints one JSON object: points absorbed after the warm-up, seconds, points/s.

use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::Parser;
use gmm_model::{points_from_rows, OnlineEm};
use gmm_stream::config::Config;

#[derive(Parser)]
struct Args {
    /// Points, raw f64 little-endian, row-major.
    #[arg(long)]
    data: std::path::PathBuf,
    #[arg(long)]
    dim: usize,
    #[arg(long)]
    components: usize,
    #[arg(long, default_value_t = 4096)]
    batch: usize,
    /// Points to read from the file (0: all).
    #[arg(long, default_value_t = 0)]
    points: usize,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let d = args.dim;
    let bytes = std::fs::read(&args.data).with_context(|| format!("{}", args.data.display()))?;
    if bytes.len() % (8 * d) != 0 {
        bail!(
            "{} is not a whole number of {d}-d points",
            args.data.display()
        );
    }
    let mut values: Vec<f64> = bytes
        .chunks_exact(8)
        .map(|b| f64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]))
        .collect();
    drop(bytes);
    if args.points > 0 {
        values.truncate(args.points * d);
    }
    let mut config = Config::default();
    config.model.components = args.components;
    let mut em = OnlineEm::new(config.online_settings())?;

    let batch_values = args.batch * d;
    let mut batches = values.chunks(batch_values);
    // The warm-up (k-means and batch EM on the first points) is not streaming.
    let warmup_started = Instant::now();
    for batch in batches.by_ref() {
        em.partial_fit(points_from_rows(batch, d)?, 0.0)?;
        if em.model().is_some() {
            break;
        }
    }
    let warmup_seconds = warmup_started.elapsed().as_secs_f64();
    let (started, cpu_started, first) = (Instant::now(), cpu_seconds(), em.points_seen());
    for batch in batches {
        em.partial_fit(points_from_rows(batch, d)?, 0.0)?;
    }
    let seconds = started.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu_started;
    let points = em.points_seen() - first;
    println!(
        "{{\"points\": {points}, \"seconds\": {seconds:.3}, \"cpu_seconds\": {cpu:.3}, \
         \"points_per_second\": {:.0}, \"warmup_points\": {first}, \
         \"warmup_seconds\": {warmup_seconds:.3}}}",
        points as f64 / seconds
    );
    Ok(())
}

/// CPU time of the whole process (every thread), from /proc/self/stat (utime and
/// stime, in the kernel's USER_HZ ticks, 100 a second on Linux); NaN elsewhere.
/// On a shared machine it says what the work cost, whatever the wall clock.
fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return f64::NAN;
    };
    // Fields after the command name (which may hold spaces, inside parentheses).
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return f64::NAN;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok());
    match (ticks(11), ticks(12)) {
        (Some(user), Some(system)) => (user + system) / 100.0,
        _ => f64::NAN,
    }
}
