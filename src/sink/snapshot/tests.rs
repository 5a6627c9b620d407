use nalgebra::{DMatrix, DVector};

use super::*;
use gmm_io::EstimatorInfo;
use gmm_model::{CovarianceType, Covariances, GaussianMixture, OnlineSettings};

fn model_file(points_seen: u64, model_version: u64) -> ModelFile {
    let model = GaussianMixture::new(
        DVector::from_vec(vec![0.4, 0.6]),
        DMatrix::from_row_slice(2, 2, &[0.0, 5.0, 1.0, -2.0]),
        Covariances::Spherical(DVector::from_vec(vec![1.0, 0.5])),
    )
    .expect("valid mixture");
    let settings = OnlineSettings {
        covariance_type: CovarianceType::Spherical,
        ..OnlineSettings::new(2)
    };
    let mut file = ModelFile::new(
        &model,
        EstimatorInfo::Online(settings),
        "2026-01-01T00:00:00Z".into(),
    );
    file.points_seen = points_seen;
    file.model_version = model_version;
    file
}

fn names(store: &SnapshotStore) -> Vec<String> {
    store
        .snapshots()
        .expect("list")
        .iter()
        .filter_map(|p| p.file_name()?.to_str().map(String::from))
        .collect()
}

fn newest(store: &SnapshotStore) -> (PathBuf, ModelFile) {
    store
        .load_newest()
        .expect("load")
        .newest
        .expect("a snapshot")
}

#[test]
fn writes_keep_the_last_snapshots_in_progress_order() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SnapshotStore::new(dir.path().join("a/b"), 3, Encoding::Json);
    let outcome = store.load_newest().expect("missing dir loads nothing");
    assert!(outcome.newest.is_none() && outcome.skipped.is_empty());
    // 9 < 10 < 100 numerically, not as text: the padding makes both agree.
    for (points, version) in [(9, 1), (10, 2), (100, 3), (100, 4), (2_000, 5)] {
        let path = store.write(&model_file(points, version)).expect("write");
        assert!(path.is_file());
    }
    assert_eq!(
        names(&store),
        [
            "snapshot-00000000000000000100-00000000000000000003.json",
            "snapshot-00000000000000000100-00000000000000000004.json",
            "snapshot-00000000000000002000-00000000000000000005.json",
        ]
    );
    let (path, loaded) = newest(&store);
    assert!(path.ends_with("snapshot-00000000000000002000-00000000000000000005.json"));
    assert_eq!(loaded, model_file(2_000, 5));
}

#[test]
fn both_formats_load_and_count_towards_keep() {
    let dir = tempfile::tempdir().expect("temp dir");
    let json = SnapshotStore::new(dir.path(), 2, Encoding::Json);
    let bin = SnapshotStore::new(dir.path(), 2, Encoding::Binary);
    json.write(&model_file(1, 1)).expect("json");
    let path = bin.write(&model_file(2, 2)).expect("bin");
    assert_eq!(path.extension().and_then(|e| e.to_str()), Some("bin"));
    assert_eq!(newest(&json), (path, model_file(2, 2)));
    json.write(&model_file(3, 3)).expect("json");
    assert_eq!(names(&json).len(), 2);
    // The same progress written again replaces the file.
    json.write(&model_file(3, 3)).expect("again");
    assert_eq!(names(&json).len(), 2);
}

#[test]
fn a_truncated_newest_snapshot_is_skipped_with_a_reason() {
    let dir = tempfile::tempdir().expect("temp dir");
    for format in [Encoding::Json, Encoding::Binary] {
        let store = SnapshotStore::new(dir.path().join(format!("{format:?}")), 5, format);
        store.write(&model_file(10, 1)).expect("write");
        let bad = store.write(&model_file(20, 2)).expect("write");
        let bytes = fs::read(&bad).expect("read");
        fs::write(&bad, &bytes[..bytes.len() / 2]).expect("truncate");
        let outcome = store.load_newest().expect("load");
        let (_, loaded) = outcome.newest.expect("the previous snapshot");
        assert_eq!(loaded.points_seen, 10);
        assert_eq!(outcome.skipped.len(), 1);
        assert_eq!(outcome.skipped[0].path, bad);
        assert!(!outcome.skipped[0].reason.is_empty());
    }
}

#[test]
fn a_crash_mid_write_leaves_the_previous_snapshot_loadable() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SnapshotStore::open(dir.path(), 3, Encoding::Binary).expect("open");
    store.write(&model_file(5, 1)).expect("write");
    // What a crash can leave: a half-written temporary file and, had the writer
    // not been atomic, a half-written final file; plus files that are not ours.
    let whole = model_file(6, 2).to_binary().expect("encode");
    fs::write(dir.path().join(".snapshot-x1y2z3.tmp"), &whole[..40]).expect("temp");
    let torn = dir
        .path()
        .join("snapshot-00000000000000000006-00000000000000000002.bin");
    fs::write(&torn, &whole[..whole.len() - 3]).expect("torn");
    fs::write(dir.path().join("notes.txt"), "x").expect("other");
    fs::write(dir.path().join("snapshot-6-2.bin"), "x").expect("other");

    let store = SnapshotStore::open(dir.path(), 3, Encoding::Binary).expect("reopen");
    assert_eq!(store.remove_stale_temp_files().expect("clean"), 0);
    assert!(!dir.path().join(".snapshot-x1y2z3.tmp").exists());
    let outcome = store.load_newest().expect("load");
    assert_eq!(outcome.newest.expect("previous").1, model_file(5, 1));
    assert_eq!(outcome.skipped.len(), 1);
    assert_eq!(outcome.skipped[0].path, torn);
    assert!(
        outcome.skipped[0].reason.contains("truncated"),
        "{}",
        outcome.skipped[0].reason
    );
    assert!(dir.path().join("notes.txt").exists());
}

#[test]
fn nothing_valid_loads_nothing_and_reports_every_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SnapshotStore::new(dir.path(), 5, Encoding::Json);
    for name in [
        "snapshot-00000000000000000001-00000000000000000001.json",
        "snapshot-00000000000000000002-00000000000000000002.json",
    ] {
        fs::write(dir.path().join(name), "{\"format\": ").expect("write");
    }
    let outcome = store.load_newest().expect("load");
    assert!(outcome.newest.is_none());
    assert_eq!(outcome.skipped.len(), 2);
    assert!(outcome.skipped[0]
        .path
        .to_string_lossy()
        .contains("0002.json"));
}

#[test]
fn an_unwritable_directory_is_an_error_naming_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("plain-file");
    fs::write(&file, "x").expect("write");
    let store = SnapshotStore::new(file.join("sub"), 2, Encoding::Json);
    let err = store.write(&model_file(1, 1)).expect_err("not a directory");
    assert!(err.to_string().contains("plain-file"), "{err}");
}
