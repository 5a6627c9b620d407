//! Online variational inference through `gmm-stream run` (the binary, on a file):
//! the number of components follows a stream whose clusters go 2 → 5 → 3, a
//! cluster keeps its component index from one phase to the next, each phase ends
//! near batch EM with the true K, and a stationary stream ends within a hundredth of
//! a nat of it. The estimator's own tests are in `online_variational.rs`.
//!
//! Each test prints its numbers (`cargo test --test daemon_variational -- --nocapture`).

mod daemon_support;
mod vb_stream;

use daemon_support::{
    all_snapshots, binary, file_config, json_logs, newest_points, newest_snapshot, parameter_bits,
    run_binary, spawn_binary, store, wait_timeout, write_f64le, Workdir,
};
use vb_stream::{batch_fit, check_phase, draw, mean_ll, phase_truth, used, PHASES};

const PHASE: usize = 30_000;

/// The `--set`s of every run, then `extra`.
fn sets(extra: &[&str]) -> Vec<String> {
    [
        "source.dim=2",
        "model.components=8",
        "estimator.inference=variational",
        "estimator.batch_size=500",
        "estimator.half_life=2000",
        "snapshot.every_points=30000",
    ]
    .iter()
    .chain(extra)
    .map(|s| s.to_string())
    .collect()
}

/// `run` with [`sets`] and `extra`.
fn run_with(config: &std::path::Path, extra: &[&str]) -> std::process::Output {
    let sets = sets(extra);
    let sets: Vec<&str> = sets.iter().map(String::as_str).collect();
    run_binary(config, &sets)
}

#[test]
fn the_daemon_chooses_k_as_clusters_come_and_go() {
    let work = Workdir::new();
    let input = work.path("points.f64");
    let points: Vec<f64> = PHASES
        .iter()
        .enumerate()
        .flat_map(|(p, sites)| draw(&phase_truth(sites), PHASE, 500 + p as u64))
        .collect();
    write_f64le(&input, &points);
    let snapshots = work.path("snapshots");
    let config = work.config_file("vb.toml", &file_config(&input, "f64le", &snapshots, ""));
    let out = run_with(&config, &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "run failed: {stderr}");
    let changes = json_logs(&stderr)
        .into_iter()
        .filter(|l| l["fields"]["message"] == "components changed")
        .count();
    assert!(changes > 0, "no structure change was logged: {stderr}");
    let files = all_snapshots(&snapshots);
    let mut previous: Option<Vec<(usize, usize)>> = None;
    for (p, sites) in PHASES.iter().enumerate() {
        let at = ((p + 1) * PHASE) as u64;
        let file = files
            .iter()
            .find(|f| f.points_seen == at)
            .unwrap_or_else(|| panic!("no snapshot at {at} points"));
        let model = file.mixture().expect("a valid model");
        let owners = check_phase(p, &model, 600 + 2 * p as u64, previous.as_deref());
        let effective = file
            .extensions
            .variational
            .as_ref()
            .expect("the variational object")
            .effective_components;
        assert!(
            effective as usize >= sites.len(),
            "phase {p}: {effective} live"
        );
        previous = Some(owners);
    }
}

