//! Agreement with scikit-learn's `BayesianGaussianMixture`, on the cases that
//! `tests/reference/make_bayesian_reference.py` writes into `tests/reference/bayesian/`
//! (real data shipped with scikit-learn, and data far from the origin; see the README
//! there to regenerate them).
//!
//! Each case is a data set and, per covariance type and weight prior, a variational
//! run from the responsibilities of a start model M (an E-step under M) with `tol = 0`
//! and N iterations. We check the posterior (`weights_`, `means_`, `covariances_`,
//! `weight_concentration_`, `mean_precision_`, `degrees_of_freedom_`) and the lower
//! bound of every iteration to 1e-8, the priors scikit-learn resolved from the data to
//! 1e-8, and the plug-in mixture's `score_samples` to 1e-9, relative in the sense of
//! `reference_support`.

mod reference_support;

use gmm_model::{
    fit_variational, points_from_rows, CovariancePrior, CovarianceType, EmSettings,
    GaussianMixture, PriorChoices, Start, VariationalSettings, WeightConcentration,
    WeightPriorType,
};
use nalgebra::{DMatrix, DVector};
use reference_support::{
    case_files, covariances_from_json, f64s, means_from_rows, rows, square, variance, Case,
    Comparisons,
};
use serde_json::Value;

const PARAM_TOL: f64 = 1e-8;
const SCORE_TOL: f64 = 1e-9;

/// A covariance prior as scikit-learn holds it, in our layout.
fn covariance_prior(cov_type: CovarianceType, v: &Value) -> CovariancePrior {
    match cov_type {
        CovarianceType::Full | CovarianceType::Tied => CovariancePrior::Matrix(square(v)),
        CovarianceType::Diag => CovariancePrior::Diagonal(DVector::from_vec(f64s(v))),
        CovarianceType::Spherical => CovariancePrior::Scalar(v.as_f64().expect("a number")),
    }
}

/// The explicit prior choices of a fit (the mean prior is stored relative to `shift`).
fn choices(cov_type: CovarianceType, given: &Value, shift: f64) -> PriorChoices {
    let number = |key: &str| given.get(key).map(|v| v.as_f64().expect(key));
    PriorChoices {
        weight_concentration: number("weight_concentration_prior"),
        mean_precision: number("mean_precision_prior"),
        mean: given
            .get("mean_prior")
            .map(|v| DVector::from_vec(f64s(v)).add_scalar(shift)),
        degrees_of_freedom: number("degrees_of_freedom_prior"),
        covariance: given
            .get("covariance_prior")
            .map(|v| covariance_prior(cov_type, v)),
    }
}

struct Fit<'a> {
    cmp: &'a mut Comparisons,
    ctx: String,
}

impl Fit<'_> {
    fn array(&mut self, check: &'static str, what: &str, got: &[f64], want: &[f64]) {
        let what = format!("{}: {what}", self.ctx);
        self.cmp.check_array(check, PARAM_TOL, &what, got, want);
    }
}

