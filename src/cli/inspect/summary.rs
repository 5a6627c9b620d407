//! What `inspect` reports about a model file, computed once and either printed for
//! a person or serialised as JSON.

use nalgebra::{DMatrix, DVector};
use serde::Serialize;

use gmm_io::{
    BayesianInfo, Encoding, EstimatorInfo, FileIdentity, OnlineVariationalInfo, Positions,
    EFFECTIVE_WEIGHT,
};
use gmm_model::{CovarianceType, Covariances, GaussianMixture, OnlineState, OnlineVariational};

use crate::cli::model_file::Loaded;

#[derive(Debug, Serialize)]
pub struct Summary {
    pub path: String,
    /// `json` or `binary`.
    pub encoding: &'static str,
    pub format: String,
    pub version: u32,
    pub covariance_type: CovarianceType,
    pub n_components: usize,
    pub n_features: usize,
    pub points_seen: u64,
    pub model_version: u64,
    pub updated_at: String,
    pub anomaly_threshold: Option<f64>,
    pub estimator: EstimatorInfo,
    /// Present in a daemon snapshot.
    pub state: Option<StateSummary>,
    pub positions: Option<Positions>,
    /// A file source's identity at its resume offset (docs/reference.md).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_file: Option<FileIdentity>,
    /// Components above 1 % of the weight.
    pub effective_components: usize,
    /// A variational fit's posterior and priors.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bayesian: Option<BayesianInfo>,
    /// The online variational estimator's settings and counters.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub variational: Option<VariationalSummary>,
    pub components: Vec<ComponentSummary>,
}

/// Online variational inference: its settings, live components and structure
/// changes so far (the priors and statistics are not shown).
#[derive(Debug, Serialize)]
pub struct VariationalSummary {
    pub settings: OnlineVariational,
    pub live_components: u64,
    pub births: Option<u64>,
    pub retirements: Option<u64>,
    pub merges: Option<u64>,
}

impl VariationalSummary {
    fn new(v: &OnlineVariationalInfo) -> Self {
        let state = v.state.as_ref();
        Self {
            settings: v.settings.clone(),
            live_components: v.effective_components,
            births: state.map(|s| s.births),
            retirements: state.map(|s| s.retirements),
            merges: state.map(|s| s.merges),
        }
    }
}

/// The online estimator's counters (the statistics themselves are not shown).
#[derive(Debug, Serialize)]
pub struct StateSummary {
    pub batches: u64,
    pub points_seen: u64,
    pub model_version: u64,
    pub reseeds: u64,
    pub rebuilds: u64,
    /// Points buffered before the model starts.
    pub warmup_points: usize,
    /// Points collected since a detected change, for a fresh fit.
    pub rebuild_points: usize,
    pub has_statistics: bool,
}

#[derive(Debug, Serialize)]
pub struct ComponentSummary {
    pub weight: f64,
    pub mean: Vec<f64>,
    /// In the layout of the covariance type: a d×d matrix (full, tied: the shared
    /// one), the d variances (diag), or one variance (spherical).
    pub covariance: CovarianceValue,
    /// Square roots of the diagonal of the covariance.
    pub std_devs: Vec<f64>,
    /// Natural logarithm of the determinant of the covariance.
    pub log_det: f64,
    /// Largest over smallest eigenvalue of the covariance.
    pub condition_number: f64,
}

#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum CovarianceValue {
    Matrix(Vec<Vec<f64>>),
    Variances(Vec<f64>),
    Variance(f64),
}

impl Summary {
    pub fn new(path: String, loaded: &Loaded) -> Self {
        let (file, model) = (&loaded.file, &loaded.mixture);
        Self {
            path,
            encoding: match loaded.encoding {
                Encoding::Json => "json",
                Encoding::Binary => "binary",
            },
            format: file.format.clone(),
            version: file.version,
            covariance_type: model.covariance_type(),
            n_components: model.n_components(),
            n_features: model.n_features(),
            points_seen: file.points_seen,
            model_version: file.model_version,
            updated_at: file.updated_at.clone(),
            anomaly_threshold: file.anomaly_threshold,
            estimator: file.estimator.clone(),
            state: file
                .state
                .as_ref()
                .map(|s| StateSummary::new(s, model.n_features())),
            positions: file.positions.clone(),
            source_file: file.extensions.source_file,
            effective_components: model
                .weights()
                .iter()
                .filter(|&&w| w > EFFECTIVE_WEIGHT)
                .count(),
            bayesian: file.extensions.bayesian.clone(),
            variational: file
                .extensions
                .variational
                .as_ref()
                .map(VariationalSummary::new),
            components: components(model),
        }
    }
}

