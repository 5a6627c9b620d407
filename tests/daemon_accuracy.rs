//! What the daemon estimates, end to end through `run` on files (the issue's
//! "Show" list): a stationary stream ends close to batch EM, an abrupt jump is
//! recovered from within about two half-lives, and injected outliers are ranked
//! and flagged by the prequential scores.
//!
//! Each test prints its numbers (`cargo test --test daemon_accuracy -- --nocapture`).

mod daemon_support;

use daemon_support::*;
use gmm_stream::config::GeneratorConfig;

/// A stationary, well separated mixture: 4 full-covariance components in 3-d.
fn stationary(seed: u64) -> GeneratorConfig {
    GeneratorConfig {
        dim: 3,
        components: 4,
        seed,
        rate: 0.0,
        ..GeneratorConfig::default()
    }
}

#[test]
fn a_stationary_stream_ends_within_a_hundredth_of_a_nat_of_batch_em() {
    const N: usize = 100_000;
    const HELD_OUT: usize = 50_000;
    // The held-out points are the stream's own continuation (it is stationary).
    let stream = Stream::new(stationary(11), N + HELD_OUT);
    let (train, held_out) = (stream.rows(0..N), stream.rows(N..N + HELD_OUT));
    let work = Workdir::new();
    let input = work.path("points.f64");
    write_f64le(&input, train);

    let batch = batch_fit(train, 3, 4);
    let batch_ll = mean_ll(&batch, held_out, 3);
    let truth_ll = mean_ll(&stream.generator.truth_at(0).expect("truth"), held_out, 3);
    println!("held-out mean log-likelihood: truth {truth_ll:.5}, batch EM {batch_ll:.5}");

    // Both schedules: a constant decay (half-life 10 000 points, the default) and
    // stepwise steps, which converge to the maximum-likelihood fit.
    for schedule in ["decay", "stepwise"] {
        let snapshots = work.path(&format!("snapshots-{schedule}"));
        let config = work.config_file(
            &format!("{schedule}.toml"),
            &file_config(&input, "f64le", &snapshots, ""),
        );
        let schedule_set = format!("estimator.schedule={schedule}");
        run_in_process(load_config(
            &config,
            &["source.dim=3", "model.components=4", &schedule_set],
        ));
        let last = newest_snapshot(&snapshots);
        assert_eq!(
            last.points_seen, N as u64,
            "{schedule}: every point absorbed"
        );
        let online_ll = mean_ll(&last.mixture().expect("a valid model"), held_out, 3);
        let gap = batch_ll - online_ll;
        println!("{schedule}: online {online_ll:.5}, gap to batch EM {gap:+.5} nats/point");
        assert!(
            gap.abs() <= 0.01,
            "{schedule}: the online model is {gap} nats/point from batch EM on held-out points"
        );
    }
}

