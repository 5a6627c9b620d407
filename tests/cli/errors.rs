//! Exit codes and messages: 2 for bad usage or bad input (naming the file, the line
//! or record, and the reason), 1 for other failures, one line on stderr, and no
//! half-written output.

use std::io::Read;
use std::process::Stdio;

use super::support::*;

#[test]
fn bad_flags_exit_2() {
    for args in [
        vec!["fit", "--bogus"],
        vec!["fit", "-i", "p.csv", "-o", "m.json"],
        vec!["fit", "-i", "p.csv", "-k", "0", "-o", "m.json"],
        vec![
            "fit", "-i", "p.csv", "-k", "2", "-o", "m.json", "--tol", "-1",
        ],
        vec![
            "fit",
            "-i",
            "p.csv",
            "-k",
            "2",
            "-o",
            "m.json",
            "--reg-covar",
            "nan",
        ],
        vec![
            "fit", "-i", "p.csv", "-k", "2", "-o", "m.json", "--n-init", "0",
        ],
        vec![
            "fit",
            "-i",
            "p.csv",
            "-k",
            "2",
            "-o",
            "m.json",
            "--covariance-type",
            "banana",
        ],
        vec![
            "fit", "-i", "p.csv", "-k", "2", "-o", "m.json", "--format", "parquet",
        ],
        vec![
            "fit",
            "-i",
            "p.csv",
            "-o",
            "m.json",
            "--init-model",
            "a.json",
            "--init",
            "random",
        ],
        vec!["score", "-i", "p.csv"],
        vec!["sample", "-m", "m.json"],
        vec!["inspect"],
        vec!["frobnicate"],
    ] {
        let r = run(&args);
        assert_eq!(r.code, 2, "{args:?}: {}", r.stderr);
        assert!(r.stderr.contains("error:"), "{args:?}: {}", r.stderr);
    }
}

#[test]
fn help_exists_for_every_command() {
    for cmd in ["fit", "score", "sample", "inspect"] {
        let r = run(&[cmd, "--help"]).ok();
        let text = r.stdout_text();
        assert!(text.contains("Usage: gmm-stream"), "{cmd}");
        assert!(
            text.contains("Exit codes"),
            "{cmd}: documents its exit codes"
        );
        assert!(text.contains("Examples:"), "{cmd}");
    }
}

#[test]
fn a_missing_input_names_the_file() {
    let dir = tempdir();
    let missing = dir.path().join("nope.csv");
    let out = dir.path().join("m.json");
    run(&["fit", "-i", arg(&missing), "-k", "2", "-o", arg(&out)]).bad_input(&[
        "nope.csv",
        "cannot open",
        "No such file",
    ]);
    let model = reference("cli_full.model.json");
    run(&["score", "-m", arg(&model), "-i", arg(&missing)]).bad_input(&["nope.csv"]);
    run(&["score", "-m", arg(&missing), "-i", arg(&model)])
        .bad_input(&["nope.csv", "cannot read the model"]);
    run(&["sample", "-m", arg(&missing), "--n", "3"]).bad_input(&["nope.csv"]);
    run(&["inspect", arg(&missing)]).bad_input(&["nope.csv"]);
    assert!(!out.exists());
}

#[test]
fn a_bad_point_names_the_file_the_line_and_the_reason() {
    let dir = tempdir();
    let out = dir.path().join("m.json");
    let cases = [
        ("p.csv", "x,y\n1,2\n3,4\n5,oops\n", "line 4"),
        (
            "q.csv",
            "1,2\n3,4\n5,6,7\n",
            "line 3: point has 3 coordinates, expected 2",
        ),
        ("r.csv", "1,2\n3,inf\n", "line 2"),
        ("s.ndjson", "[1,2]\n[3,\"4\"]\n", "line 2"),
    ];
    for (name, text, what) in cases {
        let input = write(dir.path(), name, text);
        run(&["fit", "-i", arg(&input), "-k", "1", "-o", arg(&out)]).bad_input(&[name, what]);
    }
    let raw: Vec<u8> = [1.0f64, 2.0, f64::NAN, 4.0]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let input = write(dir.path(), "p.f64", raw);
    run(&[
        "fit",
        "-i",
        arg(&input),
        "--dim",
        "2",
        "-k",
        "1",
        "-o",
        arg(&out),
    ])
    .bad_input(&["p.f64", "record 2", "NaN"]);
    run_with_stdin(&["fit", "-i", "-", "-k", "1", "-o", arg(&out)], b"1,2\n3\n")
        .bad_input(&["stdin: line 2"]);
    assert!(!out.exists());
}

