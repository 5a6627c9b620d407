//! Hostile points through `gmm-stream run` (the real binary), from the reproductions
//! of the issue "Hostile input and hostile clients": finite but huge values in the
//! warm-up and after it, points the model cannot score, and a binary file read a
//! few bytes off. None may cost a batch, a snapshot or the exit status.

mod daemon_support;

use std::path::Path;

use daemon_support::*;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};
use serde_json::Value;

/// Three clusters at x = 0, 6, 12 taken in turn (the issue's Python one-liner),
/// as csv lines; `extreme(i)` replaces line i.
fn three_clusters(n: usize, scale_y: f64, extreme: impl Fn(usize) -> Option<String>) -> String {
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let normal = Normal::new(0.0, 1.0).expect("a normal");
    let mut text = String::new();
    for i in 0..n {
        let (a, b): (f64, f64) = (normal.sample(&mut rng), normal.sample(&mut rng));
        let line =
            extreme(i).unwrap_or_else(|| format!("{},{}", (i % 3) as f64 * 6.0 + a, b * scale_y));
        text.push_str(&line);
        text.push('\n');
    }
    text
}

/// What a run left behind.
struct Run {
    stderr: String,
    summary: Value,
    dead: Vec<Value>,
    scores: usize,
    snapshot: gmm_io::ModelFile,
}

impl Run {
    fn count(&self, field: &str) -> u64 {
        self.summary["fields"][field].as_u64().unwrap_or(0)
    }
}

/// Runs the binary on `input` (csv unless `format` says otherwise) to its end:
/// exit 0, a final snapshot, dead letters and scores in files.
fn run(work: &Workdir, name: &str, input: &Path, format: &str, sets: &[&str]) -> Run {
    let snapshots = work.path(&format!("{name}-snapshots"));
    let dead = work.path(&format!("{name}-dead.ndjson"));
    let scores = work.path(&format!("{name}-scores.ndjson"));
    let extra = format!(
        "[dead_letter]\nsink = \"file\"\npath = {dead:?}\n\n[scores]\nsink = \"file\"\npath = {scores:?}\n"
    );
    let config = work.config_file(
        &format!("{name}.toml"),
        &file_config(input, format, &snapshots, &extra),
    );
    let output = run_binary(&config, sets);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{name}: {:?}\n{stderr}",
        output.status
    );
    let summary = json_logs(&stderr)
        .into_iter()
        .rev()
        .find(|l| l["fields"]["message"] == "run ended")
        .expect("a final summary line");
    let lines = |path: &Path| std::fs::read_to_string(path).unwrap_or_default();
    Run {
        stderr: stderr.to_string(),
        summary,
        dead: lines(&dead)
            .lines()
            .map(|l| serde_json::from_str(l).expect("a JSON dead letter"))
            .collect(),
        scores: lines(&scores).lines().count(),
        // The newest that loads: a test may have left a crafted one in place.
        snapshot: store(&snapshots)
            .load_newest()
            .expect("list snapshots")
            .newest
            .expect("a snapshot")
            .1,
    }
}

fn sorted_means(file: &gmm_io::ModelFile) -> Vec<f64> {
    let mut xs: Vec<f64> = file.means.iter().map(|m| m[0]).collect();
    xs.sort_by(f64::total_cmp);
    xs
}

#[test]
fn two_points_of_1e308_in_the_warm_up_leave_the_model_as_without_them() {
    let work = Workdir::new();
    let huge = |i| (i == 100 || i == 200).then(|| "1e308,1e308".to_string());
    let with = work.path("with.csv");
    let text = three_clusters(20_000, 1.0, huge);
    std::fs::write(&with, &text).expect("write");
    let without = work.path("without.csv");
    let clean: String = text
        .lines()
        .filter(|l| !l.starts_with("1e308"))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&without, clean).expect("write");

    let a = run(&work, "with", &with, "csv", &[]);
    let b = run(&work, "without", &without, "csv", &[]);
    assert_eq!(parameter_bits(&a.snapshot), parameter_bits(&b.snapshot));
    assert_eq!(a.snapshot.points_seen, 19_998);
    assert_eq!(b.snapshot.points_seen, 19_998);
    let means = sorted_means(&a.snapshot);
    for (k, x) in means.iter().enumerate() {
        assert!(
            (x - 6.0 * k as f64).abs() < 0.2,
            "three clusters: {means:?}"
        );
    }
    assert_eq!(a.count("rejected_out_of_range"), 2);
    assert_eq!((a.count("failed_points"), a.scores), (0, 19_998));
    assert_eq!(a.dead.len(), 2);
    for letter in &a.dead {
        assert_eq!(letter["reason"], "out_of_range");
        assert_eq!(letter["payload"], "1e308,1e308");
    }
    assert_eq!(a.dead[0]["position"]["line"], 101);
}

