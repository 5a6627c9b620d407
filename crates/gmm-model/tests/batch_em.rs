//! Batch EM end to end: from the default k-means start it finds a clearly separated
//! mixture, it stops by scikit-learn's rule, and with several initialisations it keeps
//! the run with the best final lower bound.

use gmm_model::{
    fit, points_from_rows, CovarianceType, Covariances, EmSettings, GaussianMixture, InitMethod,
    Iteration, Start,
};
use nalgebra::{DMatrix, DVector};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// Three well-separated components in 3-D (means 12 apart, standard deviations at
/// most ~1.3), with the covariance structure of `cov_type` so the model is right.
fn separated_truth(cov_type: CovarianceType) -> GaussianMixture {
    let (d, k) = (3, 3);
    let means = DMatrix::from_column_slice(d, k, &[0.0, 0.0, 0.0, 12.0, 0.0, 0.0, 0.0, 12.0, -3.0]);
    let spd = |a: f64, b: f64, c: f64, rho: f64| {
        DMatrix::from_row_slice(d, d, &[a, rho, 0.0, rho, b, rho, 0.0, rho, c])
    };
    let covariances = match cov_type {
        CovarianceType::Full => Covariances::Full(vec![
            spd(1.0, 0.8, 1.5, 0.3),
            spd(0.5, 1.2, 0.7, -0.2),
            spd(1.7, 1.0, 0.6, 0.4),
        ]),
        CovarianceType::Diag => Covariances::Diag(DMatrix::from_column_slice(
            d,
            k,
            &[1.0, 0.5, 1.5, 0.4, 1.2, 0.8, 1.7, 1.0, 0.6],
        )),
        CovarianceType::Spherical => Covariances::Spherical(DVector::from_vec(vec![1.0, 0.4, 1.6])),
        CovarianceType::Tied => Covariances::Tied(spd(1.2, 0.9, 1.4, 0.35)),
    };
    GaussianMixture::new(DVector::from_vec(vec![0.3, 0.5, 0.2]), means, covariances).unwrap()
}

/// Row-major points drawn from `model`.
fn draw(model: &GaussianMixture, n: usize, seed: u64) -> Vec<f64> {
    let (x, _) = model.sample(n, &mut ChaCha8Rng::seed_from_u64(seed));
    // x is d×n column-major: its storage is already one point after another.
    x.as_slice().to_vec()
}

#[test]
fn kmeans_start_recovers_separated_means_for_every_covariance_type() {
    for cov_type in CovarianceType::ALL {
        let truth = separated_truth(cov_type);
        let d = truth.n_features();
        let n = 1500;
        let flat = draw(&truth, n, 7);
        let x = points_from_rows(&flat, d).unwrap();
        let settings = EmSettings {
            covariance_type: cov_type,
            ..EmSettings::new(3)
        };
        let mut changes = Vec::new();
        let report = fit(x, &settings, &mut |it: &Iteration| changes.push(it.change)).unwrap();

        // scikit-learn's stopping rule: the first iteration whose change is below tol.
        assert!(
            report.converged,
            "{cov_type}: not converged in {} iterations",
            report.n_iter
        );
        assert_eq!(changes.len(), report.n_iter, "{cov_type}");
        let (last, earlier) = changes.split_last().unwrap();
        assert!(
            last.abs() < settings.tol,
            "{cov_type}: stopped on a change of {last}"
        );
        assert!(
            earlier.iter().all(|c| c.abs() >= settings.tol),
            "{cov_type}: ran past convergence: {changes:?}"
        );

        // Each fitted component is matched to the nearest true one; the matching must
        // be one to one. With ~450+ points per component the standard error of a mean
        // is below 0.07, so 0.3 is loose yet far below the separation of 12.
        let fitted = &report.model;
        let mut used = [false; 3];
        for k in 0..3 {
            let mk = fitted.means().column(k);
            let (t, dist) = (0..3)
                .map(|t| (t, (truth.means().column(t) - mk).norm()))
                .min_by(|a, b| a.1.total_cmp(&b.1))
                .unwrap();
            assert!(
                !used[t],
                "{cov_type}: two fitted components on true component {t}"
            );
            used[t] = true;
            assert!(
                dist < 0.3,
                "{cov_type}: component {k} is {dist} from the nearest true mean {t}: {mk:?}"
            );
            let (w, tw) = (fitted.weights()[k], truth.weights()[t]);
            assert!(
                (w - tw).abs() < 0.05,
                "{cov_type}: weight {w} for true {tw}"
            );
            // The fitted covariance is close to the true one in every entry (loosely:
            // a sample covariance of ~300+ points is good to ~15 %).
            let (fc, tc) = (
                fitted.covariances().component_matrix(k, d),
                truth.covariances().component_matrix(t, d),
            );
            for i in 0..d {
                for j in 0..d {
                    let scale = (tc[(i, i)] * tc[(j, j)]).sqrt();
                    assert!(
                        (fc[(i, j)] - tc[(i, j)]).abs() < 0.2 * scale,
                        "{cov_type}: covariance[{k}][{i}][{j}] = {} for true {}",
                        fc[(i, j)],
                        tc[(i, j)]
                    );
                }
            }
        }
    }
}