#[test]
fn an_empty_input_or_too_few_points_is_bad_input() {
    let dir = tempdir();
    let out = dir.path().join("m.json");
    let empty = write(dir.path(), "empty.csv", "");
    run(&["fit", "-i", arg(&empty), "-k", "1", "-o", arg(&out)])
        .bad_input(&["empty.csv", "no points"]);
    let three = write(dir.path(), "three.csv", "1,2\n3,4\n5,6\n");
    run(&["fit", "-i", arg(&three), "-k", "4", "-o", arg(&out)])
        .bad_input(&["three.csv", "3 points are too few for 4 components"]);
    let model = reference("cli_full.model.json");
    run(&["score", "-m", arg(&model), "-i", arg(&empty)]).bad_input(&["empty.csv"]);
}

#[test]
fn a_wrong_dimension_names_both() {
    let dir = tempdir();
    let model = reference("cli_full.model.json");
    let input = write(dir.path(), "two.csv", "1,2\n3,4\n");
    run(&["score", "-m", arg(&model), "-i", arg(&input)]).bad_input(&[
        "two.csv",
        "line 1",
        "point has 2 coordinates, expected 3",
        "cli_full.model.json has 3 features",
    ]);
    run(&["score", "-m", arg(&model), "-i", arg(&input), "--dim", "2"])
        .bad_input(&["--dim 2", "3 features"]);
    run(&[
        "score",
        "-m",
        arg(&model),
        "-i",
        arg(&input),
        "--fields",
        "x,y",
    ])
    .bad_input(&["--fields names 2 fields", "3 features"]);
    let raw: Vec<u8> = [1.0f64; 4].iter().flat_map(|v| v.to_le_bytes()).collect();
    let bin = write(dir.path(), "four.f64", raw);
    run(&["score", "-m", arg(&model), "-i", arg(&bin)]).bad_input(&[
        "four.f64",
        "record 2",
        "truncated",
    ]);
}

#[test]
fn a_corrupted_or_truncated_model_is_refused() {
    let dir = tempdir();
    let points = reference("cli_points.csv");
    let bin = dir.path().join("m.bin");
    run(&["fit", "-i", arg(&points), "-k", "2", "-o", arg(&bin), "-q"]).ok();
    let bytes = std::fs::read(&bin).expect("model");

    let truncated = write(dir.path(), "truncated.bin", &bytes[..bytes.len() / 2]);
    let mut flipped = bytes.clone();
    let middle = flipped.len() / 2;
    flipped[middle] ^= 0x10;
    let corrupted = write(dir.path(), "corrupted.bin", flipped);
    let junk = write(dir.path(), "junk.bin", b"hello");
    let bad_json = write(dir.path(), "bad.json", b"{\"format\": \"gmm-stream.model\"");
    for (path, what) in [
        (&truncated, "truncated"),
        (&corrupted, "corrupted"),
        (&junk, "not a gmm-stream model file"),
        (&bad_json, "not valid model JSON"),
    ] {
        let name = path.file_name().and_then(|n| n.to_str()).expect("name");
        run(&["inspect", arg(path)]).bad_input(&[name, what]);
        run(&["score", "-m", arg(path), "-i", arg(&points)]).bad_input(&[name, what]);
        run(&["sample", "-m", arg(path), "--n", "2"]).bad_input(&[name, what]);
        let out = dir.path().join("x.json");
        run(&[
            "fit",
            "-i",
            arg(&points),
            "--init-model",
            arg(path),
            "-o",
            arg(&out),
        ])
        .bad_input(&[name, what]);
    }
}

