//! Agreement with scikit-learn's `GaussianMixture`, on the cases that
//! `tests/reference/make_reference.py` (at the workspace root) writes into
//! `tests/reference/data/` (see the README there to regenerate them).
//!
//! Each case is a data set and, per covariance type, an EM run from a given start with
//! `tol = 0` and a fixed number of iterations. We check, as `docs/reference.md` promises:
//! the fitted weights, means and covariances to 1e-8 relative, the lower bound of every
//! iteration to 1e-8 relative, and `score_samples` on held-out points to 1e-9 relative.
//!
//! What "relative" means here. A plain |a − b| / |b| explodes on entries that are
//! near zero by accident (an off-diagonal covariance, a mean coordinate near the
//! origin, a log-density crossing 0), though nothing is wrong there. So every entry is
//! compared as |a − b| ≤ tol · max(|b|, s) with s the natural scale of that entry:
//! - covariance entry (i, j): s = sqrt(Σ_ii Σ_jj), so off-diagonals are held to 1e-8 in
//!   correlation units and variances (where s = |b|) are purely relative;
//! - mean coordinate i of component k: s = the component's standard deviation in that
//!   coordinate, i.e. a location error measured in the spread it is a location of
//!   (this also makes the check translation invariant: for the cases shifted by 1e6 we
//!   compare `mean − shift`, which is exact to form, against scikit-learn's centred
//!   answer, instead of a 1e-8·1e6 = 1e-2 slack that would hide any loss of digits);
//! - weights, lower bounds, log-densities: s = the RMS of the expected array.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use gmm_model::{
    fit, points_from_rows, CovarianceType, Covariances, EmSettings, GaussianMixture, Start,
};
use nalgebra::{DMatrix, DVector};
use serde_json::Value;

const PARAM_TOL: f64 = 1e-8;
const LOWER_BOUND_TOL: f64 = 1e-8;
const SCORE_TOL: f64 = 1e-9;

/// The reference data live at the workspace root, beside the script that makes them.
fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/reference/data")
}

