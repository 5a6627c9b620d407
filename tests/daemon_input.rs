//! Input through `gmm-stream run` (the real binary): bad points are counted per
//! reason, logged, written to the dead-letter file with their reason and payload,
//! and never stop the daemon, which absorbs every good point; a missing input or a
//! bad key is refused with exit 2 naming it; stdin works to its end.

mod daemon_support;

use std::io::Write;
use std::path::Path;
use std::process::Stdio;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use daemon_support::*;
use gmm_stream::config::GeneratorConfig;
use serde_json::Value;

/// Good points of a simple 2-d, 2-component stream.
fn good_points(n: usize) -> Stream {
    Stream::new(
        GeneratorConfig {
            dim: 2,
            components: 2,
            seed: 8,
            rate: 0.0,
            ..GeneratorConfig::default()
        },
        n,
    )
}

/// A run's outcome: what it logged and wrote.
struct Outcome {
    logs: Vec<Value>,
    /// Dead letters, in file order.
    dead: Vec<Value>,
    points_seen: u64,
}

impl Outcome {
    /// The final summary's count of rejects for `reason`.
    fn rejected(&self, reason: &str) -> u64 {
        let summary = self
            .logs
            .iter()
            .rev()
            .find(|l| l["fields"]["message"] == "run ended")
            .expect("a final summary line");
        summary["fields"][format!("rejected_{reason}")]
            .as_u64()
            .unwrap_or(0)
    }

    /// Reasons named by "rejected input" warnings.
    fn warned(&self) -> Vec<String> {
        self.logs
            .iter()
            .filter(|l| {
                l["fields"]["message"]
                    .as_str()
                    .is_some_and(|m| m.starts_with("rejected input"))
            })
            .map(|l| l["fields"]["reason"].as_str().unwrap_or("").to_string())
            .collect()
    }
}

/// Runs the binary on `input` (a file of `format`) with a dead-letter file.
fn run_on(work: &Workdir, input: &Path, format: &str, extra: &str, sets: &[&str]) -> Outcome {
    let dead = work.path("dead.ndjson");
    let extra = format!("\n[dead_letter]\nsink = \"file\"\npath = {dead:?}\n{extra}");
    let config = work.config_file(
        "run.toml",
        &file_config(input, format, &work.snapshots(), &extra),
    );
    let mut sets = sets.to_vec();
    sets.push("model.components=2");
    sets.push("estimator.warmup_points=500");
    let out = run_binary(&config, &sets);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{}: {stderr}", out.status);
    let dead = std::fs::read_to_string(&dead)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).expect("a dead letter is JSON"))
        .collect();
    Outcome {
        logs: json_logs(&stderr),
        dead,
        points_seen: newest_snapshot(&work.snapshots()).points_seen,
    }
}

#[test]
fn bad_csv_lines_are_counted_dead_lettered_and_skipped() {
    let stream = good_points(3_000);
    let too_long = format!("1,{}", "2".repeat(300));
    // (line, reason); None for good lines that must be absorbed.
    let bad: Vec<(&str, &str)> = vec![
        ("1.0,2.0,3.0", "dimension"),
        ("7", "dimension"),
        ("1.0,nan", "non_finite"),
        ("inf,1.0", "non_finite"),
        ("-Infinity,0", "non_finite"),
        ("1e999,0", "non_finite"),
        ("hello,world", "parse"),
        ("1.0,,", "parse"),
        ("1.0,2.0x", "parse"),
        (&too_long, "too_large"),
        ("\u{feff}garbage \u{1f600}", "parse"),
    ];
    let mut text = String::new();
    let mut expected = Vec::new();
    for i in 0..stream.len() {
        if i % 250 == 100 {
            let (line, reason) = bad[(i / 250) % bad.len()];
            expected.push((text.len() as u64, i + expected.len() + 1, reason, line));
            text.push_str(line);
            text.push('\n');
        }
        text.push_str(&csv_line(stream.rows(i..i + 1)));
        text.push('\n');
    }
    let work = Workdir::new();
    let input = work.path("points.csv");
    std::fs::write(&input, &text).expect("write");
    let out = run_on(&work, &input, "csv", "", &["source.max_record_bytes=200"]);

    assert_eq!(out.points_seen, 3_000, "every good point absorbed");
    assert_eq!(out.dead.len(), expected.len(), "{:?}", out.dead);
    for (letter, (offset, line, reason, payload)) in out.dead.iter().zip(&expected) {
        assert_eq!(letter["reason"], *reason, "{letter}");
        assert_eq!(letter["position"]["offset"], *offset, "{letter}");
        assert_eq!(letter["position"]["line"], *line as u64, "{letter}");
        assert!(letter["detail"].as_str().is_some_and(|d| !d.is_empty()));
        assert_eq!(letter["source"], format!("file:{}", input.display()));
        // An over-long line is skipped, never held whole: its payload is empty.
        let want = if *reason == "too_large" { "" } else { payload };
        assert_eq!(letter["payload"], want, "{letter}");
    }
    for reason in ["dimension", "non_finite", "parse", "too_large"] {
        let n = expected.iter().filter(|e| e.2 == reason).count() as u64;
        assert_eq!(out.rejected(reason), n, "{reason}");
        assert!(
            out.warned().iter().any(|r| r == reason),
            "no warning for {reason}"
        );
    }
}

