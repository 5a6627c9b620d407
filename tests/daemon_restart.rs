//! Restart exactness through the real binary (`docs/reference.md`, "Snapshots"): a
//! run on a file interrupted by SIGTERM, or by kill -9 at random moments again and
//! again, ends with the same model, bit for bit, as an uninterrupted run on the
//! same file, having absorbed every good point exactly once.
//!
//! Why the batch sequence repeats: batches are cut by size at record boundaries
//! (the timeout is an hour), snapshots are taken only between batches, and a
//! restart resumes at the byte offset just after the last absorbed batch. SIGTERM
//! drops the partial batch (the final snapshot still points at its first record);
//! kill -9 loses everything since the last snapshot. Either way the same batches
//! follow, from the same estimator state.
//!
//! Scores and dead letters are at least once: a kill -9 loses the model's progress
//! since the last snapshot but not the scores or dead letters written meanwhile,
//! so those points are scored again (identically: same model, same threshold) on
//! the restart. After SIGTERM the scores are exactly once; dead letters may repeat
//! (rejected lines read ahead of the dropped partial batch are read again).

mod daemon_support;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use daemon_support::*;
use gmm_stream::config::GeneratorConfig;
use rand::Rng;

const GOOD: usize = 100_000;
const BATCH: usize = 500;
const MAX_RECORD: usize = 256;

/// A csv file of generated points with bad lines among them.
struct Input {
    path: PathBuf,
    len: u64,
    /// Byte offset just past each good point's line.
    good_ends: Vec<u64>,
    /// (reason, byte offset, payload) of each bad line, in file order.
    bad: Vec<(String, u64, String)>,
}

fn write_input(path: &Path) -> Input {
    let stream = Stream::new(
        GeneratorConfig {
            dim: 3,
            components: 3,
            seed: 3,
            rate: 0.0,
            ..GeneratorConfig::default()
        },
        GOOD,
    );
    let too_long = "1".repeat(MAX_RECORD + 10);
    let bad_lines: [(&str, &str); 6] = [
        ("parse", "1.0,two,3.0"),
        ("dimension", "1.5,2.5"),
        ("non_finite", "0.5,NaN,1"),
        ("non_finite", "1e400,0,0"),
        ("too_large", &too_long),
        ("dimension", "1,2,3,4"),
    ];
    let mut text = String::new();
    let (mut good_ends, mut bad) = (Vec::new(), Vec::new());
    for i in 0..GOOD {
        // A bad line every 1 499 points, landing anywhere in a batch.
        if i % 1_499 == 7 {
            let (reason, line) = bad_lines[(i / 1_499) % bad_lines.len()];
            // An over-long record is not kept, so its dead letter has no payload.
            let payload = if reason == "too_large" { "" } else { line };
            bad.push((reason.to_string(), text.len() as u64, payload.to_string()));
            text.push_str(line);
            text.push('\n');
        }
        text.push_str(&csv_line(stream.rows(i..i + 1)));
        text.push('\n');
        good_ends.push(text.len() as u64);
        // Right after every batch, so right where every restart resumes: a line
        // that looks like a csv header. Only the file's real first line may be
        // one; read first after a resume, it must still be a bad line, not a
        // header that makes every row after it the wrong width.
        if (i + 1) % BATCH == 0 {
            bad.push(("parse".into(), text.len() as u64, "x,y".into()));
            text.push_str("x,y\n");
        }
    }
    std::fs::write(path, &text).expect("write the input");
    Input {
        path: path.to_path_buf(),
        len: text.len() as u64,
        good_ends,
        bad,
    }
}

/// One daemon's files: its configuration, snapshots, scores, dead letters, log.
struct Daemon {
    config: PathBuf,
    snapshots: PathBuf,
    scores: PathBuf,
    dead: PathBuf,
    log: PathBuf,
}

impl Daemon {
    fn new(work: &Workdir, name: &str, input: &Input) -> Self {
        let snapshots = work.path(&format!("{name}-snapshots"));
        let scores = work.path(&format!("{name}-scores.ndjson"));
        let dead = work.path(&format!("{name}-dead.ndjson"));
        let extra = format!(
            "\n[scores]\nsink = \"file\"\npath = {scores:?}\n\
             \n[dead_letter]\nsink = \"file\"\npath = {dead:?}\n\
             \n[model]\ncomponents = 3\n"
        );
        let config = work.config_file(
            &format!("{name}.toml"),
            &file_config(&input.path, "csv", &snapshots, &extra),
        );
        Self {
            config,
            snapshots,
            scores,
            dead,
            log: work.path(&format!("{name}.log")),
        }
    }

    fn sets(&self, more: &[&str]) -> Vec<String> {
        let mut sets = vec![
            format!("estimator.batch_size={BATCH}"),
            format!("source.max_record_bytes={MAX_RECORD}"),
        ];
        sets.extend(more.iter().map(|s| s.to_string()));
        sets
    }

