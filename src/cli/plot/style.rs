//! Colours, type sizes and the words every picture shares.

use gmm_io::ModelFile;
use gmm_model::GaussianMixture;
use plotters::style::{Color, HSLColor, RGBColor};

/// The categorical palette of matplotlib and Vega ("Tableau 10"): distinct hues of
/// similar weight, readable on white and by most colour-blind readers.
const TABLEAU10: [RGBColor; 10] = [
    RGBColor(0x1f, 0x77, 0xb4),
    RGBColor(0xff, 0x7f, 0x0e),
    RGBColor(0x2c, 0xa0, 0x2c),
    RGBColor(0xd6, 0x27, 0x28),
    RGBColor(0x94, 0x67, 0xbd),
    RGBColor(0x8c, 0x56, 0x4b),
    RGBColor(0xe3, 0x77, 0xc2),
    RGBColor(0x7f, 0x7f, 0x7f),
    RGBColor(0xbc, 0xbd, 0x22),
    RGBColor(0x17, 0xbe, 0xcf),
];

pub const FONT: &str = "sans-serif";
pub const TITLE_SIZE: u32 = 20;
pub const TEXT_SIZE: u32 = 14;
pub const LABEL_SIZE: u32 = 13;
pub const INK: RGBColor = RGBColor(0x22, 0x22, 0x22);
pub const GRID: RGBColor = RGBColor(0xe6, 0xe6, 0xe6);
/// The data when not coloured by component (histograms).
pub const NEUTRAL: RGBColor = RGBColor(0xd4, 0xd4, 0xd4);
/// A whole mixture's density, under the components' curves.
pub const MIXTURE: RGBColor = RGBColor(0x80, 0x80, 0x80);

/// Component `k`'s colour: Tableau 10, then hues a golden angle apart (distinct for
/// any K, if less so than the first ten).
pub fn component_colour(k: usize) -> RGBColor {
    if let Some(&c) = TABLEAU10.get(k) {
        return c;
    }
    let hue = ((k - TABLEAU10.len()) as f64 * 0.381_966).fract();
    let (r, g, b) = HSLColor(hue, 0.65, 0.45).rgb();
    RGBColor(r, g, b)
}

/// A darker shade of a component's colour, for lines drawn over its own points.
pub fn darker(c: RGBColor) -> RGBColor {
    let shade = |v: u8| (f64::from(v) * 0.62).round() as u8;
    RGBColor(shade(c.0), shade(c.1), shade(c.2))
}

/// A line width in pixels that grows with a component's weight relative to the
/// heaviest: 1 for a negligible component, 4 for the heaviest.
pub fn weight_width(weight: f64, max_weight: f64) -> u32 {
    let share = if max_weight > 0.0 {
        (weight / max_weight).clamp(0.0, 1.0)
    } else {
        1.0
    };
    1 + (3.0 * share).round() as u32
}

/// The model a picture is about.
pub struct Subject<'a> {
    pub name: &'a str,
    pub file: &'a ModelFile,
    pub model: &'a GaussianMixture,
}

impl Subject<'_> {
    /// The model's vital statistics, one short line each, for the side panel.
    pub fn facts(&self) -> Vec<String> {
        vec![
            format!(
                "K = {}, d = {}",
                self.model.n_components(),
                self.model.n_features()
            ),
            format!("{} covariances", self.model.covariance_type()),
            format!("points seen {}", self.file.points_seen),
            format!("model version {}", self.file.model_version),
        ]
    }
}

/// A number for a legend: 3 significant digits, without a tail of zeros.
pub fn short(x: f64) -> String {
    if x == 0.0 || !x.is_finite() {
        return format!("{x}");
    }
    let magnitude = x.abs().log10().floor();
    if !(-3.0..5.0).contains(&magnitude) {
        return format!("{x:.2e}");
    }
    let decimals = (2.0 - magnitude).max(0.0) as usize;
    let s = format!("{x:.decimals$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        s
    }
}

/// A colour at `alpha`, as plotters styles it.
pub fn faded(c: RGBColor, alpha: f64) -> plotters::style::RGBAColor {
    c.mix(alpha)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colours_are_distinct() {
        let colours: Vec<_> = (0..30).map(component_colour).collect();
        for (i, a) in colours.iter().enumerate() {
            for b in &colours[i + 1..] {
                assert_ne!(a, b);
            }
        }
    }

    #[test]
    fn heavier_components_get_wider_lines() {
        assert_eq!(weight_width(0.0, 0.5), 1);
        assert_eq!(weight_width(0.5, 0.5), 4);
        assert!(weight_width(0.2, 0.5) < weight_width(0.4, 0.5));
    }

    #[test]
    fn short_numbers() {
        assert_eq!(short(0.4213), "0.421");
        assert_eq!(short(0.5), "0.5");
        assert_eq!(short(-2.7345), "-2.73");
        assert_eq!(short(1234.6), "1235");
        assert_eq!(short(1.0e-5), "1.00e-5");
        assert_eq!(short(0.0), "0");
    }
}