#[test]
fn an_incompatible_init_model_is_refused() {
    let dir = tempdir();
    let points = reference("cli_points.csv");
    let init = reference("cli_diag.model.json");
    let out = dir.path().join("m.json");
    let fit = |extra: &[&str]| {
        let mut args = vec!["fit", "-i", arg(&points), "--init-model", arg(&init)];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["-o", arg(&out)]);
        run(&args)
    };
    fit(&["-k", "2"]).bad_input(&[
        "cli_diag.model.json",
        "3 components",
        "the 2 of --components",
    ]);
    fit(&["--covariance-type", "full"]).bad_input(&[
        "cli_diag.model.json",
        "diag covariances",
        "the full of --covariance-type",
    ]);
    let two_d = write(dir.path(), "two.csv", "1,2\n3,4\n5,6\n7,8\n");
    run(&[
        "fit",
        "-i",
        arg(&two_d),
        "--init-model",
        arg(&init),
        "-o",
        arg(&out),
    ])
    .bad_input(&[
        "two.csv",
        "point has 2 coordinates, expected 3",
        "cli_diag.model.json has 3 features",
    ]);
    assert!(!out.exists());
    // K and the covariance type come from the model when not given.
    fit(&["--max-iter", "1", "-q"]).ok();
    assert_eq!(load(&out).1.covariance_type().as_str(), "diag");
}

/// An output directory that does not exist is bad usage (2), found before any work;
/// an output that cannot be written is a failure (1).
#[test]
fn output_paths_bad_usage_and_failures() {
    let dir = tempdir();
    let points = reference("cli_points.csv");
    let model = reference("cli_full.model.json");
    let nowhere = dir.path().join("missing/m.json");
    run(&["fit", "-i", arg(&points), "-k", "2", "-o", arg(&nowhere)]).bad_input(&[
        "missing/m.json",
        "the output directory",
        "does not exist",
    ]);
    run(&[
        "score",
        "-m",
        arg(&model),
        "-i",
        arg(&points),
        "-o",
        arg(&nowhere),
    ])
    .bad_input(&["does not exist"]);
    run(&[
        "sample",
        "-m",
        arg(&model),
        "--n",
        "3",
        "-o",
        arg(dir.path()),
    ])
    .bad_input(&["is a directory"]);
    run(&["fit", "-i", arg(&points), "-k", "2", "-o", "-"]).bad_input(&["--output"]);
    assert!(!dir.path().join("missing").exists());

    #[cfg(target_os = "linux")]
    {
        // A full device: writing fails although the command line is fine.
        let full = std::fs::File::create("/dev/full").expect("/dev/full");
        let out = command()
            .args(["sample", "-m", arg(&model), "--n", "100000"])
            .stdout(full)
            .stderr(Stdio::piped())
            .output()
            .expect("runs");
        assert_eq!(out.status.code(), Some(1));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.starts_with("gmm-stream: stdout: cannot write"),
            "{stderr}"
        );
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
    }
}

/// A failed fit leaves the previous model file as it was, and no temporary file.
#[test]
fn a_failed_run_leaves_no_half_file() {
    let dir = tempdir();
    let out = write(dir.path(), "m.json", "previous");
    let bad = write(dir.path(), "bad.csv", "1,2\n3,x\n");
    run(&["fit", "-i", arg(&bad), "-k", "1", "-o", arg(&out)]).bad_input(&["bad.csv"]);
    assert_eq!(std::fs::read_to_string(&out).expect("kept"), "previous");
    let scores = dir.path().join("scores.ndjson");
    let model = reference("cli_spherical.model.json");
    let partly_bad = write(dir.path(), "late.csv", "1,2,3\n4,5,6\n7,8\n");
    run(&[
        "score",
        "-m",
        arg(&model),
        "-i",
        arg(&partly_bad),
        "-o",
        arg(&scores),
    ])
    .bad_input(&["late.csv", "line 3"]);
    assert!(!scores.exists(), "no partial scores file");
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .expect("ls")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert!(names.iter().all(|n| !n.ends_with(".tmp")), "{names:?}");
}

/// A reader that stops early (`| head`) ends the command quietly with success.
#[test]
fn a_closed_stdout_is_not_an_error() {
    let model = reference("cli_full.model.json");
    let mut child = command()
        .args(["sample", "-m", arg(&model), "--n", "10000000"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starts");
    let mut stdout = child.stdout.take().expect("stdout");
    let mut first = [0u8; 64];
    stdout.read_exact(&mut first).expect("some output");
    drop(stdout);
    let out = child.wait_with_output().expect("ends");
    assert_eq!(out.status.code(), Some(0));
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
