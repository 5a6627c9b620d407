//! Hostile inputs to the offline commands, from the reproductions of the issue
//! "Hostile input and hostile clients": huge finite values, points a model cannot
//! score, crafted and endless model files, and pictures of ±1e308. Every one ends
//! in bounded time with exit 0 or 2 and one clear sentence, never a panic or an
//! abort.

use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use super::support::*;

/// Runs the binary, killing it (and failing) if it takes longer than `limit`.
fn run_within(args: &[&str], limit: Duration) -> Run {
    let mut child: Child = command()
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary starts");
    let deadline = Instant::now() + limit;
    while child.try_wait().expect("poll").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("gmm-stream {args:?} still runs after {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().expect("output");
    Run {
        code: out.status.code().expect("exited, not killed by a signal"),
        stdout: out.stdout,
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

const QUICK: Duration = Duration::from_secs(60);

/// A model with one component of variance 1e-150 per coordinate: at 1e99 a
/// point's squared distance overflows f64 and its log-density is -inf.
fn narrow_model(dir: &Path) -> std::path::PathBuf {
    let text = r#"{"format":"gmm-stream.model","version":1,"covariance_type":"diag",
        "n_components":1,"n_features":2,"weights":[1.0],"means":[[0.0,0.0]],
        "covariances":[[1e-150,1e-150]],"points_seen":0,"model_version":0,
        "updated_at":"2026-01-01T00:00:00Z","estimator":{"kind":"batch","max_iter":1,
        "tol":0.0,"reg_covar":0.0,"n_init":1,"init":"kmeans","seed":0,"converged":true,
        "n_iter":1,"lower_bound":null}}"#;
    write(dir, "narrow.json", text)
}

/// A binary model file around `payload`, with a valid length and CRC-32.
fn binary_model(payload: &[u8]) -> Vec<u8> {
    let mut out = b"GMM-STREAM-MODEL".to_vec();
    out.extend_from_slice(&1u32.to_le_bytes());
    out.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    out.extend_from_slice(payload);
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

#[test]
fn coordinates_of_1e308_are_bad_input_for_fit_and_score() {
    let dir = tempdir();
    let mut text = csv_text(&two_clusters(), false);
    text.push_str("1e308,1e308\n");
    let data = write(dir.path(), "huge.csv", &text);
    let model = dir.path().join("m.json");
    run(&[
        "fit",
        "-i",
        arg(&data),
        "-k",
        "2",
        "-o",
        arg(&model),
        "--quiet",
    ])
    .bad_input(&["huge.csv", "line 201", "1e308", "beyond the bound"]);
    assert!(!model.exists());
    run(&[
        "fit",
        "-i",
        arg(&data),
        "-k",
        "2",
        "-o",
        arg(&model),
        "--quiet",
        "--skip-invalid",
    ]);
    assert!(model.exists(), "--skip-invalid fits the other points");
    let scored = run(&["score", "-m", arg(&model), "-i", arg(&data)]);
    let scored = scored.bad_input(&["line 201", "beyond the bound"]);
    assert!(!scored.stdout_text().contains("null"));
    let skipped = run(&[
        "score",
        "-m",
        arg(&model),
        "-i",
        arg(&data),
        "--skip-invalid",
    ]);
    assert_eq!(skipped.code, 0, "{}", skipped.stderr);
    assert_eq!(records(&skipped.stdout).len(), 200);
    assert!(
        skipped.stderr.contains("skipped 1 invalid point"),
        "{}",
        skipped.stderr
    );
}

#[test]
fn a_point_the_model_cannot_score_is_bad_input_never_a_null_score() {
    let dir = tempdir();
    let model = narrow_model(dir.path());
    let data = write(dir.path(), "p.csv", "0,0\n1,1\n1e99,1e99\n2,2\n");
    for format in ["ndjson", "csv"] {
        let outcome = run(&[
            "score",
            "-m",
            arg(&model),
            "-i",
            arg(&data),
            "--output-format",
            format,
        ]);
        let outcome = outcome.bad_input(&["p.csv", "line 3", "cannot score this point"]);
        let out = outcome.stdout_text();
        assert!(!out.contains("null") && !out.contains("inf"), "{out}");
    }
    let skipped = run(&[
        "score",
        "-m",
        arg(&model),
        "-i",
        arg(&data),
        "--skip-invalid",
    ])
    .ok();
    let records = records(&skipped.stdout);
    assert_eq!(records.len(), 3);
    for r in &records {
        assert!(r["log_density"].as_f64().is_some_and(f64::is_finite), "{r}");
        let total: f64 = f64s(&r["responsibilities"]).iter().sum();
        assert!((total - 1.0).abs() < 1e-12, "{r}");
    }
    assert!(
        skipped.stderr.contains("skipped 1 invalid point"),
        "{}",
        skipped.stderr
    );
}

#[cfg(unix)]
#[test]
fn inspect_dev_zero_is_refused_at_once() {
    let run = run_within(&["inspect", "/dev/zero"], QUICK);
    run.bad_input(&["/dev/zero", "not a gmm-stream model file"]);
}

#[test]
fn a_crafted_length_behind_a_valid_checksum_is_a_decode_error_not_an_abort() {
    let dir = tempdir();
    // The payload starts with the format string: declare 2^40 bytes of it.
    let mut payload = vec![0xFD];
    payload.extend_from_slice(&(1u64 << 40).to_le_bytes());
    payload.extend_from_slice(b"gmm-stream.model");
    let crafted = write(dir.path(), "crafted.bin", binary_model(&payload));
    // And a header that declares an exabyte of payload.
    let mut huge = b"GMM-STREAM-MODEL".to_vec();
    huge.extend_from_slice(&1u32.to_le_bytes());
    huge.extend_from_slice(&(1u64 << 60).to_le_bytes());
    huge.extend_from_slice(&[0u8; 64]);
    let declared = write(dir.path(), "declared.bin", huge);
    let points = write(dir.path(), "p.csv", "0,0\n");
    for (model, says) in [(&crafted, "cannot be decoded"), (&declared, "over")] {
        let m = arg(model);
        for args in [
            vec!["inspect", m],
            vec!["score", "-m", m, "-i", arg(&points)],
            vec!["sample", "-m", m, "--n", "3"],
        ] {
            run_within(&args, QUICK).bad_input(&[m, says]);
        }
    }
}

#[test]
fn plot_of_1e308_ends_and_far_points_are_left_out_with_a_warning() {
    let dir = tempdir();
    let clusters = csv_text(&two_clusters(), false);
    let clean = write(dir.path(), "clean.csv", &clusters);
    let model = dir.path().join("m.json");
    run(&[
        "fit",
        "-i",
        arg(&clean),
        "-k",
        "2",
        "-o",
        arg(&model),
        "--quiet",
    ])
    .ok();
    let svg = dir.path().join("p.svg");

    // ±1e308: finite, but beyond the bound on coordinates.
    let extreme = write(
        dir.path(),
        "extreme.csv",
        format!("{clusters}1e308,-1e308\n-1e308,1e308\n"),
    );
    run_within(
        &[
            "plot",
            "-m",
            arg(&model),
            "--data",
            arg(&extreme),
            "-o",
            arg(&svg),
        ],
        QUICK,
    )
    .bad_input(&["extreme.csv", "line 201", "beyond the bound"]);
    let skipped = run_within(
        &[
            "plot",
            "-m",
            arg(&model),
            "--data",
            arg(&extreme),
            "-o",
            arg(&svg),
            "--skip-invalid",
        ],
        QUICK,
    );
    assert_eq!(skipped.code, 0, "{}", skipped.stderr);

    // Within the bound but far from everything: drawn without them, and counted.
    let far = write(
        dir.path(),
        "far.csv",
        format!("{clusters}1e99,1\n-1e99,-1e99\n"),
    );
    let outcome = run_within(
        &[
            "plot",
            "-m",
            arg(&model),
            "--data",
            arg(&far),
            "-o",
            arg(&svg),
        ],
        QUICK,
    );
    assert_eq!(outcome.code, 0, "{}", outcome.stderr);
    assert!(
        outcome
            .stderr
            .contains("far.csv: 2 points lie far outside the bulk"),
        "{}",
        outcome.stderr
    );
    let text = std::fs::read_to_string(&svg).expect("the picture");
    assert_eq!(
        text.matches("<circle").count(),
        200,
        "the other points are drawn"
    );

    // One dimension, and data that hardly vary at 1e16 (ticks finer than f64).
    let column: String = (0..50)
        .map(|i| format!("{:?}\n", 1e16 + (i % 3) as f64 * 2.0))
        .collect();
    let tight = write(dir.path(), "tight.csv", column);
    let tight_model = dir.path().join("t.json");
    run(&[
        "fit",
        "-i",
        arg(&tight),
        "-k",
        "1",
        "-o",
        arg(&tight_model),
        "--quiet",
    ])
    .ok();
    let outcome = run_within(
        &[
            "plot",
            "-m",
            arg(&tight_model),
            "--data",
            arg(&tight),
            "-o",
            arg(&svg),
        ],
        QUICK,
    );
    assert_eq!(outcome.code, 0, "{}", outcome.stderr);
}

#[test]
fn healthcheck_refuses_a_timeout_it_cannot_wait() {
    for timeout in ["1e300", "0", "-1", "nan", "inf"] {
        let arg = format!("--timeout={timeout}");
        run(&["healthcheck", &arg]).bad_input(&["--timeout"]);
    }
}

/// The issue's settings that passed validation and then panicked or exited 1, and
/// the other numbers a user controls: each is refused when the configuration is
/// loaded, exit 2, naming its key, before anything starts.
#[test]
fn every_numeric_setting_is_checked_when_the_configuration_loads() {
    let dir = tempdir();
    let snapshots = dir.path().join("snapshots");
    let cases: &[(&str, &str)] = &[
        ("source.generator.rate=1e-300", "source.generator.rate"),
        ("source.generator.rate=1e300", "source.generator.rate"),
        ("log.status_every_seconds=1e300", "log.status_every_seconds"),
        ("log.status_every_seconds=-1", "log.status_every_seconds"),
        ("snapshot.every_seconds=1e300", "snapshot.every_seconds"),
        ("source.generator.spread=1e308", "source.generator.spread"),
        (
            "source.generator.drift_per_10k=1e308",
            "source.generator.drift_per_10k",
        ),
        (
            "source.generator.jump_size=inf",
            "source.generator.jump_size",
        ),
        ("source.generator.dim=100000", "source.generator"),
        ("http.listen=notanaddr", "http.listen"),
        ("estimator.batch_size=100000000000", "estimator.batch_size"),
        (
            "estimator.batch_timeout_ms=18446744073709551615",
            "estimator.batch_timeout_ms",
        ),
        (
            "estimator.warmup_points=100000000000",
            "estimator.warmup_points",
        ),
        (
            "scores.anomaly_window=100000000000",
            "scores.anomaly_window",
        ),
        ("source.max_abs_value=1e308", "source.max_abs_value"),
        ("http.request_timeout_ms=0", "http.request_timeout_ms"),
    ];
    for (set, key) in cases {
        let out = run_within(
            &[
                "run",
                "--set",
                "source.kind=generator",
                "--set",
                &format!("snapshot.dir={}", snapshots.display()),
                "--set",
                set,
            ],
            QUICK,
        );
        assert_eq!(out.code, 2, "{set}: {}", out.stderr);
        assert!(out.stderr.contains(key), "{set}: {}", out.stderr);
        assert!(!out.stderr.contains("panicked"), "{set}: {}", out.stderr);
        assert!(!snapshots.exists(), "{set}: nothing started");
    }
}