#[test]
fn a_stationary_stream_ends_within_a_hundredth_of_a_nat_of_batch_em() {
    const N: usize = 60_000;
    let truth = phase_truth(PHASES[1]);
    let work = Workdir::new();
    let input = work.path("points.f64");
    let train = draw(&truth, N, 800);
    write_f64le(&input, &train);
    let snapshots = work.path("snapshots");
    let config = work.config_file("vb.toml", &file_config(&input, "f64le", &snapshots, ""));
    for schedule in ["decay", "stepwise"] {
        let dir = format!("snapshot.dir={}", snapshots.join(schedule).display());
        let schedule_set = format!("estimator.schedule={schedule}");
        let out = run_with(&config, &[&dir, &schedule_set, "estimator.half_life=20000"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let last = all_snapshots(&snapshots.join(schedule))
            .into_iter()
            .max_by_key(|f| f.points_seen)
            .expect("a snapshot");
        assert_eq!(
            last.points_seen, N as u64,
            "{schedule}: every point absorbed"
        );
        let model = last.mixture().expect("a valid model");
        let held = draw(&truth, 20_000, 801);
        let yardstick = batch_fit(&train, 5);
        let gap = mean_ll(&yardstick, &held) - mean_ll(&model, &held);
        println!(
            "{schedule}: gap to batch EM {gap:+.5} nats/point, weights {:?}",
            model.weights()
        );
        assert_eq!(
            used(&model, 0.02).len(),
            5,
            "{schedule}: {:?}",
            model.weights()
        );
        // `inspect` reports the effective and the live components of the snapshot.
        let newest = store(&snapshots.join(schedule))
            .snapshots()
            .expect("the snapshot directory")
            .last()
            .cloned()
            .expect("a snapshot");
        let out = binary()
            .args(["inspect", "--json"])
            .arg(&newest)
            .output()
            .expect("inspect runs");
        let summary: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
        assert_eq!(summary["effective_components"], 5, "{schedule}: {summary}");
        assert!(
            summary["variational"]["live_components"].as_u64() >= Some(5),
            "{summary}"
        );
        assert_eq!(
            summary["variational"]["settings"]["weight_prior"],
            "dirichlet_distribution"
        );
        assert!(
            gap.abs() <= 0.01,
            "{schedule}: {gap} nats/point from batch EM"
        );
    }
}

/// SIGTERM in the middle of the changing stream and a restart from the binary
/// snapshot end with the same model and variational state, bit for bit, as an
/// uninterrupted run.
#[test]
fn sigterm_and_restart_continue_bit_for_bit() {
    let work = Workdir::new();
    let input = work.path("points.f64");
    let points: Vec<f64> = PHASES
        .iter()
        .enumerate()
        .flat_map(|(p, sites)| draw(&phase_truth(sites), PHASE, 900 + p as u64))
        .collect();
    write_f64le(&input, &points);
    let every = ["snapshot.every_points=2000", "snapshot.format=bin"];
    let run_to_end = |name: &str| {
        let snapshots = work.path(name);
        let config = work.config_file(
            &format!("{name}.toml"),
            &file_config(&input, "f64le", &snapshots, ""),
        );
        (config, snapshots)
    };
    let (config, reference) = run_to_end("reference");
    assert!(run_with(&config, &every).status.success());
    let want = newest_snapshot(&reference);
    let mut attempt = 0;
    let (got, stopped_at) = loop {
        attempt += 1;
        let (config, snapshots) = run_to_end(&format!("stopped{attempt}"));
        let sets = sets(&every);
        let sets: Vec<&str> = sets.iter().map(String::as_str).collect();
        let mut child = spawn_binary(&config, &sets, &work.path(&format!("log{attempt}")));
        while newest_points(&snapshots).is_none_or(|p| p < 40_000) {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        let term = std::process::Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .expect("kill -TERM");
        assert!(term.success());
        let status =
            wait_timeout(&mut child, std::time::Duration::from_secs(60)).expect("it stops");
        assert!(status.success(), "SIGTERM exits 0: {status}");
        let stopped_at = newest_snapshot(&snapshots).points_seen;
        if stopped_at < (3 * PHASE) as u64 || attempt == 3 {
            assert!(run_with(&config, &every).status.success());
            break (newest_snapshot(&snapshots), stopped_at);
        }
    };
    println!("stopped after {stopped_at} points, then resumed");
    assert!(
        stopped_at < (3 * PHASE) as u64,
        "the run ended before the signal"
    );
    assert_eq!(got.points_seen, want.points_seen);
    assert!(
        parameter_bits(&got) == parameter_bits(&want),
        "the parameters differ"
    );
    assert!(
        got.online_state() == want.online_state(),
        "the estimator state differs"
    );
    let births = want
        .online_state()
        .and_then(|s| s.variational)
        .map(|v| v.births);
    assert!(births.is_some_and(|b| b > 0), "{births:?}");
}
