//! "A kill -9 while a snapshot is being written leaves a loadable snapshot": a child
//! process (this test binary, re-run with an environment variable) writes snapshots
//! as fast as it can, resuming from the newest one each time it starts, and is
//! killed with SIGKILL at a random moment, many times over. Checked the other way
//! too: with the rename replaced by writing the final file in place, this test
//! finds a torn snapshot within a few rounds.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use gmm_io::{Encoding, EstimatorInfo, ModelFile};
use gmm_model::{CovarianceType, Covariances, GaussianMixture, OnlineSettings};
use gmm_stream::sink::SnapshotStore;
use nalgebra::{DMatrix, DVector};
use rand::Rng;

/// Set in the child: the snapshot directory to write into forever.
const CHILD_DIR: &str = "GMM_STREAM_TEST_SNAPSHOT_CHILD_DIR";
const CHILD_FORMAT: &str = "GMM_STREAM_TEST_SNAPSHOT_CHILD_FORMAT";
const KEEP: usize = 3;
const KILLS: usize = 40;

/// A model big enough (8 components, 24-d, full) that a write takes a while.
fn model_file(points_seen: u64) -> ModelFile {
    let (k, d) = (8, 24);
    let cov = DMatrix::from_fn(d, d, |i, j| if i == j { 2.0 } else { 0.01 });
    let model = GaussianMixture::new(
        DVector::from_element(k, 1.0 / k as f64),
        DMatrix::from_fn(d, k, |i, j| (i * k + j) as f64 / 7.0),
        Covariances::Full(vec![cov; k]),
    )
    .expect("valid mixture");
    let settings = OnlineSettings {
        covariance_type: CovarianceType::Full,
        ..OnlineSettings::new(k)
    };
    let mut file = ModelFile::new(&model, EstimatorInfo::Online(settings), "t".into());
    file.points_seen = points_seen;
    file.model_version = points_seen / 10;
    file
}

/// The store the daemon opens at start-up.
fn open(dir: &Path, format: Encoding) -> SnapshotStore {
    SnapshotStore::open(dir, KEEP, format).expect("open")
}

/// The child: resume from the newest snapshot, then write forever.
fn write_forever(dir: &str, format: &str) -> ! {
    let format = if format == "bin" {
        Encoding::Binary
    } else {
        Encoding::Json
    };
    let store = open(Path::new(dir), format);
    let outcome = store.load_newest().expect("load");
    let mut points = outcome.newest.map_or(0, |(_, m)| m.points_seen);
    loop {
        points += 10;
        store.write(&model_file(points)).expect("write");
    }
}

#[test]
fn kill_9_while_writing_snapshots_leaves_a_loadable_one() {
    if let (Ok(dir), Ok(format)) = (std::env::var(CHILD_DIR), std::env::var(CHILD_FORMAT)) {
        write_forever(&dir, &format);
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let exe = std::env::current_exe().expect("test binary");
    let mut rng = rand::rng();
    let mut last_points = 0;
    for round in 0..KILLS {
        let format = if round % 2 == 0 { "json" } else { "bin" };
        let mut child = Command::new(&exe)
            .args([
                "kill_9_while_writing_snapshots_leaves_a_loadable_one",
                "--exact",
                "--test-threads=1",
            ])
            .env(CHILD_DIR, dir.path())
            .env(CHILD_FORMAT, format)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn the writer");
        wait_for_progress(dir.path(), last_points);
        std::thread::sleep(Duration::from_micros(rng.random_range(0..5_000)));
        // Child::kill sends SIGKILL on Unix.
        child.kill().expect("kill -9");
        child.wait().expect("reap");

        let store = open(dir.path(), Encoding::Json);
        let outcome = store.load_newest().expect("load");
        assert!(
            outcome.skipped.is_empty(),
            "round {round}: a final snapshot was torn: {:?}",
            outcome.skipped
        );
        let (path, model) = outcome.newest.expect("a loadable snapshot");
        assert!(model.points_seen > last_points, "round {round}: {path:?}");
        assert_eq!(model, model_file(model.points_seen));
        // A kill between the rename and the pruning leaves surplus old snapshots
        // (the next write prunes them), never a newer one missing.
        assert_eq!(store.snapshots().expect("list").last(), Some(&path));
        last_points = model.points_seen;
    }
    let store = open(dir.path(), Encoding::Json);
    store.write(&model_file(last_points + 10)).expect("write");
    assert_eq!(store.snapshots().expect("list").len(), KEEP);
}

/// Waits until the child has written a few snapshots past `points`.
fn wait_for_progress(dir: &Path, points: u64) {
    let store = SnapshotStore::new(dir, KEEP, Encoding::Json);
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        let newest = store
            .snapshots()
            .ok()
            .and_then(|s| s.last().cloned())
            .and_then(|p| p.file_name()?.to_str()?.get(9..29)?.parse::<u64>().ok());
        if newest.is_some_and(|n| n >= points + 10) {
            return;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    panic!("the child wrote no snapshots within 60 s");
}
