//! A snapshot directory's history: every component's weight and a log-likelihood,
//! over points seen or model version.
//!
//! Snapshots carry no log-likelihood, so one is chosen (see `plot --help`):
//! - with `--data`, the mean log-likelihood of the same points under every
//!   snapshot's model: comparable across snapshots, and exactly scikit-learn's
//!   `score`;
//! - without, the level the change detector had learned (`DriftState::baseline`):
//!   what the stream itself achieved recently, each point scored before its batch
//!   updated the model. It is a running mean of batch *medians*, so it is not on
//!   the scale of a mean log-likelihood, and it is absent before the detector has
//!   seen a batch, after a detected change, and when detection is disabled.
//!
//! The batch estimator's `lower_bound` is not used: snapshots come from the daemon.

use std::path::{Path, PathBuf};

use gmm_io::{Encoding, ModelFile};
use gmm_model::GaussianMixture;
use gmm_stream::sink::SnapshotStore;
use gmm_stream::telemetry::Chain;
use plotters::prelude::*;

use super::super::error::CliError;
use super::super::input::InputArgs;
use super::canvas::{self, Chart, Line};
use super::data::{self, Sample};
use super::geometry::Range;
use super::style::{self, INK};
use super::XAxis;

/// What [`draw`] is asked to draw.
pub struct Request<'a> {
    pub dir: &'a Path,
    pub data: Option<InputArgs>,
    pub max_points: usize,
    pub x_axis: XAxis,
    pub size: (u32, u32),
}

/// A snapshot that loaded.
struct Snapshot {
    path: PathBuf,
    file: ModelFile,
    model: GaussianMixture,
}

/// One snapshot as plotted.
struct Entry {
    x: f64,
    weights: Vec<f64>,
    level: Option<f64>,
}

/// Where the log-likelihood comes from.
enum Level {
    Data(Sample),
    Baseline,
}

impl Level {
    fn of(&self, snapshot: &Snapshot) -> Result<Option<f64>, CliError> {
        match self {
            Level::Data(sample) => snapshot
                .model
                .score(sample.points())
                .map(Some)
                .map_err(|e| {
                    CliError::failure_msg(format!("{}: cannot score: {e}", snapshot.path.display()))
                }),
            Level::Baseline => Ok(snapshot
                .file
                .state
                .as_ref()
                .and_then(|s| s.drift.baseline())),
        }
    }

    fn axis_name(&self) -> &'static str {
        match self {
            Level::Data(_) => "mean log-likelihood",
            Level::Baseline => "recent median log-density",
        }
    }

    fn description(&self) -> String {
        match self {
            Level::Data(s) => format!("of {} under each snapshot", s.describe()),
            Level::Baseline => "the change detector's level: a running mean of recent \
                batches' median log-density, each point scored before its batch's update \
                (--data gives the mean log-likelihood of fixed points instead)"
                .to_owned(),
        }
    }
}

pub fn draw(request: &Request<'_>) -> Result<String, CliError> {
    let snapshots = load(request.dir)?;
    let first = &snapshots[0];
    check_same_shape(&snapshots)?;
    let level = match &request.data {
        Some(input) => {
            let name = first.path.display().to_string();
            let d = first.model.n_features();
            Level::Data(data::read_sample(input, (&name, d), request.max_points)?)
        }
        None => Level::Baseline,
    };
    let entries = entries(&snapshots, &level, request.x_axis)?;
    let x = Range::of(entries.iter().map(|e| e.x))
        .unwrap_or(Range { lo: 0.0, hi: 1.0 })
        .padded(0.03);
    let x_name = match request.x_axis {
        XAxis::Points => "points seen",
        XAxis::Version => "model version",
    };
    let dir = request.dir.display().to_string();
    canvas::render(request.size, |root| {
        let (main, side) = canvas::split(root);
        let has_levels = entries.iter().any(|e| e.level.is_some());
        let (top, bottom) = if has_levels {
            let (_, h) = main.dim_in_pixel();
            let (t, b) = main.split_vertically(h * 11 / 20);
            (t, Some(b))
        } else {
            (main, None)
        };
        // With a panel below, the shared axis is named once, at the bottom.
        let top_x_name = if bottom.is_some() { "" } else { x_name };
        draw_weights(
            &top,
            &format!("Snapshots in {dir}"),
            x,
            top_x_name,
            &entries,
        )?;
        if let Some(bottom) = bottom {
            draw_levels(&bottom, x, (x_name, level.axis_name()), &entries)?;
        }
        canvas::panel(&side, &panel_lines(&dir, &snapshots, &entries, &level))
    })
}

/// Every snapshot in `dir` that loads, oldest first; one that does not (removed
/// meanwhile by the daemon's pruning, or corrupt) is skipped with a warning, as
/// the daemon skips it.
fn load(dir: &Path) -> Result<Vec<Snapshot>, CliError> {
    let name = dir.display();
    if !dir.is_dir() {
        return Err(CliError::bad_input_msg(format!(
            "{name}: not a directory (--snapshots names the daemon's snapshot.dir)"
        )));
    }
    // Only listing: the store's keep and format do not matter.
    let paths = SnapshotStore::new(dir, 1, Encoding::Json)
        .snapshots()
        .map_err(|e| CliError::failure(anyhow::Error::new(e).context(name.to_string())))?;
    let mut loaded = Vec::new();
    for path in paths {
        match read(&path) {
            Ok(s) => loaded.push(s),
            Err(reason) => eprintln!("gmm-stream: warning: {}: skipped: {reason}", path.display()),
        }
    }
    if loaded.is_empty() {
        return Err(CliError::bad_input_msg(format!(
            "{name}: no readable snapshot (snapshot-*.json or snapshot-*.bin)"
        )));
    }
    Ok(loaded)
}

