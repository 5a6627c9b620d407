//! The daemon's configuration as the user wrote it: TOML, in layers (later wins):
//! built-in defaults, the file, environment variables `GMM_STREAM__SECTION__KEY`,
//! and `--set section.key=value`. Unknown keys are an error; every value is
//! validated with a message that names its key. `config/default.toml` documents
//! every key. The daemon does not read this: it runs on the [`crate::plan::Plan`]
//! resolved from it once.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use thiserror::Error;

pub use crate::source::generator::GeneratorConfig;
use gmm_io::{Encoding, Format};
use gmm_model::{
    CovarianceType, DriftSettings, HalfLifeUnit, Inference, OnlineSettings, OnlineVariational,
    Schedule, WeightPriorType,
};

mod load;
#[cfg(test)]
mod tests;
mod validate;

/// Environment variables with this prefix set keys: `GMM_STREAM__MODEL__COMPONENTS=8`.
pub const ENV_PREFIX: &str = "GMM_STREAM__";

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("{0}")]
    Load(String),
    #[error("invalid --set `{0}`: expected section.key=value")]
    BadSet(String),
    #[error("{key}: {reason}")]
    Invalid { key: &'static str, reason: String },
}

fn invalid(key: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key,
        reason: reason.into(),
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub source: SourceConfig,
    pub model: ModelConfig,
    pub estimator: EstimatorConfig,
    pub snapshot: SnapshotConfig,
    pub scores: ScoresConfig,
    pub dead_letter: DeadLetterConfig,
    pub kafka: KafkaConfig,
    pub http: HttpConfig,
    pub log: LogConfig,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceKind {
    Kafka,
    File,
    Stdin,
    Generator,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SourceConfig {
    pub kind: SourceKind,
    /// The input file (`kind = "file"`).
    pub path: PathBuf,
    pub format: Format,
    /// CSV header names or JSON object keys that are the coordinates, in order.
    pub fields: Vec<String>,
    /// Coordinates per point; 0 learns it from the first point (csv, json).
    pub dim: usize,
    /// Longest accepted record (line or message), in bytes.
    pub max_record_bytes: usize,
    /// Points with a coordinate of larger magnitude are rejected (`out_of_range`).
    pub max_abs_value: f64,
    pub generator: GeneratorConfig,
}

impl Default for SourceConfig {
    fn default() -> Self {
        Self {
            kind: SourceKind::Generator,
            path: PathBuf::new(),
            format: Format::Csv,
            fields: Vec::new(),
            dim: 0,
            max_record_bytes: 64 << 20,
            max_abs_value: gmm_model::MAX_ABS_COORDINATE,
            generator: GeneratorConfig::default(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelConfig {
    /// Key of snapshots published to Kafka.
    pub name: String,
    pub components: usize,
    pub covariance_type: CovarianceType,
    pub reg_covar: f64,
}

impl Default for ModelConfig {
    fn default() -> Self {
        Self {
            name: "gmm-stream".into(),
            components: 3,
            covariance_type: CovarianceType::Full,
            reg_covar: 1e-6,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ScheduleKind {
    Decay,
    Stepwise,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EstimatorConfig {
    pub batch_size: usize,
    /// A batch is closed after this long even if not full, so a slow stream updates.
    pub batch_timeout_ms: u64,
    pub schedule: ScheduleKind,
    /// Half-life of the decay; `inf` never forgets.
    pub half_life: f64,
    pub half_life_unit: HalfLifeUnit,
    pub stepwise_alpha: f64,
    /// Stepwise offset t0, in batches; negative means warmup_points / batch_size.
    pub stepwise_t0: f64,
    pub warmup_points: usize,
    pub warmup_iterations: usize,
    pub seed: u64,
    /// A component whose share of the weight falls below this is re-seeded.
    pub min_weight: f64,
    pub map_prior: bool,
    /// Points flagged as anomalies are scored but left out of the model's
    /// statistics, so outliers cannot bend it.
    pub trim_anomalies: bool,
    pub drift: DriftSettings,
    /// `em`, or `variational` with `model.components` as the largest K.
    pub inference: Inference,
    pub variational: VariationalConfig,
}

/// `[estimator.variational]`: online variational inference.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct VariationalConfig {
    /// `dirichlet_distribution` or `dirichlet_process`.
    pub weight_prior: WeightPriorType,
    /// The weight prior's concentration; 0 means 1/K.
    pub weight_concentration_prior: f64,
    pub mean_precision_prior: f64,
    /// A fading live component below this share of the weight is retired.
    pub retire_weight: f64,
}

impl Default for VariationalConfig {
    fn default() -> Self {
        let d = OnlineVariational::default();
        Self {
            weight_prior: d.weight_prior,
            weight_concentration_prior: 0.0,
            mean_precision_prior: d.mean_precision,
            retire_weight: d.retire_weight,
        }
    }
}

impl VariationalConfig {
    fn settings(&self) -> OnlineVariational {
        OnlineVariational {
            weight_prior: self.weight_prior,
            weight_concentration: (self.weight_concentration_prior != 0.0)
                .then_some(self.weight_concentration_prior),
            mean_precision: self.mean_precision_prior,
            retire_weight: self.retire_weight,
        }
    }
}

impl Default for EstimatorConfig {
    fn default() -> Self {
        Self {
            batch_size: 1024,
            batch_timeout_ms: 1000,
            schedule: ScheduleKind::Decay,
            half_life: 10_000.0,
            half_life_unit: HalfLifeUnit::Points,
            stepwise_alpha: 0.7,
            stepwise_t0: -1.0,
            warmup_points: 2_000,
            warmup_iterations: 20,
            seed: 0,
            min_weight: 1e-3,
            map_prior: false,
            trim_anomalies: true,
            drift: DriftSettings::default(),
            inference: Inference::Em,
            variational: VariationalConfig::default(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SnapshotConfig {
    pub dir: PathBuf,
    /// Snapshot after this many absorbed points (0: not by count).
    pub every_points: u64,
    /// Snapshot after this many seconds (0: not by time).
    pub every_seconds: f64,
    /// Snapshots kept on disk (at least 1).
    pub keep: usize,
    /// `json` or `bin`.
    pub format: Encoding,
    /// Kafka topic every snapshot is also published to (empty: none).
    pub topic: String,
}

impl Default for SnapshotConfig {
    fn default() -> Self {
        Self {
            dir: PathBuf::from("snapshots"),
            every_points: 100_000,
            every_seconds: 60.0,
            keep: 5,
            format: Encoding::Json,
            topic: String::new(),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SinkKind {
    None,
    Stdout,
    File,
    Kafka,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScoresConfig {
    pub sink: SinkKind,
    pub path: PathBuf,
    pub topic: String,
    /// Flag the points whose log-density is below this quantile of recent ones.
    pub anomaly_quantile: f64,
    /// How many recent points the running quantile covers.
    pub anomaly_window: usize,
}

impl Default for ScoresConfig {
    fn default() -> Self {
        Self {
            sink: SinkKind::None,
            path: PathBuf::new(),
            topic: String::new(),
            anomaly_quantile: 0.001,
            anomaly_window: 100_000,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeadLetterConfig {
    pub sink: SinkKind,
    pub path: PathBuf,
    pub topic: String,
}

impl Default for DeadLetterConfig {
    fn default() -> Self {
        Self {
            sink: SinkKind::None,
            path: PathBuf::new(),
            topic: String::new(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KafkaConfig {
    pub brokers: String,
    pub topics: Vec<String>,
    pub group_id: String,
    /// Passed to librdkafka as they are (TLS, SASL, timeouts...).
    pub properties: BTreeMap<String, String>,
    /// A compacted topic of one partition through which the members of `group_id`
    /// share one model (docs/scale-out.md); empty: each member learns alone.
    pub state_topic: String,
    /// Static membership (`group.instance.id`): a member restarted under the same id
    /// gets its partitions back without a rebalance; empty: none.
    pub group_instance_id: String,
    /// Milliseconds an assigned partition waits for its previous owner's last state
    /// record before going on from the newest state known.
    pub state_wait_ms: u64,
}

impl Default for KafkaConfig {
    fn default() -> Self {
        Self {
            brokers: "127.0.0.1:9092".into(),
            topics: vec!["points".into()],
            group_id: "gmm-stream".into(),
            properties: BTreeMap::new(),
            state_topic: String::new(),
            group_instance_id: String::new(),
            state_wait_ms: 10_000,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Address to listen on; empty disables the server.
    pub listen: String,
    pub max_body_bytes: usize,
    /// Bearer token required by /model and /score (empty: none). The environment
    /// variable GMM_STREAM_HTTP_TOKEN also sets it.
    pub token: String,
    /// Listen on an address other hosts can reach without a token (otherwise a
    /// start-up error).
    pub allow_unauthenticated: bool,
    /// Open connections at most; more are closed as soon as they are accepted.
    pub max_connections: usize,
    /// A request's headers must arrive within this.
    pub header_timeout_ms: u64,
    /// A whole request (waiting its turn, its body, its answer) within this.
    pub request_timeout_ms: u64,
    /// On shutdown, connections still open after this are closed.
    pub shutdown_timeout_ms: u64,
    /// Points in one /score request at most (413 beyond).
    pub max_score_points: usize,
    /// /score requests read and scored at once; others wait their turn.
    pub max_concurrent_scores: usize,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:9464".into(),
            max_body_bytes: 8 << 20,
            token: String::new(),
            allow_unauthenticated: false,
            max_connections: 64,
            header_timeout_ms: 10_000,
            request_timeout_ms: 30_000,
            shutdown_timeout_ms: 5_000,
            max_score_points: 100_000,
            max_concurrent_scores: 2,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    pub format: LogFormat,
    /// Seconds between status lines (0: none).
    pub status_every_seconds: f64,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: LogFormat::Text,
            status_every_seconds: 10.0,
        }
    }
}

impl Config {
    /// The dimension the generator produces.
    pub fn generator_dim(&self) -> usize {
        if self.source.dim > 0 {
            self.source.dim
        } else {
            self.source.generator.dim
        }
    }

    /// The online estimator's settings.
    pub fn online_settings(&self) -> OnlineSettings {
        let e = &self.estimator;
        let schedule = match e.schedule {
            ScheduleKind::Decay => Schedule::Decay {
                half_life: e.half_life.is_finite().then_some(e.half_life),
                unit: e.half_life_unit,
            },
            ScheduleKind::Stepwise => Schedule::Stepwise {
                alpha: e.stepwise_alpha,
                t0: if e.stepwise_t0 < 0.0 {
                    e.warmup_points as f64 / e.batch_size as f64
                } else {
                    e.stepwise_t0
                },
            },
        };
        OnlineSettings {
            n_components: self.model.components,
            covariance_type: self.model.covariance_type,
            reg_covar: self.model.reg_covar,
            schedule,
            warmup_points: e.warmup_points,
            warmup_iterations: e.warmup_iterations,
            seed: e.seed,
            min_weight: e.min_weight,
            map_prior: e.map_prior,
            drift: e.drift,
            warmup_trim: OnlineSettings::warmup_trim_for(
                e.trim_anomalies,
                self.scores.anomaly_quantile,
            ),
            inference: e.inference,
            variational: e.variational.settings(),
        }
    }
}
