//! `gmm-stream plot`: a picture (SVG) of a model with its data, or of a snapshot
//! directory's history.
//!
//! Drawing is done with `plotters` and its SVG backend rather than by writing SVG
//! text by hand: axes with readable ticks, axis titles, clipping and multi-panel
//! layouts come from a well-kept crate, and without its default features it needs
//! no system libraries (the SVG viewer lays text out; plotters only estimates text
//! sizes). The mathematics (projections, ellipses, densities) lives in
//! [`geometry`] and is tested there; the drawing modules only place things.

mod bounds;
mod canvas;
mod data;
mod density;
mod geometry;
mod scatter;
mod snapshots;
mod style;

use std::io::Write;
use std::path::PathBuf;

use gmm_io::Format;

use super::error::CliError;
use super::input::InputArgs;
use super::model_file;
use super::output::Output;
use super::values;

const EXAMPLES: &str = "\
Examples:
  gmm-stream plot --model model.json --data points.csv --output model.svg
  gmm-stream plot -m model.bin --data points.f64 --dim 8 --projection pca -o model.svg
  gmm-stream plot --snapshots demo-snapshots --output history.svg
  gmm-stream plot --snapshots demo-snapshots --data holdout.csv --x-axis version -o history.svg";

/// Draw a model (with its data) or a snapshot directory's history as SVG
#[derive(Debug, clap::Args)]
#[command(
    long_about = "Draw a model, or the history of a snapshot directory, as an SVG picture.\n\n\
        With --model: the data of --data (if given) as a scatter coloured by each point's \
        most responsible component, and every component's mean and 1 and 2 standard-deviation \
        ellipses (line width grows with the component's weight). Models of more than two \
        features are drawn on a projection: their first two coordinates, or the plane of the \
        two principal components (--projection pca, the default when d > 2: from the data \
        when given, else from the mixture's overall covariance), where each covariance is \
        projected as P Σ Pᵀ. A one-feature model is drawn as its density: the mixture's pdf, \
        each weighted component, and a histogram of the data. Large data files are \
        subsampled deterministically (a uniform sample of at most --max-points points).\n\n\
        With --snapshots DIR: the daemon's snapshots (snapshot-*.json|bin; only the last \
        snapshot.keep exist) over points seen or model version: every component's weight, \
        and a log-likelihood. Snapshots hold no log-likelihood of their own, so it is either \
        the mean log-likelihood of --data under each snapshot's model (the same points for \
        every snapshot, so the values compare: give a held-out sample of the stream), or, \
        without --data, the level the daemon's change detector had learned when the \
        snapshot was taken: a running mean over recent batches of each batch's median \
        log-density, each point scored before its batch updated the model. A median of \
        log-densities sits above their mean, so the two sources are not on the same scale. \
        Snapshots without that level (before the first batches, right after a detected \
        change, or with change detection disabled) leave a gap.\n\n\
        The picture is written atomically (or to stdout with -o -).\n\n\
        Exit codes: 0 success; 2 bad usage or bad input (an unreadable model, a snapshot \
        directory without snapshots, a bad point, data of the wrong dimension, an output \
        directory that does not exist); 1 any other failure.",
    after_help = EXAMPLES
)]
pub struct Args {
    /// The model file to draw (JSON or binary)
    #[arg(
        long,
        short = 'm',
        value_name = "PATH",
        required_unless_present = "snapshots",
        conflicts_with = "snapshots"
    )]
    pub model: Option<PathBuf>,

    /// A snapshot directory: draw the weights and log-likelihood of its snapshots
    #[arg(long, value_name = "DIR")]
    pub snapshots: Option<PathBuf>,

    #[command(flatten)]
    pub data: DataArgs,

    /// Where to write the SVG: a file (replaced atomically), or - for stdout
    #[arg(long, short = 'o', value_name = "PATH|-")]
    pub output: PathBuf,

    /// The plane a model of d > 1 features is drawn on [default: first2 when d = 2, else pca]
    #[arg(long, value_name = "PLANE", value_enum, conflicts_with = "snapshots")]
    pub projection: Option<Projection>,

    /// The horizontal axis of --snapshots
    #[arg(long, value_name = "AXIS", value_enum, default_value_t = XAxis::Points,
          requires = "snapshots")]
    pub x_axis: XAxis,

    /// At most this many points of --data are used (a deterministic uniform sample)
    #[arg(long, value_name = "N", default_value_t = 20_000, value_parser = values::positive)]
    pub max_points: usize,

    /// Width of the picture in pixels
    #[arg(long, value_name = "PX", default_value_t = 1000,
          value_parser = clap::value_parser!(u32).range(400..=10_000))]
    pub width: u32,

    /// Height of the picture in pixels
    #[arg(long, value_name = "PX", default_value_t = 680,
          value_parser = clap::value_parser!(u32).range(300..=10_000))]
    pub height: u32,
}

