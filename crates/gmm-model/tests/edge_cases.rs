//! Edge cases that once broke the estimator, kept as regression tests: the
//! information criteria of no points, and the default start on data with fewer
//! distinct points than components.

use gmm_model::{
    fit, points_from_rows, CovarianceType, Covariances, EmSettings, GaussianMixture, ModelError,
};
use nalgebra::{DMatrix, DVector};

/// `GaussianMixture::bic` and `aic` on zero points: these once returned Ok(−∞) (the `p·ln n` term with n = 0) and `aic` returns Ok(2p), where
/// `score` rightly returns `Err(Empty)` and scikit-learn refuses an empty X. A BIC of
/// −∞ silently wins any model selection ("lower is better").
#[test]
fn bic_and_aic_of_no_points_are_errors() {
    let model = GaussianMixture::new(
        DVector::from_vec(vec![0.5, 0.5]),
        DMatrix::from_column_slice(1, 2, &[0.0, 1.0]),
        Covariances::Spherical(DVector::from_vec(vec![1.0, 1.0])),
    )
    .unwrap();
    let none = points_from_rows(&[], 1).unwrap();
    assert_eq!(model.score(none).err(), Some(ModelError::Empty));
    assert_eq!(
        model.bic(none).err(),
        Some(ModelError::Empty),
        "bic: {:?}",
        model.bic(none)
    );
    assert_eq!(
        model.aic(none).err(),
        Some(ModelError::Empty),
        "aic: {:?}",
        model.aic(none)
    );
}

/// The default start (`kmeans`, then `ml_step`, from `em::fit`) once failed on data
/// with fewer distinct points than K (here 1000 points on the three values 0, 1, 2
/// and K = 4, e.g. integer-valued sensors) with `IllDefinedCovariance { component: 0 }` for every covariance
/// type, and the advice "increase reg_covar" cannot help. Once every distance is 0,
/// k-means++ seeds a duplicate centre (point 0), Lloyd's final assignment leaves one
/// of the two coincident clusters empty (label counts [0, 333, 333, 334] here), and
/// the first M-step (called with `previous = None`) refused a component of zero
/// weight. k-means now gives every empty cluster a point.
/// scikit-learn 1.9.1 fits the same data for every covariance type
/// (`GaussianMixture(4, covariance_type=t, random_state=0).fit(X)`: weights
/// [0.333, 0.334, 0.333, 6.7e-18], means [1, 0, 2, 0], converged): its M-step adds
/// 10·eps to every n_k, so an empty component gets mean 0, covariance reg_covar·I
/// and a weight of ~1e-18.
#[test]
fn default_start_fits_data_with_fewer_distinct_points_than_components() {
    let flat: Vec<f64> = (0..1000).map(|i| ((i * 7919) % 3) as f64).collect();
    let x = points_from_rows(&flat, 1).unwrap();
    let mut failures = Vec::new();
    for cov_type in CovarianceType::ALL {
        let settings = EmSettings {
            covariance_type: cov_type,
            ..EmSettings::new(4)
        };
        match fit(x, &settings, &mut |_| {}) {
            Ok(report) => {
                // Every data value is the mean of some component.
                for v in [0.0, 1.0, 2.0] {
                    let nearest = report
                        .model
                        .means()
                        .iter()
                        .map(|m| (m - v).abs())
                        .fold(f64::INFINITY, f64::min);
                    assert!(nearest < 1e-6, "{cov_type}: no component at {v}");
                }
            }
            Err(e) => failures.push(format!("{cov_type}: {e}")),
        }
    }
    assert!(
        failures.is_empty(),
        "fit failed where scikit-learn fits:\n{}",
        failures.join("\n")
    );
}