#[test]
fn bad_json_records_are_counted_dead_lettered_and_skipped() {
    let stream = good_points(2_000);
    let mut text = String::new();
    let (mut good, mut expected) = (0usize, Vec::new());
    let mut bad = |text: &mut String, line: &str, reason: &'static str, index: Option<u64>| {
        expected.push((text.len() as u64, reason, index, line.to_string()));
        text.push_str(line);
        text.push('\n');
    };
    for i in 0..stream.len() {
        let p = stream.rows(i..i + 1);
        match i % 400 {
            50 => bad(&mut text, r#"{"x": 1.0}"#, "missing_field", None),
            100 => bad(&mut text, r#"{"x": 1.0, "y": "two"}"#, "parse", None),
            150 => bad(&mut text, "[1.0, 2.0", "parse", None),
            200 => bad(&mut text, "[1.0, 2.0, 3.0]", "dimension", None),
            // JSON has no non-finite numbers: one out of range does not parse.
            250 => bad(&mut text, r#"{"x": 1e999, "y": 0}"#, "parse", None),
            300 => {
                // A block with one bad point: only that point is refused.
                let line = format!(
                    "[[{}, {}], [1.0], {{\"x\": {}, \"y\": {}}}]",
                    p[0], p[1], p[0], p[1]
                );
                bad(&mut text, &line, "dimension", Some(1));
                good += 2;
                continue;
            }
            _ => {}
        }
        // Objects picked by `fields`, and plain arrays.
        if i % 2 == 0 {
            text.push_str(&format!(
                "{{\"y\": {}, \"x\": {}, \"z\": \"ignored\"}}\n",
                p[1], p[0]
            ));
        } else {
            text.push_str(&format!("[{}, {}]\n", p[0], p[1]));
        }
        good += 1;
    }
    let work = Workdir::new();
    let input = work.path("points.json");
    std::fs::write(&input, &text).expect("write");
    let out = run_on(&work, &input, "json", "", &["source.fields=[\"x\",\"y\"]"]);
    assert_eq!(out.points_seen, good as u64);
    assert_eq!(out.dead.len(), expected.len());
    for (letter, (offset, reason, index, payload)) in out.dead.iter().zip(&expected) {
        assert_eq!(letter["reason"], *reason, "{letter}");
        assert_eq!(letter["position"]["offset"], *offset, "{letter}");
        assert_eq!(letter["payload"], payload.as_str(), "{letter}");
        assert_eq!(letter["index"].as_u64(), *index, "{letter}");
    }
    for reason in ["missing_field", "parse", "dimension"] {
        let n = expected.iter().filter(|e| e.1 == reason).count() as u64;
        assert_eq!(out.rejected(reason), n, "{reason}");
    }

    // Without `fields`, objects cannot be read at all: each is refused as such.
    let work = Workdir::new();
    let input = work.path("points.json");
    std::fs::write(&input, &text).expect("write");
    let out = run_on(&work, &input, "json", "", &[]);
    // Every object line but the 5 that are not JSON, and the object in each of the
    // 5 blocks (by index).
    let objects = text.lines().filter(|l| l.starts_with('{')).count() as u64;
    assert_eq!(out.rejected("fields_needed"), objects - 5 + 5);
    let in_blocks = out
        .dead
        .iter()
        .filter(|d| d["reason"] == "fields_needed" && d["index"] == 2)
        .count();
    assert_eq!(in_blocks, 5);
    // The good plain arrays (all array lines but 5 unparseable, 5 of the wrong
    // dimension and the 5 blocks) and the first element of each block.
    let arrays = text.lines().filter(|l| l.starts_with('[')).count() as u64;
    assert_eq!(out.points_seen, arrays - 15 + 5);
}

#[test]
fn bad_binary_points_are_counted_dead_lettered_and_skipped() {
    let stream = good_points(2_000);
    let mut bytes = Vec::new();
    let mut expected = Vec::new();
    for i in 0..stream.len() {
        if i % 300 == 10 {
            expected.push((bytes.len() as u64, "non_finite"));
            for v in [1.0, f64::NAN] {
                bytes.extend_from_slice(&f64::to_le_bytes(v));
            }
        }
        for v in stream.rows(i..i + 1) {
            bytes.extend_from_slice(&v.to_le_bytes());
        }
    }
    // A truncated last point.
    expected.push((bytes.len() as u64, "parse"));
    bytes.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0xf0, 0x3f, 1, 2, 3]); // 11 bytes
    let work = Workdir::new();
    let input = work.path("points.f64");
    std::fs::write(&input, &bytes).expect("write");
    let out = run_on(&work, &input, "f64le", "", &["source.dim=2"]);
    assert_eq!(out.points_seen, 2_000);
    let got: Vec<(u64, String)> = out
        .dead
        .iter()
        .map(|d| {
            (
                d["position"]["offset"].as_u64().expect("offset"),
                d["reason"].as_str().expect("reason").to_string(),
            )
        })
        .collect();
    let want: Vec<(u64, String)> = expected.iter().map(|(o, r)| (*o, r.to_string())).collect();
    assert_eq!(got, want);
    // Binary payloads are kept as base64: the bad point's exact bytes, and the
    // truncated tail's bytes as they were.
    let tail_bytes = [0u8, 0, 0, 0, 0, 0, 0xf0, 0x3f, 1, 2, 3];
    let nan_point: Vec<u8> = [1.0, f64::NAN]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let nan_point = BASE64.encode(&nan_point);
    for d in &out.dead[..out.dead.len() - 1] {
        assert_eq!(d["payload_base64"], nan_point.as_str(), "{d}");
    }
    let tail = &out.dead[out.dead.len() - 1];
    assert_eq!(tail["payload_base64"], BASE64.encode(tail_bytes), "{tail}");
    assert!(
        tail["detail"]
            .as_str()
            .is_some_and(|d| d.contains("11 bytes")),
        "{tail}"
    );
    assert_eq!(out.rejected("non_finite"), expected.len() as u64 - 1);
    assert_eq!(out.rejected("parse"), 1);
}

