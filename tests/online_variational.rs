//! Online variational inference in the estimator itself (the daemon's run of it is
//! in `daemon_variational.rs`): K chosen on a stream whose number of clusters
//! changes, stable component indices, and the cost of a generous K on a stationary
//! stream.

mod vb_stream;

use gmm_stream::model::{
    points_from_rows, HalfLifeUnit, Inference, OnlineEm, OnlineSettings, Schedule,
};
use vb_stream::{batch_fit, component_of_site, draw, mean_ll, phase_truth, used, DIM, PHASES};

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
        let truth = phase_truth(sites);
        stream(&mut est, &draw(&truth, 30_000, 100 + p as u64));
        let model = est.model().expect("running");
        let live = used(model, 0.02);
        assert_eq!(
            live.len(),
            sites.len(),
            "phase {p}: components above 2 %: {live:?}, weights {:?}",
            model.weights()
        );
        let held = draw(&truth, 20_000, 200 + p as u64);
        let yardstick = batch_fit(&draw(&truth, 20_000, 300 + p as u64), sites.len());
        let gap = mean_ll(&yardstick, &held) - mean_ll(model, &held);
        assert!(
            gap < 0.05,
            "phase {p}: {gap} nats/point below batch EM with K = {}",
            sites.len()
        );
        let owners: Vec<(usize, usize)> = sites
            .iter()
            .map(|&s| {
                (
                    s,
                    component_of_site(model, s, 0.02).expect("a live component"),
                )
            })
            .collect();
        if let Some(prev) = &previous {
            for (site, k) in &owners {
                if let Some((_, before)) = prev.iter().find(|(s, _)| s == site) {
                    assert_eq!(
                        k, before,
                        "phase {p}: site {site} moved from component {before} to {k}"
                    );
                }
            }
        }
        println!(
            "phase {p}: {} live of 8, gap {gap:.4} nats/point, owners {owners:?}, state {:?}",
            est.effective_components().unwrap_or(0),
            est.state()
                .variational
                .as_ref()
                .map(|v| (v.births, v.retirements, v.merges))
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
