//! `gmm-stream score`: per-point log-density, cluster and responsibilities (and the
//! anomaly flag) under a model, streamed: points are read, scored and written a
//! chunk at a time, so the input may be larger than memory.

use std::path::PathBuf;

use gmm_model::{points_from_rows, EvalRequest, GaussianMixture};

use super::error::CliError;
use super::input::{explain_dim, report_skipped, InputArgs};
use super::model_file;
use super::output::Output;
use super::score_format::{RecordWriter, ScoreFormat};

/// Points scored at a time: a multiple of the E-step's block and chunk sizes, so the
/// kernel splits a chunk exactly as it would the whole input and the records are
/// bit-for-bit those of one evaluation, whatever the kernel's internals; small
/// enough that a chunk's responsibilities stay modest.
const CHUNK_POINTS: usize = 16 * 1024;

const EXAMPLES: &str = "\
Examples:
  gmm-stream score --model model.json --input points.csv > scores.ndjson
  cat points.f64 | gmm-stream score -m model.bin -i - --format f64le --output-format csv";

/// Score points under a model: log-density, cluster, responsibilities
#[derive(Debug, clap::Args)]
#[command(
    long_about = "Score points under a model: one record per valid input point, in input order.\n\n\
        NDJSON (the default): {\"log_density\": f64, \"cluster\": k, \"responsibilities\": [K values]} \
        plus \"anomaly\": bool when the model carries an anomaly threshold (log-density below it). \
        CSV: a header log_density,cluster,resp_0,...,resp_{K-1}[,anomaly], then one row per point. \
        Numbers are printed in the shortest form that reads back to the same f64. \
        log_density is scikit-learn's score_samples for the same parameters.\n\n\
        For f64le and f32le, --dim defaults to the model's dimension. With --skip-invalid, \
        skipped points have no record (their count is printed to stderr). Records are \
        streamed: on stdout, those of the points before a bad one may already be written \
        when the command stops; an --output file appears only when every point was scored.\n\n\
        Exit codes: 0 success (also when the reader of stdout stops early); 2 bad usage or bad \
        input (a bad point, a point of the wrong dimension, an unreadable model, an output \
        directory that does not exist); 1 any other failure (e.g. the output cannot be written).",
    after_help = EXAMPLES
)]
pub struct Args {
    /// The model file (JSON or binary)
    #[arg(long, short = 'm', value_name = "PATH")]
    pub model: PathBuf,

    #[command(flatten)]
    pub input: InputArgs,

    /// Where to write the records: a file (replaced atomically), or - for stdout
    #[arg(long, short = 'o', value_name = "PATH|-", default_value = "-")]
    pub output: PathBuf,

    /// How to write the records
    #[arg(long, value_name = "FORMAT", value_enum, default_value_t = ScoreFormat::Ndjson)]
    pub output_format: ScoreFormat,
}

pub fn run(args: Args) -> Result<(), CliError> {
    let model_file::Loaded {
        file,
        mixture: model,
        ..
    } = model_file::load(&args.model)?;
    let model_name = args.model.display().to_string();
    let d = model.n_features();
    args.input.check_against_model(&model_name, d)?;
    let mut reader = args.input.reader(Some(d))?;
    let mut out = Output::open(&args.output)?;
    let mut writer = RecordWriter::new(
        args.output_format,
        model.n_components(),
        file.anomaly_threshold,
    );
    writer.header(&mut out).map_err(|e| out.write_error(e))?;
    let mut points = Vec::with_capacity(CHUNK_POINTS * d);
    loop {
        points.clear();
        let n = reader
            .fill(&mut points, CHUNK_POINTS)
            .map_err(|e| explain_dim(e, Some((&model_name, d))))?;
        if n == 0 {
            break;
        }
        score_chunk(&model, &points, &mut writer, &mut out)?;
    }
    report_skipped(&reader);
    out.finish()
}

fn score_chunk(
    model: &GaussianMixture,
    points: &[f64],
    writer: &mut RecordWriter,
    out: &mut Output,
) -> Result<(), CliError> {
    let request = EvalRequest::SCORES;
    // The reader checked every point's dimension and finiteness, so a failure here
    // is a bug, not bad input.
    let eval = points_from_rows(points, model.n_features())
        .and_then(|x| model.evaluate(x, request))
        .map_err(|e| CliError::failure_msg(format!("scoring failed: {e}")))?;
    writer.write(out, &eval).map_err(|e| out.write_error(e))
}
