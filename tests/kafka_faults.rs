//! Faults, with librdkafka's mock cluster (in this process, the real protocol):
//! the only broker down for ten seconds mid-stream, injected errors on fetch
//! and on offset commit, and a group member's state topic out of reach for ten
//! seconds. The daemon runs in-process (`run_until`); the test checks
//! that it neither crashes nor loses or repeats a point, that every point is
//! scored, and that it resumes and commits to the end.

#[path = "common/kafka.rs"]
mod kafka_common;

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use gmm_stream::daemon::{run_until, DaemonError};
use kafka_common::*;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::DefaultProducerContext;
use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
use tokio_util::sync::CancellationToken;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// What the daemon and librdkafka logged (info and up, status lines aside), so
/// that a test can check its faults were really met. The tests take turns (`serial`), so the log
/// is theirs alone.
static LOG: Mutex<Vec<String>> = Mutex::new(Vec::new());

struct Capture;

struct Fields(String);

impl tracing::field::Visit for Fields {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        use std::fmt::Write;
        let _ = write!(self.0, "{}={value:?} ", field.name());
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Capture {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        let meta = event.metadata();
        if *meta.level() > tracing::Level::INFO || meta.target().contains("status") {
            return;
        }
        let mut fields = Fields(String::new());
        event.record(&mut fields);
        let line = format!("{} {}: {}", meta.level(), meta.target(), fields.0);
        LOG.lock().unwrap_or_else(|e| e.into_inner()).push(line);
    }
}

/// One test at a time, with an empty log.
fn serial() -> MutexGuard<'static, ()> {
    static TURN: Mutex<()> = Mutex::new(());
    static INIT: OnceLock<()> = OnceLock::new();
    INIT.get_or_init(|| {
        tracing_subscriber::registry().with(Capture).init();
    });
    let turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
    LOG.lock().unwrap_or_else(|e| e.into_inner()).clear();
    turn
}

fn logged(needle: &str) -> usize {
    LOG.lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .filter(|l| l.contains(needle))
        .count()
}

fn log_dump() -> String {
    LOG.lock().unwrap_or_else(|e| e.into_inner()).join("\n")
}

/// The daemon, in-process, on a runtime of its own.
struct InProcess {
    cancel: CancellationToken,
    thread: Option<std::thread::JoinHandle<Result<(), DaemonError>>>,
}

impl InProcess {
    fn start(settings: &DaemonSettings) -> Self {
        Self::start_config(settings.config())
    }

    fn start_config(config: gmm_stream::config::Config) -> Self {
        let cancel = CancellationToken::new();
        let token = cancel.clone();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(run_until(config, token))
        });
        Self {
            cancel,
            thread: Some(thread),
        }
    }

    fn assert_running(&self) {
        if self.thread.as_ref().is_none_or(|t| t.is_finished()) {
            panic!("the daemon stopped early; log:\n{}", log_dump());
        }
    }

    /// Stops it as SIGTERM would and returns its outcome.
    fn stop(mut self) -> Result<(), DaemonError> {
        self.cancel.cancel();
        let thread = self.thread.take().expect("running");
        thread.join().expect("the daemon did not panic")
    }
}

