//! `gmm-stream fit --bayesian`: from the responsibilities of `--init-model`, with
//! `--tol 0 --max-iter N` and the prior flags, the posterior in the model file agrees
//! with scikit-learn's BayesianGaussianMixture (the cases of
//! `tests/reference/bayesian/`, see `tests/reference_bayesian.rs` for the library's
//! own check, entry by entry), and `inspect` reports the effective components.

use std::path::Path;

use gmm_io::{BatchInfo, EstimatorInfo, ModelFile};
use gmm_model::{CovarianceType, Covariances, GaussianMixture};
use nalgebra::{DMatrix, DVector};
use serde_json::Value;

use super::support::*;

/// Every number of a JSON value (nested arrays flattened), in order.
fn numbers(v: &Value) -> Vec<f64> {
    match v {
        Value::Number(n) => vec![n.as_f64().expect("a number")],
        Value::Array(a) => a.iter().flat_map(numbers).collect(),
        other => panic!("not numbers: {other}"),
    }
}

/// `|a − b| <= tol · max(|b|, rms(b))` for every entry.
fn assert_close(what: &str, got: &[f64], want: &[f64], tol: f64) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    let rms = (want.iter().map(|x| x * x).sum::<f64>() / want.len() as f64).sqrt();
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        let err = (g - w).abs() / w.abs().max(rms);
        assert!(
            err <= tol,
            "{what}[{i}]: {g} against scikit-learn's {w} ({err:e})"
        );
    }
}

fn start_file(fit: &Value, d: usize) -> ModelFile {
    let cov_type: CovarianceType = fit["covariance_type"].as_str().unwrap().parse().unwrap();
    let start = &fit["start"];
    let rows = |v: &Value| -> Vec<Vec<f64>> { v.as_array().unwrap().iter().map(numbers).collect() };
    let means = rows(&start["means"]);
    let k = means.len();
    let c = &start["covariances"];
    let square = |v: &Value| {
        let r = rows(v);
        DMatrix::from_fn(d, d, |i, j| r[i][j])
    };
    let covariances = match cov_type {
        CovarianceType::Full => {
            Covariances::Full(c.as_array().unwrap().iter().map(square).collect())
        }
        CovarianceType::Tied => Covariances::Tied(square(c)),
        CovarianceType::Diag => {
            let r = rows(c);
            Covariances::Diag(DMatrix::from_fn(d, k, |i, j| r[j][i]))
        }
        CovarianceType::Spherical => Covariances::Spherical(DVector::from_vec(numbers(c))),
    };
    let model = GaussianMixture::new(
        DVector::from_vec(numbers(&start["weights"])),
        DMatrix::from_fn(d, k, |i, j| means[j][i]),
        covariances,
    )
    .expect("a valid start");
    let info = BatchInfo {
        max_iter: 0,
        tol: 0.0,
        reg_covar: 1e-6,
        n_init: 1,
        init: "model".into(),
        seed: 0,
        converged: false,
        n_iter: 0,
        lower_bound: None,
    };
    ModelFile::new(
        &model,
        EstimatorInfo::Batch(info),
        "2026-12-01T00:00:00Z".into(),
    )
}

/// The prior flags of a fit (the mean prior is stored relative to the shift).
fn prior_flags(given: &Value, shift: f64) -> Vec<String> {
    let mut flags = Vec::new();
    let list = |v: &[f64]| {
        v.iter()
            .map(|x| format!("{x}"))
            .collect::<Vec<_>>()
            .join(",")
    };
    for (key, flag) in [
        ("weight_concentration_prior", "--weight-concentration-prior"),
        ("mean_precision_prior", "--mean-precision-prior"),
        ("degrees_of_freedom_prior", "--degrees-of-freedom-prior"),
        ("covariance_prior", "--covariance-prior"),
    ] {
        if let Some(v) = given.get(key) {
            flags.push(format!("{flag}={}", list(&numbers(v))));
        }
    }
    if let Some(v) = given.get("mean_prior") {
        let shifted: Vec<f64> = numbers(v).iter().map(|x| x + shift).collect();
        flags.push(format!("--mean-prior={}", list(&shifted)));
    }
    flags
}