#[test]
fn n_init_keeps_the_run_with_the_best_final_lower_bound() {
    // Four heavily overlapping components and a short budget: different random
    // starts end at visibly different lower bounds.
    let d = 2;
    let means = DMatrix::from_column_slice(d, 4, &[0.0, 0.0, 1.5, 0.0, 0.0, 1.5, 1.5, 1.5]);
    let truth = GaussianMixture::new(
        DVector::from_element(4, 0.25),
        means,
        Covariances::Spherical(DVector::from_element(4, 1.0)),
    )
    .unwrap();
    let flat = draw(&truth, 400, 11);
    let x = points_from_rows(&flat, d).unwrap();
    for cov_type in CovarianceType::ALL {
        let n_init = 6;
        let settings = EmSettings {
            covariance_type: cov_type,
            n_init,
            max_iter: 8,
            start: Start::Init(InitMethod::Random),
            seed: 3,
            ..EmSettings::new(4)
        };
        let mut runs: Vec<Vec<f64>> = vec![Vec::new(); n_init];
        let report = fit(x, &settings, &mut |it: &Iteration| {
            runs[it.init].push(it.mean_log_likelihood)
        })
        .unwrap();
        let finals: Vec<f64> = runs
            .iter()
            .map(|r| *r.last().expect("every initialisation ran"))
            .collect();
        // Otherwise the test could not tell the best run from any other (runs from
        // different starts differ far above rounding, ~1e-15).
        let spread = finals.iter().copied().fold(f64::NEG_INFINITY, f64::max)
            - finals.iter().copied().fold(f64::INFINITY, f64::min);
        assert!(
            spread > 1e-9,
            "{cov_type}: all runs ended alike: {finals:?}"
        );
        // scikit-learn keeps the first run reaching the maximum.
        let best = (0..n_init)
            .reduce(|b, i| if finals[i] > finals[b] { i } else { b })
            .unwrap();
        assert_eq!(
            report.lower_bound, finals[best],
            "{cov_type}: finals {finals:?}"
        );
        assert_eq!(
            report.history, runs[best],
            "{cov_type}: history of run {best}"
        );
        assert_eq!(report.n_iter, runs[best].len(), "{cov_type}");
    }
}

/// `resume` (scikit-learn's warm start) measures its first change from the earlier
/// fit's lower bound: a converged fit resumed stops after one iteration, which is
/// one EM step from the fitted model; from minus infinity it cannot stop there.
#[test]
fn resume_measures_the_first_change_from_the_earlier_lower_bound() {
    let truth = separated_truth(CovarianceType::Diag);
    let flat = draw(&truth, 900, 3);
    let x = points_from_rows(&flat, 3).unwrap();
    let settings = EmSettings {
        covariance_type: CovarianceType::Diag,
        ..EmSettings::new(3)
    };
    let first = fit(x, &settings, &mut |_| {}).unwrap();
    assert!(first.converged);
    let again = gmm_model::resume(
        first.model.clone(),
        first.lower_bound,
        x,
        &settings,
        &mut |_| {},
    )
    .unwrap();
    assert!(again.converged);
    assert_eq!(again.n_iter, 1);
    let (stepped, ll) = gmm_model::em_step(&first.model, x, settings.reg_covar, None).unwrap();
    assert_eq!(again.model, stepped);
    assert_eq!(again.lower_bound, ll);
    let cold = gmm_model::resume(first.model, f64::NEG_INFINITY, x, &settings, &mut |_| {});
    assert!(cold.unwrap().n_iter >= 2);
}
