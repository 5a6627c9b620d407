//! `gmm-stream fit`: every input format, stdin, every covariance type, both model
//! encodings, and agreement with scikit-learn from a given start.

use gmm_io::{EstimatorInfo, ModelFile};
use serde_json::Value;

use super::support::*;

fn fit_quiet(input: &str, extra: &[&str], output: &str) -> Run {
    let mut args = vec!["fit", "-i", input, "-k", "2", "-o", output, "--quiet"];
    args.extend_from_slice(extra);
    run(&args)
}

#[test]
fn every_input_format_gives_the_same_model() {
    let dir = tempdir();
    let points = two_clusters();
    let inputs = [
        (write(dir.path(), "p.csv", csv_text(&points, true)), vec![]),
        (write(dir.path(), "p.ndjson", json_lines(&points)), vec![]),
        (
            write(dir.path(), "p.f64", f64le(&points)),
            vec!["--dim", "2"],
        ),
        // An unknown extension needs --format.
        (
            write(dir.path(), "p.dat", f64le(&points)),
            vec!["--format", "f64le", "--dim", "2"],
        ),
    ];
    let mut models = Vec::new();
    for (i, (input, extra)) in inputs.iter().enumerate() {
        let out = dir.path().join(format!("m{i}.json"));
        fit_quiet(arg(input), extra, arg(&out)).ok();
        models.push(load(&out).1);
    }
    for m in &models[1..] {
        assert_eq!(m, &models[0], "the same points give the same model");
    }
    assert_eq!(models[0].n_features(), 2);

    // f32 rounding moves the points by ~1e-7: the same clusters, nearly.
    let f32_input = write(dir.path(), "p.f32", f32le(&points));
    let out = dir.path().join("m32.json");
    fit_quiet(arg(&f32_input), &["--dim", "2"], arg(&out)).ok();
    let m32 = load(&out).1;
    let diff = (m32.means() - models[0].means()).abs().max();
    assert!(diff < 1e-5, "f32 means differ by {diff}");
}

#[test]
fn stdin_is_read_as_csv() {
    let dir = tempdir();
    let points = two_clusters();
    let from_file = dir.path().join("file.json");
    let input = write(dir.path(), "p.csv", csv_text(&points, false));
    fit_quiet(arg(&input), &[], arg(&from_file)).ok();
    let from_stdin = dir.path().join("stdin.json");
    run_with_stdin(
        &["fit", "-i", "-", "-k", "2", "-o", arg(&from_stdin), "-q"],
        csv_text(&points, false).as_bytes(),
    )
    .ok();
    assert_eq!(load(&from_stdin).1, load(&from_file).1);
    // Binary on stdin with --format.
    let from_f64 = dir.path().join("f64.json");
    run_with_stdin(
        &[
            "fit", "-i", "-", "--format", "f64le", "--dim", "2", "-k", "2",
        ]
        .into_iter()
        .chain(["-o", arg(&from_f64), "-q"])
        .collect::<Vec<_>>(),
        &f64le(&points),
    )
    .ok();
    assert_eq!(load(&from_f64).1, load(&from_file).1);
}

#[test]
fn every_covariance_type_in_json_and_binary() {
    let dir = tempdir();
    let input = write(dir.path(), "p.csv", csv_text(&two_clusters(), true));
    for t in COVARIANCE_TYPES {
        let json = dir.path().join(format!("{t}.json"));
        let bin = dir.path().join(format!("{t}.bin"));
        for out in [&json, &bin] {
            fit_quiet(
                arg(&input),
                &["--covariance-type", t, "--seed", "3"],
                arg(out),
            )
            .ok();
        }
        let json_bytes = std::fs::read(&json).expect("json");
        let bin_bytes = std::fs::read(&bin).expect("bin");
        assert_eq!(json_bytes.first(), Some(&b'{'), "{t}: JSON by extension");
        assert!(
            bin_bytes.starts_with(b"GMM-STREAM-MODEL"),
            "{t}: binary otherwise"
        );
        let (file, model) = load(&json);
        assert_eq!(
            load(&bin).1,
            model,
            "{t}: both encodings hold the same model"
        );
        assert_eq!(model.covariance_type().as_str(), t);
        assert_eq!(model.n_components(), 2);
        check_batch_file(&file, t);
    }
}

