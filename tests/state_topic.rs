//! The state topic's client against the real broker (tansu): records published by
//! one member are read back by another in log order, a fence ends the catch-up, the
//! index holds each partition's newest state, tombstones and other groups' records are
//! told apart, and a missing state topic is refused as bad input.

#[path = "common/kafka.rs"]
mod kafka_common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use gmm_io::state::{partition_key, StateValue};
use gmm_model::group::{PartitionKey, PartitionState};
use gmm_model::{OnlineSettings, SufficientStats};
use gmm_stream::state_topic::{Settled, StateEvent, StateTopic, StateTopicError};
use kafka_common::*;

fn settings() -> OnlineSettings {
    OnlineSettings::new(4)
}

fn state(p: i32, offset: i64) -> PartitionState {
    let mut stats = SufficientStats::new(gmm_model::CovarianceType::Full, 4, 3);
    stats.scale(1.0);
    PartitionState {
        key: PartitionKey::new("points", p),
        epoch: 1,
        next_offset: offset,
        points: offset as u64,
        batches: 1.0,
        clock: 10.0,
        stats,
    }
}

fn open(topic: &str, group: &str, member: &str) -> StateTopic {
    StateTopic::open(
        brokers(),
        &BTreeMap::new(),
        topic,
        group,
        member,
        &settings(),
    )
    .unwrap_or_else(|e| panic!("{e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_reads_back_every_record_up_to_its_fence() {
    let topic = unique("state");
    create_state_topic(brokers(), &topic);
    let group = unique("group");
    let a = open(&topic, &group, "member-a");
    // 64 partitions, each published twice: the second state is the newest.
    for round in 0..2 {
        for p in 0..64 {
            a.publish(StateValue::Partition(state(p, 100 * round + p as i64)))
                .expect("publish");
        }
    }
    a.withdraw("sample/member-a").expect("tombstone");
    let other = open(&topic, "another-group", "member-x");
    other
        .publish(StateValue::Partition(state(99, 1)))
        .expect("publish");
    for t in [&a, &other] {
        let last = t.publisher.last_sent();
        assert_eq!(
            t.publisher.wait_settled(last, Duration::from_secs(30)),
            Settled::Delivered
        );
    }

    let mut b = open(&topic, &group, "member-b");
    let mut seen = Vec::new();
    let started = Instant::now();
    let caught = b
        .catch_up(Duration::from_secs(60), |e| seen.push(e))
        .await
        .expect("caught up");
    eprintln!(
        "caught up on {} records ({} bytes) in {:?} (measured {:?})",
        caught.records,
        caught.bytes,
        caught.took,
        started.elapsed()
    );
    let partitions: Vec<(String, i64)> = seen
        .iter()
        .filter_map(|e| match e {
            StateEvent::Record { key, record } => match &record.value {
                StateValue::Partition(s) => Some((key.clone(), s.next_offset)),
                _ => None,
            },
            _ => None,
        })
        .collect();
    assert_eq!(partitions.len(), 128, "every record, in log order");
    assert_eq!(
        partitions[64],
        (partition_key(&PartitionKey::new("points", 0)), 100)
    );
    assert!(seen
        .iter()
        .any(|e| matches!(e, StateEvent::Deleted { key } if key == "sample/member-a")));
    assert!(seen.iter().any(|e| matches!(
        e,
        StateEvent::Invalid { reason, .. } if reason.contains("another-group")
    )));
    {
        let index = b.index.lock();
        assert_eq!(
            index.partitions.len(),
            64,
            "the other group's record is not indexed"
        );
        assert_eq!(
            index.partitions[&PartitionKey::new("points", 7)]
                .state
                .next_offset,
            107
        );
    }
    // A second catch-up, later, reads only what came since.
    let seq = a
        .publish(StateValue::Partition(state(3, 999)))
        .expect("publish");
    // Acknowledged before b's fence is written, so that it is before it in the log.
    assert_eq!(
        a.publisher.wait_settled(seq, Duration::from_secs(30)),
        Settled::Delivered
    );
    let mut later = Vec::new();
    b.catch_up(Duration::from_secs(30), |e| later.push(e))
        .await
        .expect("caught up");
    assert!(later.iter().any(|e| matches!(
        e,
        StateEvent::Record { record, .. }
            if matches!(&record.value, StateValue::Partition(s) if s.next_offset == 999)
    )));
}

#[test]
fn a_missing_state_topic_is_bad_input() {
    let err = StateTopic::open(
        brokers(),
        &BTreeMap::new(),
        &unique("no-such-state"),
        "g",
        "m",
        &settings(),
    )
    .err()
    .expect("refused");
    assert!(matches!(err, StateTopicError::Missing(_)), "{err}");
    assert!(err.is_bad_input());
    assert!(err.to_string().contains("create it first"), "{err}");
}