fn read(path: &Path) -> Result<Snapshot, String> {
    let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
    let file = ModelFile::from_bytes(&bytes).map_err(|e| Chain(&e).to_string())?;
    let model = file.mixture().map_err(|e| Chain(&e).to_string())?;
    Ok(Snapshot {
        path: path.to_owned(),
        file,
        model,
    })
}

/// The weights of component k across snapshots mean something only when every
/// snapshot has the same components and features.
fn check_same_shape(snapshots: &[Snapshot]) -> Result<(), CliError> {
    let first = &snapshots[0];
    let shape = |s: &Snapshot| (s.model.n_components(), s.model.n_features());
    match snapshots.iter().find(|s| shape(s) != shape(first)) {
        None => Ok(()),
        Some(other) => Err(CliError::bad_input_msg(format!(
            "{}: {} components of {} features, but {} has {} of {}: not snapshots of one model",
            other.path.display(),
            other.model.n_components(),
            other.model.n_features(),
            first.path.display(),
            first.model.n_components(),
            first.model.n_features()
        ))),
    }
}

fn entries(snapshots: &[Snapshot], level: &Level, x_axis: XAxis) -> Result<Vec<Entry>, CliError> {
    let mut entries = snapshots
        .iter()
        .map(|s| {
            Ok(Entry {
                x: match x_axis {
                    XAxis::Points => s.file.points_seen as f64,
                    XAxis::Version => s.file.model_version as f64,
                },
                weights: s.model.weights().iter().copied().collect(),
                level: level.of(s)?,
            })
        })
        .collect::<Result<Vec<_>, CliError>>()?;
    // Files are listed by points seen; a restart can make versions disagree.
    entries.sort_by(|a, b| a.x.total_cmp(&b.x));
    Ok(entries)
}

fn draw_weights(
    area: &canvas::Area<'_>,
    title: &str,
    x: Range,
    x_name: &str,
    entries: &[Entry],
) -> Result<(), CliError> {
    let top = entries
        .iter()
        .flat_map(|e| e.weights.iter().copied())
        .fold(0.0, f64::max);
    let y = 0.0..(top * 1.1).clamp(0.05, 1.0);
    let mut chart = canvas::chart(area, title, (x.lo..x.hi, y), (x_name, "weight"))?;
    let k = entries.first().map_or(0, |e| e.weights.len());
    for k in 0..k {
        let points: Vec<(f64, f64)> = entries.iter().map(|e| (e.x, e.weights[k])).collect();
        draw_series(&mut chart, &points, style::component_colour(k))?;
    }
    Ok(())
}

fn draw_levels(
    area: &canvas::Area<'_>,
    x: Range,
    names: (&str, &str),
    entries: &[Entry],
) -> Result<(), CliError> {
    let y = Range::of(entries.iter().filter_map(|e| e.level))
        .unwrap_or(Range { lo: 0.0, hi: 1.0 })
        .padded(0.1);
    let mut chart = canvas::chart(area, "", (x.lo..x.hi, y.lo..y.hi), names)?;
    // A snapshot without a level breaks the line rather than bridging the gap.
    for run in entries.split(|e| e.level.is_none()) {
        let points: Vec<(f64, f64)> = run
            .iter()
            .filter_map(|e| e.level.map(|l| (e.x, l)))
            .collect();
        if !points.is_empty() {
            draw_series(&mut chart, &points, INK)?;
        }
    }
    Ok(())
}

/// A line through the points, with a dot at each (snapshots are few: the dots show
/// where the data are).
fn draw_series(
    chart: &mut Chart<'_>,
    points: &[(f64, f64)],
    colour: RGBColor,
) -> Result<(), CliError> {
    chart
        .draw_series(std::iter::once(PathElement::new(
            points.to_vec(),
            colour.stroke_width(2),
        )))
        .map_err(canvas::drawing_failed)?;
    chart
        .draw_series(points.iter().map(|&p| Circle::new(p, 3, colour.filled())))
        .map_err(canvas::drawing_failed)?;
    Ok(())
}

fn panel_lines(dir: &str, snapshots: &[Snapshot], entries: &[Entry], level: &Level) -> Vec<Line> {
    let first = &snapshots[0];
    let last = &snapshots[snapshots.len() - 1];
    let mut lines = vec![
        Line::Heading("Snapshots".to_owned()),
        Line::Text(format!("{} in {dir}", snapshots.len())),
        Line::Text(format!(
            "points seen {} to {}",
            first.file.points_seen, last.file.points_seen
        )),
        Line::Text(format!(
            "model versions {} to {}",
            first.file.model_version, last.file.model_version
        )),
        Line::Text(format!(
            "K = {}, d = {}, {} covariances",
            first.model.n_components(),
            first.model.n_features(),
            first.model.covariance_type()
        )),
        Line::Heading(capitalised(level.axis_name())),
    ];
    lines.push(Line::Text(if entries.iter().any(|e| e.level.is_some()) {
        level.description()
    } else {
        "none: no snapshot holds the change detector's level; give --data".to_owned()
    }));
    lines.push(Line::Heading("Weights (newest)".to_owned()));
    if let Some(newest) = entries.last() {
        lines.extend(newest.weights.iter().enumerate().map(|(k, w)| {
            Line::Swatch(
                style::component_colour(k),
                format!("{k}: {}", style::short(*w)),
            )
        }));
    }
    lines
}

fn capitalised(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(c) => c.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}