/// points_seen, model_version, updated_at and the estimator of a fit of
/// `two_clusters` with seed 3.
fn check_batch_file(file: &ModelFile, t: &str) {
    assert_eq!(file.points_seen, 200, "{t}");
    let EstimatorInfo::Batch(info) = &file.estimator else {
        panic!("{t}: a batch estimator, got {:?}", file.estimator);
    };
    assert_eq!(
        file.model_version, info.n_iter,
        "{t}: one version per M-step"
    );
    assert!(info.n_iter >= 1 && info.converged, "{t}: {info:?}");
    assert_eq!(
        (info.init.as_str(), info.seed, info.max_iter, info.n_init),
        ("kmeans", 3, 100, 1)
    );
    assert_eq!((info.tol, info.reg_covar), (1e-3, 1e-6));
    assert!(info.lower_bound.is_some_and(f64::is_finite));
    assert!(
        humantime::parse_rfc3339(&file.updated_at).is_ok(),
        "RFC 3339: {}",
        file.updated_at
    );
    assert!(file.anomaly_threshold.is_none() && file.state.is_none());
}

#[test]
fn fields_pick_the_coordinates() {
    let dir = tempdir();
    let points = two_clusters();
    let mut text = "label,y,x\n".to_owned();
    for p in &points {
        text.push_str(&format!("a point,{:?},{:?}\n", p[1], p[0]));
    }
    let input = write(dir.path(), "p.csv", text);
    let out = dir.path().join("m.json");
    fit_quiet(arg(&input), &["--fields", "x,y"], arg(&out)).ok();
    let plain = dir.path().join("plain.json");
    let plain_input = write(dir.path(), "plain.csv", csv_text(&points, false));
    fit_quiet(arg(&plain_input), &[], arg(&plain)).ok();
    assert_eq!(load(&out).1, load(&plain).1);
}

#[test]
fn progress_goes_to_stderr_unless_quiet() {
    let dir = tempdir();
    let input = write(dir.path(), "p.csv", csv_text(&two_clusters(), false));
    let out = dir.path().join("m.bin");
    let loud = run(&["fit", "-i", arg(&input), "-k", "2", "-o", arg(&out)]).ok();
    assert!(loud.stdout.is_empty(), "stdout stays clean");
    let first = loud.stderr.lines().next().unwrap_or_default();
    assert!(
        first.starts_with("iteration 1: mean log-likelihood -"),
        "{}",
        loud.stderr
    );
    assert!(loud.stderr.contains("iteration 2: mean log-likelihood"));
    assert!(loud.stderr.contains("(change "));

    let two = run(&[
        "fit",
        "-i",
        arg(&input),
        "-k",
        "2",
        "-o",
        arg(&out),
        "--n-init",
        "2",
    ])
    .ok();
    assert!(
        two.stderr.contains("init 2/2, iteration 1:"),
        "{}",
        two.stderr
    );

    let quiet = fit_quiet(arg(&input), &[], arg(&out)).ok();
    assert_eq!(quiet.stderr, "");
}

#[test]
fn the_same_seed_gives_the_same_model() {
    let dir = tempdir();
    let input = write(dir.path(), "p.csv", csv_text(&two_clusters(), false));
    let a = dir.path().join("a.json");
    let b = dir.path().join("b.json");
    for out in [&a, &b] {
        fit_quiet(arg(&input), &["--init", "random", "--seed", "9"], arg(out)).ok();
    }
    assert_eq!(load(&a).1, load(&b).1);
}

#[test]
fn choose_components_keeps_the_lowest_bic() {
    let dir = tempdir();
    let points = two_clusters();
    let input = write(dir.path(), "p.csv", csv_text(&points, false));
    let chosen = dir.path().join("chosen.json");
    let r = run(&[
        "fit",
        "-i",
        arg(&input),
        "--choose-components",
        "1..4",
        "--n-init",
        "2",
        "-o",
        arg(&chosen),
    ])
    .ok();
    // One line per K with its BIC, then the choice.
    let bics: Vec<(usize, f64)> = r
        .stderr
        .lines()
        .filter_map(|l| l.strip_prefix("K = "))
        .map(|l| {
            let (k, rest) = l.split_once(": BIC ").expect("a BIC line");
            let bic = rest.split(',').next().expect("value");
            (k.parse().expect("K"), bic.parse().expect("BIC"))
        })
        .collect();
    assert_eq!(
        bics.iter().map(|b| b.0).collect::<Vec<_>>(),
        [1, 2, 3, 4],
        "{}",
        r.stderr
    );
    let lowest = bics.iter().min_by(|a, b| a.1.total_cmp(&b.1)).expect("K");
    assert_eq!(lowest.0, 2, "two clusters: {bics:?}");
    assert!(r.stderr.contains("chose K = 2"), "{}", r.stderr);
    // The kept model is exactly the fit with that K, and its BIC the one printed.
    let direct = dir.path().join("direct.json");
    fit_quiet(arg(&input), &["--n-init", "2"], arg(&direct)).ok();
    let (_, model) = load(&chosen);
    assert_eq!(model, load(&direct).1);
    let x = gmm_model::points_from_rows(points.as_flattened(), 2).expect("points");
    let bic = model.bic(x).expect("bic");
    assert!(
        (bic - lowest.1).abs() <= 1e-6 * bic.abs(),
        "{bic} vs {lowest:?}"
    );

    // It replaces --components; a range must be MIN..MAX (usage errors, exit 2).
    for (extra, says) in [
        (["--choose-components", "1..3", "-k", "2"], "--components"),
        (["--choose-components", "4..2", "--seed", "1"], "MIN..MAX"),
    ] {
        let mut args = vec!["fit", "-i", arg(&input), "-o", arg(&direct)];
        args.extend(extra);
        let r = run(&args);
        assert_eq!(r.code, 2, "{args:?}: {}", r.stderr);
        assert!(r.stderr.contains(says), "{args:?}: {}", r.stderr);
    }
}

