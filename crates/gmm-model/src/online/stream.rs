//! Online EM together with the anomaly threshold that judges the points it absorbs:
//! one batch in, the model updated, the batch's points scored and flagged against the
//! threshold as it was before them, the threshold moved on. The daemon and the
//! Python package's `partial_fit` both run this, so a snapshot continues the same
//! way in either.

use super::{BatchOutcome, OnlineEm};
use crate::anomaly::{is_anomaly, AnomalyThreshold};
use crate::error::Result;
use crate::linalg::Points;

pub struct StreamEstimator {
    pub em: OnlineEm,
    pub anomaly: AnomalyThreshold,
    /// Points below the anomaly threshold are scored but left out of the
    /// statistics, so outliers cannot bend the model.
    pub trim_anomalies: bool,
}

/// What one batch did.
#[derive(Debug, Default)]
pub struct Absorbed {
    pub outcome: BatchOutcome,
    /// The threshold the batch's points were judged by (before they moved it).
    pub threshold: Option<f64>,
    /// Points of the batch below that threshold.
    pub anomalies: usize,
}

impl StreamEstimator {
    /// Absorbs a batch (d×n points) that arrived `elapsed_seconds` after the previous
    /// one.
    pub fn absorb(&mut self, x: Points<'_>, elapsed_seconds: f64) -> Result<Absorbed> {
        let trim = self.anomaly.threshold().filter(|_| self.trim_anomalies);
        self.em.set_trim_threshold(trim);
        let outcome = self.em.partial_fit(x, elapsed_seconds)?;
        Ok(self.judge(outcome))
    }

    /// Starts the model from whatever the warm-up holds (the end of a finite stream).
    pub fn finish_warmup(&mut self) -> Result<Absorbed> {
        let outcome = self.em.finish_warmup()?;
        Ok(self.judge(outcome))
    }

    fn judge(&mut self, outcome: BatchOutcome) -> Absorbed {
        let threshold = self.anomaly.threshold();
        let Some(scored) = &outcome.scored else {
            return Absorbed {
                outcome,
                threshold,
                anomalies: 0,
            };
        };
        let log_density = &scored.evaluation.log_density;
        let anomalies = log_density
            .iter()
            .filter(|&&ld| is_anomaly(ld, threshold))
            .count();
        self.anomaly.observe_batch(log_density);
        Absorbed {
            outcome,
            threshold,
            anomalies,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{points_from_rows, OnlineSettings};

    /// Points of two clusters with a far outlier every 97th point.
    fn stream(n: usize) -> Vec<f64> {
        (0..n)
            .flat_map(|i| {
                let t = i as f64;
                let (c, outlier) = ((i % 2) as f64 * 10.0, i % 97 == 0);
                let x = c + (t * 0.618).fract() - 0.5;
                let y = (t * 0.414).fract() - 0.5 + if outlier { 60.0 } else { 0.0 };
                [x, y]
            })
            .collect()
    }

    #[test]
    fn points_are_judged_by_the_threshold_before_their_batch() {
        let settings = OnlineSettings {
            warmup_points: 200,
            ..OnlineSettings::new(2)
        };
        let mut s = StreamEstimator {
            em: OnlineEm::new(settings).expect("settings"),
            anomaly: AnomalyThreshold::new(0.02, 1000).expect("threshold"),
            trim_anomalies: true,
        };
        let data = stream(4000);
        let mut flagged = 0;
        for batch in data.chunks(2 * 100) {
            let before = s.anomaly.threshold();
            let absorbed = s.absorb(points_from_rows(batch, 2).expect("points"), 0.0);
            let absorbed = absorbed.expect("absorbed");
            assert_eq!(absorbed.threshold, before);
            if let Some(scored) = &absorbed.outcome.scored {
                let expected = scored
                    .evaluation
                    .log_density
                    .iter()
                    .filter(|&&ld| is_anomaly(ld, before))
                    .count();
                assert_eq!(absorbed.anomalies, expected);
            }
            flagged += absorbed.anomalies;
        }
        // The outliers (one in 97) are flagged once a threshold exists.
        assert!(s.anomaly.threshold().is_some());
        assert!(flagged >= 30, "{flagged}");
    }
}
