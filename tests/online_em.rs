//! Online EM against batch EM, on streams drawn from known mixtures.

use gmm_io::ModelFile;
use gmm_model::{
    em_step, fit, points_from_rows, CovarianceType, Covariances, DriftSettings, EmSettings,
    GaussianMixture, HalfLifeUnit, OnlineEm, OnlineSettings, Prior, Schedule,
};
use nalgebra::{DMatrix, DVector};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// A mixture of K well-separated components in d dimensions with random shapes.
fn truth(k: usize, d: usize, spread: f64, rng: &mut ChaCha8Rng) -> GaussianMixture {
    let raw: Vec<f64> = (0..k).map(|_| rng.random_range(0.5..1.5)).collect();
    let total: f64 = raw.iter().sum();
    let weights = DVector::from_iterator(k, raw.iter().map(|w| w / total));
    let means = DMatrix::from_fn(d, k, |_, _| rng.random_range(-spread..spread));
    let covs = (0..k)
        .map(|_| {
            let a = DMatrix::from_fn(d, d, |_, _| rng.random_range(-0.5..0.5));
            &a * a.transpose() + DMatrix::identity(d, d) * 0.3
        })
        .collect();
    GaussianMixture::new(weights, means, Covariances::Full(covs)).expect("valid truth")
}

/// `n` points of `model` as a row-major buffer.
fn draw(model: &GaussianMixture, n: usize, rng: &mut ChaCha8Rng) -> Vec<f64> {
    let (x, _) = model.sample(n, rng);
    x.as_slice().to_vec()
}

fn mean_ll(model: &GaussianMixture, flat: &[f64], d: usize) -> f64 {
    model
        .score(points_from_rows(flat, d).expect("whole points"))
        .expect("scores")
}

fn batch_fit(flat: &[f64], d: usize, k: usize) -> GaussianMixture {
    let x = points_from_rows(flat, d).expect("whole points");
    let settings = EmSettings {
        tol: 1e-6,
        max_iter: 500,
        n_init: 2,
        ..EmSettings::new(k)
    };
    fit(x, &settings, &mut |_| {}).expect("batch fit").model
}

/// Feeds `flat` in batches of `batch` points.
fn stream(est: &mut OnlineEm, flat: &[f64], d: usize, batch: usize) {
    for chunk in flat.chunks(batch * d) {
        let x = points_from_rows(chunk, d).expect("whole points");
        est.partial_fit(x, 1.0).expect("batch absorbed");
    }
}

fn start_model(t: CovarianceType, d: usize) -> GaussianMixture {
    let k = 3;
    let weights = DVector::from_vec(vec![0.3, 0.3, 0.4]);
    let means = DMatrix::from_fn(d, k, |i, j| (j as f64 - 1.0) * 3.0 + 0.1 * i as f64);
    let cov = match t {
        CovarianceType::Full => Covariances::Full(vec![DMatrix::identity(d, d); k]),
        CovarianceType::Diag => Covariances::Diag(DMatrix::from_element(d, k, 1.0)),
        CovarianceType::Spherical => Covariances::Spherical(DVector::from_element(k, 1.0)),
        CovarianceType::Tied => Covariances::Tied(DMatrix::identity(d, d)),
    };
    GaussianMixture::new(weights, means, cov).expect("valid start")
}

#[test]
fn one_batch_without_forgetting_is_one_batch_em_iteration() {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    for t in CovarianceType::ALL {
        for d in [2, 7] {
            let data = draw(&truth(3, d, 4.0, &mut rng), 3000, &mut rng);
            let x = points_from_rows(&data, d).expect("points");
            let start = start_model(t, d);
            let (expected, ll) = em_step(&start, x, 1e-6, None).expect("em step");
            let settings = OnlineSettings {
                covariance_type: t,
                // The equivalence is of the EM update alone, without re-seeding.
                min_weight: 0.0,
                schedule: Schedule::Decay {
                    half_life: None,
                    unit: HalfLifeUnit::Points,
                },
                ..OnlineSettings::new(3)
            };
            let mut est = OnlineEm::from_model(settings, start.clone(), 0.0).expect("online");
            let outcome = est.partial_fit(x, 0.0).expect("batch");
            assert_eq!(
                est.model(),
                Some(&expected),
                "{t} d={d}: not one EM iteration"
            );
            let scored = outcome.scored.expect("scores");
            assert_eq!(scored.model_version, 0);
            assert_eq!(
                scored.evaluation.log_density,
                start.score_samples(x).expect("scores")
            );
            assert!((scored.evaluation.mean_log_likelihood() - ll).abs() < 1e-12);
        }
    }
}

