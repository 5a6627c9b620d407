//! The frame every picture shares: an SVG canvas split into the chart and a side
//! panel of facts and legend, the chart's axes, and a marker for means.

use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;

use super::super::error::CliError;
use super::bounds;
use super::style::{self, FONT, GRID, INK, LABEL_SIZE, TEXT_SIZE, TITLE_SIZE};

pub type Area<'a> = DrawingArea<SVGBackend<'a>, Shift>;
pub type Chart<'a> = ChartContext<'a, SVGBackend<'a>, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

/// Side panel lines are this far apart.
const LINE_HEIGHT: i32 = 20;
/// Extra space above a heading.
const HEADING_GAP: i32 = 10;
/// Characters per side panel line before wrapping (plotters cannot measure text in
/// an SVG; at 14 px sans-serif this fits the panel).
const PANEL_CHARS: usize = 34;

/// Draws with `paint` on a white canvas of `size` pixels and returns the SVG text.
pub fn render(
    size: (u32, u32),
    paint: impl FnOnce(&Area<'_>) -> Result<(), CliError>,
) -> Result<String, CliError> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, size).into_drawing_area();
        root.fill(&WHITE).map_err(drawing_failed)?;
        paint(&root)?;
        root.present().map_err(drawing_failed)?;
    }
    Ok(svg)
}

/// Any error of plotters: with a string backend, only a bug can cause one.
pub fn drawing_failed(e: impl std::fmt::Display) -> CliError {
    CliError::failure_msg(format!("cannot draw the picture: {e}"))
}

/// The chart on the left, the side panel (a fixed share of the width) on the right.
pub fn split<'a>(root: &Area<'a>) -> (Area<'a>, Area<'a>) {
    let (w, _) = root.dim_in_pixel();
    root.split_horizontally(w - panel_width(w))
}

fn panel_width(width: u32) -> u32 {
    (width / 4).clamp(220, 300)
}

/// A chart with a title, axis titles, a light grid and readable tick labels.
pub fn chart<'a>(
    area: &Area<'a>,
    title: &str,
    (x, y): (std::ops::Range<f64>, std::ops::Range<f64>),
    (x_name, y_name): (&str, &str),
) -> Result<Chart<'a>, CliError> {
    // Whatever the data, ticks can be stepped through (see `bounds`).
    let (x, y) = (bounds::drawable(x), bounds::drawable(y));
    let mut chart = ChartBuilder::on(area)
        .caption(title, (FONT, TITLE_SIZE).into_font().color(&INK))
        .margin(12)
        .x_label_area_size(48)
        .y_label_area_size(64)
        .build_cartesian_2d(x, y)
        .map_err(drawing_failed)?;
    let ticks = |v: &f64| tick_label(*v);
    chart
        .configure_mesh()
        .x_desc(x_name)
        .y_desc(y_name)
        .axis_desc_style((FONT, TEXT_SIZE).into_font().color(&INK))
        .label_style((FONT, LABEL_SIZE).into_font().color(&INK))
        .bold_line_style(GRID)
        .light_line_style(TRANSPARENT)
        .axis_style(INK)
        .x_labels(8)
        .y_labels(8)
        .x_label_formatter(&ticks)
        .y_label_formatter(&ticks)
        .draw()
        .map_err(drawing_failed)?;
    Ok(chart)
}

/// Tick values come from plotters' round steps; printing them with `{}` would show
/// the rounding noise of the step arithmetic (0.30000000000000004), and large
/// counts (points seen) read better with a unit (250k, 1.5M).
fn tick_label(v: f64) -> String {
    let trim = |s: String| {
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_owned()
        } else {
            s
        }
    };
    let a = v.abs();
    for (scale, unit) in [(1e9, "G"), (1e6, "M"), (1e4, "k")] {
        if a >= scale && a < 1e12 {
            let scale = if unit == "k" { 1e3 } else { scale };
            return format!("{}{unit}", trim(format!("{:.2}", v / scale)));
        }
    }
    if v != 0.0 && a < 1e-4 {
        return format!("{v:.1e}");
    }
    match trim(format!("{v:.6}")).as_str() {
        "-0" => "0".to_owned(),
        s => s.to_owned(),
    }
}

/// One line of the side panel.
pub enum Line {
    Heading(String),
    Text(String),
    /// A colour sample (a square) and what it stands for.
    Swatch(RGBColor, String),
}

