//! The daemon against a real Kafka-protocol broker (tansu), fed by an independent
//! client (Python's confluent-kafka, `tests/kafka/produce.py`): scores, dead
//! letters, snapshots on their topics and committed offsets; missing topics;
//! kill -9 and restarts; two instances in one group.
//!
//! The broker comes from `GMM_STREAM_TEST_BROKERS` (set by `scripts/test.sh`) or is
//! started by `scripts/kafka.sh`; without one these tests fail, never skip.
//!
//! Two tansu 0.6 defects shape these tests (checked with confluent-kafka alone):
//! - ListOffsets (latest) answers the base offset of the newest record batch plus
//!   one, so `get_watermark_offsets` reported (0, 95) for partitions of 100
//!   messages. End offsets are taken from the producer's delivery reports instead.
//! - A fetch from an offset inside a record batch returns only the batches that
//!   start after it: the rest of that batch is silently skipped. A consumer
//!   resumes mid-batch after a pause, a restart or a rebalance, so the test
//!   producer puts one message in each record batch (`batch.num.messages = 1`).

#[path = "common/kafka.rs"]
mod kafka_common;
mod kafka_e2e {
    pub mod kill;
    pub mod rebalance;
}

use std::collections::BTreeMap;
use std::time::Duration;

use gmm_io::ModelFile;
use kafka_common::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// A message the test sent, and what the daemon should make of it.
struct Sent {
    value: Option<Vec<u8>>,
    /// Points the daemon should absorb from it.
    good: usize,
    /// Dead letters it should cause: (reason, detail prefix).
    dead: Vec<(&'static str, &'static str)>,
}

/// Good f64le blocks of 100 points with malformed messages among them: a block
/// with a NaN point, a length that is not a whole number of points (the binary
/// form of a wrong dimension), an infinite single point, an empty value and a
/// null value.
fn f64le_messages(seed: u64) -> Vec<Sent> {
    let truth = truth();
    let points = sample(&truth, 20_000, seed);
    let mut sent: Vec<Sent> = points
        .chunks(300)
        .map(|block| Sent {
            value: Some(f64le(block)),
            good: 100,
            dead: vec![],
        })
        .collect();
    let mut with_nan = sample(&truth, 50, seed + 1);
    with_nan[7 * 3 + 1] = f64::NAN;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let bad = vec![
        Sent {
            value: Some(f64le(&with_nan)),
            good: 49,
            dead: vec![("non_finite", "point 8: ")],
        },
        Sent {
            value: Some(f64le(&[1.0, 2.0, 3.0, 4.0])),
            good: 0,
            dead: vec![("parse", "record of 32 bytes")],
        },
        Sent {
            value: Some(f64le(&[1.0, f64::INFINITY, 3.0])),
            good: 0,
            dead: vec![("non_finite", "coordinate 2")],
        },
        Sent {
            value: Some(Vec::new()),
            good: 0,
            dead: vec![("parse", "empty message")],
        },
        Sent {
            value: None,
            good: 0,
            dead: vec![("parse", "empty message")],
        },
    ];
    for b in bad {
        let at = rng.random_range(0..sent.len());
        sent.insert(at, b);
    }
    // Last, with no good message after it to carry the position past it: it must
    // still be committed, and not dead-lettered again.
    sent.push(Sent {
        value: Some(vec![0; 5]),
        good: 0,
        dead: vec![("parse", "record of 5 bytes")],
    });
    sent
}

/// Alternates partitions, so both carry good and bad messages.
fn outgoing(sent: &[Sent], partitions: i32) -> Vec<Outgoing> {
    sent.iter()
        .enumerate()
        .map(|(i, s)| Outgoing {
            partition: i as i32 % partitions,
            value: s.value.clone(),
        })
        .collect()
}

struct Topics {
    input: String,
    scores: String,
    dead: String,
    snapshots: String,
}

fn topics(name: &str, partitions: i32) -> Topics {
    let t = Topics {
        input: unique(&format!("{name}-points")),
        scores: unique(&format!("{name}-scores")),
        dead: unique(&format!("{name}-dead")),
        snapshots: unique(&format!("{name}-model")),
    };
    create_topics(
        brokers(),
        &[
            (&t.input, partitions),
            (&t.scores, 1),
            (&t.dead, 1),
            (&t.snapshots, 1),
        ],
    );
    t
}

