//! A model of d ≥ 2 features on a plane: the data coloured by component, and each
//! component's mean and 1σ and 2σ ellipses.

use gmm_model::GaussianMixture;
use plotters::prelude::*;

use super::super::error::CliError;
use super::bounds::Bulk;
use super::canvas::{self, Chart, Line};
use super::data::Sample;
use super::geometry::{self, Plane, Range};
use super::style::{self, Subject};
use super::Projection;

/// Segments per ellipse: smooth at any size the canvas allows.
const ELLIPSE_VERTICES: usize = 120;
/// The Mahalanobis radii drawn, with their opacity (the outer one lighter).
const RADII: [(f64, f64); 2] = [(2.0, 0.6), (1.0, 1.0)];

/// A point on the plane with its most responsible component.
type Dot = ((f64, f64), usize);

/// One component as drawn on the plane.
struct Shape {
    mean: (f64, f64),
    /// The ellipse at each of [`RADII`].
    ellipses: Vec<Vec<(f64, f64)>>,
    weight: f64,
}

/// The picture, and how many points were left out as far from the bulk of the
/// data and the model (see `bounds`).
pub fn draw(
    subject: &Subject<'_>,
    sample: Option<&Sample>,
    projection: Projection,
    size: (u32, u32),
) -> Result<(String, usize), CliError> {
    let model = subject.model;
    let plane = plane(model, sample, projection);
    let shapes = shapes(&plane, model);
    let (points, far) = without_far(project_points(&plane, model, sample)?, &shapes);
    let x = axis_range(&points, &shapes, |p| p.0);
    let y = axis_range(&points, &shapes, |p| p.1);
    let title = format!("Gaussian mixture {}", subject.name);
    let svg = canvas::render(size, |root| {
        let (main, side) = canvas::split(root);
        let names = (plane.axis_names[0].as_str(), plane.axis_names[1].as_str());
        let mut chart = canvas::chart(&main, &title, (x.lo..x.hi, y.lo..y.hi), names)?;
        draw_points(&mut chart, &points)?;
        draw_shapes(&mut chart, &shapes)?;
        canvas::panel(&side, &panel_lines(subject, sample, &plane, &shapes))
    })?;
    Ok((svg, far))
}

/// The points within the bulk of the data or the model's shapes on both axes, and
/// the number of the others.
fn without_far(points: Vec<Dot>, shapes: &[Shape]) -> (Vec<Dot>, usize) {
    let shape_range = |coordinate: fn(&(f64, f64)) -> f64| {
        Range::of(
            shapes
                .iter()
                .flat_map(|s| s.ellipses.iter().flatten().chain([&s.mean]))
                .map(coordinate),
        )
    };
    let bulk_x = Bulk::of(points.iter().map(|(p, _)| p.0)).union(shape_range(|p| p.0));
    let bulk_y = Bulk::of(points.iter().map(|(p, _)| p.1)).union(shape_range(|p| p.1));
    let n = points.len();
    let kept: Vec<Dot> = points
        .into_iter()
        .filter(|(p, _)| !bulk_x.excludes(p.0) && !bulk_y.excludes(p.1))
        .collect();
    let far = n - kept.len();
    (kept, far)
}

/// The plane asked for; principal components come from the data when there is some
/// (what the reader sees), else from the model's overall covariance.
fn plane(model: &GaussianMixture, sample: Option<&Sample>, projection: Projection) -> Plane {
    let d = model.n_features();
    match (projection, sample) {
        (Projection::First2, _) => Plane::first_two(d, sample.and_then(|s| s.fields.as_deref())),
        (Projection::Pca, Some(s)) => {
            let (mean, cov) = geometry::sample_moments(s.points());
            Plane::principal(mean, &cov, &format!("the data {}", s.name))
        }
        (Projection::Pca, None) => {
            let (mean, cov) = geometry::mixture_moments(model);
            Plane::principal(mean, &cov, "the mixture")
        }
    }
}

/// Every point on the plane with its most responsible component.
fn project_points(
    plane: &Plane,
    model: &GaussianMixture,
    sample: Option<&Sample>,
) -> Result<Vec<Dot>, CliError> {
    let Some(sample) = sample else {
        return Ok(Vec::new());
    };
    // The reader checked every point's dimension and finiteness: a failure is a bug.
    let labels = model
        .predict(sample.points())
        .map_err(|e| CliError::failure_msg(format!("cannot assign points to components: {e}")))?;
    Ok(labels
        .into_iter()
        .enumerate()
        .map(|(i, k)| (plane.point(sample.row(i)), k))
        .collect())
}

