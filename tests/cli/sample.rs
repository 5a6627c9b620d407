//! `gmm-stream sample`: deterministic per seed, distributed as the model.

use nalgebra::{DMatrix, DVector};

use super::support::*;

fn sample(model: &str, n: &str, extra: &[&str]) -> Run {
    let mut args = vec!["sample", "-m", model, "--n", n];
    args.extend_from_slice(extra);
    run(&args).ok()
}

fn rows(text: &str) -> Vec<Vec<f64>> {
    text.lines()
        .map(|l| l.split(',').map(|v| v.parse().expect("a number")).collect())
        .collect()
}

#[test]
fn the_seed_decides_the_points() {
    let model = reference("cli_diag.model.json");
    let a = sample(arg(&model), "500", &["--seed", "1"]);
    let b = sample(arg(&model), "500", &["--seed", "1"]);
    let c = sample(arg(&model), "500", &["--seed", "2"]);
    assert_eq!(a.stdout, b.stdout);
    assert_ne!(a.stdout, c.stdout);
    let points = rows(&a.stdout_text());
    assert_eq!(points.len(), 500);
    assert!(points.iter().all(|p| p.len() == 3));
    // A longer draw starts with the same points: they come one by one from the seed.
    let longer = sample(arg(&model), "600", &["--seed", "1"]).stdout_text();
    assert!(longer.starts_with(&a.stdout_text()));
}

#[test]
fn labels_come_last_and_a_file_gets_the_same_rows() {
    let dir = tempdir();
    let model = reference("cli_tied.model.json");
    let plain = sample(arg(&model), "50", &[]).stdout_text();
    let out = dir.path().join("s.csv");
    let r = sample(arg(&model), "50", &["--with-labels", "-o", arg(&out)]);
    assert!(r.stdout.is_empty());
    let labelled = std::fs::read_to_string(&out).expect("output file");
    for (p, l) in plain.lines().zip(labelled.lines()) {
        let (point, label) = l.rsplit_once(',').expect("a label");
        assert_eq!(point, p);
        assert!(label.parse::<usize>().is_ok_and(|k| k < 3), "{label}");
    }
    assert_eq!(sample(arg(&model), "0", &[]).stdout, b"");
}

/// The sample's moments are the mixture's: mean Σ π_k μ_k, covariance
/// Σ π_k (Σ_k + μ_k μ_kᵀ) − m mᵀ, and the labels in proportion to the weights.
#[test]
fn points_follow_the_model() {
    let model_path = reference("cli_full.model.json");
    let model = load(&model_path).1;
    let n = 20_000;
    let text = sample(
        arg(&model_path),
        &n.to_string(),
        &["--with-labels", "--seed", "3"],
    )
    .stdout_text();
    let rows = rows(&text);
    let (k, d) = (model.n_components(), model.n_features());
    let x = DMatrix::from_fn(d, n, |i, j| rows[j][i]);
    let mean = x.column_mean();
    let centred = DMatrix::from_fn(d, n, |i, j| x[(i, j)] - mean[i]);
    let cov = &centred * centred.transpose() / (n as f64 - 1.0);

    let w = model.weights();
    let m: DVector<f64> = model.means() * w;
    let mut expected_cov = -&m * m.transpose();
    for c in 0..k {
        let mu = model.means().column(c);
        expected_cov += (model.covariances().component_matrix(c, d) + mu * mu.transpose()) * w[c];
    }
    let mean_err = (&mean - &m).abs().max();
    let cov_err = (&cov - &expected_cov).abs().max() / expected_cov.abs().max();
    assert!(mean_err < 0.1, "mean off by {mean_err}");
    assert!(cov_err < 0.05, "covariance off by {cov_err} relative");
    for c in 0..k {
        let share = rows.iter().filter(|r| r[d] == c as f64).count() as f64 / n as f64;
        assert!(
            (share - w[c]).abs() < 0.02,
            "component {c}: {share} vs {}",
            w[c]
        );
    }
}