fn check_case(name: &str) {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/reference/bayesian/{name}.json"));
    let case: Value =
        serde_json::from_slice(&std::fs::read(path).expect("the case")).expect("JSON");
    let d = case["n_features"].as_u64().unwrap() as usize;
    let shift = case["shift"].as_f64().unwrap();
    let x = numbers(&case["X"]);
    let dir = tempdir();
    let csv: String = x
        .chunks(d)
        .map(|p| {
            p.iter()
                .map(|v| format!("{v}"))
                .collect::<Vec<_>>()
                .join(",")
                + "\n"
        })
        .collect();
    let data = write(dir.path(), "x.csv", csv);
    for (i, fit) in case["fits"].as_array().unwrap().iter().enumerate() {
        let ctx = format!(
            "{name}/{}/{}",
            fit["covariance_type"].as_str().unwrap(),
            fit["weight_concentration_prior_type"].as_str().unwrap()
        );
        let start = write(
            dir.path(),
            &format!("start{i}.json"),
            start_file(fit, d).to_json().unwrap(),
        );
        let out = dir.path().join(format!("fit{i}.json"));
        let kind = fit["weight_concentration_prior_type"]
            .as_str()
            .unwrap()
            .replace('_', "-");
        let n_iter = fit["n_iter"].to_string();
        let mut args: Vec<String> = [
            "fit",
            "-i",
            arg(&data),
            "--init-model",
            arg(&start),
            "--tol",
            "0",
            "--max-iter",
            &n_iter,
            "--bayesian",
            &kind,
            "--quiet",
            "-o",
            arg(&out),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.extend(prior_flags(&fit["priors_given"], shift));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run(&args).ok();
        let file: Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
        let exp = &fit["expected"];
        assert_close(
            &format!("{ctx}: weights"),
            &numbers(&file["weights"]),
            &numbers(&exp["weights"]),
            1e-8,
        );
        let centred: Vec<f64> = numbers(&file["means"]).iter().map(|m| m - shift).collect();
        assert_close(
            &format!("{ctx}: means"),
            &centred,
            &numbers(&exp["means_centred"]),
            1e-8,
        );
        assert_close(
            &format!("{ctx}: covariances"),
            &numbers(&file["covariances"]),
            &numbers(&exp["covariances"]),
            1e-8,
        );
        let b = &file["bayesian"];
        for key in [
            "weight_concentration",
            "mean_precision",
            "degrees_of_freedom",
        ] {
            assert_close(
                &format!("{ctx}: {key}"),
                &numbers(&b[key]),
                &numbers(&exp[key]),
                1e-8,
            );
        }
        assert_eq!(
            b["weight_concentration_prior_type"], fit["weight_concentration_prior_type"],
            "{ctx}"
        );
    }
}

#[test]
fn a_bayesian_fit_from_an_init_model_matches_scikit_learn() {
    check_case("iris_k6_sparse");
    check_case("blobs_shifted_d3_k6");
}

#[test]
fn inspect_shows_the_effective_number_of_components() {
    let dir = tempdir();
    let csv: String = two_clusters()
        .iter()
        .map(|p| format!("{},{}\n", p[0], p[1]))
        .collect();
    let data = write(dir.path(), "x.csv", csv);
    let out = dir.path().join("m.json");
    run(&[
        "fit",
        "-i",
        arg(&data),
        "-k",
        "6",
        "--bayesian",
        "dirichlet-process",
        "--weight-concentration-prior",
        "0.001",
        "--max-iter",
        "500",
        "--quiet",
        "-o",
        arg(&out),
    ])
    .ok();
    let text = run(&["inspect", arg(&out)]).ok().stdout_text();
    assert!(text.contains("effective components 2 of 6"), "{text}");
    let json: Value =
        serde_json::from_slice(&run(&["inspect", arg(&out), "--json"]).ok().stdout).unwrap();
    assert_eq!(json["effective_components"], 2, "{json}");
    assert_eq!(
        json["bayesian"]["weight_concentration_prior_type"],
        "dirichlet_process"
    );
}
