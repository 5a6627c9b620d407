//! The generator's settings: `source.generator` in the configuration.

use serde::{Deserialize, Serialize};

/// The built-in synthetic stream: a seeded mixture that can drift and emit outliers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GeneratorConfig {
    /// Dimension of the points (`source.dim` wins when set).
    pub dim: usize,
    pub components: usize,
    pub seed: u64,
    /// Points per second; 0 is as fast as possible.
    pub rate: f64,
    /// Total points, then the stream ends; 0 never ends.
    pub limit: u64,
    /// Half-width of the box the component means are drawn in.
    pub spread: f64,
    /// Gradual drift: distance every mean moves per 10 000 points.
    pub drift_per_10k: f64,
    /// Abrupt change: every this many points the means jump (0: never).
    pub jump_every: u64,
    /// Distance of each jump.
    pub jump_size: f64,
    /// Fraction of points drawn far from every component.
    pub outlier_fraction: f64,
}

impl Default for GeneratorConfig {
    fn default() -> Self {
        Self {
            dim: 2,
            components: 3,
            seed: 42,
            rate: 2_000.0,
            limit: 0,
            spread: 8.0,
            drift_per_10k: 0.0,
            jump_every: 0,
            jump_size: 6.0,
            outlier_fraction: 0.0,
        }
    }
}