/// The stationary-stream check of the issue: d = 8, K = 6, 200 000 points.
fn stationary_gap(schedule: Schedule) -> f64 {
    let (d, k) = (8, 6);
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let truth = truth(k, d, 6.0, &mut rng);
    let train = draw(&truth, 200_000, &mut rng);
    let held_out = draw(&truth, 20_000, &mut rng);
    let batch = batch_fit(&train, d, k);
    let settings = OnlineSettings {
        schedule,
        warmup_points: 5_000,
        ..OnlineSettings::new(k)
    };
    let mut est = OnlineEm::new(settings).expect("online");
    stream(&mut est, &train, d, 1_000);
    let online = est.model().expect("started");
    assert_eq!(
        est.state().drift.changes,
        0,
        "a false alarm on a stationary stream"
    );
    let (b, o) = (mean_ll(&batch, &held_out, d), mean_ll(online, &held_out, d));
    println!(
        "{schedule:?}: held-out mean log-likelihood batch {b:.5}, online {o:.5}, gap {:.5}",
        b - o
    );
    b - o
}

#[test]
fn decay_ends_within_a_hundredth_of_a_nat_of_batch_em() {
    let gap = stationary_gap(Schedule::Decay {
        half_life: Some(50_000.0),
        unit: HalfLifeUnit::Points,
    });
    assert!(gap < 0.01, "gap {gap}");
}

#[test]
fn stepwise_ends_within_a_hundredth_of_a_nat_of_batch_em() {
    let gap = stationary_gap(Schedule::Stepwise {
        alpha: 0.7,
        t0: 5.0,
    });
    assert!(gap < 0.01, "gap {gap}");
}

/// A stream whose means all jump at once; returns, at several times after the jump
/// (in half-lives), the held-out gap to a batch fit of the new regime.
fn recovery_after_jump(drift: DriftSettings) -> Vec<(f64, f64)> {
    let (d, k, half_life, batch) = (4, 4, 10_000.0, 500);
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let before = truth(k, d, 6.0, &mut rng);
    let shift = DVector::from_element(d, 7.0);
    let mut moved = before.means().clone();
    for mut col in moved.column_iter_mut() {
        col += &shift;
    }
    let after = GaussianMixture::new(
        before.weights().clone(),
        moved,
        before.covariances().clone(),
    )
    .expect("valid");
    let new_fit = batch_fit(&draw(&after, 50_000, &mut rng), d, k);
    let held_out = draw(&after, 10_000, &mut rng);
    let best = mean_ll(&new_fit, &held_out, d);
    let settings = OnlineSettings {
        schedule: Schedule::Decay {
            half_life: Some(half_life),
            unit: HalfLifeUnit::Points,
        },
        drift,
        ..OnlineSettings::new(k)
    };
    let mut est = OnlineEm::new(settings).expect("online");
    stream(&mut est, &draw(&before, 60_000, &mut rng), d, batch);
    let mut gaps = Vec::new();
    let step = (half_life / 4.0) as usize;
    for quarter in 1..=16 {
        stream(&mut est, &draw(&after, step, &mut rng), d, batch);
        let gap = best - mean_ll(est.model().expect("running"), &held_out, d);
        gaps.push((quarter as f64 / 4.0, gap));
    }
    gaps
}

#[test]
fn change_detection_recovers_from_a_jump_within_two_half_lives() {
    let with = recovery_after_jump(DriftSettings::default());
    let without = recovery_after_jump(DriftSettings {
        enabled: false,
        ..DriftSettings::default()
    });
    println!("half-lives after the jump: gap with detection / without");
    for ((t, a), (_, b)) in with.iter().zip(&without) {
        println!("  {t:5.2}: {a:9.4} / {b:9.4}");
    }
    let at = |g: &[(f64, f64)], t: f64| g.iter().find(|p| p.0 == t).map_or(f64::NAN, |p| p.1);
    assert!(
        at(&with, 2.0) < 0.05,
        "with detection, gap after 2 half-lives: {}",
        at(&with, 2.0)
    );
    assert!(
        at(&without, 2.0) > at(&with, 2.0),
        "detection should recover faster than constant forgetting"
    );
}