/// Runs the daemon until it has absorbed every good point and consumed every
/// message, stops it with SIGTERM, and checks every output topic against `sent`.
/// The last message of `sent` is produced only once the daemon has absorbed all
/// the others: when it is a bad one, nothing comes after it to carry the position.
fn consume_and_check(format: &'static str, sent: &[Sent], partitions: i32) {
    let b = brokers();
    let t = topics(format, partitions);
    let all = outgoing(sent, partitions);
    let (first, last) = all.split_at(all.len() - 1);
    let mut produced = produce_with_python(b, &t.input, first, 0.0);
    let good: usize = sent.iter().map(|s| s.good).sum();
    let good_first = good - sent[sent.len() - 1].good;

    let tmp = tempfile::tempdir().expect("temp dir");
    let group = unique("e2e");
    let mut settings = DaemonSettings::new(b, &t.input, &group, &tmp.path().join("snapshots"));
    settings.format = format;
    settings.scores_topic = Some(t.scores.clone());
    settings.dead_letter_topic = Some(t.dead.clone());
    settings.snapshot_topic = Some(t.snapshots.clone());
    let mut daemon = Daemon::start(&settings, "daemon.log");
    let ends = end_offsets(&produced);
    wait_for_snapshot(&settings.dir, Duration::from_secs(60), &mut daemon, |m| {
        m.points_seen == good_first as u64 && snapshot_positions(m, &t.input) == ends
    });
    produced.extend(produce_with_python(b, &t.input, last, 0.0));
    let ends = end_offsets(&produced);
    // Everything absorbed and every message (bad ones included) consumed.
    wait_for_snapshot(&settings.dir, Duration::from_secs(60), &mut daemon, |m| {
        m.points_seen == good as u64 && snapshot_positions(m, &t.input) == ends
    });
    let log = daemon.log.clone();
    let code = daemon.terminate(Duration::from_secs(30));
    let log = std::fs::read_to_string(log).unwrap_or_default();
    assert_eq!(code, 0, "exit status after SIGTERM; log:\n{log}");

    // The snapshot topic's last message is a whole model, without the estimator
    // state, keyed by the model's name.
    let models = read_topic(
        b,
        &t.snapshots,
        1,
        Duration::from_secs(1),
        Duration::from_secs(30),
    );
    let last = models
        .iter()
        .max_by_key(|m| m.offset)
        .expect("a published model");
    assert_eq!(last.key.as_deref(), Some(&b"gmm-stream"[..]));
    let model = ModelFile::from_bytes(last.value.as_deref().expect("a value"))
        .expect("the last message on the snapshot topic is a whole model");
    assert_eq!(model.points_seen, good as u64);
    assert_eq!((model.n_components, model.n_features), (3, 3));
    assert!(
        model.state.is_none(),
        "published models carry no estimator state"
    );
    assert_eq!(snapshot_positions(&model, &t.input), ends);
    model.mixture().expect("a valid mixture");

    // Exactly one score record per good point, each naming its message.
    let records = read_topic(
        b,
        &t.scores,
        good,
        Duration::from_secs(2),
        Duration::from_secs(60),
    );
    let scores = parse_scores(&records);
    assert_eq!(scores.len(), good, "one score record per good point");
    let mut expected = BTreeMap::new();
    for (s, &(p, o)) in sent.iter().zip(&produced) {
        if s.good > 0 {
            expected.insert((t.input.clone(), p, o), s.good);
        }
    }
    assert_eq!(scores_per_message(&scores), expected);
    for s in &scores {
        assert!(s.log_density.is_finite());
        assert_eq!(s.responsibilities.len(), 3);
        assert!((s.responsibilities.iter().sum::<f64>() - 1.0).abs() < 1e-9);
        assert!(s.cluster < 3 && s.model_version >= 1);
    }

    // One dead letter per rejected point or message: its original bytes, why,
    // and where it came from.
    let n_dead: usize = sent.iter().map(|s| s.dead.len()).sum();
    let letters = read_topic(
        b,
        &t.dead,
        n_dead,
        Duration::from_secs(1),
        Duration::from_secs(30),
    );
    assert_eq!(letters.len(), n_dead, "dead letters");
    let by_origin: BTreeMap<(i32, i64), &Received> = letters
        .iter()
        .map(|l| {
            assert_eq!(l.headers["source_topic"], t.input);
            let p = l.headers["source_partition"].parse().expect("partition");
            let o = l.headers["source_offset"].parse().expect("offset");
            ((p, o), l)
        })
        .collect();
    assert_eq!(by_origin.len(), n_dead, "one dead letter per bad message");
    for (s, &(p, o)) in sent.iter().zip(&produced) {
        let Some((reason, detail)) = s.dead.first() else {
            assert!(!by_origin.contains_key(&(p, o)));
            continue;
        };
        let letter = by_origin
            .get(&(p, o))
            .unwrap_or_else(|| panic!("no dead letter for {p}@{o}"));
        assert_eq!(letter.headers["reason"], *reason, "{p}@{o}");
        assert!(
            letter.headers["detail"].starts_with(detail),
            "{p}@{o}: {:?}",
            letter.headers["detail"]
        );
        assert_eq!(
            letter.value.as_deref().unwrap_or_default(),
            s.value.as_deref().unwrap_or_default(),
            "the original bytes"
        );
    }

    assert_eq!(
        committed(b, &group, &t.input, partitions),
        ends,
        "committed offsets"
    );
}

