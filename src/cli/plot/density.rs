//! A one-feature model as its density: the mixture's pdf, each weighted component
//! `π_k N(x; μ_k, σ_k²)`, and a histogram of the data on the same (density) scale.

use gmm_model::GaussianMixture;
use plotters::prelude::*;

use super::super::error::CliError;
use super::bounds::Bulk;
use super::canvas::{self, Chart, Line};
use super::data::Sample;
use super::geometry::{self, Range};
use super::style::{self, Subject, MIXTURE, NEUTRAL};

/// Abscissae per curve.
const CURVE_POINTS: usize = 400;
/// Each component's curve spans its mean ± this many standard deviations at least.
const TAILS: f64 = 4.0;

/// A component on the line.
struct Component {
    weight: f64,
    mean: f64,
    variance: f64,
}

impl Component {
    fn weighted_pdf(&self, x: f64) -> f64 {
        self.weight * geometry::normal_pdf(x, self.mean, self.variance)
    }
}

/// The picture, and how many points were left out as far from the bulk of the
/// data and the components (see `bounds`).
pub fn draw(
    subject: &Subject<'_>,
    sample: Option<&Sample>,
    size: (u32, u32),
) -> Result<(String, usize), CliError> {
    let components = components(subject.model);
    let all = sample.map(|s| s.values.as_slice()).unwrap_or_default();
    let bulk = Bulk::of(all.iter().copied()).union(Range::of(tails(&components)));
    let values: Vec<f64> = all.iter().copied().filter(|&v| !bulk.excludes(v)).collect();
    let far = all.len() - values.len();
    let values = values.as_slice();
    let bars = match values.len() {
        0 => Vec::new(),
        n => geometry::histogram(values, geometry::histogram_bins(n)),
    };
    let x = x_range(&components, values);
    let curves = curves(&components, x);
    let top = curves
        .iter()
        .flatten()
        .map(|p| p.1)
        .chain(bars.iter().map(|b| b.2))
        .fold(0.0, f64::max);
    let y = 0.0..(top * 1.08).max(f64::MIN_POSITIVE);
    let title = format!("Gaussian mixture {}", subject.name);
    let x_name = sample
        .and_then(|s| s.fields.as_ref())
        .and_then(|f| f.first().cloned())
        .unwrap_or_else(|| "x1".to_owned());
    let svg = canvas::render(size, |root| {
        let (main, side) = canvas::split(root);
        let mut chart = canvas::chart(&main, &title, (x.lo..x.hi, y), (&x_name, "density"))?;
        draw_bars(&mut chart, &bars)?;
        draw_curves(&mut chart, &curves)?;
        canvas::panel(&side, &panel_lines(subject, sample, &components))
    })?;
    Ok((svg, far))
}

fn components(model: &GaussianMixture) -> Vec<Component> {
    (0..model.n_components())
        .map(|k| Component {
            weight: model.weights()[k],
            mean: model.means()[(0, k)],
            variance: model.covariances().component_matrix(k, 1)[(0, 0)],
        })
        .collect()
}

/// Each component's mean ± [`TAILS`] standard deviations.
fn tails(components: &[Component]) -> impl Iterator<Item = f64> + '_ {
    components.iter().flat_map(|c| {
        let s = TAILS * c.variance.sqrt();
        [c.mean - s, c.mean + s]
    })
}

/// Every data point and every component's bulk, with a small margin.
fn x_range(components: &[Component], values: &[f64]) -> Range {
    let of_components = Range::of(tails(components)).unwrap_or(Range { lo: 0.0, hi: 1.0 });
    of_components
        .union(Range::of(values.iter().copied()))
        .padded(0.02)
}