#[test]
fn a_restored_state_continues_exactly() {
    let (d, k) = (3, 4);
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let data = draw(&truth(k, d, 5.0, &mut rng), 12_000, &mut rng);
    let settings = OnlineSettings {
        warmup_points: 1_500,
        ..OnlineSettings::new(k)
    };
    let mut whole = OnlineEm::new(settings.clone()).expect("online");
    stream(&mut whole, &data, d, 700);
    // Split once inside the warm-up and once after it.
    for split_batches in [1usize, 9] {
        let cut = split_batches * 700 * d;
        let mut first = OnlineEm::new(settings.clone()).expect("online");
        stream(&mut first, &data[..cut], d, 700);
        let saved = save(&first, &settings);
        let restored_model = saved
            .state
            .as_ref()
            .and_then(|s| s.stats.as_ref())
            .map(|_| saved.mixture().expect("valid mixture"));
        let state = saved.state.clone().expect("state saved");
        let mut second =
            OnlineEm::restore(settings.clone(), state, restored_model).expect("restores");
        stream(&mut second, &data[cut..], d, 700);
        assert_eq!(
            second.model(),
            whole.model(),
            "split after {split_batches} batches"
        );
        assert_eq!(second.state(), whole.state());
    }
}

/// Round-trips the estimator through the JSON model file, as a snapshot does.
fn save(est: &OnlineEm, settings: &OnlineSettings) -> ModelFile {
    let placeholder;
    let model = match est.model() {
        Some(m) => m,
        None => {
            // Before the warm-up ends there are no parameters yet; the file still
            // needs some, and the state says the model has not started.
            placeholder = start_model(CovarianceType::Full, 3);
            &placeholder
        }
    };
    let mut file = ModelFile::new(
        model,
        gmm_io::EstimatorInfo::Online(settings.clone()),
        "2026-11-22T00:00:00Z".into(),
    );
    file.state = Some(est.state().clone());
    let bytes = file.to_json().expect("json");
    ModelFile::from_bytes(&bytes).expect("loads")
}

#[test]
fn warm_up_buffers_then_scores_every_buffered_point() {
    let (d, k) = (2, 3);
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let data = draw(&truth(k, d, 5.0, &mut rng), 1_000, &mut rng);
    let settings = OnlineSettings {
        warmup_points: 1_000,
        ..OnlineSettings::new(k)
    };
    let mut est = OnlineEm::new(settings.clone()).expect("online");
    for (i, chunk) in data.chunks(100 * d).enumerate() {
        let outcome = est
            .partial_fit(points_from_rows(chunk, d).expect("points"), 0.0)
            .expect("ok");
        match outcome.scored {
            None => assert!(i < 9 && est.model().is_none()),
            Some(s) => {
                assert_eq!(i, 9);
                assert_eq!(s.evaluation.log_density.len(), 1_000);
                assert_eq!(s.evaluation.responsibilities.ncols(), 1_000);
            }
        }
    }
    assert_eq!(est.points_seen(), 1_000);
    // A finite stream shorter than the warm-up starts the model at its end.
    let mut short = OnlineEm::new(settings).expect("online");
    short
        .partial_fit(points_from_rows(&data[..400], d).expect("points"), 0.0)
        .expect("ok");
    assert!(short.model().is_none());
    let outcome = short.finish_warmup().expect("starts");
    assert_eq!(
        outcome.scored.map(|s| s.evaluation.log_density.len()),
        Some(200)
    );
    assert!(short.model().is_some());
}