fn shapes(plane: &Plane, model: &GaussianMixture) -> Vec<Shape> {
    let d = model.n_features();
    (0..model.n_components())
        .map(|k| {
            let mean: Vec<f64> = model.means().column(k).iter().copied().collect();
            let mean = plane.point(&mean);
            let cov = plane.covariance(&model.covariances().component_matrix(k, d));
            let ellipses = RADII
                .iter()
                .map(|&(r, _)| geometry::ellipse(mean, &cov, r, ELLIPSE_VERTICES))
                .collect();
            Shape {
                mean,
                ellipses,
                weight: model.weights()[k],
            }
        })
        .collect()
}

/// An axis holding every point and every ellipse, with a margin.
fn axis_range(points: &[Dot], shapes: &[Shape], coordinate: impl Fn(&(f64, f64)) -> f64) -> Range {
    let of_points = Range::of(points.iter().map(|(p, _)| coordinate(p)));
    let of_shapes = Range::of(
        shapes
            .iter()
            .flat_map(|s| s.ellipses.iter().flatten().chain([&s.mean]))
            .map(&coordinate),
    );
    match (of_points, of_shapes) {
        (Some(p), s) => p.union(s),
        (None, Some(s)) => s,
        (None, None) => Range { lo: 0.0, hi: 1.0 },
    }
    .padded(0.04)
}

/// Small translucent dots: dense regions darken, sparse points stay visible.
fn draw_points(chart: &mut Chart<'_>, points: &[Dot]) -> Result<(), CliError> {
    let n = points.len().max(1) as f64;
    let alpha = (30.0 / n.sqrt()).clamp(0.2, 0.8);
    let radius = if points.len() > 5000 { 2 } else { 3 };
    chart
        .draw_series(points.iter().map(|&(p, k)| {
            Circle::new(
                p,
                radius,
                style::faded(style::component_colour(k), alpha).filled(),
            )
        }))
        .map_err(canvas::drawing_failed)?;
    Ok(())
}

/// Ellipses in a darker shade than their points (heavier components get wider
/// lines), then means on top.
fn draw_shapes(chart: &mut Chart<'_>, shapes: &[Shape]) -> Result<(), CliError> {
    let max_weight = shapes.iter().map(|s| s.weight).fold(0.0, f64::max);
    for (k, shape) in shapes.iter().enumerate() {
        let colour = style::darker(style::component_colour(k));
        let width = style::weight_width(shape.weight, max_weight);
        for (ellipse, &(_, alpha)) in shape.ellipses.iter().zip(&RADII) {
            let line = PathElement::new(ellipse.clone(), canvas::line_style(colour, alpha, width));
            chart
                .draw_series(std::iter::once(line))
                .map_err(canvas::drawing_failed)?;
        }
    }
    for (k, shape) in shapes.iter().enumerate() {
        canvas::draw_mean(chart, shape.mean, style::component_colour(k))?;
    }
    Ok(())
}

fn panel_lines(
    subject: &Subject<'_>,
    sample: Option<&Sample>,
    plane: &Plane,
    shapes: &[Shape],
) -> Vec<Line> {
    let mut lines = vec![Line::Heading("Model".to_owned())];
    lines.extend(subject.facts().into_iter().map(Line::Text));
    lines.push(Line::Heading("Drawing".to_owned()));
    lines.push(Line::Text(format!("on {}", plane.description)));
    lines.push(Line::Text(match sample {
        Some(s) => format!("{}, coloured by component", s.describe()),
        None => "no data (--data)".to_owned(),
    }));
    lines.push(Line::Text(
        "ellipses at 1 and 2 σ, line width by weight; ◆ means".to_owned(),
    ));
    lines.push(Line::Heading("Components (weight)".to_owned()));
    lines.extend(shapes.iter().enumerate().map(|(k, s)| {
        Line::Swatch(
            style::component_colour(k),
            format!("{k}: {}", style::short(s.weight)),
        )
    }));
    lines
}
