//! Agreement with scikit-learn's `GaussianMixture`, on the cases that
//! `tests/reference/make_reference.py` writes into `tests/reference/data/` (see the
//! README there to regenerate them).
//!
//! Each case is a data set and, per covariance type, an EM run from a given start with
//! `tol = 0` and a fixed number of iterations. We check, as the contract promises:
//! the fitted weights, means and covariances to 1e-8 relative, the lower bound of every
//! iteration to 1e-8 relative, and `score_samples` on held-out points to 1e-9 relative.
//!
//! "Relative" is in the sense of `reference_support`: every entry on its natural scale.

mod reference_support;

use gmm_model::{fit, points_from_rows, CovarianceType, EmSettings, GaussianMixture, Start};
use nalgebra::DVector;
use reference_support::{
    case_files, covariances_from_json, f64s, means_from_rows, rms, rows, variance, Case,
    Comparisons,
};

const PARAM_TOL: f64 = 1e-8;
const LOWER_BOUND_TOL: f64 = 1e-8;
const SCORE_TOL: f64 = 1e-9;

#[test]
fn matches_scikit_learn_on_every_reference_case() {
    let files = case_files("data");
    // The generator writes eight data sets; fewer means the data went missing.
    assert!(files.len() >= 8, "only {} reference cases", files.len());
    let mut cmp = Comparisons::default();
    let mut n_fits = 0;
    for path in &files {
        let c = Case::read(path);
        let (case, name, d, k, shift) = (&c.json, c.name.as_str(), c.d, c.k, c.shift);
        cmp.group = c.group();
        let x = points_from_rows(&c.x, d).unwrap();
        let held_flat = f64s(&case["held_out"]);
        let held = points_from_rows(&held_flat, d).unwrap();
        let fits = case["fits"].as_array().unwrap();
        assert_eq!(fits.len(), 4, "{name}: one fit per covariance type");
        for f in fits {
            n_fits += 1;
            let cov_type: CovarianceType = f["covariance_type"].as_str().unwrap().parse().unwrap();
            let ctx = format!("{name}/{cov_type}");
            let n_iter = f["n_iter"].as_u64().unwrap() as usize;
            let reg_covar = f["reg_covar"].as_f64().unwrap();
            let start = &f["start"];
            let start_model = GaussianMixture::new(
                DVector::from_vec(f64s(&start["weights"])),
                means_from_rows(&rows(&start["means"]), 0.0),
                covariances_from_json(cov_type, &start["covariances"], d),
            )
            .unwrap_or_else(|e| panic!("{ctx}: start model refused: {e}"));
            let settings = EmSettings {
                covariance_type: cov_type,
                max_iter: n_iter,
                tol: 0.0,
                reg_covar,
                start: Start::Model(start_model),
                ..EmSettings::new(k)
            };
            let report =
                fit(x, &settings, &mut |_| {}).unwrap_or_else(|e| panic!("{ctx}: fit failed: {e}"));
            assert_eq!(report.n_iter, n_iter, "{ctx}: iterations run");
            assert_eq!(report.history.len(), n_iter, "{ctx}: history length");

            let exp = &f["expected"];
            let want_cov = covariances_from_json(cov_type, &exp["covariances"], d);
            let model = &report.model;

            let want_w = f64s(&exp["weights"]);
            let w_scale = rms(&want_w);
            for (i, &w) in want_w.iter().enumerate() {
                let got = model.weights()[i];
                cmp.check(
                    "weights",
                    PARAM_TOL,
                    &format!("{ctx}: weights"),
                    &format!("[{i}]"),
                    got,
                    w,
                    w_scale,
                );
            }

            let want_means = rows(&exp["means_centred"]);
            for (kk, row) in want_means.iter().enumerate() {
                for (i, &m) in row.iter().enumerate() {
                    // Exact (Sterbenz) for the shifted cases: both are near `shift`.
                    let got = model.means()[(i, kk)] - shift;
                    let sd = variance(&want_cov, kk, i).sqrt();
                    cmp.check(
                        "means",
                        PARAM_TOL,
                        &format!("{ctx}: means"),
                        &format!("[{kk}][{i}]"),
                        got,
                        m,
                        sd,
                    );
                }
            }

            cmp.check_covariances(PARAM_TOL, &ctx, model.covariances(), &want_cov, d, k);

            let want_lb = f64s(&exp["lower_bounds"]);
            let lb_scale = rms(&want_lb);
            for (i, (&got, &want)) in report.history.iter().zip(&want_lb).enumerate() {
                cmp.check(
                    "lower bounds",
                    LOWER_BOUND_TOL,
                    &format!("{ctx}: lower_bounds"),
                    &format!("[{i}] (iteration {})", i + 1),
                    got,
                    want,
                    lb_scale,
                );
            }
            assert_eq!(report.lower_bound, *report.history.last().unwrap(), "{ctx}");

            let want_score = f64s(&exp["score_samples_held_out"]);
            let score_scale = rms(&want_score);
            // Under the parameters we fitted: the whole chain.
            let got_score = model.score_samples(held).unwrap();
            // Under scikit-learn's fitted parameters: the log-density kernel alone.
            let sk_model = GaussianMixture::new(
                DVector::from_vec(want_w.clone()),
                means_from_rows(&want_means, shift),
                want_cov.clone(),
            )
            .unwrap_or_else(|e| panic!("{ctx}: scikit-learn's fitted model refused: {e}"));
            let sk_score = sk_model.score_samples(held).unwrap();
            assert_eq!(got_score.len(), want_score.len(), "{ctx}");
            for (j, &want) in want_score.iter().enumerate() {
                let idx = format!("[{j}]");
                cmp.check(
                    "score_samples (fitted model)",
                    SCORE_TOL,
                    &format!("{ctx}: score_samples_held_out under our fit"),
                    &idx,
                    got_score[j],
                    want,
                    score_scale,
                );
                cmp.check(
                    "score_samples (sklearn params)",
                    SCORE_TOL,
                    &format!("{ctx}: score_samples_held_out under scikit-learn's parameters"),
                    &idx,
                    sk_score[j],
                    want,
                    score_scale,
                );
            }
            // Model selection: the same parameter count and criteria as scikit-learn.
            for (check, got, key) in [
                ("bic (sklearn params)", sk_model.bic(held), "bic_held_out"),
                ("aic (sklearn params)", sk_model.aic(held), "aic_held_out"),
            ] {
                let want = exp[key].as_f64().expect(key);
                let got = got.unwrap_or_else(|e| panic!("{ctx}: {key}: {e}"));
                cmp.check(
                    check,
                    SCORE_TOL,
                    &format!("{ctx}: {key}"),
                    "",
                    got,
                    want,
                    1.0,
                );
            }
        }
    }
    cmp.finish(&format!("{n_fits} fits in {} cases", files.len()));
}