#[test]
fn a_point_of_1e20_every_500_costs_no_batch() {
    let work = Workdir::new();
    let input = work.path("spikes.csv");
    let spike = |i| (i > 2_000 && i % 500 == 0).then(|| "1e20,1e20".to_string());
    std::fs::write(&input, three_clusters(12_000, 1.0, spike)).expect("write");
    let r = run(&work, "spikes", &input, "csv", &[]);
    // Before: 9 000 of the 12 000 points were lost with their batches.
    assert_eq!(r.count("failed_points"), 0);
    assert_eq!(r.snapshot.points_seen, 12_000);
    assert_eq!(r.scores, 12_000);
    assert!(r.dead.is_empty(), "{:?}", r.dead);
    let means = sorted_means(&r.snapshot);
    for (k, x) in means.iter().enumerate() {
        assert!(
            (x - 6.0 * k as f64).abs() < 0.3,
            "three clusters: {means:?}"
        );
    }
}

#[test]
fn a_point_the_model_cannot_score_is_a_dead_letter_and_the_rest_is_absorbed() {
    // Clusters flat to 1e-90 in y and reg_covar 1e-200: a point at y = 1e99 is
    // 1e189 standard deviations away, a squared distance beyond f64.
    let work = Workdir::new();
    let input = work.path("flat.csv");
    let odd = |i| (i == 3_000).then(|| "0,1e99".to_string());
    std::fs::write(&input, three_clusters(6_000, 1e-90, odd)).expect("write");
    let r = run(&work, "flat", &input, "csv", &["model.reg_covar=1e-200"]);
    assert_eq!(r.count("failed_points"), 0);
    assert_eq!(r.count("rejected_unscorable"), 1);
    assert_eq!(r.snapshot.points_seen, 5_999);
    assert_eq!(r.scores, 5_999);
    assert_eq!(r.dead.len(), 1);
    assert_eq!(r.dead[0]["reason"], "unscorable");
    assert_eq!(r.dead[0]["payload"], "0.0,1e99");
}

#[test]
fn an_f64le_file_read_three_bytes_off_costs_no_batch() {
    let work = Workdir::new();
    let input = work.path("shifted.f64");
    let text = three_clusters(12_000, 1.0, |_| None);
    let mut bytes = vec![0x5a, 0x13, 0x77];
    for line in text.lines() {
        for v in line.split(',') {
            let v: f64 = v.parse().expect("a number");
            bytes.extend_from_slice(&v.to_le_bytes());
        }
    }
    bytes.truncate(bytes.len() - 3);
    std::fs::write(&input, bytes).expect("write");
    let r = run(&work, "shifted", &input, "f64le", &["source.dim=2"]);
    assert_eq!(r.count("failed_points"), 0);
    let rejected = r.count("rejected_out_of_range") + r.count("rejected_non_finite");
    assert!(rejected > 0, "{}", r.summary);
    assert_eq!(
        r.snapshot.points_seen + rejected + r.count("rejected_unscorable"),
        12_000
    );
}

