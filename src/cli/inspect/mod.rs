//! `gmm-stream inspect`: a summary of a model file or daemon snapshot.

mod human;
mod summary;

use std::io::Write;
use std::path::{Path, PathBuf};

use super::error::CliError;
use super::model_file;
use super::output::Output;
use summary::Summary;

const EXAMPLES: &str = "\
Examples:
  gmm-stream inspect model.json
  gmm-stream inspect snapshots/model-000042.bin --json | jq .components[0].weight";

/// Summarise a model file or snapshot (--json for machine output)
#[derive(Debug, clap::Args)]
#[command(
    long_about = "Summarise a model file or daemon snapshot: format and version, covariance \
        type, K, d, points seen, model version, update time, the estimator and its settings, \
        the anomaly threshold, the source positions of a snapshot, and per component its \
        weight, mean and covariance (standard deviations, log-determinant, condition number).\n\n\
        --json prints one JSON object with these fields and every component's parameters in \
        full (covariance in the layout of the covariance type).\n\n\
        Exit codes: 0 success; 2 a missing, corrupted, truncated or invalid file; 1 any other \
        failure.",
    after_help = EXAMPLES
)]
pub struct Args {
    /// The model file or snapshot (JSON or binary)
    #[arg(value_name = "PATH")]
    pub path: PathBuf,

    /// Print a JSON object instead of the human summary
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: Args) -> Result<(), CliError> {
    let loaded = model_file::load(&args.path)?;
    let summary = Summary::new(args.path.display().to_string(), &loaded);
    let text = if args.json {
        let mut text = serde_json::to_string_pretty(&summary)
            .map_err(|e| CliError::failure_msg(format!("cannot render the summary: {e}")))?;
        text.push('\n');
        text
    } else {
        human::render(&summary)
    };
    let mut out = Output::open(Path::new("-"))?;
    out.write_all(text.as_bytes())
        .map_err(|e| out.write_error(e))?;
    out.finish()
}
