//! The configuration resolved once into what each part of the daemon needs, the
//! way ripgrep turns its raw flags (`LowArgs`) into resolved ones (`HiArgs`):
//! [`Config`] is what the user wrote, validated; a [`Plan`] is what the daemon
//! runs. Each stage receives its part of the plan, never the configuration.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use gmm_io::{DecodeConfig, Encoding};
use gmm_model::OnlineSettings;

use crate::config::{Config, ConfigError, LogFormat, SinkKind, SourceKind};
use crate::http::ConnectionLimits;
use crate::sink::Target;
use crate::source::GeneratorConfig;

#[cfg(test)]
mod tests;

/// Everything the daemon runs on.
#[derive(Clone, Debug)]
pub struct Plan {
    pub source: SourcePlan,
    pub batching: Batching,
    pub estimator: EstimatorPlan,
    pub snapshots: SnapshotPlan,
    pub scores: Target,
    pub dead_letters: Target,
    /// The producer of every Kafka output; None when no output goes to Kafka.
    pub producer: Option<KafkaClient>,
    /// Every topic the daemon reads or writes, sorted, each once: all must exist
    /// before it starts.
    pub required_topics: Vec<String>,
    /// None when `http.listen` is empty.
    pub http: Option<HttpPlan>,
    pub log: LogPlan,
    /// The state topic's group (`kafka.state_topic`); None: the daemon learns alone.
    pub group: Option<GroupPlan>,
}

/// One model shared by the members of a consumer group (docs/scale-out.md).
#[derive(Clone, Debug, PartialEq)]
pub struct GroupPlan {
    pub client: KafkaClient,
    pub state_topic: String,
    pub group_id: String,
    /// How long an assigned partition waits for its previous owner's last state.
    pub state_wait: Duration,
}

/// Where points come from and how they decode.
#[derive(Clone, Debug)]
pub struct SourcePlan {
    pub input: Input,
    /// `source.format`, `source.fields`, and `source.dim` when set (a restored
    /// model fills the dimension in when it is not).
    pub decode: DecodeConfig,
    /// Longest accepted record (line or message), in bytes.
    pub max_record_bytes: usize,
}

#[derive(Clone, Debug)]
pub enum Input {
    File(PathBuf),
    Stdin,
    /// The built-in synthetic stream, in `dim` dimensions unless a restored model
    /// has another.
    Generator {
        settings: GeneratorConfig,
        dim: usize,
    },
    Kafka {
        client: KafkaClient,
        group_id: String,
        topics: Vec<String>,
    },
}

/// How to reach the Kafka cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KafkaClient {
    pub brokers: String,
    /// Passed to librdkafka as they are (TLS, SASL, timeouts...).
    pub properties: BTreeMap<String, String>,
}

/// How the stream is cut into mini-batches.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Batching {
    pub size: usize,
    /// A batch is closed after this long even if not full.
    pub timeout: Duration,
}

#[derive(Clone, Debug, PartialEq)]
pub struct EstimatorPlan {
    pub online: OnlineSettings,
    /// Leave points below the anomaly threshold out of the statistics.
    pub trim_anomalies: bool,
    pub anomaly: AnomalyPlan,
}

/// The running quantile that sets the anomaly threshold.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AnomalyPlan {
    pub quantile: f64,
    /// How many recent points it covers.
    pub window: usize,
}

#[derive(Clone, Debug, PartialEq)]
pub struct SnapshotPlan {
    pub dir: PathBuf,
    pub keep: usize,
    pub encoding: Encoding,
    /// Snapshot after this many absorbed points (0: not by count).
    pub every_points: u64,
    /// Snapshot after this many seconds (0: not by time).
    pub every_seconds: f64,
    /// Where each snapshot is also published (a Kafka topic, or none).
    pub published: Target,
    /// The key of published snapshots.
    pub model_name: String,
}