impl Drop for InProcess {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

/// Waits until the newest snapshot satisfies `done`.
fn wait_for(
    dir: &std::path::Path,
    daemon: &InProcess,
    timeout: Duration,
    done: impl Fn(&gmm_io::ModelFile) -> bool,
) {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        if newest_snapshot(dir).is_some_and(|m| done(&m)) {
            return;
        }
        daemon.assert_running();
        if std::time::Instant::now() > deadline {
            let last = newest_snapshot(dir).map(|m| (m.points_seen, m.positions));
            panic!(
                "not reached within {timeout:?}; newest snapshot: {last:?}; log:\n{}",
                log_dump()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `n` messages of 100 points alternating over two partitions.
fn messages(n: usize, seed: u64) -> Vec<Outgoing> {
    sample(&truth(), n * 100, seed)
        .chunks(300)
        .enumerate()
        .map(|(i, block)| Outgoing {
            partition: (i % 2) as i32,
            value: Some(f64le(block)),
        })
        .collect()
}

struct Setup {
    cluster: MockCluster<'static, DefaultProducerContext>,
    brokers: String,
    topic: String,
    scores: String,
    settings: DaemonSettings,
    _tmp: tempfile::TempDir,
}

fn setup(name: &str) -> Setup {
    let cluster = MockCluster::new(1).expect("a mock cluster");
    let brokers = cluster.bootstrap_servers();
    let (topic, scores, model) = (unique(name), unique("scores"), unique("model"));
    cluster.create_topic(&topic, 2, 1).expect("topic");
    cluster.create_topic(&scores, 1, 1).expect("topic");
    cluster.create_topic(&model, 1, 1).expect("topic");
    let tmp = tempfile::tempdir().expect("temp dir");
    let mut settings = DaemonSettings::new(
        &brokers,
        &topic,
        &unique("faults"),
        &tmp.path().join("snapshots"),
    );
    settings.scores_topic = Some(scores.clone());
    settings.snapshot_topic = Some(model);
    // librdkafka backs off reconnecting up to 10 s by default; 1 s keeps the
    // test short without changing what it shows.
    settings.properties = vec![("reconnect.backoff.max.ms".into(), "1000".into())];
    settings.http_listen = format!("127.0.0.1:{}", free_port());
    Setup {
        cluster,
        brokers,
        topic,
        scores,
        settings,
        _tmp: tmp,
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// `GET /readyz`: status and body.
fn readyz(s: &Setup) -> (u16, String) {
    let url = format!("http://{}/readyz", s.settings.http_listen);
    match ureq::get(&url).timeout(Duration::from_secs(5)).call() {
        Ok(r) => (r.status(), r.into_string().unwrap_or_default()),
        Err(ureq::Error::Status(code, r)) => (code, r.into_string().unwrap_or_default()),
        Err(e) => panic!("GET {url}: {e}"),
    }
}

/// After the run: every point absorbed exactly once, scored exactly once, and
/// the group's offsets at the end.
fn check(s: &Setup, produced: &[(i32, i64)]) {
    let ends = end_offsets(produced);
    let good = produced.len() * 100;
    let model = newest_snapshot(&s.settings.dir).expect("a final snapshot");
    assert_eq!(model.points_seen, good as u64, "points absorbed");
    assert_eq!(snapshot_positions(&model, &s.topic), ends);
    let records = read_topic(
        &s.brokers,
        &s.scores,
        good,
        Duration::from_secs(2),
        Duration::from_secs(60),
    );
    let expected: BTreeMap<(String, i32, i64), usize> = produced
        .iter()
        .map(|&(p, o)| ((s.topic.clone(), p, o), 100))
        .collect();
    assert_eq!(records.len(), good, "score records");
    assert_eq!(scores_per_message(&parse_scores(&records)), expected);
    assert_eq!(committed(&s.brokers, &s.settings.group, &s.topic, 2), ends);
}

#[test]
fn the_only_broker_down_for_ten_seconds_mid_stream() {
    let _turn = serial();
    let s = setup("outage");
    let daemon = InProcess::start(&s.settings);
    let mut produced = produce_with_python(&s.brokers, &s.topic, &messages(100, 1), 0.0);
    wait_for(&s.settings.dir, &daemon, Duration::from_secs(60), |m| {
        m.points_seen == 10_000
    });

    // More points, and the broker goes down while the daemon reads, scores and
    // snapshots them; more are produced during the outage (queued by the
    // producer until the broker is back).
    produced.extend(produce_with_python(
        &s.brokers,
        &s.topic,
        &messages(100, 2),
        0.0,
    ));
    assert_eq!(readyz(&s).0, 200, "ready before the outage");
    s.cluster.broker_down(1).expect("broker down");
    let during = spawn_python_producer(&s.brokers, &s.topic, &messages(100, 3), 0.0);
    std::thread::sleep(Duration::from_secs(10));
    daemon.assert_running();
    let (code, why) = readyz(&s);
    assert_eq!(
        (code, why.as_str()),
        (503, "not ready: no Kafka broker can be reached\n"),
        "readiness during the outage"
    );
    let absorbed_while_down = newest_snapshot(&s.settings.dir).map_or(0, |m| m.points_seen);
    s.cluster.broker_up(1).expect("broker up");
    produced.extend(finish_python_producer(during));

    let ends = end_offsets(&produced);
    wait_for(&s.settings.dir, &daemon, Duration::from_secs(90), |m| {
        snapshot_positions(m, &s.topic) == ends && m.points_seen == 30_000
    });
    // Ready again once a broker is back (seen in a message or the statistics).
    let started = std::time::Instant::now();
    while readyz(&s).0 != 200 {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "never ready again"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    daemon.stop().expect("a clean stop after the outage");
    eprintln!("newest snapshot at the end of the outage: {absorbed_while_down} points");
    assert!(
        logged("brokers are down") > 0,
        "the outage was noticed:\n{}",
        log_dump()
    );
    check(&s, &produced);
}

#[test]
fn injected_fetch_and_commit_errors() {
    let _turn = serial();
    let mut s = setup("errors");
    // UNKNOWN_MEMBER_ID makes the consumer forget its member id and join again as
    // a new member, while the mock coordinator (which never evicted it) waits
    // for the old member's session to expire first: keep sessions short.
    s.settings.properties.extend([
        ("session.timeout.ms".to_string(), "6000".to_string()),
        ("heartbeat.interval.ms".to_string(), "1000".to_string()),
    ]);
    let daemon = InProcess::start(&s.settings);
    let mut produced = produce_with_python(&s.brokers, &s.topic, &messages(60, 4), 0.0);
    wait_for(&s.settings.dir, &daemon, Duration::from_secs(60), |m| {
        m.points_seen == 6_000
    });

    // Every fetch and commit request fails, one error each, until the stacks are
    // used up: retriable errors, a dropped connection, and for commits a
    // coordinator that moved.
    use RDKafkaRespErr::*;
    s.cluster.request_errors(
        RDKafkaApiKey::Fetch,
        &[
            RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION,
            RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT,
            RD_KAFKA_RESP_ERR__TRANSPORT,
            RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART,
            RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION,
            RD_KAFKA_RESP_ERR__TRANSPORT,
        ],
    );
    s.cluster.request_errors(
        RDKafkaApiKey::OffsetCommit,
        &[
            RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT,
            RD_KAFKA_RESP_ERR_COORDINATOR_NOT_AVAILABLE,
            RD_KAFKA_RESP_ERR_NOT_COORDINATOR,
            RD_KAFKA_RESP_ERR_COORDINATOR_LOAD_IN_PROGRESS,
            RD_KAFKA_RESP_ERR__TRANSPORT,
            RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT,
            RD_KAFKA_RESP_ERR_ILLEGAL_GENERATION,
            RD_KAFKA_RESP_ERR_UNKNOWN_MEMBER_ID,
        ],
    );
    produced.extend(produce_with_python(
        &s.brokers,
        &s.topic,
        &messages(60, 5),
        0.0,
    ));
    let ends = end_offsets(&produced);
    wait_for(&s.settings.dir, &daemon, Duration::from_secs(90), |m| {
        snapshot_positions(m, &s.topic) == ends && m.points_seen == 12_000
    });
    // A failed commit is retried (by the polling thread while the stream is
    // quiet) until the committed offsets are at the end.
    let started = std::time::Instant::now();
    while committed(&s.brokers, &s.settings.group, &s.topic, 2) != ends {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "offsets never committed: {:?}, not {ends:?}; log:\n{}",
            committed(&s.brokers, &s.settings.group, &s.topic, 2),
            log_dump()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    daemon.stop().expect("a clean stop");
    eprintln!(
        "{} failed commits, {} retried successfully while the stream was quiet",
        logged("cannot commit offsets"),
        logged("whose commit had failed")
    );
    // The faults were met: a fetch error surfaced (and was retried), commits
    // failed, and the fenced member was revoked and assigned again.
    let dump = log_dump();
    assert!(logged("Kafka consumer error (retrying)") > 0, "{dump}");
    assert!(logged("cannot commit offsets") >= 2, "{dump}");
    assert!(logged("partitions assigned") >= 2, "{dump}");
    check(&s, &produced);
}

/// An outage longer than a flush's patience stalls the producer's flush (which
/// holds the offsets back) instead of failing it: once the broker is back, every
/// message is delivered and the flush succeeds.
#[test]
fn a_flush_waits_out_an_outage_longer_than_its_patience() {
    use gmm_stream::sink::kafka::KafkaSink;
    let _turn = serial();
    let cluster = MockCluster::new(1).expect("a mock cluster");
    let brokers = cluster.bootstrap_servers();
    let topic = unique("flush");
    cluster.create_topic(&topic, 1, 1).expect("topic");
    let properties = BTreeMap::from([("reconnect.backoff.max.ms".into(), "500".into())]);
    let mut sink = KafkaSink::new(&brokers, &properties).expect("a producer");
    sink.flush_warn_after = Duration::from_millis(300);
    sink.send(&topic, None, b"before", None).expect("queued");
    sink.flush().expect("delivered while the broker is up");

    cluster.broker_down(1).expect("broker down");
    sink.send(&topic, Some(b"k"), b"during", None)
        .expect("queued");
    let flushing = std::thread::spawn(move || sink.flush());
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        !flushing.is_finished(),
        "the flush gave up during the outage: {:?}",
        flushing.join()
    );
    cluster.broker_up(1).expect("broker up");
    flushing
        .join()
        .expect("no panic")
        .expect("delivered once the broker is back");
    let values: Vec<Option<Vec<u8>>> = read_topic(
        &brokers,
        &topic,
        2,
        Duration::from_secs(1),
        Duration::from_secs(30),
    )
    .into_iter()
    .map(|r| r.value)
    .collect();
    assert_eq!(values, [Some(b"before".to_vec()), Some(b"during".to_vec())]);
    assert!(logged("still waiting") > 0, "{}", log_dump());
}

#[test]
fn the_state_topic_out_of_reach_for_ten_seconds() {
    use rdkafka::mocking::MockCoordinator;
    let _turn = serial();
    // Two brokers: the input, the scores and the group's coordinator on broker 1,
    // the state topic on broker 2, which goes down.
    let cluster = MockCluster::new(2).expect("a mock cluster");
    let brokers = cluster.bootstrap_servers();
    let (topic, scores, state) = (unique("points"), unique("scores"), unique("state"));
    let group = unique("state-outage");
    cluster.create_topic(&topic, 2, 1).expect("topic");
    cluster.create_topic(&scores, 1, 1).expect("topic");
    cluster.create_topic(&state, 1, 1).expect("topic");
    for p in 0..2 {
        cluster
            .partition_leader(&topic, p, Some(1))
            .expect("leader");
    }
    cluster
        .partition_leader(&scores, 0, Some(1))
        .expect("leader");
    cluster
        .partition_leader(&state, 0, Some(2))
        .expect("leader");
    cluster
        .coordinator(MockCoordinator::Group(group.clone()), 1)
        .expect("coordinator");
    let tmp = tempfile::tempdir().expect("temp dir");
    let mut settings = DaemonSettings::new(&brokers, &topic, &group, &tmp.path().join("snapshots"));
    settings.scores_topic = Some(scores.clone());
    settings.properties = vec![("reconnect.backoff.max.ms".into(), "1000".into())];
    let mut config = settings.config();
    config.kafka.state_topic = state.clone();
    config.estimator.warmup_points = 1000;
    let s = Setup {
        cluster,
        brokers: brokers.clone(),
        topic: topic.clone(),
        scores,
        settings,
        _tmp: tmp,
    };
    let daemon = InProcess::start_config(config);
    let mut produced = produce_with_python(&brokers, &topic, &messages(100, 7), 0.0);
    wait_for(&s.settings.dir, &daemon, Duration::from_secs(60), |m| {
        m.points_seen == 10_000
    });

    s.cluster.broker_down(2).expect("state topic's broker down");
    produced.extend(produce_with_python(
        &brokers,
        &topic,
        &messages(100, 8),
        0.0,
    ));
    // The member goes on: it absorbs and scores the new points with the model it
    // has, its snapshots count them, but it commits nothing it has not published.
    wait_for(&s.settings.dir, &daemon, Duration::from_secs(10), |m| {
        m.points_seen == 20_000
    });
    let committed_during = committed(&brokers, &group, &topic, 2);
    std::thread::sleep(Duration::from_secs(8));
    daemon.assert_running();
    assert_eq!(
        committed(&brokers, &group, &topic, 2),
        committed_during,
        "nothing committed while the state records are not acknowledged"
    );
    s.cluster.broker_up(2).expect("state topic's broker up");

    let ends = end_offsets(&produced);
    assert_ne!(
        committed_during, ends,
        "the points read during the outage are not committed"
    );
    wait_for(&s.settings.dir, &daemon, Duration::from_secs(90), |m| {
        snapshot_positions(m, &topic) == ends && m.points_seen == 20_000
    });
    daemon.stop().expect("a clean stop after the outage");
    check(&s, &produced);
}