/// The components' weighted pdfs, then the mixture's (their sum), sampled evenly.
fn curves(components: &[Component], x: Range) -> Vec<Vec<(f64, f64)>> {
    let xs: Vec<f64> = (0..CURVE_POINTS)
        .map(|i| x.lo + x.span() * i as f64 / (CURVE_POINTS - 1) as f64)
        .collect();
    let mut curves: Vec<Vec<(f64, f64)>> = components
        .iter()
        .map(|c| xs.iter().map(|&x| (x, c.weighted_pdf(x))).collect())
        .collect();
    let mixture = xs
        .iter()
        .enumerate()
        .map(|(i, &x)| (x, curves.iter().map(|c| c[i].1).sum()))
        .collect();
    curves.push(mixture);
    curves
}

fn draw_bars(chart: &mut Chart<'_>, bars: &[(f64, f64, f64)]) -> Result<(), CliError> {
    chart
        .draw_series(bars.iter().map(|&(left, right, height)| {
            Rectangle::new([(left, 0.0), (right, height)], NEUTRAL.filled())
        }))
        .map_err(canvas::drawing_failed)?;
    Ok(())
}

/// The mixture (last) first, as a wide translucent band, so that the components
/// drawn over it stay visible where they and the mixture coincide.
fn draw_curves(chart: &mut Chart<'_>, curves: &[Vec<(f64, f64)>]) -> Result<(), CliError> {
    let Some((mixture, components)) = curves.split_last() else {
        return Ok(());
    };
    let band = PathElement::new(mixture.clone(), MIXTURE.stroke_width(5));
    chart
        .draw_series(std::iter::once(band))
        .map_err(canvas::drawing_failed)?;
    for (k, curve) in components.iter().enumerate() {
        let line = style::component_colour(k).stroke_width(2);
        chart
            .draw_series(std::iter::once(PathElement::new(curve.clone(), line)))
            .map_err(canvas::drawing_failed)?;
    }
    Ok(())
}

fn panel_lines(
    subject: &Subject<'_>,
    sample: Option<&Sample>,
    components: &[Component],
) -> Vec<Line> {
    let mut lines = vec![Line::Heading("Model".to_owned())];
    lines.extend(subject.facts().into_iter().map(Line::Text));
    lines.push(Line::Heading("Drawing".to_owned()));
    lines.push(Line::Swatch(MIXTURE, "mixture density".to_owned()));
    lines.push(Line::Swatch(
        NEUTRAL,
        match sample {
            Some(s) => format!("histogram of {}", s.describe()),
            None => "no data (--data)".to_owned(),
        },
    ));
    lines.push(Line::Heading("Components π N(μ, σ²)".to_owned()));
    lines.extend(components.iter().enumerate().map(|(k, c)| {
        Line::Swatch(
            style::component_colour(k),
            format!(
                "{k}: π {}, μ {}, σ {}",
                style::short(c.weight),
                style::short(c.mean),
                style::short(c.variance.sqrt())
            ),
        )
    }));
    lines
}

#[cfg(test)]
mod tests {
    use super::*;
    use gmm_model::{points_from_rows, Covariances};
    use nalgebra::{DMatrix, DVector};

    #[test]
    fn the_mixture_curve_is_the_model_density() {
        let model = GaussianMixture::new(
            DVector::from_column_slice(&[0.25, 0.75]),
            DMatrix::from_row_slice(1, 2, &[-2.0, 3.0]),
            Covariances::Spherical(DVector::from_column_slice(&[0.5, 2.0])),
        )
        .expect("a valid mixture");
        let components = components(&model);
        let x = x_range(&components, &[]);
        assert!(x.lo < -2.0 - 4.0 * 0.5f64.sqrt() && x.hi > 3.0 + 4.0 * 2.0f64.sqrt());
        let curves = curves(&components, x);
        assert_eq!(curves.len(), 3);
        let mixture = &curves[2];
        let xs: Vec<f64> = mixture.iter().map(|p| p.0).collect();
        let expected = model
            .score_samples(points_from_rows(&xs, 1).expect("points"))
            .expect("scores");
        for (p, log_density) in mixture.iter().zip(expected) {
            assert!((p.1.ln() - log_density).abs() < 1e-10, "at {}", p.0);
        }
    }
}
