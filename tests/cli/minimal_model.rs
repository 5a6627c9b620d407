//! A model file with the mixture fields only (format, version, covariance_type,
//! n_components, n_features, weights, means, covariances), as another tool writes
//! it, works in every command that reads a model; so does one whose `estimator`
//! is an empty object. Each command must do with it exactly what it does with the
//! full file the mixture came from.

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::support::*;

const MIXTURE_FIELDS: [&str; 8] = [
    "format",
    "version",
    "covariance_type",
    "n_components",
    "n_features",
    "weights",
    "means",
    "covariances",
];

/// The reference model of `kind` and, beside it in `dir`, its mixture fields alone
/// and those plus `"estimator": {}`.
fn minimal_models(dir: &Path, kind: &str) -> (PathBuf, [PathBuf; 2]) {
    let full = reference(&format!("cli_{kind}.model.json"));
    let text = std::fs::read_to_string(&full).expect("reference model");
    let Value::Object(all) = serde_json::from_str::<Value>(&text).expect("JSON") else {
        panic!("a model file is an object");
    };
    assert!(all.contains_key("estimator") && all.contains_key("points_seen"));
    let mut minimal = serde_json::Map::new();
    for key in MIXTURE_FIELDS {
        minimal.insert(key.to_owned(), all[key].clone());
    }
    let bare = dir.join(format!("{kind}.minimal.json"));
    std::fs::write(&bare, Value::Object(minimal.clone()).to_string()).expect("write");
    minimal.insert("estimator".to_owned(), serde_json::json!({}));
    let empty = dir.join(format!("{kind}.empty-estimator.json"));
    std::fs::write(&empty, Value::Object(minimal).to_string()).expect("write");
    (full, [bare, empty])
}

#[test]
fn score_gives_the_full_files_records() {
    let dir = tempdir();
    let points = reference("cli_points.csv");
    for kind in ["full", "diag", "spherical", "tied"] {
        let (full, minimal) = minimal_models(dir.path(), kind);
        let expected = run(&["score", "-m", arg(&full), "-i", arg(&points)]).ok();
        for m in &minimal {
            let got = run(&["score", "-m", arg(m), "-i", arg(&points)]).ok();
            assert!(!got.stdout.is_empty());
            assert_eq!(got.stdout, expected.stdout, "{}", m.display());
        }
    }
}

#[test]
fn fit_starts_from_a_minimal_model() {
    let dir = tempdir();
    let points = reference("cli_points.csv");
    let (full, minimal) = minimal_models(dir.path(), "diag");
    let fit = |init: &Path, out: &Path| {
        run(&[
            "fit",
            "-q",
            "-i",
            arg(&points),
            "-k",
            "3",
            "--covariance-type",
            "diag",
            "--max-iter",
            "5",
            "--tol",
            "0",
            "--init-model",
            arg(init),
            "-o",
            arg(out),
        ])
        .ok()
    };
    let reference_out = dir.path().join("from-full.json");
    fit(&full, &reference_out);
    let expected = load(&reference_out).1;
    for (i, m) in minimal.iter().enumerate() {
        let out = dir.path().join(format!("from-minimal-{i}.json"));
        fit(m, &out);
        assert_eq!(load(&out).1, expected, "{}", m.display());
    }
}

#[test]
fn inspect_says_what_the_file_does_not_record() {
    let dir = tempdir();
    let (_, minimal) = minimal_models(dir.path(), "tied");
    for m in &minimal {
        let text = run(&["inspect", arg(m)]).ok().stdout_text();
        assert!(text.contains("components         3"), "{text}");
        assert!(text.contains("estimator          not recorded"), "{text}");
        assert!(text.contains("updated at         not recorded"), "{text}");
        let json: Value =
            serde_json::from_slice(&run(&["inspect", "--json", arg(m)]).ok().stdout).expect("JSON");
        assert_eq!(json["points_seen"], 0);
        assert_eq!(json["components"].as_array().map(Vec::len), Some(3));
    }
}

#[test]
fn sample_draws_the_full_files_points() {
    let dir = tempdir();
    let (full, minimal) = minimal_models(dir.path(), "spherical");
    let expected = run(&["sample", "-m", arg(&full), "--n", "200", "--seed", "3"]).ok();
    for m in &minimal {
        let got = run(&["sample", "-m", arg(m), "--n", "200", "--seed", "3"]).ok();
        assert_eq!(got.stdout, expected.stdout, "{}", m.display());
    }
}

#[test]
fn plot_draws_the_full_files_picture() {
    let dir = tempdir();
    let points = reference("cli_points.csv");
    let (full, minimal) = minimal_models(dir.path(), "full");
    // The picture's title names the file: each model goes in as `model.json`.
    let svg = |model: &Path, name: &str| {
        let sub = dir.path().join(name);
        std::fs::create_dir(&sub).expect("mkdir");
        let copy = sub.join("model.json");
        std::fs::copy(model, &copy).expect("copy");
        let out = run(&[
            "plot",
            "--model",
            arg(&copy),
            "--data",
            arg(&points),
            "-o",
            "-",
        ])
        .ok();
        out.stdout_text()
    };
    let expected = svg(&full, "full");
    assert!(expected.contains("<svg") && expected.contains("model.json"));
    for (i, m) in minimal.iter().enumerate() {
        assert!(svg(m, &i.to_string()) == expected, "{}", m.display());
    }
}