#[test]
fn after_a_jump_of_the_means_the_model_recovers_within_two_half_lives() {
    const JUMP: usize = 50_000;
    const N: usize = 100_000;
    const HALF_LIFE: usize = 10_000;
    // Snapshots every quarter half-life show the recovery as it happens.
    const EVERY: usize = HALF_LIFE / 4;
    let config = GeneratorConfig {
        jump_every: JUMP as u64,
        jump_size: 6.0,
        dim: 3,
        components: 3,
        seed: 5,
        rate: 0.0,
        ..GeneratorConfig::default()
    };
    let stream = Stream::new(config, N);
    let work = Workdir::new();
    let input = work.path("points.csv");
    write_csv(&input, stream.rows(0..N), 3);

    // The reference: batch EM on the new regime's points of the stream, judged on
    // fresh points of the new regime.
    let new_truth = stream.generator.truth_at(JUMP as u64).expect("truth");
    let old_truth = stream.generator.truth_at(0).expect("truth");
    let held_out = sample(&new_truth, 50_000, 99);
    let batch = batch_fit(stream.rows(JUMP..N), 3, 3);
    let batch_ll = mean_ll(&batch, &held_out, 3);
    println!(
        "new regime, held-out mean log-likelihood: batch EM {batch_ll:.4}, the old truth {:.4}",
        mean_ll(&old_truth, &held_out, 3)
    );

    // With the change detector (the default), which forgets faster and refits on
    // the points after the change, and without it: the plain decay alone. The
    // decay alone forgets the old regime, but its components, pulled from their
    // old places, can end in a poor arrangement (one stretched over two clusters,
    // one stranded) that is slow to undo: measured here, it is still about 1
    // nat/point off after two half-lives and 0.2 after five. So the bound is
    // asserted for the default; without the detector only a steady improvement is.
    for detector in [true, false] {
        let snapshots = work.path(&format!("snapshots-{detector}"));
        let config = work.config_file(
            &format!("run-{detector}.toml"),
            &file_config(&input, "csv", &snapshots, ""),
        );
        let every = format!("snapshot.every_points={EVERY}");
        let half_life = format!("estimator.half_life={HALF_LIFE}");
        let enabled = format!("estimator.drift.enabled={detector}");
        run_in_process(load_config(
            &config,
            &[
                "model.components=3",
                "estimator.batch_size=500",
                &every,
                &half_life,
                &enabled,
            ],
        ));
        println!("change detector {detector}:");
        println!("points after the jump | half-lives | gap to batch EM (nats/point)");
        let mut gaps = Vec::new();
        for snap in all_snapshots(&snapshots) {
            let seen = snap.points_seen as usize;
            if seen < JUMP {
                continue;
            }
            let ll = mean_ll(&snap.mixture().expect("a valid model"), &held_out, 3);
            let after = seen - JUMP;
            let gap = batch_ll - ll;
            println!(
                "{after:>21} | {:>10.2} | {gap:.4}",
                after as f64 / HALF_LIFE as f64
            );
            gaps.push((after, gap));
        }
        // The snapshot taken at the jump has seen nothing of the new regime: the
        // comparison can tell a stale model.
        assert_eq!(gaps.first().map(|g| g.0), Some(0), "a snapshot at the jump");
        assert!(gaps[0].1 > 1.0, "the jump is not visible: {:?}", gaps[0]);
        if !detector {
            let at = |half_lives: usize| {
                gaps.iter()
                    .find(|g| g.0 == half_lives * HALF_LIFE)
                    .map_or(f64::NAN, |g| g.1)
            };
            assert!(
                at(5) < at(2) && at(2) < at(1),
                "no steady recovery: {gaps:?}"
            );
            continue;
        }
        let late: Vec<_> = gaps
            .iter()
            .filter(|(after, _)| *after >= 2 * HALF_LIFE)
            .collect();
        assert!(late.len() >= 10, "snapshots after two half-lives: {late:?}");
        for (after, gap) in late {
            assert!(
                *gap <= 0.05,
                "detector {detector}: {after} points after the jump the model is {gap} \
                 nats/point from batch EM"
            );
        }
    }
}

/// One line of the scores file.
#[derive(serde::Deserialize)]
struct ScoreLine {
    log_density: Option<f64>,
    anomaly: bool,
    threshold: Option<f64>,
}