#[test]
fn f64le_points_from_an_independent_producer_are_scored_dead_lettered_and_modelled() {
    consume_and_check("f64le", &f64le_messages(11), 2);
}

#[test]
fn json_points_from_an_independent_producer_are_scored_dead_lettered_and_modelled() {
    let truth = truth();
    let points = sample(&truth, 6_000, 21);
    let json = |rows: &[f64]| {
        let rows: Vec<Vec<f64>> = rows.chunks(3).map(<[f64]>::to_vec).collect();
        serde_json::to_vec(&rows).expect("json")
    };
    // Blocks of 50 points and single points.
    let mut sent: Vec<Sent> = Vec::new();
    for (i, chunk) in points.chunks(150).enumerate() {
        if i % 4 == 3 {
            for p in chunk.chunks(3).take(5) {
                sent.push(Sent {
                    value: Some(serde_json::to_vec(p).expect("json")),
                    good: 1,
                    dead: vec![],
                });
            }
        } else {
            sent.push(Sent {
                value: Some(json(chunk)),
                good: 50,
                dead: vec![],
            });
        }
    }
    let bad = vec![
        Sent {
            value: Some(b"{\"x\": [1, 2".to_vec()),
            good: 0,
            dead: vec![("parse", "")],
        },
        Sent {
            value: Some(b"[1.0, 2.0]".to_vec()),
            good: 0,
            dead: vec![("dimension", "")],
        },
        Sent {
            value: Some(b"[[1.0, 2.0, 3.0], [4.0, 5.0], [6.0, 7.0, 8.0]]".to_vec()),
            good: 2,
            dead: vec![("dimension", "point 2: ")],
        },
        Sent {
            value: Some(b"not json at all".to_vec()),
            good: 0,
            dead: vec![("parse", "")],
        },
        Sent {
            value: Some(Vec::new()),
            good: 0,
            dead: vec![("parse", "empty message")],
        },
    ];
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    for b in bad {
        let at = rng.random_range(0..sent.len());
        sent.insert(at, b);
    }
    consume_and_check("json", &sent, 2);
}

#[test]
fn missing_topics_exit_2_naming_every_one() {
    let b = brokers();
    let existing = unique("present");
    create_topics(b, &[(&existing, 1)]);
    let tmp = tempfile::tempdir().expect("temp dir");
    let run = |input: &str, scores: &str, dead: &str| {
        let mut s = DaemonSettings::new(b, input, &unique("missing"), &tmp.path().join("s"));
        s.scores_topic = Some(scores.to_string());
        s.dead_letter_topic = Some(dead.to_string());
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_gmm-stream"))
            .args(["run", "--config"])
            .arg(s.write())
            .output()
            .expect("run gmm-stream");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (no_input, no_scores) = (unique("absent-points"), unique("absent-scores"));
    let (code, stderr) = run(&no_input, &no_scores, &existing);
    assert_eq!(code, Some(2), "stderr: {stderr}");
    assert!(stderr.contains("do not exist"), "{stderr}");
    for t in [&no_input, &no_scores] {
        assert!(stderr.contains(t.as_str()), "{t} not named in: {stderr}");
    }
    assert!(!stderr.contains(&existing), "{stderr}");
    let last = stderr.lines().last().unwrap_or_default();
    assert!(last.starts_with("gmm-stream: "), "{stderr}");

    // Only an output topic missing.
    let (code, stderr) = run(&existing, &existing, &no_scores);
    assert_eq!(code, Some(2), "stderr: {stderr}");
    assert!(stderr.contains(&no_scores), "{stderr}");
}
