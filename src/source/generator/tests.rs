use rand::{Rng, SeedableRng};

use super::*;
use gmm_model::points_from_rows;

fn config() -> GeneratorConfig {
    GeneratorConfig {
        dim: 3,
        components: 4,
        seed: 9,
        limit: 0,
        spread: 8.0,
        drift_per_10k: 2.0,
        jump_every: 700,
        jump_size: 5.0,
        outlier_fraction: 0.02,
        ..GeneratorConfig::default()
    }
}

fn means(model: &GaussianMixture) -> Vec<Vec<f64>> {
    model
        .means()
        .column_iter()
        .map(|c| c.iter().copied().collect())
        .collect()
}

fn distance(a: &[f64], b: &[f64]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y) * (x - y))
        .sum::<f64>()
        .sqrt()
}

#[test]
fn any_index_reproduces_the_sequential_stream_exactly() {
    let cfg = config();
    let mut sequential = Generator::new(&cfg, 3).expect("valid");
    let mut all = Vec::new();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
    while sequential.index() < 5_000 {
        let n = rng.random_range(1..400);
        sequential.next_points(n, &mut all);
    }
    assert_eq!(all.len(), sequential.index() as usize * 3);
    let mut resumed = Generator::new(&cfg, 3).expect("valid");
    for _ in 0..50 {
        let start = rng.random_range(0..4_900u64);
        resumed.seek(start);
        let mut got = Vec::new();
        assert_eq!(resumed.next_points(50, &mut got), 50);
        let s = start as usize * 3;
        assert_eq!(got, all[s..s + 150], "resumed at {start}");
        assert_eq!(resumed.point_at(start + 7), all[s + 21..s + 24]);
    }
    let other_seed = Generator::new(&GeneratorConfig { seed: 10, ..cfg }, 3).expect("valid");
    assert_ne!(other_seed.point_at(0), all[..3]);
}

#[test]
fn the_limit_ends_the_stream() {
    let cfg = GeneratorConfig {
        limit: 10,
        ..config()
    };
    let mut g = Generator::new(&cfg, 2).expect("valid");
    let mut out = Vec::new();
    assert_eq!(g.next_points(4, &mut out), 4);
    assert!(!g.is_finished());
    assert_eq!(g.next_points(100, &mut out), 6);
    assert!(g.is_finished());
    assert_eq!(g.next_points(100, &mut out), 0);
    assert_eq!(out.len(), 20);
    g.seek(3);
    assert_eq!(g.next_points(100, &mut out), 7);
}

#[test]
fn points_follow_the_true_mixture() {
    let cfg = GeneratorConfig {
        drift_per_10k: 0.0,
        jump_every: 0,
        outlier_fraction: 0.0,
        ..config()
    };
    let mut g = Generator::new(&cfg, 3).expect("valid");
    let n = 40_000;
    let mut flat = Vec::new();
    g.next_points(n, &mut flat);
    let truth = g.truth_at(0).expect("truth");
    let labels: Vec<usize> = (0..n as u64)
        .map(|i| g.component_of(i).expect("no outliers"))
        .collect();
    for k in 0..truth.n_components() {
        let points: Vec<&[f64]> = flat
            .chunks(3)
            .zip(&labels)
            .filter(|(_, &l)| l == k)
            .map(|(p, _)| p)
            .collect();
        let share = points.len() as f64 / n as f64;
        assert!(
            (share - truth.weights()[k]).abs() < 0.01,
            "weight {k}: {share}"
        );
        let m = points.len() as f64;
        for c in 0..3 {
            let mean = points.iter().map(|p| p[c]).sum::<f64>() / m;
            assert!((mean - truth.means()[(c, k)]).abs() < 0.05, "mean {k},{c}");
        }
    }
    // The sample's likelihood under the truth is what the truth predicts.
    let x = points_from_rows(&flat, 3).expect("points");
    let mean_ll = truth.score(x).expect("score");
    let (sample, _) = truth.sample(n, &mut rand_chacha::ChaCha8Rng::seed_from_u64(2));
    let expected = truth.score(sample.as_view()).expect("score");
    assert!((mean_ll - expected).abs() < 0.03, "{mean_ll} vs {expected}");
}