impl StateSummary {
    fn new(state: &OnlineState, d: usize) -> Self {
        let points = |v: &[f64]| v.len() / d.max(1);
        Self {
            batches: state.batches,
            points_seen: state.points_seen,
            model_version: state.model_version,
            reseeds: state.reseeds,
            rebuilds: state.rebuilds,
            warmup_points: points(&state.warmup),
            rebuild_points: state.rebuild.as_deref().map_or(0, points),
            has_statistics: state.stats.is_some(),
        }
    }
}

fn components(model: &GaussianMixture) -> Vec<ComponentSummary> {
    let d = model.n_features();
    let cov = model.covariances();
    // The shared matrix of a tied model is analysed once.
    let tied = match cov {
        Covariances::Tied(m) => Some(MatrixFacts::of(m)),
        _ => None,
    };
    (0..model.n_components())
        .map(|k| {
            let (covariance, facts) = match cov {
                Covariances::Full(ms) => (matrix_value(&ms[k]), MatrixFacts::of(&ms[k])),
                Covariances::Tied(m) => (matrix_value(m), tied.clone().unwrap_or_default()),
                Covariances::Diag(v) => {
                    let col: Vec<f64> = v.column(k).iter().copied().collect();
                    let facts = MatrixFacts::of_variances(&col);
                    (CovarianceValue::Variances(col), facts)
                }
                Covariances::Spherical(v) => (
                    CovarianceValue::Variance(v[k]),
                    MatrixFacts::of_variances(&vec![v[k]; d]),
                ),
            };
            ComponentSummary {
                weight: model.weights()[k],
                mean: model.means().column(k).iter().copied().collect(),
                covariance,
                std_devs: facts.std_devs,
                log_det: facts.log_det,
                condition_number: facts.condition_number,
            }
        })
        .collect()
}

fn matrix_value(m: &DMatrix<f64>) -> CovarianceValue {
    CovarianceValue::Matrix(m.row_iter().map(|r| r.iter().copied().collect()).collect())
}

/// Standard deviations, log-determinant and condition number of a covariance.
#[derive(Debug, Clone, Default)]
struct MatrixFacts {
    std_devs: Vec<f64>,
    log_det: f64,
    condition_number: f64,
}

impl MatrixFacts {
    /// The log-determinant through the Cholesky factor (accurate even when the
    /// matrix is ill-conditioned); the condition number from the eigenvalues.
    fn of(m: &DMatrix<f64>) -> Self {
        let std_devs = m.diagonal().iter().map(|v| v.sqrt()).collect();
        let log_det = nalgebra::Cholesky::new(m.clone()).map_or(f64::NAN, |c| {
            2.0 * c.l().diagonal().iter().map(|x| x.ln()).sum::<f64>()
        });
        let eigen: DVector<f64> = m.clone().symmetric_eigenvalues();
        Self {
            std_devs,
            log_det,
            condition_number: eigen.max() / eigen.min(),
        }
    }

    fn of_variances(v: &[f64]) -> Self {
        let (min, max) = v
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &x| {
                (lo.min(x), hi.max(x))
            });
        Self {
            std_devs: v.iter().map(|x| x.sqrt()).collect(),
            log_det: v.iter().map(|x| x.ln()).sum(),
            condition_number: max / min,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn facts_of_a_full_matrix() {
        let m = DMatrix::from_row_slice(2, 2, &[4.0, 1.0, 1.0, 3.0]);
        let f = MatrixFacts::of(&m);
        assert!((f.log_det - 11f64.ln()).abs() < 1e-12);
        assert_eq!(f.std_devs, vec![2.0, 3f64.sqrt()]);
        // Eigenvalues (7 ± √5) / 2.
        let expected = (7.0 + 5f64.sqrt()) / (7.0 - 5f64.sqrt());
        assert!((f.condition_number - expected).abs() < 1e-12 * expected);
    }

    #[test]
    fn facts_of_variances() {
        let f = MatrixFacts::of_variances(&[4.0, 0.25]);
        assert_eq!(f.std_devs, vec![2.0, 0.5]);
        assert!(f.log_det.abs() < 1e-15);
        assert_eq!(f.condition_number, 16.0);
    }
}