/// Asserts exit code 2 and a one-line error naming every one of `what`.
fn assert_bad_usage(out: &std::process::Output, what: &[&str]) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("gmm-stream: "))
        .collect();
    assert_eq!(errors.len(), 1, "one error sentence: {stderr}");
    for w in what {
        assert!(errors[0].contains(w), "{w:?} not in {stderr}");
    }
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn a_missing_input_file_exits_2_naming_it() {
    let work = Workdir::new();
    let input = work.path("no-such-points.csv");
    let config = work.config_file(
        "run.toml",
        &file_config(&input, "csv", &work.snapshots(), ""),
    );
    let out = run_binary(&config, &[]);
    assert_bad_usage(&out, &["no-such-points.csv"]);
    assert!(newest_points(&work.snapshots()).is_none());
}

#[test]
fn a_bad_configuration_key_exits_2_naming_it() {
    let work = Workdir::new();
    let input = work.path("points.csv");
    write_csv(&input, good_points(10).rows(0..10), 2);
    let config = work.config_file(
        "run.toml",
        &file_config(&input, "csv", &work.snapshots(), ""),
    );
    let out = run_binary(&config, &["estimator.batch_sise=10"]);
    assert_bad_usage(&out, &["batch_sise"]);

    let bad_file = work.config_file(
        "bad.toml",
        &file_config(
            &input,
            "csv",
            &work.snapshots(),
            "\n[scores]\nquantile = 0.1\n",
        ),
    );
    let out = run_binary(&bad_file, &[]);
    assert_bad_usage(&out, &["quantile"]);

    let out = run_binary(&config, &["estimator.batch_size=many"]);
    assert_bad_usage(&out, &["batch_size"]);

    // Refused by the decoder on the source's thread, not by the configuration's
    // checks: still bad usage, not a failure.
    let out = run_binary(&config, &["source.fields=[\"x\", \"x\"]"]);
    assert_bad_usage(&out, &["\"x\" is listed twice"]);
    assert!(newest_points(&work.snapshots()).is_none());
}

