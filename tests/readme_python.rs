//! The README's Python snippet, run as it is written: the model it loads into
//! scikit-learn must give the same `score_samples` as `gmm-stream score`.
//! Needs python3 with numpy and scikit-learn (scripts/setup.sh installs them); it
//! fails, rather than skips, when they are missing.

use std::path::Path;
use std::process::Command;

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_gmm-stream")
}

/// The python code block of the README's "Reading a model in Python" section.
fn snippet() -> String {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
        .expect("README.md");
    let section = readme
        .split("### Reading a model in Python")
        .nth(1)
        .expect("the README has a 'Reading a model in Python' section");
    let code = section
        .split("```python\n")
        .nth(1)
        .and_then(|rest| rest.split("\n```").next())
        .expect("a python code block in that section");
    code.to_string()
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().expect("the command starts");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

/// Three clusters in 3-d, written as csv.
fn write_points(path: &Path, n: usize, seed: u64) {
    let mut state = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
    let mut uniform = || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((state >> 11) as f64) / ((1u64 << 53) as f64)
    };
    let mut text = String::new();
    for i in 0..n {
        let c = (i % 3) as f64 * 4.0;
        let row: Vec<String> = (0..3)
            .map(|j| {
                let noise = (uniform() + uniform() + uniform() - 1.5) * (1.0 + j as f64 * 0.3);
                format!("{}", c * (j as f64 - 1.0) + noise)
            })
            .collect();
        text.push_str(&row.join(","));
        text.push('\n');
    }
    std::fs::write(path, text).expect("write points");
}

#[test]
fn the_readme_snippet_scores_like_gmm_stream_score() {
    let dir = tempfile::tempdir().expect("temp dir");
    let script = dir.path().join("load_model.py");
    std::fs::write(&script, snippet()).expect("write the snippet");
    let train = dir.path().join("train.csv");
    let test = dir.path().join("test.csv");
    write_points(&train, 600, 1);
    write_points(&test, 200, 2);
    for cov in ["full", "diag", "spherical", "tied"] {
        let model = dir.path().join(format!("{cov}.json"));
        run(Command::new(bin())
            .args([
                "fit",
                "--quiet",
                "--components",
                "3",
                "--covariance-type",
                cov,
            ])
            .arg("--input")
            .arg(&train)
            .arg("--output")
            .arg(&model));
        let ours: Vec<f64> = run(Command::new(bin())
            .arg("score")
            .arg("--model")
            .arg(&model)
            .arg("--input")
            .arg(&test))
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("ndjson");
            v["log_density"].as_f64().expect("a log-density")
        })
        .collect();
        let python = run(Command::new("python3").arg(&script).arg(&model).arg(&test));
        let theirs: Vec<f64> = python
            .lines()
            .map(|l| {
                l.trim()
                    .parse()
                    .unwrap_or_else(|_| panic!("not a number: {l}"))
            })
            .collect();
        assert_eq!(ours.len(), theirs.len(), "{cov}: point counts differ");
        for (i, (a, b)) in ours.iter().zip(&theirs).enumerate() {
            assert!(
                (a - b).abs() <= 1e-9 * b.abs().max(1.0),
                "{cov}, point {i}: gmm-stream {a}, scikit-learn {b}"
            );
        }
    }
}