/// The options of `--data`, as `score` reads points.
#[derive(Debug, clap::Args)]
pub struct DataArgs {
    /// Points to draw (with --model) or to score every snapshot on (with --snapshots):
    /// a file, or - for stdin
    #[arg(long, value_name = "PATH|-")]
    pub data: Option<PathBuf>,

    /// How the points are encoded [default: from the file extension, csv otherwise]
    #[arg(long, value_name = "FORMAT", value_parser = values::data_format(), requires = "data")]
    pub format: Option<Format>,

    /// Coordinates per point [default: the model's]
    #[arg(long, value_name = "D", value_parser = values::positive, requires = "data")]
    pub dim: Option<usize>,

    /// csv columns (by header name) or JSON object keys to use as coordinates, in order
    #[arg(long, value_name = "A,B,...", value_delimiter = ',', requires = "data")]
    pub fields: Option<Vec<String>>,

    /// Skip invalid points instead of stopping at the first with exit code 2
    #[arg(long, requires = "data")]
    pub skip_invalid: bool,
}

impl DataArgs {
    /// The shared input options, when there is data.
    fn input(&self) -> Option<InputArgs> {
        self.data.as_ref().map(|path| InputArgs {
            input: path.clone(),
            format: self.format,
            dim: self.dim,
            fields: self.fields.clone(),
            skip_invalid: self.skip_invalid,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Projection {
    /// The first two coordinates
    First2,
    /// The two principal components
    Pca,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum XAxis {
    /// points_seen
    Points,
    /// model_version
    Version,
}

pub fn run(args: Args) -> Result<(), CliError> {
    // Opened first, so that a bad output path is reported before any work.
    let mut out = Output::open(&args.output)?;
    let size = (args.width, args.height);
    let svg = match (&args.model, &args.snapshots) {
        (Some(path), _) => model_picture(&args, path, size)?,
        (None, Some(dir)) => snapshots::draw(&snapshots::Request {
            dir,
            data: args.data.input(),
            max_points: args.max_points,
            x_axis: args.x_axis,
            size,
        })?,
        (None, None) => return Err(CliError::bad_input_msg("give --model or --snapshots")),
    };
    out.write_all(svg.as_bytes())
        .map_err(|e| out.write_error(e))?;
    out.finish()
}

/// The scatter (d ≥ 2) or density (d = 1) picture of a model file.
fn model_picture(
    args: &Args,
    path: &std::path::Path,
    size: (u32, u32),
) -> Result<String, CliError> {
    let loaded = model_file::load(path)?;
    let name = path.display().to_string();
    // The title names the file; its directory would crowd it.
    let title = path
        .file_name()
        .map_or_else(|| name.clone(), |n| n.to_string_lossy().into_owned());
    let sample = match args.data.input() {
        Some(input) => Some(data::read_sample(
            &input,
            (&name, loaded.mixture.n_features()),
            args.max_points,
        )?),
        None => None,
    };
    let subject = style::Subject {
        name: &title,
        file: &loaded.file,
        model: &loaded.mixture,
    };
    let (svg, far) = if loaded.mixture.n_features() == 1 {
        density::draw(&subject, sample.as_ref(), size)?
    } else {
        let projection = args
            .projection
            .unwrap_or(match loaded.mixture.n_features() {
                2 => Projection::First2,
                _ => Projection::Pca,
            });
        scatter::draw(&subject, sample.as_ref(), projection, size)?
    };
    if let (Some(sample), 1..) = (&sample, far) {
        let noun = if far == 1 { "point lies" } else { "points lie" };
        eprintln!(
            "gmm-stream: warning: {}: {far} {noun} far outside the bulk of the data and \
             the model, and {} not drawn",
            sample.name,
            if far == 1 { "is" } else { "are" }
        );
    }
    Ok(svg)
}