#[test]
fn stdin_is_read_to_its_end_then_a_final_snapshot_is_written() {
    let stream = good_points(5_000);
    let work = Workdir::new();
    let input = work.path("points.csv");
    write_csv(&input, stream.rows(0..5_000), 2);
    let config = work.config_file(
        "run.toml",
        &file_config(&input, "csv", &work.snapshots(), ""),
    );
    let mut child = run_command(&config, &["source.kind=stdin", "model.components=2"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary starts");
    let mut stdin = child.stdin.take().expect("stdin");
    let text = std::fs::read(&input).expect("read");
    // Written from another thread: the pipe holds less than the file.
    let writer = std::thread::spawn(move || {
        stdin.write_all(&text).expect("write to stdin");
    });
    let out = child.wait_with_output().expect("the binary runs");
    writer.join().expect("the writer");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let last = newest_snapshot(&work.snapshots());
    assert_eq!(last.points_seen, 5_000);
    assert_eq!(
        last.positions,
        Some(gmm_io::Positions::Stdin { points: 5_000 })
    );
}

/// Runs the binary, killing it (and failing) if it has not ended in two minutes.
fn run_bounded(config: &Path, sets: &[&str]) -> (std::process::ExitStatus, String) {
    let log = config.with_extension("log");
    let mut child = spawn_binary(config, sets, &log);
    let status = wait_timeout(&mut child, std::time::Duration::from_secs(120));
    if status.is_none() {
        child.kill().expect("kill the stalled daemon");
        child.wait().expect("reap");
    }
    let stderr = std::fs::read_to_string(&log).expect("the log");
    (status.expect("the daemon stalled"), stderr)
}

#[test]
fn many_bad_records_between_outputs_never_stall_the_daemon() {
    // Scores off and one snapshot at the end: nothing goes to the output stage
    // but dead letters until the input ends. Rejects of more than 64 chunks used
    // to fill their queue while the output stage waited for an output that the
    // blocked batcher could never let come.
    let stream = good_points(100_000);
    let mut text = String::new();
    for i in 0..stream.len() {
        // Not first: a non-numeric first line would be the csv header.
        if i % 200 == 100 {
            text.push_str("bad,line\n");
        }
        text.push_str(&csv_line(stream.rows(i..i + 1)));
        text.push('\n');
    }
    let work = Workdir::new();
    let input = work.path("points.csv");
    std::fs::write(&input, &text).expect("write");
    let config = work.config_file(
        "run.toml",
        &file_config(&input, "csv", &work.snapshots(), ""),
    );
    let sets = ["model.components=2", "snapshot.every_points=0"];
    let (status, stderr) = run_bounded(&config, &sets);
    assert!(status.success(), "{status}: {stderr}");
    assert_eq!(newest_snapshot(&work.snapshots()).points_seen, 100_000);
    let summary = json_logs(&stderr)
        .into_iter()
        .find(|l| l["fields"]["message"] == "run ended")
        .expect("a summary");
    assert_eq!(summary["fields"]["rejected_parse"], 500);

    // Nothing but bad records, with a dead-letter file: the run still ends.
    let only_bad = work.path("bad.csv");
    std::fs::write(&only_bad, "1.0,2.0,oops\n".repeat(80_000)).expect("write");
    let dead = work.path("dead.ndjson");
    let extra = format!("\n[dead_letter]\nsink = \"file\"\npath = {dead:?}\n");
    let config = work.config_file(
        "bad.toml",
        &file_config(&only_bad, "csv", &work.path("bad-snapshots"), &extra),
    );
    let (status, stderr) = run_bounded(&config, &sets);
    assert!(status.success(), "{status}: {stderr}");
    let letters = std::fs::read_to_string(&dead).expect("dead letters");
    assert_eq!(letters.lines().count(), 80_000);
}

#[test]
fn sigterm_stops_a_daemon_waiting_on_an_idle_stdin() {
    // The writer stays connected but sends nothing more: the source thread is
    // blocked in a read that cannot be interrupted. SIGTERM must still stop the
    // daemon, with a final snapshot of the whole batches (the partial one is
    // dropped), rather than wait for input or EOF.
    let stream = good_points(4_500);
    let work = Workdir::new();
    let input = work.path("unused.csv");
    let config = work.config_file(
        "run.toml",
        &file_config(&input, "csv", &work.snapshots(), ""),
    );
    let mut child = run_command(
        &config,
        &[
            "source.kind=stdin",
            "model.components=2",
            "estimator.batch_size=1000",
            "estimator.warmup_points=1000",
            "snapshot.every_points=1000",
        ],
    )
    .stdin(Stdio::piped())
    .stdout(Stdio::null())
    .stderr(Stdio::piped())
    .spawn()
    .expect("the binary starts");
    let mut stdin = child.stdin.take().expect("stdin");
    let mut text = String::new();
    for i in 0..stream.len() {
        text.push_str(&csv_line(stream.rows(i..i + 1)));
        text.push('\n');
    }
    stdin.write_all(text.as_bytes()).expect("write to stdin");
    stdin.flush().expect("flush");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while newest_points(&work.snapshots()) != Some(4_000) {
        assert!(
            std::time::Instant::now() < deadline,
            "the points were not absorbed"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let term = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill -TERM");
    assert!(term.success());
    let status = wait_timeout(&mut child, std::time::Duration::from_secs(20));
    drop(stdin);
    let status = status.unwrap_or_else(|| {
        let _ = child.kill();
        panic!("SIGTERM did not stop a daemon reading an idle stdin");
    });
    assert!(status.success(), "{status}");
    let last = newest_snapshot(&work.snapshots());
    assert_eq!(last.points_seen, 4_000, "the partial batch is dropped");
}
