//! How online EM weighs the past against a new mini-batch.
//!
//! `decay` (Spark's StreamingKMeans): old statistics are multiplied by `a^u` before a
//! batch is added, where `a = 0.5^(1/h)` for a half-life h in points, batches or
//! seconds and u is the batch's size in that unit. A constant rate tracks drift.
//!
//! `stepwise` (Sato and Ishii 2000; Cappé and Moulines 2009; Liang and Klein 2009):
//! `s ← (1 − γ_t) s + γ_t ŝ_t` with ŝ_t the batch's per-point statistics and
//! `γ_t = (t + t0)^−α`, α in (0.5, 1]. The steps shrink, so on a stationary stream it
//! converges to the maximum-likelihood fit; with α = 1 and t0 the warm-up size in
//! batches it is exactly the running average of every point's statistics.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

use super::error::{finite_above, finite_at_least, invalid, ModelError, Result};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum HalfLifeUnit {
    #[default]
    Points,
    Batches,
    Seconds,
}

impl HalfLifeUnit {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Points => "points",
            Self::Batches => "batches",
            Self::Seconds => "seconds",
        }
    }
}

impl fmt::Display for HalfLifeUnit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for HalfLifeUnit {
    type Err = ModelError;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "points" => Ok(Self::Points),
            "batches" => Ok(Self::Batches),
            "seconds" => Ok(Self::Seconds),
            other => Err(invalid(
                "half_life_unit",
                format!("`{other}` is not one of points, batches, seconds"),
            )),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Schedule {
    /// Forget at a constant rate; no half-life never forgets.
    Decay {
        half_life: Option<f64>,
        unit: HalfLifeUnit,
    },
    /// Decreasing steps `γ_t = (t + t0)^−α`.
    Stepwise { alpha: f64, t0: f64 },
}

impl Schedule {
    pub fn check(&self) -> Result<()> {
        match *self {
            Self::Decay {
                half_life: Some(h), ..
            } if !finite_above(h, 0.0) => Err(invalid(
                "half_life",
                format!("must be a finite number > 0 (or absent, never forgetting), got {h}"),
            )),
            Self::Stepwise { alpha, .. } if !(finite_above(alpha, 0.5) && alpha <= 1.0) => {
                Err(invalid(
                    "stepwise_alpha",
                    format!("must be in (0.5, 1], got {alpha}"),
                ))
            }
            Self::Stepwise { t0, .. } if !finite_at_least(t0, 0.0) => Err(invalid(
                "stepwise_t0",
                format!("must be a finite number >= 0, got {t0}"),
            )),
            _ => Ok(()),
        }
    }
}

/// The factor old statistics are multiplied by before a batch of `points` arriving
/// `seconds` after the previous one. `speedup` ≥ 1 divides the half-life (faster
/// forgetting after a detected change).
pub fn decay_factor(
    half_life: Option<f64>,
    unit: HalfLifeUnit,
    points: usize,
    seconds: f64,
    speedup: f64,
) -> f64 {
    match half_life {
        Some(h) => 0.5f64.powf(elapsed(unit, points, seconds) * speedup / h),
        None => 1.0,
    }
}

/// How much of `unit` a batch of `points` arriving after `seconds` represents.
pub fn elapsed(unit: HalfLifeUnit, points: usize, seconds: f64) -> f64 {
    match unit {
        HalfLifeUnit::Points => points as f64,
        HalfLifeUnit::Batches => 1.0,
        HalfLifeUnit::Seconds => seconds.max(0.0),
    }
}

/// `γ_t = (t + t0)^−α`, at most 1, for `step = t + t0` (`t` counts batches from 1).
pub fn stepwise_gamma(alpha: f64, step: f64) -> f64 {
    step.powf(-alpha).min(1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn half_life_halves() {
        let a = decay_factor(Some(1000.0), HalfLifeUnit::Points, 1000, 0.0, 1.0);
        assert!((a - 0.5).abs() < 1e-15);
        let b = decay_factor(Some(10.0), HalfLifeUnit::Batches, 4096, 0.0, 2.0);
        assert!((b - 0.5f64.powf(0.2)).abs() < 1e-15);
        let s = decay_factor(Some(60.0), HalfLifeUnit::Seconds, 5, 30.0, 1.0);
        assert!((s - 0.5f64.sqrt()).abs() < 1e-15);
        assert_eq!(decay_factor(None, HalfLifeUnit::Points, 10, 0.0, 1.0), 1.0);
    }

    #[test]
    fn stepwise_with_alpha_one_is_a_running_average() {
        // With t0 = warm-up batches, γ_t = 1/(t + t0): each batch weighs as much as
        // every earlier batch.
        assert!((stepwise_gamma(1.0, 1.0 + 3.0) - 0.25).abs() < 1e-15);
        assert_eq!(stepwise_gamma(0.7, 1.0 + 0.0), 1.0);
    }

    #[test]
    fn rejects_bad_settings() {
        assert!(Schedule::Stepwise {
            alpha: 0.5,
            t0: 0.0
        }
        .check()
        .is_err());
        assert!(Schedule::Stepwise {
            alpha: 1.0,
            t0: 0.0
        }
        .check()
        .is_ok());
        let decay = |h| Schedule::Decay {
            half_life: h,
            unit: HalfLifeUnit::Points,
        };
        assert!(decay(Some(0.0)).check().is_err());
        assert!(decay(Some(f64::NAN)).check().is_err());
        assert!(decay(Some(f64::INFINITY)).check().is_err());
        assert!(decay(None).check().is_ok());
    }
}