#[test]
fn means_drift_at_the_configured_speed_and_jump_by_the_jump_size() {
    // A wide box, so that no wall is reached in the span tested.
    let drift = GeneratorConfig {
        spread: 1_000.0,
        drift_per_10k: 1.5,
        jump_every: 0,
        ..config()
    };
    let g = Generator::new(&drift, 3).expect("valid");
    let (a, b) = (
        g.truth_at(20_000).expect("t"),
        g.truth_at(30_000).expect("t"),
    );
    for (ma, mb) in means(&a).iter().zip(means(&b).iter()) {
        assert!((distance(ma, mb) - 1.5).abs() < 1e-9);
    }
    let jumps = GeneratorConfig {
        spread: 1_000.0,
        drift_per_10k: 0.0,
        jump_every: 1_000,
        jump_size: 4.0,
        ..config()
    };
    let g = Generator::new(&jumps, 3).expect("valid");
    let before = means(&g.truth_at(2_999).expect("t"));
    assert_eq!(before, means(&g.truth_at(2_000).expect("t")));
    let after = means(&g.truth_at(3_000).expect("t"));
    let shift: Vec<f64> = after[0]
        .iter()
        .zip(&before[0])
        .map(|(x, y)| x - y)
        .collect();
    assert!((distance(&after[0], &before[0]) - 4.0).abs() < 1e-9);
    for (ma, mb) in after.iter().zip(&before) {
        let s: Vec<f64> = ma.iter().zip(mb).map(|(x, y)| x - y).collect();
        assert!(distance(&s, &shift) < 1e-9, "all means move together");
    }
    let next = means(&g.truth_at(4_000).expect("t"));
    let shift2: Vec<f64> = next[0].iter().zip(&after[0]).map(|(x, y)| x - y).collect();
    assert!(
        distance(&shift, &shift2) > 0.1,
        "each jump has its own direction"
    );
    // Every jump has the jump size, across the blocks of the walk too.
    let mut previous = means(&g.truth_at(0).expect("t"));
    for epoch in 1..=200u64 {
        let now = means(&g.truth_at(epoch * 1_000).expect("t"));
        assert!(
            (distance(&now[1], &previous[1]) - 4.0).abs() < 1e-9,
            "jump {epoch}"
        );
        previous = now;
    }
}

#[test]
fn means_stay_in_the_box_forever() {
    let cfg = GeneratorConfig {
        drift_per_10k: 50.0,
        jump_every: 10_000,
        ..config()
    };
    let g = Generator::new(&cfg, 3).expect("valid");
    for i in [0, 123_456, 10_000_000, 1_000_000_000_000] {
        for m in means(&g.truth_at(i).expect("truth")) {
            assert!(m.iter().all(|x| x.abs() <= cfg.spread + 1e-9), "{i}: {m:?}");
        }
    }
}

#[test]
fn outliers_are_as_frequent_as_configured_and_far_from_everything() {
    let cfg = GeneratorConfig {
        outlier_fraction: 0.05,
        ..config()
    };
    let mut g = Generator::new(&cfg, 3).expect("valid");
    let n = 20_000;
    let mut flat = Vec::new();
    g.next_points(n, &mut flat);
    let outliers: Vec<bool> = (0..n as u64).map(|i| g.is_outlier(i)).collect();
    let share = outliers.iter().filter(|&&o| o).count() as f64 / n as f64;
    assert!((share - 0.05).abs() < 0.006, "{share}");
    // Score each point under the mixture it was drawn at.
    let (mut inlier_ld, mut outlier_ld) = (Vec::new(), Vec::new());
    for (i, p) in flat.chunks(3).enumerate() {
        let truth = g.truth_at(i as u64).expect("truth");
        let ld = truth
            .score_samples(points_from_rows(p, 3).expect("point"))
            .expect("score")[0];
        if outliers[i] {
            outlier_ld.push(ld);
        } else {
            inlier_ld.push(ld);
        }
    }
    inlier_ld.sort_unstable_by(f64::total_cmp);
    let low_inlier = inlier_ld[inlier_ld.len() / 1000];
    let high_outlier = outlier_ld.iter().copied().fold(f64::MIN, f64::max);
    assert!(high_outlier < low_inlier, "{high_outlier} vs {low_inlier}");
}

#[test]
fn invalid_settings_name_their_key() {
    let cases = [
        (
            GeneratorConfig {
                spread: 0.0,
                ..config()
            },
            2,
            "spread",
        ),
        (
            GeneratorConfig {
                spread: f64::NAN,
                ..config()
            },
            2,
            "spread",
        ),
        (
            GeneratorConfig {
                components: 0,
                ..config()
            },
            2,
            "components",
        ),
        (
            GeneratorConfig {
                drift_per_10k: -1.0,
                ..config()
            },
            2,
            "drift_per_10k",
        ),
        (
            GeneratorConfig {
                jump_size: f64::INFINITY,
                ..config()
            },
            2,
            "jump_size",
        ),
        (
            GeneratorConfig {
                outlier_fraction: 1.0,
                ..config()
            },
            2,
            "outlier_fraction",
        ),
        (config(), 0, "dim"),
        (config(), 5_000, "components"),
    ];
    for (cfg, dim, key) in cases {
        let err = Generator::new(&cfg, dim).expect_err(key);
        assert!(err.to_string().contains(key), "{err}");
    }
}
