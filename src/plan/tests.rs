use super::*;

fn resolve(sets: &[&str]) -> Plan {
    let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
    let config = Config::load_from(None, &[], &sets).expect("a valid configuration");
    Plan::resolve(&config).expect("resolves")
}

#[test]
fn the_defaults_run_the_generator_with_http_and_no_kafka() {
    let plan = resolve(&[]);
    assert!(matches!(plan.source.input, Input::Generator { dim: 2, .. }));
    assert_eq!(plan.source.decode.dim, None);
    assert_eq!(
        (plan.scores.clone(), plan.dead_letters.clone()),
        (Target::None, Target::None)
    );
    assert_eq!(plan.snapshots.published, Target::None);
    assert!(plan.producer.is_none() && plan.required_topics.is_empty());
    let http = plan.http.expect("listening");
    assert_eq!((http.listen.as_str(), http.token), ("127.0.0.1:9464", None));
    assert_eq!(plan.log.status_every, Duration::from_secs(10));
}

#[test]
fn kafka_outputs_need_the_producer_and_every_topic_is_required_once() {
    let plan = resolve(&[
        "source.kind=kafka",
        "kafka.topics=[\"points\", \"more\"]",
        "scores.sink=kafka",
        "scores.topic=scores",
        "dead_letter.sink=kafka",
        "dead_letter.topic=points",
        "snapshot.topic=models",
        "http.listen=\"\"",
    ]);
    assert_eq!(plan.required_topics, ["models", "more", "points", "scores"]);
    assert_eq!(plan.scores, Target::Kafka("scores".into()));
    assert_eq!(plan.snapshots.published, Target::Kafka("models".into()));
    assert!(plan.producer.is_some());
    assert!(plan.http.is_none());
    let Input::Kafka {
        topics, group_id, ..
    } = plan.source.input
    else {
        panic!("a Kafka source");
    };
    assert_eq!((topics.len(), group_id.as_str()), (2, "gmm-stream"));
    // Reading Kafka alone needs no producer.
    let plan = resolve(&["source.kind=kafka"]);
    assert!(plan.producer.is_none());
    assert_eq!(plan.required_topics, ["points"]);
}

#[test]
fn files_sinks_and_decoding_are_resolved() {
    let plan = resolve(&[
        "source.kind=file",
        "source.path=in.f64",
        "source.format=f64le",
        "source.dim=3",
        "scores.sink=file",
        "scores.path=s.ndjson",
        "snapshot.format=bin",
        "http.token=secret",
    ]);
    assert!(matches!(&plan.source.input, Input::File(p) if p == std::path::Path::new("in.f64")));
    assert_eq!(plan.source.decode.dim, Some(3));
    assert_eq!(plan.scores, Target::File("s.ndjson".into()));
    assert_eq!(plan.snapshots.encoding, Encoding::Binary);
    assert_eq!(plan.http.and_then(|h| h.token).as_deref(), Some("secret"));
}

#[test]
fn an_invalid_configuration_does_not_resolve() {
    let config = Config {
        estimator: crate::config::EstimatorConfig {
            batch_size: 0,
            ..Default::default()
        },
        ..Config::default()
    };
    let err = Plan::resolve(&config).expect_err("invalid");
    assert!(err.to_string().contains("estimator.batch_size"), "{err}");
}

#[test]
fn a_state_topic_makes_a_group_plan_with_static_membership() {
    let plan = resolve(&[
        "source.kind=kafka",
        "source.format=json",
        "kafka.state_topic=\"s\"",
        "kafka.group_instance_id=\"m-1\"",
    ]);
    let group = plan.group.expect("a group plan");
    assert_eq!(group.state_topic, "s");
    assert_eq!(
        group
            .client
            .properties
            .get("group.instance.id")
            .map(String::as_str),
        Some("m-1")
    );
    assert!(plan.required_topics.contains(&"s".to_string()));
}