#[test]
fn a_run_that_does_not_converge_warns() {
    let dir = tempdir();
    let input = write(dir.path(), "p.csv", csv_text(&two_clusters(), false));
    let out = dir.path().join("m.json");
    let r = fit_quiet(
        arg(&input),
        &["--max-iter", "2", "--tol", "0", "--init", "random"],
        arg(&out),
    )
    .ok();
    assert_eq!(
        r.stderr.trim(),
        "gmm-stream: warning: did not converge after 2 iterations; increase --max-iter or --tol"
    );
    assert_eq!(load(&out).0.model_version, 2);
}

#[test]
fn skip_invalid_skips_and_reports_the_count() {
    let dir = tempdir();
    let points = two_clusters();
    let mut text = csv_text(&points, true);
    text.push_str("1,2,3\nnan,1\nnot,numbers\n");
    let input = write(dir.path(), "p.csv", text);
    let out = dir.path().join("m.json");
    let r = fit_quiet(arg(&input), &["--skip-invalid"], arg(&out)).ok();
    assert_eq!(
        r.stderr.trim(),
        format!(
            "gmm-stream: warning: {}: skipped 3 invalid points",
            arg(&input)
        )
    );
    assert_eq!(load(&out).0.points_seen, 200);
}

/// scikit-learn's EM from the same start (weights_init, means_init,
/// precisions_init, tol = 0): the parameters after N iterations and the mean
/// log-likelihood of every iteration agree to 1e-8 relative (`docs/reference.md`, "Commands").
#[test]
fn init_model_reproduces_scikit_learn() {
    let dir = tempdir();
    let points = reference("cli_points.csv");
    for t in COVARIANCE_TYPES {
        let expected: Value = serde_json::from_slice(
            &std::fs::read(reference(&format!("cli_{t}.expected.json"))).expect("reference"),
        )
        .expect("JSON");
        let em = &expected["em"];
        let n = em["max_iter"].as_u64().expect("max_iter").to_string();
        let init = reference(&format!("cli_{t}.model.json"));
        let out = dir.path().join(format!("{t}.json"));
        let r = run(&[
            "fit",
            "-i",
            arg(&points),
            "--init-model",
            arg(&init),
            "--tol",
            "0",
            "--max-iter",
            &n,
            "-o",
            arg(&out),
        ])
        .ok();
        let ours: Value =
            serde_json::from_slice(&std::fs::read(&out).expect("model")).expect("JSON");
        let mut worst = 0.0f64;
        for key in ["weights", "means", "covariances"] {
            let rel = max_rel(&flatten(&ours[key]), &flatten(&em[key]));
            assert!(rel < 1e-8, "{t} {key}: relative difference {rel:e}");
            worst = worst.max(rel);
        }
        let rel = max_rel(
            &progress_lower_bounds(&r.stderr),
            &f64s(&em["lower_bounds"]),
        );
        assert!(rel < 1e-8, "{t} lower bounds: relative difference {rel:e}");
        eprintln!("{t}: parameters within {worst:.1e}, lower bounds within {rel:.1e} of sklearn");
        assert_eq!(ours["model_version"].as_u64(), em["n_iter"].as_u64());
        assert_eq!(ours["estimator"]["init"], "model");
        assert_eq!(ours["estimator"]["converged"], false);
    }
}

/// Every number of a nested JSON array, in order.
fn flatten(v: &Value) -> Vec<f64> {
    match v {
        Value::Array(items) => items.iter().flat_map(flatten).collect(),
        other => vec![other.as_f64().expect("a number")],
    }
}

/// The mean log-likelihoods of the progress lines, in order.
fn progress_lower_bounds(stderr: &str) -> Vec<f64> {
    stderr
        .lines()
        .filter_map(|l| l.split_once("mean log-likelihood "))
        .filter(|(head, _)| head.starts_with("iteration"))
        .map(|(_, tail)| {
            let number = tail.split_whitespace().next().unwrap_or_default();
            number.parse().expect("an exact number")
        })
        .collect()
}