#[test]
fn a_withered_component_is_reseeded_where_points_are_badly_explained() {
    let d = 2;
    let centres = [[0.0, 0.0], [8.0, 0.0], [0.0, 8.0]];
    let truth = GaussianMixture::new(
        DVector::from_element(3, 1.0 / 3.0),
        DMatrix::from_fn(d, 3, |i, k| centres[k][i]),
        Covariances::Full(vec![DMatrix::identity(d, d); 3]),
    )
    .expect("valid");
    // The start knows two clusters; its third component is stranded far away with
    // almost no weight, so the third cluster is explained by nobody.
    let start = GaussianMixture::new(
        DVector::from_vec(vec![0.5, 0.5 - 1e-6, 1e-6]),
        DMatrix::from_fn(d, 3, |i, k| [[0.0, 0.0], [8.0, 0.0], [-50.0, -50.0]][k][i]),
        Covariances::Full(vec![DMatrix::identity(d, d); 3]),
    )
    .expect("valid");
    let settings = OnlineSettings {
        schedule: Schedule::Decay {
            half_life: Some(2_000.0),
            unit: HalfLifeUnit::Points,
        },
        drift: DriftSettings {
            enabled: false,
            ..DriftSettings::default()
        },
        ..OnlineSettings::new(3)
    };
    let mut est = OnlineEm::from_model(settings, start, 1_000.0).expect("online");
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    stream(&mut est, &draw(&truth, 10_000, &mut rng), d, 500);
    assert!(est.state().reseeds > 0, "no component was re-seeded");
    let model = est.model().expect("running");
    let found = model
        .means()
        .column_iter()
        .map(|m| (m - DVector::from_vec(vec![0.0, 8.0])).norm())
        .fold(f64::INFINITY, f64::min);
    assert!(
        found < 0.3,
        "no component found the third cluster (nearest mean {found})"
    );
    let held_out = draw(&truth, 5_000, &mut rng);
    let gap = mean_ll(&truth, &held_out, d) - mean_ll(model, &held_out, d);
    assert!(gap < 0.02, "held-out gap to the truth {gap}");
}

#[test]
fn map_estimation_keeps_covariances_defined_where_maximum_likelihood_fails() {
    let d = 2;
    // Two ordinary clusters and a pile of identical points: without a floor, the
    // pile's component collapses to zero variance.
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    let mut flat = draw(&truth(2, d, 5.0, &mut rng), 400, &mut rng);
    for _ in 0..50 {
        flat.extend_from_slice(&[30.0, 30.0]);
    }
    let x = points_from_rows(&flat, d).expect("points");
    let ml = EmSettings {
        reg_covar: 0.0,
        ..EmSettings::new(3)
    };
    let err = fit(x, &ml, &mut |_| {}).expect_err("collapses");
    assert!(err.to_string().contains("reg_covar"), "{err}");
    let map = EmSettings {
        prior: Some(Prior::from_data(x, 3, CovarianceType::Full).expect("prior")),
        ..ml
    };
    let report = fit(x, &map, &mut |_| {}).expect("MAP fit");
    assert!((report.model.weights().sum() - 1.0).abs() < 1e-12);
    let pile = report
        .model
        .means()
        .column_iter()
        .position(|m| (m - DVector::from_vec(vec![30.0, 30.0])).norm() < 0.05)
        .expect("a component on the pile");
    let cov = report.model.covariances().component_matrix(pile, d);
    assert!(cov.determinant() > 0.0 && cov[(0, 0)] > 1e-4, "{cov}");

    // Online, the prior is fitted to the warm-up points and used at every step.
    let settings = OnlineSettings {
        map_prior: true,
        reg_covar: 0.0,
        warmup_points: 450,
        ..OnlineSettings::new(3)
    };
    let mut est = OnlineEm::new(settings).expect("online");
    est.partial_fit(x, 0.0).expect("warm-up with a prior");
    est.partial_fit(x, 0.0).expect("update with a prior");
    assert!(est.state().prior.is_some());
}

#[test]
fn gradual_drift_is_tracked_by_forgetting_without_alarms() {
    // Constant forgetting lags a moving mean by about speed × h / ln 2 points (here
    // 0.14 units), which costs a few hundredths of a nat.
    let (d, k, half_life, batch) = (3, 3, 2_000.0, 500);
    let mut rng = ChaCha8Rng::seed_from_u64(21);
    let base = truth(k, d, 6.0, &mut rng);
    let at = |t: f64| {
        // Every mean moves one unit per 20 000 points along the first axis.
        let mut means = base.means().clone();
        means.row_mut(0).add_scalar_mut(t / 20_000.0);
        GaussianMixture::new(base.weights().clone(), means, base.covariances().clone())
            .expect("valid")
    };
    let settings = OnlineSettings {
        schedule: Schedule::Decay {
            half_life: Some(half_life),
            unit: HalfLifeUnit::Points,
        },
        ..OnlineSettings::new(k)
    };
    let mut est = OnlineEm::new(settings).expect("online");
    let mut worst: f64 = 0.0;
    for i in 0..120 {
        let now = at((i * batch) as f64);
        stream(&mut est, &draw(&now, batch, &mut rng), d, batch);
        if i >= 40 {
            let held_out = draw(&now, 2_000, &mut rng);
            let gap =
                mean_ll(&now, &held_out, d) - mean_ll(est.model().expect("running"), &held_out, d);
            worst = worst.max(gap);
        }
    }
    println!("gradual drift: worst held-out gap to the moving truth {worst:.4}");
    assert_eq!(
        est.state().drift.changes,
        0,
        "gradual drift raised an alarm"
    );
    assert!(worst < 0.05, "tracking gap {worst}");
}