fn case_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(data_dir())
        .expect("tests/reference/data exists (run tests/reference/make_reference.py)")
        .map(|e| e.expect("readable directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    files
}

fn f64s(v: &Value) -> Vec<f64> {
    v.as_array()
        .expect("an array")
        .iter()
        .map(|x| x.as_f64().expect("a number"))
        .collect()
}

/// A `[K][d]` JSON array as rows.
fn rows(v: &Value) -> Vec<Vec<f64>> {
    v.as_array()
        .expect("an array of arrays")
        .iter()
        .map(f64s)
        .collect()
}

fn square(v: &Value) -> DMatrix<f64> {
    let r = rows(v);
    DMatrix::from_fn(r.len(), r.len(), |i, j| r[i][j])
}

/// scikit-learn's covariances_ layout into ours.
fn covariances_from_json(cov_type: CovarianceType, v: &Value, d: usize) -> Covariances {
    match cov_type {
        CovarianceType::Full => {
            Covariances::Full(v.as_array().unwrap().iter().map(square).collect())
        }
        CovarianceType::Diag => {
            let r = rows(v);
            Covariances::Diag(DMatrix::from_fn(d, r.len(), |i, k| r[k][i]))
        }
        CovarianceType::Spherical => Covariances::Spherical(DVector::from_vec(f64s(v))),
        CovarianceType::Tied => Covariances::Tied(square(v)),
    }
}

/// `[K][d]` means, each translated by `offset`, as a d×K matrix.
fn means_from_rows(r: &[Vec<f64>], offset: f64) -> DMatrix<f64> {
    DMatrix::from_fn(r[0].len(), r.len(), |i, k| r[k][i] + offset)
}

/// The variance of component k in coordinate i.
fn variance(cov: &Covariances, k: usize, i: usize) -> f64 {
    match cov {
        Covariances::Full(m) => m[k][(i, i)],
        Covariances::Diag(m) => m[(i, k)],
        Covariances::Spherical(v) => v[k],
        Covariances::Tied(m) => m[(i, i)],
    }
}

fn rms(v: &[f64]) -> f64 {
    (v.iter().map(|x| x * x).sum::<f64>() / v.len() as f64).sqrt()
}

/// Collects every comparison: the worst error per check (in units of its tolerance's
/// scale, i.e. |a − b| / max(|b|, s)) and every failure with its location.
#[derive(Default)]
struct Comparisons {
    /// Keyed by check and by whether the case is shifted far from the origin.
    worst: BTreeMap<String, (f64, String)>,
    group: &'static str,
    failures: Vec<String>,
}

impl Comparisons {
    #[allow(clippy::too_many_arguments)]
    fn check(
        &mut self,
        check: &'static str,
        tol: f64,
        what: &str,
        index: &str,
        got: f64,
        want: f64,
        scale: f64,
    ) {
        let err = (got - want).abs() / want.abs().max(scale);
        // A NaN anywhere is the worst possible error, never a pass.
        let err = if err.is_nan() { f64::INFINITY } else { err };
        let ok = err <= tol;
        let location = format!("{what}{index}");
        let key = format!("{check} ({})", self.group);
        let entry = self.worst.entry(key).or_insert((-1.0, String::new()));
        if err > entry.0 {
            *entry = (err, location.clone());
        }
        if !ok {
            self.failures.push(format!(
                "{location}: got {got:e}, expected {want:e} (scikit-learn), \
                 relative error {err:.3e} > {tol:e} (scale {scale:e})"
            ));
        }
    }
}

#[test]
fn matches_scikit_learn_on_every_reference_case() {
    let files = case_files();
    // The generator writes eight data sets; fewer means the data went missing.
    assert!(
        files.len() >= 8,
        "only {} reference cases in {:?}",
        files.len(),
        data_dir()
    );
    let mut cmp = Comparisons::default();
    let mut n_fits = 0;
    for path in &files {
        let text = std::fs::read_to_string(path).unwrap();
        let case: Value = serde_json::from_str(&text).unwrap();
        let name = case["name"].as_str().unwrap();
        let d = case["n_features"].as_u64().unwrap() as usize;
        let k = case["n_components"].as_u64().unwrap() as usize;
        let shift = case["shift"].as_f64().unwrap();
        cmp.group = if shift == 0.0 {
            "near origin"
        } else {
            "shifted"
        };
        let x_flat = f64s(&case["X"]);
        let x = points_from_rows(&x_flat, d).unwrap();
        assert_eq!(
            x.ncols(),
            case["n_samples"].as_u64().unwrap() as usize,
            "{name}"
        );
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

            compare_covariances(&mut cmp, &ctx, model.covariances(), &want_cov, d, k);

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
    println!(
        "{n_fits} fits in {} cases; worst |a - b| / max(|b|, scale) per check:",
        files.len()
    );
    for (check, (err, location)) in &cmp.worst {
        println!("  {check:45} {err:.3e}  at {location}");
    }
    if !cmp.failures.is_empty() {
        let shown: Vec<&str> = cmp.failures.iter().take(30).map(String::as_str).collect();
        panic!(
            "{} comparisons with scikit-learn failed (first {} shown):\n{}",
            cmp.failures.len(),
            shown.len(),
            shown.join("\n")
        );
    }
}

fn compare_covariances(
    cmp: &mut Comparisons,
    ctx: &str,
    got: &Covariances,
    want: &Covariances,
    d: usize,
    k: usize,
) {
    let what = format!("{ctx}: covariances");
    let mut matrix = |label: String, g: &DMatrix<f64>, w: &DMatrix<f64>| {
        for i in 0..d {
            for j in 0..d {
                let scale = (w[(i, i)] * w[(j, j)]).sqrt();
                cmp.check(
                    "covariances",
                    PARAM_TOL,
                    &what,
                    &format!("{label}[{i}][{j}]"),
                    g[(i, j)],
                    w[(i, j)],
                    scale,
                );
            }
        }
    };
    match (got, want) {
        (Covariances::Full(g), Covariances::Full(w)) => {
            for kk in 0..k {
                matrix(format!("[{kk}]"), &g[kk], &w[kk]);
            }
        }
        (Covariances::Tied(g), Covariances::Tied(w)) => matrix(String::new(), g, w),
        (Covariances::Diag(g), Covariances::Diag(w)) => {
            for kk in 0..k {
                for i in 0..d {
                    // Variances: purely relative.
                    let (a, b) = (g[(i, kk)], w[(i, kk)]);
                    cmp.check(
                        "covariances",
                        PARAM_TOL,
                        &what,
                        &format!("[{kk}][{i}]"),
                        a,
                        b,
                        b.abs(),
                    );
                }
            }
        }
        (Covariances::Spherical(g), Covariances::Spherical(w)) => {
            for kk in 0..k {
                cmp.check(
                    "covariances",
                    PARAM_TOL,
                    &what,
                    &format!("[{kk}]"),
                    g[kk],
                    w[kk],
                    w[kk].abs(),
                );
            }
        }
        _ => panic!(
            "{ctx}: the fit returned {} covariances",
            got.covariance_type()
        ),
    }
}