    fn spawn(&self, more: &[&str]) -> std::process::Child {
        let sets = self.sets(more);
        let sets: Vec<&str> = sets.iter().map(String::as_str).collect();
        spawn_binary(&self.config, &sets, &self.log)
    }

    /// Runs to the end of the input.
    fn run(&self, more: &[&str]) {
        let mut child = self.spawn(more);
        let status = wait_timeout(&mut child, Duration::from_secs(30)).unwrap_or_else(|| {
            panic!(
                "the run ends: {}",
                self.log_text()
                    .lines()
                    .rev()
                    .take(5)
                    .collect::<Vec<_>>()
                    .join("\n")
            )
        });
        assert!(status.success(), "{status}: {}", self.log_text());
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn scores_text(&self) -> String {
        std::fs::read_to_string(&self.scores).expect("the scores file")
    }

    /// (reason, byte offset, payload) of every dead letter, in file order.
    fn dead_letters(&self) -> Vec<(String, u64, String)> {
        std::fs::read_to_string(&self.dead)
            .expect("the dead-letter file")
            .lines()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).expect("a dead letter");
                (
                    v["reason"].as_str().expect("a reason").to_string(),
                    v["position"]["offset"].as_u64().expect("an offset"),
                    v["payload"].as_str().expect("a text payload").to_string(),
                )
            })
            .collect()
    }
}

/// The uninterrupted run every interrupted one must match.
fn reference(work: &Workdir, input: &Input) -> Daemon {
    let daemon = Daemon::new(work, "reference", input);
    daemon.run(&["snapshot.every_points=5000"]);
    let last = newest_snapshot(&daemon.snapshots);
    assert_eq!(last.points_seen, GOOD as u64);
    assert_eq!(file_offset(&last), input.len);
    // Exactly once without interruptions.
    assert_eq!(daemon.scores_text().lines().count(), GOOD);
    assert_eq!(daemon.dead_letters(), input.bad);
    daemon
}

/// Same parameters bit for bit, same estimator and threshold state.
fn assert_same_model(got: &Daemon, want: &Daemon) {
    let (g, w) = (
        newest_snapshot(&got.snapshots),
        newest_snapshot(&want.snapshots),
    );
    assert_eq!(g.points_seen, GOOD as u64, "every good point absorbed once");
    assert_eq!(g.model_version, w.model_version);
    assert!(
        parameter_bits(&g) == parameter_bits(&w),
        "the weights, means or covariances differ"
    );
    assert!(g.state == w.state, "the estimator state differs");
    assert!(
        g.anomaly_state == w.anomaly_state,
        "the threshold state differs"
    );
    assert_eq!(g.positions, w.positions);
}

/// Every reference record appears at least as often, and nothing else appears
/// (no torn or foreign records). Returns the number of repeated records.
fn assert_scores_at_least_once(got: &Daemon, want: &Daemon) -> usize {
    let (got_text, want_text) = (got.scores_text(), want.scores_text());
    let count = |text: &str| {
        let mut m: HashMap<String, usize> = HashMap::new();
        for l in text.lines() {
            *m.entry(l.to_string()).or_default() += 1;
        }
        m
    };
    let (g, w) = (count(&got_text), count(&want_text));
    for (line, n) in &w {
        let have = g.get(line).copied().unwrap_or(0);
        assert!(have >= *n, "a score record is missing: {line}");
    }
    for line in g.keys() {
        assert!(
            w.contains_key(line),
            "a record no uninterrupted run wrote: {line}"
        );
    }
    got_text.lines().count() - want_text.lines().count()
}

/// Every dead letter of the reference at least once, and no others.
fn assert_dead_letters_at_least_once(got: &Daemon, input: &Input) -> usize {
    let letters = got.dead_letters();
    for bad in &input.bad {
        assert!(letters.contains(bad), "no dead letter for {bad:?}");
    }
    for l in &letters {
        assert!(input.bad.contains(l), "an unexpected dead letter {l:?}");
    }
    letters.len() - input.bad.len()
}