#[test]
fn injected_outliers_are_ranked_and_flagged_by_the_prequential_scores() {
    const N: usize = 120_000;
    const OUTLIERS: f64 = 0.005;
    let stream = Stream::new(
        GeneratorConfig {
            outlier_fraction: OUTLIERS,
            ..stationary(23)
        },
        N,
    );
    let work = Workdir::new();
    let input = work.path("points.csv");
    write_csv(&input, stream.rows(0..N), 3);
    let scores = work.path("scores.ndjson");
    let extra = format!("\n[scores]\nsink = \"file\"\npath = {scores:?}\n");
    let config = work.config_file(
        "run.toml",
        &file_config(&input, "csv", &work.snapshots(), &extra),
    );
    // The flagging quantile equals the outlier fraction. The threshold is the
    // 0.5 % quantile of the last ~50 000 log-densities, so it flags about 0.5 % of
    // the points: when the outliers are all below the inliers, that is about all
    // of them. Not quite all: when a window happens to hold more outliers than
    // 0.5 % of its points (their count is binomial, ±6 % at one standard
    // deviation here), the threshold falls among the outliers and the excess goes
    // unflagged. A quantile a little above the outlier fraction catches every
    // outlier at the price of a few inliers flagged; one below it can never catch
    // more than quantile / fraction of them.
    let out = run_binary(
        &config,
        &[
            "model.components=4",
            "scores.anomaly_quantile=0.005",
            "scores.anomaly_window=50000",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let text = std::fs::read_to_string(&scores).expect("the scores file");
    let records: Vec<ScoreLine> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("a score record"))
        .collect();
    // One record per point, in input order (no restart: exactly once).
    assert_eq!(records.len(), N);
    let is_outlier: Vec<bool> = (0..N as u64)
        .map(|i| stream.generator.is_outlier(i))
        .collect();
    let n_outliers = is_outlier.iter().filter(|&&o| o).count();

    // ROC AUC of -log_density as the outlier score: the probability that an
    // outlier scores below an inlier (ties count half), over every point.
    // A log-density of null is -inf (a point too far for f64).
    let ld: Vec<f64> = records
        .iter()
        .map(|r| r.log_density.unwrap_or(f64::NEG_INFINITY))
        .collect();
    let auc = roc_auc(&ld, &is_outlier);

    // The flags: only where a threshold existed (it needs 10 / 0.005 = 2 000
    // points first, so the warm-up points are never flagged).
    let judged: Vec<usize> = (0..N).filter(|&i| records[i].threshold.is_some()).collect();
    let judged_outliers = judged.iter().filter(|&&i| is_outlier[i]).count();
    let caught = judged
        .iter()
        .filter(|&&i| is_outlier[i] && records[i].anomaly)
        .count();
    let false_alarms = judged
        .iter()
        .filter(|&&i| !is_outlier[i] && records[i].anomaly)
        .count();
    let catch_rate = caught as f64 / judged_outliers as f64;
    println!(
        "{n_outliers} outliers in {N} points: ROC AUC {auc:.5}; flagged {caught} of the \
         {judged_outliers} outliers judged against a threshold ({:.1} %), {false_alarms} \
         inliers flagged ({:.3} % of {})",
        100.0 * catch_rate,
        100.0 * false_alarms as f64 / (judged.len() - judged_outliers) as f64,
        judged.len() - judged_outliers
    );
    assert!(judged.len() >= N - 5_000, "threshold missing for too long");
    assert!(auc >= 0.99, "ROC AUC {auc}");
    assert!(catch_rate >= 0.9, "caught {caught} of {judged_outliers}");
    // Flagging is capped near the quantile, so false alarms stay near the
    // quantile's share too (here well under 0.5 % of the inliers).
    assert!(false_alarms as f64 <= 0.005 * judged.len() as f64);
}

/// Probability that a positive's score is below a negative's (Mann-Whitney),
/// ties counting half.
fn roc_auc(score: &[f64], positive: &[bool]) -> f64 {
    let mut order: Vec<usize> = (0..score.len()).collect();
    order.sort_by(|&a, &b| score[a].total_cmp(&score[b]));
    let (mut below, mut negatives_seen) = (0.0, 0usize);
    let n_pos = positive.iter().filter(|&&p| p).count();
    let n_neg = positive.len() - n_pos;
    let mut i = 0;
    while i < order.len() {
        // A run of tied scores.
        let mut j = i;
        while j < order.len() && score[order[j]] == score[order[i]] {
            j += 1;
        }
        let pos = order[i..j].iter().filter(|&&k| positive[k]).count();
        let neg = (j - i) - pos;
        // Each positive here is below every negative not yet seen.
        below += pos as f64 * ((n_neg - negatives_seen) as f64 - 0.5 * neg as f64);
        negatives_seen += neg;
        i = j;
    }
    below / (n_pos as f64 * n_neg as f64)
}