#[test]
fn tiny_timeout_batches_raise_no_alarm_on_a_stationary_stream() {
    let (d, k) = (2, 3);
    let mut rng = ChaCha8Rng::seed_from_u64(31);
    let truth = truth(k, d, 6.0, &mut rng);
    let mut est = OnlineEm::new(OnlineSettings::new(k)).expect("online");
    stream(&mut est, &draw(&truth, 20_000, &mut rng), d, 1_000);
    for round in 0..30 {
        // A timeout batch of one point, sometimes a poorly explained one: its
        // level says nothing about the regime.
        let lonely = if round % 3 == 0 {
            vec![15.0, -15.0]
        } else {
            draw(&truth, 1, &mut rng)
        };
        est.partial_fit(points_from_rows(&lonely, d).expect("point"), 1.0)
            .expect("absorbed");
        stream(&mut est, &draw(&truth, 1_000, &mut rng), d, 1_000);
    }
    assert_eq!(est.state().drift.changes, 0, "a false alarm");
}

/// Streams `n` points, 1 % of them far outliers, flagging and (optionally)
/// trimming below a running 1 % quantile as the daemon does. Returns the held-out
/// gap to the truth on clean points and the smallest component weight.
fn outlier_stream(trim: bool) -> (f64, f64) {
    use gmm_model::anomaly::AnomalyThreshold;
    let (d, k, batch) = (2, 3, 500);
    let mut rng = ChaCha8Rng::seed_from_u64(17);
    // Clearly separated clusters: the only thing to get wrong is the outliers.
    let truth = GaussianMixture::new(
        DVector::from_vec(vec![0.4, 0.35, 0.25]),
        DMatrix::from_column_slice(d, k, &[0.0, 0.0, 8.0, 0.0, 0.0, 8.0]),
        Covariances::Full(vec![DMatrix::identity(d, d); k]),
    )
    .expect("valid truth");
    // As the daemon configures it: trimming also trims the warm-up.
    let settings = OnlineSettings {
        warmup_trim: if trim { 0.01 } else { 0.0 },
        ..OnlineSettings::new(k)
    };
    let mut est = OnlineEm::new(settings).expect("online");
    let mut anomaly = AnomalyThreshold::new(0.01, 20_000).expect("threshold");
    for _ in 0..120 {
        let mut points = draw(&truth, batch, &mut rng);
        for j in 0..batch {
            if j % 100 == 0 {
                points[j * d] = rng.random_range(-40.0..40.0);
                points[j * d + 1] = rng.random_range(-40.0..40.0);
            }
        }
        est.set_trim_threshold(anomaly.threshold().filter(|_| trim));
        let out = est
            .partial_fit(points_from_rows(&points, d).expect("points"), 1.0)
            .expect("absorbed");
        if let Some(scored) = out.scored {
            anomaly.observe_batch(&scored.evaluation.log_density);
        }
    }
    let held_out = draw(&truth, 10_000, &mut rng);
    let model = est.model().expect("running");
    let gap = mean_ll(&truth, &held_out, d) - mean_ll(model, &held_out, d);
    (gap, model.weights().min())
}

#[test]
fn trimming_anomalies_keeps_outliers_from_bending_the_model() {
    let (trimmed_gap, trimmed_min) = outlier_stream(true);
    let (whole_gap, whole_min) = outlier_stream(false);
    println!("held-out gap to the truth: trimmed {trimmed_gap:.4} (smallest weight {trimmed_min:.3}), absorbing every point {whole_gap:.4} (smallest weight {whole_min:.3})");
    assert!(trimmed_gap < 0.02, "trimmed gap {trimmed_gap}");
    assert!(
        trimmed_min > 0.1,
        "a component went to the outliers: {trimmed_min}"
    );
    assert!(whole_gap > trimmed_gap, "trimming did not help");
}
