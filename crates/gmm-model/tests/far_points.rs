//! Huge but finite points in an online stream: scored, never absorbed, never the
//! cause of a lost batch (docs in the crate's `far` module).

use gmm_model::{
    points_from_rows, Covariances, GaussianMixture, ModelError, OnlineEm, OnlineSettings,
};
use nalgebra::{DMatrix, DVector};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};

const D: usize = 2;

/// Three clusters at x = 0, 6, 12, taken in turn; `extreme(i)` replaces point i.
fn stream(n: usize, extreme: impl Fn(usize) -> Option<f64>) -> Vec<f64> {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let normal = Normal::new(0.0, 1.0).expect("a normal");
    let mut out = Vec::with_capacity(n * D);
    for i in 0..n {
        let (a, b) = (normal.sample(&mut rng), normal.sample(&mut rng));
        match extreme(i) {
            Some(v) => out.extend([v, v]),
            None => out.extend([(i % 3) as f64 * 6.0 + a, b]),
        }
    }
    out
}

fn settings() -> OnlineSettings {
    OnlineSettings {
        warmup_trim: 0.01,
        ..OnlineSettings::new(3)
    }
}

/// Feeds batches of 1024; every batch must be absorbed.
fn run(points: &[f64]) -> OnlineEm {
    let mut est = OnlineEm::new(settings()).expect("settings");
    for chunk in points.chunks(1024 * D) {
        let x = points_from_rows(chunk, D).expect("whole points");
        est.partial_fit(x, 1.0).expect("the batch is absorbed");
    }
    est
}

/// The components' means sorted by their first coordinate, and their weights.
fn sorted_means(model: &GaussianMixture) -> Vec<(f64, f64, f64)> {
    let mut v: Vec<_> = (0..3)
        .map(|k| {
            (
                model.means()[(0, k)],
                model.means()[(1, k)],
                model.weights()[k],
            )
        })
        .collect();
    v.sort_by(|a, b| a.0.total_cmp(&b.0));
    v
}

fn assert_three_clusters(model: &GaussianMixture) {
    let means = sorted_means(model);
    for (k, (x, y, w)) in means.iter().enumerate() {
        assert!((x - 6.0 * k as f64).abs() < 0.2, "{means:?}");
        assert!(y.abs() < 0.2 && (w - 1.0 / 3.0).abs() < 0.03, "{means:?}");
    }
}

#[test]
fn huge_points_in_the_warm_up_are_left_out_of_the_start() {
    // Two points at 1e20 among the first 2000: before, they collapsed the three
    // clusters into one component for good.
    let with = run(&stream(20_000, |i| (i == 100 || i == 200).then_some(1e20)));
    let without = run(&stream(20_000, |_| None));
    let (a, b) = (
        with.model().expect("a model"),
        without.model().expect("a model"),
    );
    assert_three_clusters(a);
    assert_three_clusters(b);
    for (p, q) in sorted_means(a).iter().zip(sorted_means(b)) {
        assert!(
            (p.0 - q.0).abs() < 0.05 && (p.1 - q.1).abs() < 0.05,
            "{p:?} {q:?}"
        );
    }
    // Scored and counted like any point: nothing was lost.
    assert_eq!(with.points_seen(), 20_000);
}

#[test]
fn a_huge_point_in_a_batch_is_scored_but_the_rest_of_the_batch_is_absorbed() {
    // One 1e20 point every 500 after the warm-up: before, every batch holding one
    // failed ("ill-defined empirical covariance") and was lost.
    let points = stream(12_000, |i| (i > 2_000 && i % 500 == 0).then_some(1e20));
    let mut est = OnlineEm::new(settings()).expect("settings");
    let mut far_scores = 0;
    for chunk in points.chunks(1024 * D) {
        let x = points_from_rows(chunk, D).expect("whole points");
        let outcome = est.partial_fit(x, 1.0).expect("the batch is absorbed");
        if let Some(scored) = outcome.scored {
            assert!(scored.evaluation.unscorable().is_empty());
            far_scores += scored
                .evaluation
                .log_density
                .iter()
                .filter(|&&ld| ld < -1e30)
                .count();
        }
    }
    assert_eq!(far_scores, 19);
    assert_eq!(est.points_seen(), 12_000);
    assert_three_clusters(est.model().expect("a model"));
}

#[test]
fn a_point_the_model_cannot_score_is_left_out_and_the_others_absorbed() {
    // A component of variance 1e-150: a point at 1e99 has a squared Mahalanobis
    // distance of 2e348, beyond f64: its log-density is -inf.
    let model = GaussianMixture::new(
        DVector::from_vec(vec![1.0]),
        DMatrix::zeros(D, 1),
        Covariances::Full(vec![DMatrix::identity(D, D) * 1e-150]),
    )
    .expect("valid");
    let settings = OnlineSettings {
        reg_covar: 0.0,
        min_weight: 0.0,
        ..OnlineSettings::new(1)
    };
    let mut est = OnlineEm::from_model(settings, model, 10.0).expect("estimator");
    let x = [1e-76, 0.0, 1e99, 1e99, 0.0, 2e-76];
    let outcome = est
        .partial_fit(points_from_rows(&x, D).expect("points"), 1.0)
        .expect("absorbed");
    let scored = outcome.scored.expect("scored");
    assert_eq!(scored.evaluation.unscorable(), vec![1]);
    assert_eq!(scored.evaluation.log_density.len(), 3);
    assert!(outcome.updated);
    assert_eq!(est.points_seen(), 2);
    let means = est.model().expect("model").means().clone();
    assert!(means.iter().all(|m| m.abs() < 1e-70), "{means}");
}

#[test]
fn coordinates_beyond_the_limit_are_refused_before_anything_changes() {
    let mut est = OnlineEm::new(settings()).expect("settings");
    let x = [1.0, 2.0, 1e308, 0.0];
    let err = est
        .partial_fit(points_from_rows(&x, D).expect("points"), 1.0)
        .expect_err("refused");
    assert!(matches!(err, ModelError::OutOfRange { .. }), "{err}");
    assert!(err.to_string().contains("1e308"), "{err}");
    assert_eq!(est.warmup_len(), 0);
}

#[test]
fn variational_inference_keeps_huge_points_out_too() {
    let settings = OnlineSettings {
        inference: gmm_model::Inference::Variational,
        ..settings()
    };
    let points = stream(12_000, |i| {
        (i == 100 || i == 200 || (i > 2_000 && i % 500 == 0)).then_some(1e20)
    });
    let mut est = OnlineEm::new(settings).expect("settings");
    for chunk in points.chunks(1024 * D) {
        let x = points_from_rows(chunk, D).expect("whole points");
        est.partial_fit(x, 1.0).expect("the batch is absorbed");
    }
    assert_eq!(est.points_seen(), 12_000);
    let model = est.model().expect("a model");
    let mut xs: Vec<f64> = (0..model.n_components())
        .filter(|&k| model.weights()[k] > 0.05)
        .map(|k| model.means()[(0, k)])
        .collect();
    xs.sort_by(f64::total_cmp);
    assert_eq!(xs.len(), 3, "{xs:?}");
    for (k, x) in xs.iter().enumerate() {
        assert!((x - 6.0 * k as f64).abs() < 0.3, "{xs:?}");
    }
}