#[test]
fn matches_scikit_learn_bayesian_gaussian_mixture() {
    let files = case_files("bayesian");
    assert!(files.len() >= 5, "only {} reference cases", files.len());
    let mut cmp = Comparisons::default();
    let mut n_fits = 0;
    for path in &files {
        let c = Case::read(path);
        let (case, name, d, k, shift) = (&c.json, c.name.as_str(), c.d, c.k, c.shift);
        cmp.group = c.group();
        let x = points_from_rows(&c.x, d).unwrap();
        let fits = case["fits"].as_array().unwrap();
        assert_eq!(fits.len(), 8, "{name}: covariance types x weight priors");
        for f in fits {
            n_fits += 1;
            let cov_type: CovarianceType = f["covariance_type"].as_str().unwrap().parse().unwrap();
            let weight_prior: WeightPriorType = f["weight_concentration_prior_type"]
                .as_str()
                .unwrap()
                .parse()
                .unwrap();
            let ctx = format!("{name}/{cov_type}/{weight_prior}");
            let n_iter = f["n_iter"].as_u64().unwrap() as usize;
            let start = &f["start"];
            let start_model = GaussianMixture::new(
                DVector::from_vec(f64s(&start["weights"])),
                means_from_rows(&rows(&start["means"]), 0.0),
                covariances_from_json(cov_type, &start["covariances"], d),
            )
            .unwrap_or_else(|e| panic!("{ctx}: start model refused: {e}"));
            let settings = VariationalSettings {
                em: EmSettings {
                    covariance_type: cov_type,
                    max_iter: n_iter,
                    tol: 0.0,
                    reg_covar: f["reg_covar"].as_f64().unwrap(),
                    start: Start::Model(start_model),
                    ..EmSettings::new(k)
                },
                weight_prior,
                priors: choices(cov_type, &f["priors_given"], shift),
            };
            let report = fit_variational(x, &settings, &mut |_| {})
                .unwrap_or_else(|e| panic!("{ctx}: fit failed: {e}"));
            assert_eq!(report.n_iter, n_iter, "{ctx}: iterations run");
            let mut fit = Fit {
                cmp: &mut cmp,
                ctx: ctx.clone(),
            };
            check_priors(&mut fit, &report.prior, &f["priors_resolved"], shift);

            let exp = &f["expected"];
            let post = &report.posterior;
            let model = post.mixture();
            fit.array(
                "weights",
                "weights",
                model.weights().as_slice(),
                &f64s(&exp["weights"]),
            );
            let want_cov = covariances_from_json(cov_type, &exp["covariances"], d);
            let want_means = rows(&exp["means_centred"]);
            for (kk, row) in want_means.iter().enumerate() {
                for (i, &m) in row.iter().enumerate() {
                    // Exact (Sterbenz) for the shifted cases: both are near `shift`.
                    let got = model.means()[(i, kk)] - shift;
                    let sd = variance(&want_cov, kk, i).sqrt();
                    fit.cmp.check(
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
            fit.cmp
                .check_covariances(PARAM_TOL, &ctx, model.covariances(), &want_cov, d, k);
            match (&post.weight_concentration, &exp["weight_concentration"]) {
                (WeightConcentration::Process { a, b }, want) => {
                    let pair = want.as_array().expect("two arrays");
                    fit.array(
                        "weight_concentration",
                        "weight_concentration[0]",
                        a.as_slice(),
                        &f64s(&pair[0]),
                    );
                    fit.array(
                        "weight_concentration",
                        "weight_concentration[1]",
                        b.as_slice(),
                        &f64s(&pair[1]),
                    );
                }
                (WeightConcentration::Distribution(alpha), want) => {
                    fit.array(
                        "weight_concentration",
                        "weight_concentration",
                        alpha.as_slice(),
                        &f64s(want),
                    );
                }
            }
            fit.array(
                "mean_precision",
                "mean_precision",
                post.mean_precision.as_slice(),
                &f64s(&exp["mean_precision"]),
            );
            let want_dof = match &exp["degrees_of_freedom"] {
                // Tied: scikit-learn's one shared value.
                Value::Number(v) => vec![v.as_f64().unwrap(); k],
                v => f64s(v),
            };
            fit.array(
                "degrees_of_freedom",
                "degrees_of_freedom",
                post.degrees_of_freedom.as_slice(),
                &want_dof,
            );
            fit.array(
                "lower bounds",
                "lower_bounds",
                &report.history,
                &f64s(&exp["lower_bounds"]),
            );

            let want_score = f64s(&exp["score_samples"]);
            let got_score = model.score_samples(x).unwrap();
            fit.cmp.check_array(
                "score_samples (fitted posterior)",
                SCORE_TOL,
                &format!("{ctx}: score_samples"),
                &got_score,
                &want_score,
            );
            let sk_model = GaussianMixture::new(
                DVector::from_vec(f64s(&exp["weights"])),
                means_from_rows(&want_means, shift),
                want_cov.clone(),
            )
            .unwrap_or_else(|e| panic!("{ctx}: scikit-learn's posterior refused: {e}"));
            let sk_score = sk_model.score_samples(x).unwrap();
            fit.cmp.check_array(
                "score_samples (sklearn params)",
                SCORE_TOL,
                &format!("{ctx}: score_samples under scikit-learn's parameters"),
                &sk_score,
                &want_score,
            );
        }
    }
    cmp.finish(&format!(
        "{n_fits} variational fits in {} cases",
        files.len()
    ));
}

/// The priors resolved from the data and the choices, against scikit-learn's.
fn check_priors(fit: &mut Fit<'_>, got: &gmm_model::VariationalPrior, want: &Value, shift: f64) {
    for (what, g, key) in [
        (
            "weight_concentration_prior",
            got.weight_concentration,
            "weight_concentration_prior",
        ),
        (
            "mean_precision_prior",
            got.mean_precision,
            "mean_precision_prior",
        ),
        (
            "degrees_of_freedom_prior",
            got.degrees_of_freedom,
            "degrees_of_freedom_prior",
        ),
    ] {
        fit.array("priors", what, &[g], &[want[key].as_f64().unwrap()]);
    }
    let want_cov = &want["covariance_prior"];
    let cov = match &got.covariance {
        CovariancePrior::Matrix(m) => (m.clone(), square(want_cov)),
        CovariancePrior::Diagonal(v) => (
            DMatrix::from_diagonal(v),
            DMatrix::from_diagonal(&DVector::from_vec(f64s(want_cov))),
        ),
        CovariancePrior::Scalar(s) => (
            DMatrix::from_element(1, 1, *s),
            DMatrix::from_element(1, 1, want_cov.as_f64().unwrap()),
        ),
    };
    let scale: Vec<f64> = (0..cov.1.nrows()).map(|i| cov.1[(i, i)].sqrt()).collect();
    let ctx = fit.ctx.clone();
    for i in 0..cov.1.nrows() {
        for j in 0..cov.1.ncols() {
            fit.cmp.check(
                "priors",
                PARAM_TOL,
                &format!("{ctx}: covariance_prior"),
                &format!("[{i}][{j}]"),
                cov.0[(i, j)],
                cov.1[(i, j)],
                scale[i] * scale[j],
            );
        }
    }
    // The mean prior, relative to the shift (exact), on the scale of the data's spread.
    let want_mean = f64s(&want["mean_prior_centred"]);
    let spread = match &got.covariance {
        CovariancePrior::Matrix(m) => m.diagonal().iter().map(|v| v.sqrt()).collect::<Vec<_>>(),
        CovariancePrior::Diagonal(v) => v.iter().map(|v| v.sqrt()).collect(),
        CovariancePrior::Scalar(s) => vec![s.sqrt(); want_mean.len()],
    };
    for (i, &m) in want_mean.iter().enumerate() {
        fit.cmp.check(
            "priors",
            PARAM_TOL,
            &format!("{ctx}: mean_prior"),
            &format!("[{i}]"),
            got.mean[i] - shift,
            m,
            spread[i],
        );
    }
}