#[test]
fn an_edited_json_snapshot_and_a_crafted_binary_one_are_skipped() {
    let work = Workdir::new();
    let input = work.path("points.csv");
    std::fs::write(&input, three_clusters(12_000, 1.0, |_| None)).expect("write");
    let every = ["snapshot.every_points=2000", "snapshot.keep=100"];
    let want = run(&work, "want", &input, "csv", &every);

    let got = run(&work, "got", &input, "csv", &every);
    let dir = work.path("got-snapshots");
    let mut snapshots: Vec<_> = std::fs::read_dir(&dir)
        .expect("snapshots")
        .map(|e| e.expect("entry").path())
        .collect();
    snapshots.sort();
    assert!(snapshots.len() >= 4, "{snapshots:?}");
    // Back to the middle of the run: the later snapshots are gone...
    for later in &snapshots[3..] {
        std::fs::remove_file(later).expect("remove");
    }
    // ...the newest left has its resume offset moved back by hand (which would
    // absorb points twice if trusted)...
    let edited = &snapshots[2];
    let text = std::fs::read_to_string(edited).expect("read");
    let offset = file_offset(&gmm_stream::sink::SnapshotStore::read(edited).expect("loads"));
    let moved = text.replace(
        &format!("\"offset\": {offset}"),
        &format!("\"offset\": {}", offset / 2),
    );
    assert_ne!(moved, text, "the offset is in the file");
    std::fs::write(edited, moved).expect("edit");
    // ...and a newer binary one declares a terabyte inside a valid checksum.
    let mut payload = vec![0xFD];
    payload.extend_from_slice(&(1u64 << 40).to_le_bytes());
    payload.extend_from_slice(b"gmm-stream.model");
    let mut crafted = b"GMM-STREAM-MODEL".to_vec();
    crafted.extend_from_slice(&1u32.to_le_bytes());
    crafted.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    crafted.extend_from_slice(&payload);
    let crc = crc32fast::hash(&crafted);
    crafted.extend_from_slice(&crc.to_le_bytes());
    let name = format!("snapshot-{:020}-{:020}.bin", 99_999_999u64, 99_999_999u64);
    std::fs::write(dir.join(name), crafted).expect("crafted");

    let again = run(&work, "got", &input, "csv", &every);
    assert_eq!(
        again
            .stderr
            .matches("skipping an unreadable snapshot")
            .count(),
        2,
        "{}",
        again.stderr
    );
    assert!(
        again.stderr.contains("does not match its \\\"checksum\\\""),
        "{}",
        again.stderr
    );
    // Restored from the snapshot before: every point absorbed exactly once.
    assert_eq!(again.snapshot.points_seen, want.snapshot.points_seen);
    assert_eq!(
        parameter_bits(&again.snapshot),
        parameter_bits(&want.snapshot)
    );
    assert_eq!(got.snapshot.points_seen, 12_000);
}

#[test]
fn a_replaced_file_is_refused_and_a_grown_one_resumes() {
    // The issue's reproduction: a file source resumed at the snapshot's byte offset
    // in a longer file put in its place skipped that many bytes silently, exit 0.
    let work = Workdir::new();
    let input = work.path("points.csv");
    let first = three_clusters(6_000, 1.0, |_| None);
    std::fs::write(&input, &first).expect("write");
    let start = run(&work, "r", &input, "csv", &[]);
    assert_eq!(start.snapshot.points_seen, 6_000);
    let identity = start.snapshot.extensions.source_file.expect("an identity");
    assert_eq!(identity.offset, first.len() as u64);
    let newest = std::fs::read_dir(work.path("r-snapshots"))
        .expect("snapshots")
        .map(|e| e.expect("entry").path())
        .max()
        .expect("a snapshot");
    let shown = binary()
        .arg("inspect")
        .arg(&newest)
        .output()
        .expect("inspect");
    let shown = String::from_utf8_lossy(&shown.stdout);
    assert!(
        shown.contains(&format!("identity at byte {}", first.len())),
        "{shown}"
    );

    // Appended to: the same file, resumed where it stopped.
    let mut grown = first.clone();
    grown.push_str(&three_clusters(9_000, 1.0, |_| None)[first.len()..]);
    std::fs::write(&input, &grown).expect("append");
    let resumed = run(&work, "r", &input, "csv", &[]);
    assert_eq!(resumed.snapshot.points_seen, 9_000, "{}", resumed.stderr);

    // Replaced by another, longer file: refused, naming the file and the way out.
    let other = three_clusters(20_000, 2.0, |_| None);
    std::fs::write(&input, &other).expect("replace");
    let config = work.config_file(
        "replaced.toml",
        &file_config(&input, "csv", &work.path("r-snapshots"), ""),
    );
    let output = run_binary(&config, &[]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("points.csv"), "{stderr}");
    assert!(stderr.contains("replaced or edited"), "{stderr}");
    // Nothing was absorbed from it: the newest snapshot is the one before.
    let newest = store(&work.path("r-snapshots"))
        .load_newest()
        .expect("list")
        .newest
        .expect("a snapshot")
        .1;
    assert_eq!(newest.points_seen, 9_000);
}
