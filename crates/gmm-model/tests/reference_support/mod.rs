//! What the scikit-learn reference tests share: reading the JSON cases of
//! `tests/reference/` and comparing numbers with a scale (see [`Comparisons`]).
//!
//! What "relative" means here. A plain |a − b| / |b| explodes on entries that are
//! near zero by accident (an off-diagonal covariance, a mean coordinate near the
//! origin, a log-density crossing 0), though nothing is wrong there. So every entry is
//! compared as |a − b| ≤ tol · max(|b|, s) with s the natural scale of that entry:
//! - covariance entry (i, j): s = sqrt(Σ_ii Σ_jj), so off-diagonals are held to the
//!   tolerance in correlation units and variances (where s = |b|) are purely relative;
//! - mean coordinate i of component k: s = the component's standard deviation in that
//!   coordinate, i.e. a location error measured in the spread it is a location of
//!   (this also makes the check translation invariant: for the cases shifted by 1e6 we
//!   compare `mean − shift`, which is exact to form, against scikit-learn's centred
//!   answer, instead of a 1e-8·1e6 = 1e-2 slack that would hide any loss of digits);
//! - weights, lower bounds, log-densities and other arrays: s = the RMS of the
//!   expected array.

#![allow(dead_code)] // Each test binary uses its own part of this module.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use gmm_model::{CovarianceType, Covariances};
use nalgebra::{DMatrix, DVector};
use serde_json::Value;

/// The JSON files of `tests/reference/<dir>` (at the workspace root, beside the
/// scripts that make them), sorted.
pub fn case_files(dir: &str) -> Vec<PathBuf> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/reference")
        .join(dir);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&path)
        .unwrap_or_else(|e| panic!("{path:?}: {e} (see tests/reference/README.md)"))
        .map(|e| e.expect("readable directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    files
}

/// One reference case: its JSON, and what every check needs from it.
pub struct Case {
    pub json: Value,
    pub name: String,
    pub d: usize,
    pub k: usize,
    /// 0, or the translation of the data far from the origin.
    pub shift: f64,
    /// `X`, row-major.
    pub x: Vec<f64>,
}

impl Case {
    pub fn read(path: &Path) -> Self {
        let text = std::fs::read_to_string(path).unwrap();
        let json: Value = serde_json::from_str(&text).unwrap();
        let name = json["name"].as_str().unwrap().to_owned();
        let d = json["n_features"].as_u64().unwrap() as usize;
        let k = json["n_components"].as_u64().unwrap() as usize;
        let shift = json["shift"].as_f64().unwrap();
        let x = f64s(&json["X"]);
        assert_eq!(
            x.len(),
            d * json["n_samples"].as_u64().unwrap() as usize,
            "{name}"
        );
        Self {
            json,
            name,
            d,
            k,
            shift,
            x,
        }
    }

    /// The comparison group: near the origin or shifted far from it.
    pub fn group(&self) -> &'static str {
        if self.shift == 0.0 {
            "near origin"
        } else {
            "shifted"
        }
    }
}

pub fn f64s(v: &Value) -> Vec<f64> {
    v.as_array()
        .expect("an array")
        .iter()
        .map(|x| x.as_f64().expect("a number"))
        .collect()
}

/// A `[K][d]` JSON array as rows.
pub fn rows(v: &Value) -> Vec<Vec<f64>> {
    v.as_array()
        .expect("an array of arrays")
        .iter()
        .map(f64s)
        .collect()
}

pub fn square(v: &Value) -> DMatrix<f64> {
    let r = rows(v);
    DMatrix::from_fn(r.len(), r.len(), |i, j| r[i][j])
}

/// scikit-learn's covariances_ layout into ours.
pub fn covariances_from_json(cov_type: CovarianceType, v: &Value, d: usize) -> Covariances {
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
pub fn means_from_rows(r: &[Vec<f64>], offset: f64) -> DMatrix<f64> {
    DMatrix::from_fn(r[0].len(), r.len(), |i, k| r[k][i] + offset)
}

/// The variance of component k in coordinate i.
pub fn variance(cov: &Covariances, k: usize, i: usize) -> f64 {
    match cov {
        Covariances::Full(m) => m[k][(i, i)],
        Covariances::Diag(m) => m[(i, k)],
        Covariances::Spherical(v) => v[k],
        Covariances::Tied(m) => m[(i, i)],
    }
}

pub fn rms(v: &[f64]) -> f64 {
    (v.iter().map(|x| x * x).sum::<f64>() / v.len() as f64).sqrt()
}

/// Collects every comparison: the worst error per check (in units of its tolerance's
/// scale, i.e. |a − b| / max(|b|, s)) and every failure with its location.
#[derive(Default)]
pub struct Comparisons {
    /// Keyed by check and by group (e.g. whether the case is shifted far from the
    /// origin).
    pub worst: BTreeMap<String, (f64, String)>,
    pub group: &'static str,
    pub failures: Vec<String>,
}

impl Comparisons {
    #[allow(clippy::too_many_arguments)]
    pub fn check(
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

    /// Every entry of `got` against `want`, on the scale of `want`'s RMS.
    pub fn check_array(
        &mut self,
        check: &'static str,
        tol: f64,
        what: &str,
        got: &[f64],
        want: &[f64],
    ) {
        assert_eq!(got.len(), want.len(), "{what}: lengths");
        let scale = rms(want);
        for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
            self.check(check, tol, what, &format!("[{i}]"), g, w, scale);
        }
    }

    /// Covariances entry by entry (see the module documentation for the scales).
    pub fn check_covariances(
        &mut self,
        tol: f64,
        ctx: &str,
        got: &Covariances,
        want: &Covariances,
        d: usize,
        k: usize,
    ) {
        let what = format!("{ctx}: covariances");
        let matrix = |cmp: &mut Self, label: String, g: &DMatrix<f64>, w: &DMatrix<f64>| {
            for i in 0..d {
                for j in 0..d {
                    let scale = (w[(i, i)] * w[(j, j)]).sqrt();
                    cmp.check(
                        "covariances",
                        tol,
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
                    matrix(self, format!("[{kk}]"), &g[kk], &w[kk]);
                }
            }
            (Covariances::Tied(g), Covariances::Tied(w)) => matrix(self, String::new(), g, w),
            (Covariances::Diag(g), Covariances::Diag(w)) => {
                for kk in 0..k {
                    for i in 0..d {
                        // Variances: purely relative.
                        let (a, b) = (g[(i, kk)], w[(i, kk)]);
                        self.check(
                            "covariances",
                            tol,
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
                    self.check(
                        "covariances",
                        tol,
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

    /// Prints the worst error per check and panics on any failure.
    pub fn finish(&self, summary: &str) {
        println!("{summary}; worst |a - b| / max(|b|, scale) per check:");
        for (check, (err, location)) in &self.worst {
            println!("  {check:45} {err:.3e}  at {location}");
        }
        if !self.failures.is_empty() {
            let shown: Vec<&str> = self.failures.iter().take(30).map(String::as_str).collect();
            panic!(
                "{} comparisons with scikit-learn failed (first {} shown):\n{}",
                self.failures.len(),
                shown.len(),
                shown.join("\n")
            );
        }
    }
}