/// Draws `lines` top-down; lines that do not fit are summarised in one last line.
pub fn panel(area: &Area<'_>, lines: &[Line]) -> Result<(), CliError> {
    let (_, height) = area.dim_in_pixel();
    // Room for the lines, with the gaps above (at most four) headings.
    let room = height as i32 - 2 * LINE_HEIGHT - 4 * HEADING_GAP;
    let fits = (room / LINE_HEIGHT).max(1) as usize;
    let lines = wrap(lines);
    let (shown, hidden) = if lines.len() > fits {
        lines.split_at(fits - 1)
    } else {
        (&lines[..], &[][..])
    };
    let mut y = 2 * LINE_HEIGHT;
    for (i, line) in shown.iter().enumerate() {
        if i > 0 && matches!(line, Line::Heading(_)) {
            y += HEADING_GAP;
        }
        draw_line(area, line, y)?;
        y += LINE_HEIGHT;
    }
    if !hidden.is_empty() {
        let more = Line::Text(format!("… {} more lines", hidden.len()));
        draw_line(area, &more, y)?;
    }
    Ok(())
}

fn draw_line(area: &Area<'_>, line: &Line, y: i32) -> Result<(), CliError> {
    let text = |s: &str, x: i32, size: u32, bold: bool| {
        let font = (FONT, size).into_font();
        let font = if bold {
            font.style(FontStyle::Bold)
        } else {
            font
        };
        Text::new(s.to_owned(), (x, y), font.color(&INK))
    };
    match line {
        Line::Heading(s) => area.draw(&text(s, 8, TEXT_SIZE + 1, true)),
        Line::Text(s) => area.draw(&text(s, 8, TEXT_SIZE, false)),
        Line::Swatch(colour, s) => {
            area.draw(&Rectangle::new([(8, y + 1), (22, y + 15)], colour.filled()))
                .map_err(drawing_failed)?;
            area.draw(&text(s, 30, TEXT_SIZE, false))
        }
    }
    .map_err(drawing_failed)
}

/// Long text lines broken at spaces to fit the panel.
fn wrap(lines: &[Line]) -> Vec<Line> {
    let mut out = Vec::new();
    for line in lines {
        match line {
            Line::Text(s) => out.extend(wrap_words(s).into_iter().map(Line::Text)),
            Line::Heading(s) => out.push(Line::Heading(s.clone())),
            Line::Swatch(c, s) => out.push(Line::Swatch(*c, s.clone())),
        }
    }
    out
}

fn wrap_words(s: &str) -> Vec<String> {
    let mut lines = vec![String::new()];
    for word in s.split(' ') {
        let current = lines.last_mut().filter(|l| {
            !l.is_empty() && l.chars().count() + 1 + word.chars().count() > PANEL_CHARS
        });
        if current.is_some() {
            lines.push(String::new());
        }
        if let Some(last) = lines.last_mut() {
            if !last.is_empty() {
                last.push(' ');
            }
            last.push_str(word);
        }
    }
    lines
}

/// Draws a component's mean: a diamond in its colour with a dark edge, visible on
/// top of its own points (an element composed at the mean, in pixel offsets).
pub fn draw_mean(chart: &mut Chart<'_>, at: (f64, f64), colour: RGBColor) -> Result<(), CliError> {
    const R: i32 = 7;
    let diamond = vec![(0, -R), (R, 0), (0, R), (-R, 0)];
    let mut edge = diamond.clone();
    edge.push((0, -R));
    let marker = EmptyElement::at(at)
        + Polygon::new(diamond, colour.filled())
        + PathElement::new(edge, INK.stroke_width(2));
    chart
        .draw_series(std::iter::once(marker))
        .map(|_| ())
        .map_err(drawing_failed)
}

/// `colour` at the given opacity and line width.
pub fn line_style(colour: RGBColor, alpha: f64, width: u32) -> ShapeStyle {
    style::faded(colour, alpha).stroke_width(width)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tick_labels_hide_rounding_noise() {
        assert_eq!(tick_label(0.30000000000000004), "0.3");
        assert_eq!(tick_label(-0.0), "0");
        assert_eq!(tick_label(12.0), "12");
        assert_eq!(tick_label(-2.5), "-2.5");
        assert_eq!(tick_label(250_000.0), "250k");
        assert_eq!(tick_label(1_500_000.0), "1.5M");
        assert_eq!(tick_label(-12_500.0), "-12.5k");
        assert_eq!(tick_label(5000.0), "5000");
        assert_eq!(tick_label(2e-5), "2.0e-5");
        assert_eq!(tick_label(0.0), "0");
    }

    #[test]
    fn words_wrap_at_the_panel_width() {
        let s = "the two principal components of the data points.csv file";
        let lines = wrap_words(s);
        assert!(lines.len() > 1);
        assert!(lines.iter().all(|l| l.chars().count() <= PANEL_CHARS));
        assert_eq!(lines.join(" "), s);
    }
}
