//! Two daemons in one consumer group (separate snapshot directories) on a
//! two-partition topic: the second joins mid-stream and leaves before the end.
//! Each partition changes hands twice; every message is absorbed by exactly one
//! of them, with the eager and the cooperative (incremental) rebalance protocols.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::kafka_common::*;

#[test]
fn a_member_joining_and_leaving_mid_stream_takes_over_without_loss_or_duplicates() {
    // librdkafka's default assignors: eager, every partition revoked and reassigned.
    join_and_leave(None);
}

#[test]
fn the_same_with_the_cooperative_sticky_assignor() {
    // Incremental: only the partition that moves is revoked and assigned.
    join_and_leave(Some("cooperative-sticky"));
}

fn join_and_leave(assignor: Option<&str>) {
    let b = brokers();
    let topic = unique("rebalance-points");
    let scores_topic = unique("rebalance-scores");
    create_topics(b, &[(&topic, 2), (&scores_topic, 1)]);
    let points = sample(&truth(), 60_000, 77);
    let outgoing: Vec<Outgoing> = points
        .chunks(300)
        .enumerate()
        .map(|(i, block)| Outgoing {
            partition: (i % 2) as i32,
            value: Some(f64le(block)),
        })
        .collect();
    let good = points.len() / 3;

    let tmp = tempfile::tempdir().expect("temp dir");
    let group = unique("rebalance");
    let settings = |name: &str| {
        let mut s = DaemonSettings::new(b, &topic, &group, &tmp.path().join(name));
        s.scores_topic = Some(scores_topic.clone());
        s.properties = vec![
            ("session.timeout.ms".into(), "3000".into()),
            ("heartbeat.interval.ms".into(), "500".into()),
        ];
        if let Some(assignor) = assignor {
            s.properties
                .push(("partition.assignment.strategy".into(), assignor.into()));
        }
        s
    };
    let (first, second) = (settings("first"), settings("second"));

    // About eight seconds of stream.
    let producer = spawn_python_producer(b, &topic, &outgoing, 75.0);
    let mut a = Daemon::start(&first, "first.log");
    wait_for_snapshot(&first.dir, Duration::from_secs(60), &mut a, |m| {
        m.points_seen >= 8_000
    });
    // The second member joins: the first gives up its partitions (absorbing,
    // snapshotting and committing them first) and keeps one.
    let mut b2 = Daemon::start(&second, "second.log");
    wait_for_snapshot(&second.dir, Duration::from_secs(60), &mut b2, |m| {
        m.points_seen >= 5_000
    });
    // ...and leaves while the stream still runs: its partition goes back to the
    // first member, which must start where the second stopped.
    let taken_by_second = newest_snapshot(&second.dir).expect("snapshot");
    assert_eq!(b2.terminate(Duration::from_secs(30)), 0);
    let produced = finish_python_producer(producer);
    let ends = end_offsets(&produced);
    a.assert_running();
    wait_for_snapshot(&first.dir, Duration::from_secs(90), &mut a, |m| {
        snapshot_positions(m, &topic) == ends
    });
    let first_log = a.log.clone();
    assert_eq!(a.terminate(Duration::from_secs(30)), 0);
    // Which protocol ran: the eager one revokes both partitions when the second
    // member joins, the cooperative one only the partition that moves. (The last
    // revocation, at shutdown, gives up everything under both.)
    let log = std::fs::read_to_string(&first_log).expect("first's log");
    let mut revoked: Vec<usize> = log
        .lines()
        .filter(|l| l.contains("partitions revoked"))
        .map(|l| l.matches(&format!("{topic}[")).count())
        .collect();
    revoked.pop();
    let most = revoked.iter().copied().max().unwrap_or(0);
    let expected_most = if assignor.is_some() { 1 } else { 2 };
    assert_eq!(most, expected_most, "revocations {revoked:?} in:\n{log}");

    let (m1, m2) = (
        newest_snapshot(&first.dir).expect("first's snapshot"),
        newest_snapshot(&second.dir).expect("second's snapshot"),
    );
    eprintln!(
        "first absorbed {} points, second {} (positions {:?} when it left)",
        m1.points_seen,
        m2.points_seen,
        snapshot_positions(&taken_by_second, &topic)
    );
    assert!(m2.points_seen >= 5_000, "the second member took part");
    assert_eq!(
        m1.points_seen + m2.points_seen,
        good as u64,
        "every point absorbed by exactly one member"
    );

    // Scores: no crash, so exactly one record per point, from one member or the other.
    let records = read_topic(
        b,
        &scores_topic,
        good,
        Duration::from_secs(2),
        Duration::from_secs(60),
    );
    let per_message = scores_per_message(&parse_scores(&records));
    let expected: BTreeMap<(String, i32, i64), usize> = produced
        .iter()
        .map(|&(p, o)| ((topic.clone(), p, o), 100))
        .collect();
    assert_eq!(records.len(), good, "score records");
    assert_eq!(per_message, expected);
    assert_eq!(committed(b, &group, &topic, 2), ends);
}
