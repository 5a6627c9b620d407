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
    /// Points (indices into the batch as scored) the model could not score
    /// finitely: left out of `outcome.scored`, of the statistics and of the
    /// threshold; callers reject them as bad input.
    pub unscorable: Vec<usize>,
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

    fn judge(&mut self, mut outcome: BatchOutcome) -> Absorbed {
        let threshold = self.anomaly.threshold();
        let Some(scored) = &mut outcome.scored else {
            return Absorbed {
                outcome,
                threshold,
                anomalies: 0,
                unscorable: Vec::new(),
            };
        };
        let unscorable = scored.evaluation.unscorable();
        if !unscorable.is_empty() {
            let keep: Vec<usize> = (0..scored.evaluation.log_density.len())
                .filter(|j| unscorable.binary_search(j).is_err())
                .collect();
            scored.evaluation = scored.evaluation.select(&keep);
        }
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
            unscorable,
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

    #[test]
    fn a_point_the_model_cannot_score_is_left_out_of_the_scores_and_the_threshold() {
        use crate::{Covariances, GaussianMixture};
        use nalgebra::{DMatrix, DVector};
        // A component of variance 1e-150: a point at 1e99 overflows its distance.
        let model = GaussianMixture::new(
            DVector::from_vec(vec![1.0]),
            DMatrix::zeros(2, 1),
            Covariances::Full(vec![DMatrix::identity(2, 2) * 1e-150]),
        )
        .expect("valid");
        let settings = OnlineSettings {
            reg_covar: 0.0,
            min_weight: 0.0,
            ..OnlineSettings::new(1)
        };
        let mut s = StreamEstimator {
            em: OnlineEm::from_model(settings, model, 10.0).expect("estimator"),
            anomaly: AnomalyThreshold::new(0.5, 1000).expect("threshold"),
            trim_anomalies: false,
        };
        let x = [1e-76, 0.0, 1e99, 1e99, 0.0, 2e-76];
        let absorbed = s
            .absorb(points_from_rows(&x, 2).expect("points"), 1.0)
            .expect("absorbed");
        assert_eq!(absorbed.unscorable, vec![1]);
        let scored = absorbed.outcome.scored.expect("scored");
        assert_eq!(scored.evaluation.log_density.len(), 2);
        assert!(scored.evaluation.log_density.iter().all(|v| v.is_finite()));
        assert_eq!(scored.evaluation.responsibilities.ncols(), 2);
        // The threshold saw the two finite scores only.
        assert_eq!(s.anomaly.len(), 2);
        assert_eq!(s.em.points_seen(), 2);
    }
}
