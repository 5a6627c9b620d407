//! Two daemons in one consumer group (separate snapshot directories) on a
//! two-partition topic: the second joins mid-stream and leaves before the end.
//! Each partition changes hands twice; every message is absorbed by exactly one
//! of them, with the eager and the cooperative (incremental) rebalance protocols.
//!
//! tansu's group coordinator now and then completes a rebalance without waiting
//! for every member, so that both own a partition at once (seen in the members'
//! logs: one is assigned it before the other has given it up). No client can
//! avoid reading twice then; such an attempt is run again, in fresh topics, and
//! an attempt without overlap must be exact.

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
    const ATTEMPTS: usize = 3;
    for attempt in 1..=ATTEMPTS {
        match attempt_join_and_leave(assignor) {
            Ok(()) => return,
            Err(overlap) => eprintln!(
                "attempt {attempt}: the broker let both members own a partition at once \
                 ({overlap}); trying again"
            ),
        }
    }
    panic!("{ATTEMPTS} attempts, each with a partition owned by both members at once");
}

/// Runs the scenario; Err (the overlap) when the count is off because the broker
/// gave a partition to both members at once, a panic for any other failure.
fn attempt_join_and_leave(assignor: Option<&str>) -> Result<(), String> {
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
    let second_log = b2.log.clone();
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
    // What each member did with the partitions, should the count be wrong.
    let story = |path: &std::path::Path| {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        text.lines()
            .filter(|l| !l.contains(" status "))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let cooperative = assignor.is_some();
    let overlap = overlapping_ownership(
        &ownership(&story(&first_log), &topic, cooperative),
        &ownership(&story(&second_log), &topic, cooperative),
    );
    if m1.points_seen + m2.points_seen != good as u64 && !overlap.is_empty() {
        return Err(overlap.join("; "));
    }
    assert_eq!(
        m1.points_seen + m2.points_seen,
        good as u64,
        "every point absorbed by exactly one member\nfirst:\n{}\nsecond:\n{}",
        story(&first_log),
        story(&second_log)
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
    Ok(())
}

/// One member's ownership of the topic's partitions, from its log: (partition,
/// from, until), times as logged (RFC 3339, so they compare as strings). An
/// eager assignment replaces what the member had; a cooperative one adds to it.
/// Ownership ends once the partitions are given up (after the flush).
fn ownership(log: &str, topic: &str, cooperative: bool) -> Vec<(i32, String, String)> {
    let mut owned: BTreeMap<i32, String> = BTreeMap::new();
    let mut spans = Vec::new();
    for line in log.lines() {
        let Some(time) = line.split_whitespace().next() else {
            continue;
        };
        let time = time.to_string();
        let partitions = partitions_in(line, topic);
        if line.contains("partitions assigned") {
            if !cooperative {
                for (p, since) in std::mem::take(&mut owned) {
                    spans.push((p, since, time.clone()));
                }
            }
            for p in partitions {
                owned.entry(p).or_insert_with(|| time.clone());
            }
        } else if line.contains("partitions given up") {
            for p in partitions {
                if let Some(since) = owned.remove(&p) {
                    spans.push((p, since, time.clone()));
                }
            }
        }
    }
    // Still owned at the end of the log: "~" sorts after any time.
    for (p, since) in owned {
        spans.push((p, since, "~".into()));
    }
    spans
}

/// The partitions named `topic[N]` in a log line.
fn partitions_in(line: &str, topic: &str) -> Vec<i32> {
    let marker = format!("{topic}[");
    line.match_indices(&marker)
        .filter_map(|(at, _)| {
            let rest = &line[at + marker.len()..];
            rest[..rest.find(']')?].parse().ok()
        })
        .collect()
}

/// Where the two members owned the same partition at the same time.
fn overlapping_ownership(a: &[(i32, String, String)], b: &[(i32, String, String)]) -> Vec<String> {
    let mut found = Vec::new();
    for (p, from_a, until_a) in a {
        for (q, from_b, until_b) in b {
            if p == q && from_a < until_b && from_b < until_a {
                found.push(format!(
                    "partition {p}: first {from_a}..{until_a}, second {from_b}..{until_b}"
                ));
            }
        }
    }
    found
}

#[test]
fn ownership_spans_and_their_overlaps_are_read_from_the_logs() {
    let first = "\
t1 INFO partitions assigned partitions=t[0], t[1]
t2 INFO partitions revoked: absorbing partitions=t[0], t[1]
t3 INFO partitions given up partitions=t[0], t[1]
t4 INFO partitions assigned partitions=t[0]
t7 INFO partitions given up partitions=t[0]";
    let second = "t5 INFO partitions assigned partitions=t[0]\nt6 INFO status x";
    let a = ownership(first, "t", false);
    assert_eq!(
        a,
        [
            (0, "t1".to_string(), "t3".to_string()),
            (1, "t1".into(), "t3".into()),
            (0, "t4".into(), "t7".into()),
        ]
    );
    let b = ownership(second, "t", false);
    assert_eq!(b, [(0, "t5".to_string(), "~".to_string())]);
    assert_eq!(
        overlapping_ownership(&a, &b).len(),
        1,
        "t5 is inside t4..t7"
    );
    let later = ownership("t8 INFO partitions assigned partitions=t[0]", "t", false);
    assert!(overlapping_ownership(&a, &later).is_empty());
}