#[derive(Clone, Debug, PartialEq)]
pub struct HttpPlan {
    pub listen: String,
    /// Required as `Authorization: Bearer <token>` by /model and /score.
    pub token: Option<Arc<str>>,
    /// Larger request bodies get 413.
    pub max_body_bytes: usize,
    /// Points with a coordinate of larger magnitude get 400 (`source.max_abs_value`).
    pub max_abs_value: f64,
    /// Points in one /score request at most.
    pub max_score_points: usize,
    /// /score requests read and scored at once.
    pub max_concurrent_scores: usize,
    /// A /score request waits its turn and sends its body within this.
    pub request_timeout: Duration,
    /// Connections, header timeout, shutdown.
    pub limits: ConnectionLimits,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LogPlan {
    pub json: bool,
    /// Between status lines (zero: none).
    pub status_every: Duration,
}

impl Plan {
    /// Validates `config` and resolves it.
    pub fn resolve(config: &Config) -> Result<Self, ConfigError> {
        config.validate()?;
        let scores = target(
            config.scores.sink,
            &config.scores.path,
            &config.scores.topic,
        );
        let dead_letters = target(
            config.dead_letter.sink,
            &config.dead_letter.path,
            &config.dead_letter.topic,
        );
        let snapshots = snapshot_plan(config);
        let kafka_output = [&scores, &dead_letters, &snapshots.published]
            .iter()
            .any(|t| matches!(t, Target::Kafka(_)));
        Ok(Self {
            source: source_plan(config),
            batching: Batching {
                size: config.estimator.batch_size,
                timeout: Duration::from_millis(config.estimator.batch_timeout_ms),
            },
            estimator: EstimatorPlan {
                online: config.online_settings(),
                trim_anomalies: config.estimator.trim_anomalies,
                anomaly: AnomalyPlan {
                    quantile: config.scores.anomaly_quantile,
                    window: config.scores.anomaly_window,
                },
            },
            producer: kafka_output.then(|| kafka_client(config)),
            required_topics: required_topics(
                config,
                [&scores, &dead_letters, &snapshots.published],
            ),
            snapshots,
            scores,
            dead_letters,
            http: http_plan(config),
            group: group_plan(config),
            log: LogPlan {
                json: config.log.format == LogFormat::Json,
                status_every: Duration::try_from_secs_f64(config.log.status_every_seconds)
                    .unwrap_or_default(),
            },
        })
    }
}

fn source_plan(config: &Config) -> SourcePlan {
    let s = &config.source;
    let input = match s.kind {
        SourceKind::File => Input::File(s.path.clone()),
        SourceKind::Stdin => Input::Stdin,
        SourceKind::Generator => Input::Generator {
            settings: s.generator.clone(),
            dim: config.generator_dim(),
        },
        SourceKind::Kafka => Input::Kafka {
            client: kafka_client(config),
            group_id: config.kafka.group_id.clone(),
            topics: config.kafka.topics.clone(),
        },
    };
    SourcePlan {
        input,
        decode: DecodeConfig {
            format: s.format,
            dim: (s.dim > 0).then_some(s.dim),
            fields: (!s.fields.is_empty()).then(|| s.fields.clone()),
            max_abs: Some(s.max_abs_value),
        },
        max_record_bytes: s.max_record_bytes,
    }
}

fn snapshot_plan(config: &Config) -> SnapshotPlan {
    let s = &config.snapshot;
    SnapshotPlan {
        dir: s.dir.clone(),
        keep: s.keep,
        encoding: s.format,
        every_points: s.every_points,
        every_seconds: s.every_seconds,
        published: match non_empty(&s.topic) {
            Some(topic) => Target::Kafka(topic),
            None => Target::None,
        },
        model_name: config.model.name.clone(),
    }
}

fn http_plan(config: &Config) -> Option<HttpPlan> {
    let h = &config.http;
    Some(HttpPlan {
        listen: non_empty(&h.listen)?.trim().to_string(),
        token: non_empty(&h.token).map(Arc::from),
        max_body_bytes: h.max_body_bytes,
        max_abs_value: config.source.max_abs_value,
        max_score_points: h.max_score_points,
        max_concurrent_scores: h.max_concurrent_scores,
        // Validated: at most a day.
        request_timeout: Duration::from_millis(h.request_timeout_ms),
        limits: ConnectionLimits {
            max_connections: h.max_connections,
            header_timeout: Duration::from_millis(h.header_timeout_ms),
            shutdown_timeout: Duration::from_millis(h.shutdown_timeout_ms),
        },
    })
}

fn kafka_client(config: &Config) -> KafkaClient {
    let mut properties = config.kafka.properties.clone();
    if !config.kafka.group_instance_id.is_empty() {
        properties.insert(
            "group.instance.id".into(),
            config.kafka.group_instance_id.clone(),
        );
    }
    KafkaClient {
        brokers: config.kafka.brokers.clone(),
        properties,
    }
}

fn group_plan(config: &Config) -> Option<GroupPlan> {
    let k = &config.kafka;
    (!k.state_topic.is_empty()).then(|| GroupPlan {
        client: kafka_client(config),
        state_topic: k.state_topic.clone(),
        group_id: k.group_id.clone(),
        state_wait: Duration::from_millis(k.state_wait_ms),
    })
}

/// Where the records of a `scores` or `dead_letter` section go. Validation made
/// sure that a file has a path and a topic a name.
fn target(sink: SinkKind, path: &std::path::Path, topic: &str) -> Target {
    match sink {
        SinkKind::None => Target::None,
        SinkKind::Stdout => Target::Stdout,
        SinkKind::File => Target::File(path.to_path_buf()),
        SinkKind::Kafka => Target::Kafka(topic.to_string()),
    }
}

/// The input topics and those of `outputs`, sorted, each once.
fn required_topics(config: &Config, outputs: [&Target; 3]) -> Vec<String> {
    let mut topics = Vec::new();
    if config.source.kind == SourceKind::Kafka {
        topics.extend(config.kafka.topics.iter().cloned());
        if !config.kafka.state_topic.is_empty() {
            topics.push(config.kafka.state_topic.clone());
        }
    }
    for output in outputs {
        if let Target::Kafka(topic) = output {
            topics.push(topic.clone());
        }
    }
    topics.sort();
    topics.dedup();
    topics
}

fn non_empty(s: &str) -> Option<String> {
    (!s.trim().is_empty()).then(|| s.to_string())
}
