//! What the Kafka tests share: a real broker (never skipped), unique names, an
//! independent producer (Python's confluent-kafka), readers of topics and group
//! offsets, the daemon as a child process, and its snapshots.
//!
//! Each test binary has its own copy of this module and uses a part of it.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use gmm_io::ModelFile;
use gmm_model::{Covariances, GaussianMixture};
use gmm_stream::sink::SnapshotStore;
use nalgebra::{DMatrix, DVector};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};

/// Set by `scripts/test.sh`: the broker every Kafka test uses.
pub const BROKERS_ENV: &str = "GMM_STREAM_TEST_BROKERS";

/// The real broker (tansu): `GMM_STREAM_TEST_BROKERS` when set, else one started
/// once for this test binary with `scripts/kafka.sh` and stopped when the binary
/// exits. Panics, saying why, when there is none: a Kafka test never skips itself.
pub fn brokers() -> &'static str {
    static BROKERS: OnceLock<String> = OnceLock::new();
    BROKERS.get_or_init(|| match std::env::var(BROKERS_ENV) {
        Ok(b) if !b.trim().is_empty() => b,
        _ => start_broker(),
    })
}

fn start_broker() -> String {
    let top = Path::new(env!("CARGO_MANIFEST_DIR"));
    let script = top.join("scripts/kafka.sh");
    // A directory of its own: this binary's broker is not another's.
    let dir = top
        .join("target/kafka-tests")
        .join(std::process::id().to_string());
    let out = Command::new(&script)
        .arg("start")
        .env("GMM_STREAM_KAFKA_DIR", &dir)
        .stderr(Stdio::inherit())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
    let addr = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(
        out.status.success() && !addr.is_empty(),
        "{BROKERS_ENV} is not set and `scripts/kafka.sh start` failed ({}): the Kafka \
         tests need a broker (run scripts/test.sh, or scripts/setup.sh once)",
        out.status
    );
    // Test binaries have no teardown hook: a watchdog stops the broker once this
    // process is gone.
    let watchdog = format!(
        "while kill -0 {pid} 2>/dev/null; do sleep 1; done; \
         GMM_STREAM_KAFKA_DIR='{dir}' '{script}' stop; rm -rf '{dir}'",
        pid = std::process::id(),
        dir = dir.display(),
        script = script.display(),
    );
    // Never waited for: it outlives this process by design.
    #[allow(clippy::zombie_processes)]
    Command::new("sh")
        .args(["-c", &watchdog])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the broker's watchdog");
    eprintln!("started a tansu broker at {addr} for this test binary");
    addr
}

