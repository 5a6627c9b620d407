//! `gmm-stream score`: records equal the library's, and scikit-learn's, values.

use std::fs::File;
use std::io::BufReader;
use std::path::Path;

use gmm_io::{read_all, DecodeConfig, Format};
use gmm_model::{points_from_rows, GaussianMixture};
use serde_json::Value;

use super::support::*;

/// The points of a csv file, row-major, and their dimension, read by the library.
fn read_points(path: &Path) -> (Vec<f64>, usize) {
    let file = BufReader::new(File::open(path).expect("points"));
    let data = read_all(file, DecodeConfig::new(Format::Csv), false, "points").expect("valid");
    (data.values, data.dim)
}

fn score(model: &Path, input: &Path, extra: &[&str]) -> Run {
    let mut args = vec!["score", "-m", arg(model), "-i", arg(input)];
    args.extend_from_slice(extra);
    run(&args).ok()
}

/// log-densities and responsibilities of `records`.
fn columns(records: &[Value]) -> (Vec<f64>, Vec<f64>) {
    let log_density = records
        .iter()
        .map(|r| r["log_density"].as_f64().expect("log_density"))
        .collect();
    let resp = records
        .iter()
        .flat_map(|r| f64s(&r["responsibilities"]))
        .collect();
    (log_density, resp)
}

fn library_scores(model: &GaussianMixture, points: &[f64], d: usize) -> (Vec<f64>, Vec<f64>) {
    let x = points_from_rows(points, d).expect("points");
    let log_density = model.score_samples(x).expect("scores");
    let resp = model.predict_proba(x).expect("responsibilities");
    (log_density, resp.as_slice().to_vec())
}

#[test]
fn records_equal_the_library_bit_for_bit() {
    let points_path = reference("cli_points.csv");
    let (points, d) = read_points(&points_path);
    for t in COVARIANCE_TYPES {
        let model_path = reference(&format!("cli_{t}.model.json"));
        let records = records(&score(&model_path, &points_path, &[]).stdout);
        assert_eq!(records.len(), points.len() / d, "{t}: one record per point");
        let (log_density, resp) = columns(&records);
        let (lib_density, lib_resp) = library_scores(&load(&model_path).1, &points, d);
        assert_eq!(log_density, lib_density, "{t}: log_density");
        assert_eq!(resp, lib_resp, "{t}: responsibilities");
        let k = load(&model_path).1.n_components();
        for (j, r) in records.iter().enumerate() {
            let row = &resp[j * k..(j + 1) * k];
            let best = (0..k).fold(0, |b, i| if row[i] > row[b] { i } else { b });
            assert_eq!(r["cluster"].as_u64(), Some(best as u64), "{t}: point {j}");
            assert!(r.get("anomaly").is_none(), "no threshold, no flag");
        }
    }
}

/// `docs/reference.md`, "Commands": log_density equals scikit-learn's score_samples for the same
/// parameters to 1e-9 relative; responsibilities and clusters agree too.
#[test]
fn records_agree_with_scikit_learn() {
    let points = reference("cli_points.csv");
    for t in COVARIANCE_TYPES {
        let expected: Value = serde_json::from_slice(
            &std::fs::read(reference(&format!("cli_{t}.expected.json"))).expect("reference"),
        )
        .expect("JSON");
        let records =
            records(&score(&reference(&format!("cli_{t}.model.json")), &points, &[]).stdout);
        let (log_density, resp) = columns(&records);
        let rel = max_rel(&log_density, &f64s(&expected["score_samples"]));
        assert!(rel < 1e-9, "{t}: score_samples differ by {rel:e} relative");
        let sk_resp: Vec<f64> = expected["predict_proba"]
            .as_array()
            .expect("rows")
            .iter()
            .flat_map(f64s)
            .collect();
        let abs = resp
            .iter()
            .zip(&sk_resp)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f64::max);
        assert!(abs < 1e-9, "{t}: predict_proba differs by {abs:e}");
        let clusters: Vec<u64> = records
            .iter()
            .filter_map(|r| r["cluster"].as_u64())
            .collect();
        let sk_clusters: Vec<u64> = expected["predict"]
            .as_array()
            .expect("labels")
            .iter()
            .filter_map(Value::as_u64)
            .collect();
        assert_eq!(clusters, sk_clusters, "{t}: predict");
        eprintln!("{t}: score_samples within {rel:.1e} relative, predict_proba within {abs:.1e}");
    }
}

