//! `gmm-stream sample`: draws points from a model, as CSV.

use std::io::Write;
use std::path::PathBuf;

use nalgebra::DMatrix;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::error::CliError;
use super::model_file;
use super::output::Output;

/// Points drawn at a time. Drawing in chunks from one generator gives exactly the
/// points of one big draw (each point takes its numbers in turn), in bounded memory.
const CHUNK_POINTS: usize = 64 * 1024;

const EXAMPLES: &str = "\
Examples:
  gmm-stream sample --model model.json --n 1000 --seed 7 > points.csv
  gmm-stream sample -m model.bin --n 500 --with-labels --output labelled.csv";

/// Draw points from a model, as CSV
#[derive(Debug, clap::Args)]
#[command(
    long_about = "Draw points from a model: CSV rows of d numbers, with the index of the \
        component that produced the point last with --with-labels. No header. Numbers are \
        printed in the shortest form that reads back to the same f64. The same model and \
        seed always give the same points.\n\n\
        Exit codes: 0 success (also when the reader of stdout stops early); 2 bad usage or an \
        unreadable model; 1 any other failure (e.g. the output cannot be written).",
    after_help = EXAMPLES
)]
pub struct Args {
    /// The model file (JSON or binary)
    #[arg(long, short = 'm', value_name = "PATH")]
    pub model: PathBuf,

    /// Number of points to draw
    #[arg(long, short = 'n', value_name = "N")]
    pub n: u64,

    /// Seed of the random generator
    #[arg(long, value_name = "S", default_value_t = 0)]
    pub seed: u64,

    /// Where to write: a file (replaced atomically), or - for stdout
    #[arg(long, short = 'o', value_name = "PATH|-", default_value = "-")]
    pub output: PathBuf,

    /// Append the index of the component each point was drawn from
    #[arg(long)]
    pub with_labels: bool,
}

pub fn run(args: Args) -> Result<(), CliError> {
    let model = model_file::load(&args.model)?.mixture;
    let mut out = Output::open(&args.output)?;
    let mut rng = ChaCha8Rng::seed_from_u64(args.seed);
    let mut left = args.n;
    while left > 0 {
        let n = usize::try_from(left).map_or(CHUNK_POINTS, |l| l.min(CHUNK_POINTS));
        let (x, labels) = model.sample(n, &mut rng);
        let labels = args.with_labels.then_some(labels.as_slice());
        write_rows(&mut out, &x, labels).map_err(|e| out.write_error(e))?;
        left -= n as u64;
    }
    out.finish()
}

/// One row per column of `x` (a d×n matrix), `{:?}` printing each f64 in its
/// shortest round-trip form.
fn write_rows(
    out: &mut impl Write,
    x: &DMatrix<f64>,
    labels: Option<&[usize]>,
) -> std::io::Result<()> {
    for (j, point) in x.column_iter().enumerate() {
        for (i, v) in point.iter().enumerate() {
            if i > 0 {
                out.write_all(b",")?;
            }
            write!(out, "{v:?}")?;
        }
        if let Some(label) = labels.and_then(|l| l.get(j)) {
            write!(out, ",{label}")?;
        }
        out.write_all(b"\n")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_points_with_an_optional_label() {
        let x = DMatrix::from_column_slice(2, 2, &[1.0, 0.1 + 0.2, -2.5, 1e-300]);
        let mut out = Vec::new();
        write_rows(&mut out, &x, Some(&[1, 0])).expect("write");
        assert_eq!(
            String::from_utf8(out).expect("utf8"),
            "1.0,0.30000000000000004,1\n-2.5,1e-300,0\n"
        );
        let mut out = Vec::new();
        write_rows(&mut out, &x, None).expect("write");
        assert_eq!(
            String::from_utf8(out).expect("utf8"),
            "1.0,0.30000000000000004\n-2.5,1e-300\n"
        );
    }
}