/// A name no other test (or earlier run against the same broker) uses.
pub fn unique(prefix: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "{prefix}-{}-{}-{nanos}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// Creates topics (name, partitions) through the admin API and waits until their
/// metadata shows every partition.
pub fn create_topics(brokers: &str, topics: &[(&str, i32)]) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .expect("admin client");
    let new: Vec<NewTopic> = topics
        .iter()
        .map(|(name, partitions)| NewTopic::new(name, *partitions, TopicReplication::Fixed(1)))
        .collect();
    let results = futures::executor::block_on(admin.create_topics(
        &new,
        &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
    ))
    .expect("create topics");
    for r in results {
        r.unwrap_or_else(|(topic, e)| panic!("cannot create topic {topic}: {e}"));
    }
    let consumer = plain_consumer(brokers, &unique("meta"));
    let deadline = Instant::now() + Duration::from_secs(20);
    for (name, partitions) in topics {
        loop {
            let seen = consumer
                .fetch_metadata(Some(name), Duration::from_secs(5))
                .ok()
                .and_then(|m| {
                    m.topics()
                        .iter()
                        .find(|t| t.name() == *name && t.error().is_none())
                        .map(|t| t.partitions().len())
                });
            if seen == Some(*partitions as usize) {
                break;
            }
            assert!(Instant::now() < deadline, "topic {name} never appeared");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// A compacted topic of one partition, as the README tells users to create it.
pub fn create_state_topic(brokers: &str, name: &str) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .expect("admin client");
    let topic = NewTopic::new(name, 1, TopicReplication::Fixed(1)).set("cleanup.policy", "compact");
    let results = futures::executor::block_on(admin.create_topics(
        &[topic],
        &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
    ))
    .expect("create the state topic");
    for r in results {
        r.unwrap_or_else(|(topic, e)| panic!("cannot create topic {topic}: {e}"));
    }
}

pub fn plain_consumer(brokers: &str, group: &str) -> BaseConsumer {
    ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false")
        .create()
        .expect("consumer")
}

/// One message to produce: its partition and value (None: a null value).
#[derive(Clone, Debug)]
pub struct Outgoing {
    pub partition: i32,
    pub value: Option<Vec<u8>>,
}

/// Produces `messages` in order with `tests/kafka/produce.py` (confluent-kafka,
/// independent of the daemon's client), `rate` messages per second (0: at once).
/// Returns each message's (partition, offset).
pub fn produce_with_python(
    brokers: &str,
    topic: &str,
    messages: &[Outgoing],
    rate: f64,
) -> Vec<(i32, i64)> {
    let child = spawn_python_producer(brokers, topic, messages, rate);
    finish_python_producer(child)
}

/// A producer running in the background; see [`finish_python_producer`].
pub struct PythonProducer {
    child: Child,
    _file: tempfile::NamedTempFile,
}

pub fn spawn_python_producer(
    brokers: &str,
    topic: &str,
    messages: &[Outgoing],
    rate: f64,
) -> PythonProducer {
    let mut file = tempfile::NamedTempFile::new().expect("temp file");
    {
        let mut w = std::io::BufWriter::new(file.as_file_mut());
        for m in messages {
            w.write_all(&(m.partition as u32).to_le_bytes())
                .expect("write");
            match &m.value {
                Some(v) => {
                    w.write_all(&(v.len() as i32).to_le_bytes()).expect("write");
                    w.write_all(v).expect("write");
                }
                None => w.write_all(&(-1i32).to_le_bytes()).expect("write"),
            }
        }
        w.flush().expect("flush");
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/kafka/produce.py");
    let child = Command::new("python3")
        .arg(&script)
        .args(["--brokers", brokers, "--topic", topic, "--messages"])
        .arg(file.path())
        .args(["--rate", &rate.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run python3 {}: {e} (scripts/setup.sh installs it)",
                script.display()
            )
        });
    PythonProducer { child, _file: file }
}

pub fn finish_python_producer(p: PythonProducer) -> Vec<(i32, i64)> {
    let out = p.child.wait_with_output().expect("wait for produce.py");
    assert!(
        out.status.success(),
        "produce.py failed ({}; is confluent-kafka installed? scripts/setup.sh): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("produce.py prints JSON");
    report["offsets"]
        .as_array()
        .expect("offsets")
        .iter()
        .map(|o| {
            (
                o[0].as_i64().expect("partition") as i32,
                o[1].as_i64().expect("offset"),
            )
        })
        .collect()
}

/// The end offset of every partition: one past the last produced offset. Taken
/// from the producer's delivery reports, because tansu 0.6 answers ListOffsets
/// (latest) with the base offset of the newest record batch plus one, not the
/// high watermark, whenever a batch holds more than one record.
pub fn end_offsets(produced: &[(i32, i64)]) -> BTreeMap<i32, i64> {
    let mut ends = BTreeMap::new();
    for &(p, o) in produced {
        let e = ends.entry(p).or_insert(0);
        *e = (*e).max(o + 1);
    }
    ends
}

/// A message read back from a topic.
#[derive(Clone, Debug)]
pub struct Received {
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: BTreeMap<String, String>,
}

/// Reads `topic` from its start until `expected` messages arrived and then
/// nothing more for `quiet` (so that extra messages are seen too), or until
/// `timeout`. Returns what it read, in order per partition.
pub fn read_topic(
    brokers: &str,
    topic: &str,
    expected: usize,
    quiet: Duration,
    timeout: Duration,
) -> Vec<Received> {
    let consumer = plain_consumer(brokers, &unique("reader"));
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .expect("metadata");
    let partitions = metadata
        .topics()
        .iter()
        .find(|t| t.name() == topic)
        .map(|t| t.partitions().len())
        .expect("topic in metadata");
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions as i32 {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .expect("partition");
    }
    consumer.assign(&tpl).expect("assign");
    let started = Instant::now();
    let mut last = Instant::now();
    let mut out = Vec::new();
    while started.elapsed() < timeout {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                let headers = m
                    .headers()
                    .map(|h| {
                        h.iter()
                            .map(|h| {
                                (
                                    h.key.to_string(),
                                    String::from_utf8_lossy(h.value.unwrap_or_default())
                                        .into_owned(),
                                )
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                out.push(Received {
                    partition: m.partition(),
                    offset: m.offset(),
                    key: m.key().map(<[u8]>::to_vec),
                    value: m.payload().map(<[u8]>::to_vec),
                    headers,
                });
                last = Instant::now();
            }
            Some(Err(e)) => eprintln!("reading {topic}: {e}"),
            None => {
                if out.len() >= expected && last.elapsed() >= quiet {
                    break;
                }
            }
        }
    }
    out
}

/// The group's committed offsets for `topic`'s partitions (absent: none).
pub fn committed(brokers: &str, group: &str, topic: &str, partitions: i32) -> BTreeMap<i32, i64> {
    let consumer = plain_consumer(brokers, group);
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition(topic, p);
    }
    let got = consumer
        .committed_offsets(tpl, Duration::from_secs(10))
        .expect("committed offsets");
    got.elements()
        .iter()
        .filter_map(|e| match e.offset() {
            Offset::Offset(o) => Some((e.partition(), o)),
            _ => None,
        })
        .collect()
}

/// Score records, parsed.
#[derive(Clone, Debug, serde::Deserialize)]
pub struct Score {
    pub log_density: f64,
    pub cluster: usize,
    pub responsibilities: Vec<f64>,
    pub anomaly: bool,
    pub threshold: Option<f64>,
    pub model_version: u64,
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
}

pub fn parse_scores(messages: &[Received]) -> Vec<Score> {
    messages
        .iter()
        .map(|m| {
            let v = m.value.as_deref().expect("a score record has a value");
            serde_json::from_slice(v).unwrap_or_else(|e| {
                panic!("not a score record ({e}): {}", String::from_utf8_lossy(v))
            })
        })
        .collect()
}

/// Score records per source message (topic, partition, offset).
pub fn scores_per_message(scores: &[Score]) -> BTreeMap<(String, i32, i64), usize> {
    let mut per = BTreeMap::new();
    for s in scores {
        *per.entry((s.topic.clone(), s.partition, s.offset))
            .or_insert(0) += 1;
    }
    per
}

// ---------------------------------------------------------------------------
// Data

/// A mixture of three well-separated 3-d components with distinct shapes.
pub fn truth() -> GaussianMixture {
    let means = DMatrix::from_column_slice(3, 3, &[0.0, 0.0, 0.0, 6.0, 1.0, -2.0, -3.0, 7.0, 4.0]);
    let cov =
        |s: f64, c: f64| DMatrix::from_row_slice(3, 3, &[s, c, 0.0, c, s, 0.0, 0.0, 0.0, 0.5 * s]);
    GaussianMixture::new(
        DVector::from_vec(vec![0.5, 0.3, 0.2]),
        means,
        Covariances::Full(vec![cov(1.0, 0.3), cov(0.6, -0.2), cov(1.5, 0.0)]),
    )
    .expect("a valid mixture")
}

/// `n` points drawn from `model`, row-major.
pub fn sample(model: &GaussianMixture, n: usize, seed: u64) -> Vec<f64> {
    let (x, _) = model.sample(n, &mut ChaCha8Rng::seed_from_u64(seed));
    x.as_slice().to_vec()
}

pub fn f64le(values: &[f64]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// Mean log-likelihood of row-major `points` under a model file's mixture.
pub fn mean_log_likelihood(model: &ModelFile, points: &[f64]) -> f64 {
    let mixture = model.mixture().expect("a valid model");
    let d = mixture.n_features();
    let x = gmm_model::points_from_rows(points, d).expect("points");
    mixture.score(x).expect("score")
}

// ---------------------------------------------------------------------------
// The daemon

/// Settings of one daemon run; `toml()` writes its configuration.
#[derive(Clone, Debug)]
pub struct DaemonSettings {
    pub brokers: String,
    pub topic: String,
    pub group: String,
    pub dir: PathBuf,
    pub format: &'static str,
    pub dim: usize,
    pub components: usize,
    pub batch_size: usize,
    pub scores_topic: Option<String>,
    pub dead_letter_topic: Option<String>,
    pub snapshot_topic: Option<String>,
    /// Extra librdkafka properties.
    pub properties: Vec<(String, String)>,
    /// Extra TOML lines, appended at the end (their own sections).
    pub extra: String,
    /// `http.listen` (empty: no HTTP server).
    pub http_listen: String,
}

impl DaemonSettings {
    pub fn new(brokers: &str, topic: &str, group: &str, dir: &Path) -> Self {
        Self {
            brokers: brokers.to_string(),
            topic: topic.to_string(),
            group: group.to_string(),
            dir: dir.to_path_buf(),
            format: "f64le",
            dim: 3,
            components: 3,
            batch_size: 1000,
            scores_topic: None,
            dead_letter_topic: None,
            snapshot_topic: None,
            properties: Vec::new(),
            extra: String::new(),
            http_listen: String::new(),
        }
    }

    pub fn toml(&self) -> String {
        let sink = |t: &Option<String>| match t {
            Some(t) => format!("sink = \"kafka\"\ntopic = \"{t}\""),
            None => "sink = \"none\"".into(),
        };
        let mut properties = String::new();
        for (k, v) in &self.properties {
            properties.push_str(&format!("\"{k}\" = \"{v}\"\n"));
        }
        format!(
            r#"[source]
kind = "kafka"
format = "{format}"
dim = {dim}

[model]
components = {components}

[estimator]
batch_size = {batch_size}
# Partial batches close quickly, so the tests see every point absorbed soon.
batch_timeout_ms = 200

[snapshot]
dir = "{dir}"
every_points = 0
# Frequent snapshots: the tests follow progress through them.
every_seconds = 0.2
keep = 3
topic = "{snapshot_topic}"

[scores]
{scores}

[dead_letter]
{dead}

[kafka]
brokers = "{brokers}"
topics = ["{topic}"]
group_id = "{group}"

[kafka.properties]
{properties}
[http]
listen = "{http_listen}"

[log]
status_every_seconds = 1.0
{extra}"#,
            format = self.format,
            dim = self.dim,
            components = self.components,
            batch_size = self.batch_size,
            dir = self.dir.display(),
            snapshot_topic = self.snapshot_topic.clone().unwrap_or_default(),
            scores = sink(&self.scores_topic),
            dead = sink(&self.dead_letter_topic),
            brokers = self.brokers,
            topic = self.topic,
            group = self.group,
            properties = properties,
            extra = self.extra,
            http_listen = self.http_listen,
        )
    }

    /// Writes the configuration next to the snapshots' directory.
    pub fn write(&self) -> PathBuf {
        let path = self.dir.with_extension("toml");
        std::fs::write(&path, self.toml()).expect("write the config");
        path
    }

    /// The configuration as the daemon loads it, for `run_until`.
    pub fn config(&self) -> gmm_stream::config::Config {
        let path = self.write();
        gmm_stream::config::Config::load_from(Some(&path), &[], &[]).expect("a valid config")
    }
}

/// `gmm-stream run` as a child process, its stderr in a log file.
pub struct Daemon {
    pub child: Child,
    pub log: PathBuf,
}

impl Daemon {
    pub fn start(settings: &DaemonSettings, log_name: &str) -> Self {
        settings.write();
        Self::start_with_config(settings, log_name)
    }

    /// Starts the daemon on the configuration already written for `settings`.
    pub fn start_with_config(settings: &DaemonSettings, log_name: &str) -> Self {
        let config = settings.dir.with_extension("toml");
        let log = settings.dir.with_file_name(log_name);
        let stderr = std::fs::File::create(&log).expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_gmm-stream"))
            .arg("run")
            .arg("--config")
            .arg(&config)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("start gmm-stream run");
        Self { child, log }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGKILL: no chance to clean up.
    pub fn kill_9(mut self) {
        self.child.kill().expect("kill -9");
        self.child.wait().expect("reap");
    }

    /// SIGTERM, then the exit status (within `timeout`).
    pub fn terminate(mut self, timeout: Duration) -> i32 {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill -TERM");
        assert!(status.success(), "kill -TERM failed");
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(s) = self.child.try_wait().expect("wait") {
                return s.code().unwrap_or(-1);
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!(
                    "the daemon did not exit within {timeout:?} of SIGTERM; its log:\n{}",
                    self.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Fails the test with the log if the daemon has exited.
    pub fn assert_running(&mut self) {
        if let Some(s) = self.child.try_wait().expect("wait") {
            panic!("the daemon exited ({s}); its log:\n{}", self.log_text());
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        // A failing test must not leave daemons behind.
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The newest valid snapshot in `dir`, if any.
pub fn newest_snapshot(dir: &Path) -> Option<ModelFile> {
    if !dir.is_dir() {
        return None;
    }
    let store = SnapshotStore::new(dir, 1000, gmm_io::Encoding::Json);
    store.load_newest().ok()?.newest.map(|(_, m)| m)
}

/// The snapshot positions of `topic`: partition → next offset.
pub fn snapshot_positions(model: &ModelFile, topic: &str) -> BTreeMap<i32, i64> {
    match &model.positions {
        Some(gmm_io::Positions::Kafka(map)) => map.topic(topic),
        _ => BTreeMap::new(),
    }
}

/// Waits until the newest snapshot in `dir` satisfies `done`, failing (with the
/// daemon's log) if the daemon exits or `timeout` passes first.
pub fn wait_for_snapshot(
    dir: &Path,
    timeout: Duration,
    daemon: &mut Daemon,
    done: impl Fn(&ModelFile) -> bool,
) -> ModelFile {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(m) = newest_snapshot(dir) {
            if done(&m) {
                return m;
            }
        }
        daemon.assert_running();
        if Instant::now() > deadline {
            let last = newest_snapshot(dir)
                .map(|m| format!("points_seen {} at {:?}", m.points_seen, m.positions))
                .unwrap_or_else(|| "none".into());
            panic!(
                "no snapshot in {} was as expected within {timeout:?}; newest: {last}; the daemon's log:\n{}",
                dir.display(),
                daemon.log_text()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