#[test]
fn sigterm_then_restart_gives_the_same_model_as_an_uninterrupted_run() {
    let work = Workdir::new();
    let input = write_input(&work.path("points.csv"));
    let want = reference(&work, &input);

    // Stopped once it is well into the file. On a machine so loaded that the run
    // ends before the signal lands, it is tried again in fresh files (the signal
    // is what is under test), a few times at most.
    let mut attempt = 0;
    let got = loop {
        attempt += 1;
        let got = Daemon::new(&work, &format!("sigterm{attempt}"), &input);
        let mut child = got.spawn(&["snapshot.every_points=5000"]);
        let deadline = std::time::Instant::now() + Duration::from_secs(120);
        while newest_points(&got.snapshots).is_none_or(|p| p < 10_000) {
            assert!(std::time::Instant::now() < deadline, "no progress");
            std::thread::sleep(Duration::from_millis(1));
        }
        let term = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .expect("kill -TERM");
        assert!(term.success());
        let status = wait_timeout(&mut child, Duration::from_secs(60)).expect("it stops");
        assert!(status.success(), "SIGTERM exits 0: {status}");
        if newest_snapshot(&got.snapshots).points_seen < GOOD as u64 || attempt == 3 {
            break got;
        }
    };

    // The final snapshot holds whole batches only, and points just past the last
    // absorbed point: the dropped partial batch is read again on restart.
    let stopped = newest_snapshot(&got.snapshots);
    let seen = stopped.points_seen as usize;
    println!("SIGTERM: stopped after {seen} of {GOOD} points");
    assert!(seen < GOOD, "the run ended before the signal");
    assert_eq!(seen % BATCH, 0, "a partial batch was absorbed");
    assert_eq!(file_offset(&stopped), input.good_ends[seen - 1]);

    got.run(&["snapshot.every_points=5000"]);
    assert_same_model(&got, &want);
    assert!(
        got.scores_text() == want.scores_text(),
        "after SIGTERM the scores are exactly once, in order"
    );
    let repeated = assert_dead_letters_at_least_once(&got, &input);
    println!("SIGTERM: {repeated} dead letters repeated");
    assert!(got.log_text().contains("resuming the file"));

    // Started again on the finished file, it resumes at its end: nothing more.
    got.run(&["snapshot.every_points=5000"]);
    assert_same_model(&got, &want);
    assert!(got.scores_text() == want.scores_text());
}

#[test]
fn kill_9_at_random_moments_gives_the_same_model_as_an_uninterrupted_run() {
    // Rounds alternate: a kill at a random moment after start (during start-up,
    // the warm-up, a snapshot write, anything), and a kill a random moment after
    // the next snapshot appears (which guarantees progress). Snapshots come every
    // two batches, so many kills land during a snapshot write (the daemon-level
    // variant of tests/snapshot_crash.rs): every restart must load the newest one.
    // The snapshot format alternates too: a restart must continue exactly from
    // JSON as from the binary form.
    const KILLS: usize = 12;
    let work = Workdir::new();
    let input = write_input(&work.path("points.csv"));
    let want = reference(&work, &input);
    let got = Daemon::new(&work, "kill9", &input);
    let mut rng = rand::rng();
    let (mut kills, mut last_seen, mut progress) = (0, 0, Vec::new());
    loop {
        let format = if kills % 2 == 0 { "json" } else { "bin" };
        let format = format!("snapshot.format={format}");
        // Mostly tiny snapshot intervals; every third run a long one, so that the
        // scores written since the last snapshot outgrow the writer's buffer and a
        // kill leaves a record half written.
        let every = if kills % 3 == 2 { 9_000 } else { 1_000 };
        let every = format!("snapshot.every_points={every}");
        let mut child = got.spawn(&[&every, "snapshot.keep=3", &format]);
        let ended = if kills >= KILLS {
            wait_timeout(&mut child, Duration::from_secs(300))
        } else if kills % 2 == 0 {
            std::thread::sleep(Duration::from_micros(rng.random_range(0..25_000)));
            child.try_wait().expect("poll")
        } else {
            let deadline = std::time::Instant::now() + Duration::from_secs(120);
            while newest_points(&got.snapshots).is_none_or(|p| p <= last_seen)
                && child.try_wait().expect("poll").is_none()
            {
                assert!(std::time::Instant::now() < deadline, "no progress");
                std::thread::sleep(Duration::from_micros(200));
            }
            std::thread::sleep(Duration::from_micros(rng.random_range(0..5_000)));
            child.try_wait().expect("poll")
        };
        if let Some(status) = ended {
            assert!(status.success(), "{status}: {}", got.log_text());
            break;
        }
        // Child::kill is SIGKILL on Unix.
        child.kill().expect("kill -9");
        child.wait().expect("reap");
        kills += 1;
        // The restart will load this one: it must be whole.
        if newest_points(&got.snapshots).is_some() {
            let newest = newest_snapshot(&got.snapshots);
            assert!(newest.points_seen >= last_seen, "a snapshot went back");
            last_seen = newest.points_seen;
        }
        progress.push(last_seen);
    }
    println!("kill -9: {kills} kills; points seen at each: {progress:?}");
    assert!(kills >= KILLS / 2, "the run ended after only {kills} kills");
    let log = got.log_text();
    assert!(!log.contains("skipping an unreadable snapshot"), "{log}");

    assert_same_model(&got, &want);
    let repeated = assert_scores_at_least_once(&got, &want);
    let repeated_dead = assert_dead_letters_at_least_once(&got, &input);
    println!("kill -9: {repeated} score records and {repeated_dead} dead letters repeated");
}
