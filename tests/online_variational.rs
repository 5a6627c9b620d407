//! Online variational inference in the estimator itself (the daemon's run of it is
//! in `daemon_variational.rs`): K chosen on a stream whose number of clusters
//! changes, stable component indices, and the cost of a generous K on a stationary
//! stream.

mod vb_stream;

use gmm_io::{EstimatorInfo, ModelFile};
use gmm_model::{points_from_rows, HalfLifeUnit, Inference, OnlineEm, OnlineSettings, Schedule};
use vb_stream::{batch_fit, check_phase, draw, mean_ll, phase_truth, used, DIM, PHASES};

const BATCH: usize = 500;

fn settings(k: usize, half_life: f64) -> OnlineSettings {
    OnlineSettings {
        schedule: Schedule::Decay {
            half_life: Some(half_life),
            unit: HalfLifeUnit::Points,
        },
        inference: Inference::Variational,
        ..OnlineSettings::new(k)
    }
}

fn stream(est: &mut OnlineEm, flat: &[f64]) {
    for chunk in flat.chunks(BATCH * DIM) {
        let x = points_from_rows(chunk, DIM).expect("whole points");
        est.partial_fit(x, 1.0).expect("batch absorbed");
    }
}

#[test]
fn chooses_k_as_the_clusters_come_and_go() {
    let mut est = OnlineEm::new(settings(8, 2_000.0)).expect("estimator");
    let mut previous: Option<Vec<(usize, usize)>> = None;
    for (p, sites) in PHASES.iter().enumerate() {
        stream(&mut est, &draw(&phase_truth(sites), 30_000, 100 + p as u64));
        let model = est.model().expect("running");
        let owners = check_phase(p, model, 200 + 2 * p as u64, previous.as_deref());
        let v = est.state().variational.as_ref().expect("variational");
        println!(
            "  births {}, retirements {}, merges {}",
            v.births, v.retirements, v.merges
        );
        previous = Some(owners);
    }
}

#[test]
fn a_stationary_stream_ends_near_batch_em_with_the_true_k() {
    let truth = phase_truth(PHASES[1]);
    let mut est = OnlineEm::new(settings(8, 20_000.0)).expect("estimator");
    stream(&mut est, &draw(&truth, 60_000, 7));
    let model = est.model().expect("running");
    let held = draw(&truth, 20_000, 8);
    let yardstick = batch_fit(&draw(&truth, 60_000, 9), 5);
    let gap = mean_ll(&yardstick, &held) - mean_ll(model, &held);
    assert_eq!(used(model, 0.02).len(), 5, "weights {:?}", model.weights());
    assert!(
        gap < 0.01,
        "{gap} nats/point below batch EM with the true K"
    );
}

/// The estimator saved as a model file (JSON and binary) and restored from it.
fn saved_and_restored(est: &OnlineEm) -> Vec<OnlineEm> {
    let settings = est.settings().clone();
    let mut file = ModelFile::new(
        est.model().expect("running"),
        EstimatorInfo::Online(settings.clone()),
        "2026-12-01T00:00:00Z".into(),
    );
    file.set_online_state(&settings, est.state().clone());
    [
        file.to_json().expect("json"),
        file.to_binary().expect("binary"),
    ]
    .iter()
    .map(|bytes| {
        let back = ModelFile::from_bytes(bytes).expect("loads");
        let model = back.mixture().expect("mixture");
        let state = back.online_state().expect("state");
        assert_eq!(back.online_settings().as_ref(), Some(&settings));
        OnlineEm::restore(settings.clone(), state, Some(model)).expect("restores")
    })
    .collect()
}

/// A restored estimator continues exactly as the uninterrupted one, through births,
/// retirements and merges, from JSON and from the binary form.
#[test]
fn a_restored_estimator_continues_bit_for_bit() {
    let mut est = OnlineEm::new(settings(8, 2_000.0)).expect("estimator");
    let first = draw(&phase_truth(PHASES[0]), 6_000, 40);
    stream(&mut est, &first);
    let mut restored = saved_and_restored(&est);
    let rest: Vec<f64> = [
        draw(&phase_truth(PHASES[1]), 12_000, 41),
        draw(&phase_truth(PHASES[2]), 15_000, 42),
    ]
    .concat();
    stream(&mut est, &rest);
    let changes = est.state().variational.as_ref().expect("variational");
    assert!(changes.births > 0 && changes.retirements > 0, "{changes:?}");
    let bits = |e: &OnlineEm| -> Vec<u64> {
        let m = e.model().expect("running");
        m.weights()
            .iter()
            .chain(m.means().iter())
            .map(|v| v.to_bits())
            .collect()
    };
    for again in &mut restored {
        stream(again, &rest);
        assert_eq!(bits(again), bits(&est));
        assert_eq!(again.state(), est.state());
    }
}

/// Stepwise steps and anomaly trimming work with variational inference too.
#[test]
fn stepwise_and_trimming_choose_k_on_a_stationary_stream() {
    let truth = phase_truth(PHASES[1]);
    let held = draw(&truth, 20_000, 51);
    let yardstick = batch_fit(&draw(&truth, 40_000, 52), 5);
    let stepwise = OnlineSettings {
        schedule: Schedule::Stepwise {
            alpha: 0.7,
            t0: 4.0,
        },
        ..settings(8, 1.0)
    };
    let mut trimmed = OnlineEm::new(settings(8, 10_000.0)).expect("estimator");
    trimmed.set_trim_threshold(Some(-12.0));
    for (name, mut est) in [
        ("stepwise", OnlineEm::new(stepwise).expect("estimator")),
        ("trimmed", trimmed),
    ] {
        stream(&mut est, &draw(&truth, 40_000, 53));
        let model = est.model().expect("running");
        assert_eq!(used(model, 0.02).len(), 5, "{name}: {:?}", model.weights());
        let gap = mean_ll(&yardstick, &held) - mean_ll(model, &held);
        assert!(gap < 0.02, "{name}: {gap} nats/point below batch EM");
    }
}