#[test]
fn csv_output_carries_the_same_numbers() {
    let points = reference("cli_points.csv");
    let model = reference("cli_diag.model.json");
    let ndjson = records(&score(&model, &points, &[]).stdout);
    let csv = score(&model, &points, &["--output-format", "csv"]).stdout_text();
    let mut lines = csv.lines();
    assert_eq!(
        lines.next(),
        Some("log_density,cluster,resp_0,resp_1,resp_2")
    );
    let rows: Vec<Vec<f64>> = lines
        .map(|l| l.split(',').map(|v| v.parse().expect("a number")).collect())
        .collect();
    assert_eq!(rows.len(), ndjson.len());
    for (row, rec) in rows.iter().zip(&ndjson) {
        assert_eq!(Some(row[0]), rec["log_density"].as_f64());
        assert_eq!(Some(row[1] as u64), rec["cluster"].as_u64());
        assert_eq!(row[2..].to_vec(), f64s(&rec["responsibilities"]));
    }
}

#[test]
fn a_threshold_adds_the_anomaly_flag() {
    let dir = tempdir();
    let points = reference("cli_points.csv");
    let mut model: Value =
        serde_json::from_slice(&std::fs::read(reference("cli_full.model.json")).expect("model"))
            .expect("JSON");
    let threshold = -8.0;
    model["anomaly_threshold"] = threshold.into();
    let model_path = write(dir.path(), "m.json", model.to_string());
    let records = records(&score(&model_path, &points, &[]).stdout);
    let flagged = records.iter().filter(|r| r["anomaly"] == true).count();
    assert!(flagged > 0 && flagged < records.len(), "{flagged} flagged");
    for r in &records {
        let below = r["log_density"].as_f64().expect("number") < threshold;
        assert_eq!(r["anomaly"].as_bool(), Some(below));
    }
    let csv = score(&model_path, &points, &["--output-format", "csv"]).stdout_text();
    assert!(csv.starts_with("log_density,cluster,resp_0,resp_1,resp_2,anomaly\n"));
    let csv_flags = csv.lines().skip(1).filter(|l| l.ends_with(",true")).count();
    assert_eq!(csv_flags, flagged);
}

#[test]
fn binary_stdin_takes_the_model_dimension_and_output_can_be_a_file() {
    let dir = tempdir();
    let points_path = reference("cli_points.csv");
    let (points, _) = read_points(&points_path);
    let raw: Vec<u8> = points.iter().flat_map(|v| v.to_le_bytes()).collect();
    let model = reference("cli_tied.model.json");
    let out = dir.path().join("scores.ndjson");
    let r = run_with_stdin(
        &[
            "score",
            "-m",
            arg(&model),
            "-i",
            "-",
            "--format",
            "f64le",
            "-o",
            arg(&out),
        ],
        &raw,
    )
    .ok();
    assert!(r.stdout.is_empty());
    let from_file = std::fs::read(&out).expect("output file");
    assert_eq!(from_file, score(&model, &points_path, &[]).stdout);
}

/// Larger than the chunk `score` streams by: chunk boundaries do not change a bit.
#[test]
fn streaming_in_chunks_changes_nothing() {
    let dir = tempdir();
    let model_path = reference("cli_full.model.json");
    let sample = run(&[
        "sample",
        "-m",
        arg(&model_path),
        "--n",
        "40000",
        "--seed",
        "5",
    ])
    .ok();
    let input = write(dir.path(), "many.csv", &sample.stdout);
    let (points, d) = read_points(&input);
    let (log_density, resp) = columns(&records(&score(&model_path, &input, &[]).stdout));
    let (lib_density, lib_resp) = library_scores(&load(&model_path).1, &points, d);
    assert_eq!(log_density.len(), 40000);
    assert!(log_density == lib_density && resp == lib_resp);
}

#[test]
fn skipped_points_have_no_record() {
    let dir = tempdir();
    let input = write(dir.path(), "p.csv", "1,2,3\n4,5\n1,nan,2\n7,8,9\n");
    let model = reference("cli_spherical.model.json");
    let r = score(&model, &input, &["--skip-invalid"]);
    assert_eq!(records(&r.stdout).len(), 2);
    assert!(
        r.stderr.contains("skipped 2 invalid points"),
        "{}",
        r.stderr
    );
}
