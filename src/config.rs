//! The daemon's configuration: TOML, in layers (later wins): built-in defaults, the
//! file, environment variables `GMM_STREAM__SECTION__KEY`, and `--set
//! section.key=value`. Unknown keys are an error; every value is validated with a
//! message that names its key. `config/default.toml` documents every key.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use figment::providers::{Format as _, Toml};
use figment::value::{Dict, Value};
use figment::Figment;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::model::{CovarianceType, DriftSettings, HalfLifeUnit, OnlineSettings, Schedule};
use crate::source::Format;

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
            generator: GeneratorConfig::default(),
        }
    }
}

/// The built-in synthetic stream: a seeded mixture that can drift and emit outliers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GeneratorConfig {
    /// Dimension of the points (`source.dim` wins when set).
    pub dim: usize,
    pub components: usize,
    pub seed: u64,
    /// Points per second; 0 is as fast as possible.
    pub rate: f64,
    /// Total points, then the stream ends; 0 never ends.
    pub limit: u64,
    /// Half-width of the box the component means are drawn in.
    pub spread: f64,
    /// Gradual drift: distance every mean moves per 10 000 points.
    pub drift_per_10k: f64,
    /// Abrupt change: every this many points the means jump (0: never).
    pub jump_every: u64,
    /// Distance of each jump.
    pub jump_size: f64,
    /// Fraction of points drawn far from every component.
    pub outlier_fraction: f64,
}

impl Default for GeneratorConfig {
    fn default() -> Self {
        Self {
            dim: 2,
            components: 3,
            seed: 42,
            rate: 2_000.0,
            limit: 0,
            spread: 8.0,
            drift_per_10k: 0.0,
            jump_every: 0,
            jump_size: 6.0,
            outlier_fraction: 0.0,
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
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SnapshotFormat {
    Json,
    Bin,
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
    pub format: SnapshotFormat,
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
            format: SnapshotFormat::Json,
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
}

impl Default for KafkaConfig {
    fn default() -> Self {
        Self {
            brokers: "127.0.0.1:9092".into(),
            topics: vec!["points".into()],
            group_id: "gmm-stream".into(),
            properties: BTreeMap::new(),
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
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:9464".into(),
            max_body_bytes: 8 << 20,
            token: String::new(),
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
    /// Loads the layers: defaults, `file`, the environment, then `sets`.
    pub fn load(file: Option<&Path>, sets: &[String]) -> Result<Self, ConfigError> {
        let env: Vec<(String, String)> = std::env::vars().collect();
        Self::load_from(file, &env, sets)
    }

    /// As [`Config::load`], with the environment given (for tests).
    pub fn load_from(
        file: Option<&Path>,
        env: &[(String, String)],
        sets: &[String],
    ) -> Result<Self, ConfigError> {
        let defaults = Layer {
            name: "the built-in defaults".into(),
            dict: Value::serialize(Config::default())
                .ok()
                .and_then(|v| v.into_dict())
                .unwrap_or_default(),
        };
        let mut figment = Figment::from(defaults);
        if let Some(path) = file {
            if !path.is_file() {
                return Err(ConfigError::Load(format!(
                    "the config file {} does not exist",
                    path.display()
                )));
            }
            figment = figment.merge(Toml::file(path));
        }
        figment = figment.merge(Layer {
            name: "the environment".into(),
            dict: env_layer(env)?,
        });
        for set in sets {
            figment = figment.merge(Layer {
                name: format!("--set {set}"),
                dict: set_layer(set)?,
            });
        }
        let mut config: Config = figment
            .extract()
            .map_err(|e| ConfigError::Load(describe(e)))?;
        if config.http.token.is_empty() {
            if let Some((_, token)) = env.iter().find(|(k, _)| k == "GMM_STREAM_HTTP_TOKEN") {
                config.http.token = token.clone();
            }
        }
        config.validate()?;
        Ok(config)
    }

    /// Checks every value; the first problem is reported with its key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.validate_source()?;
        self.validate_estimator()?;
        self.validate_outputs()?;
        self.online_settings()
            .check()
            .map_err(|e| invalid("estimator", e.to_string()))
    }

    fn validate_source(&self) -> Result<(), ConfigError> {
        let s = &self.source;
        match s.kind {
            SourceKind::File if s.path.as_os_str().is_empty() => {
                return Err(invalid(
                    "source.path",
                    "is required when source.kind = \"file\"",
                ));
            }
            SourceKind::Kafka if self.kafka.topics.is_empty() => {
                return Err(invalid("kafka.topics", "must name at least one topic"));
            }
            SourceKind::Kafka if self.kafka.brokers.trim().is_empty() => {
                return Err(invalid("kafka.brokers", "must not be empty"));
            }
            SourceKind::Kafka if self.kafka.group_id.trim().is_empty() => {
                return Err(invalid("kafka.group_id", "must not be empty"));
            }
            _ => {}
        }
        let binary = matches!(s.format, Format::F64le | Format::F32le);
        if binary && s.dim == 0 && s.kind != SourceKind::Generator {
            return Err(invalid(
                "source.dim",
                "is required for the f64le and f32le formats",
            ));
        }
        if binary && !s.fields.is_empty() {
            return Err(invalid("source.fields", "only applies to csv and json"));
        }
        if s.max_record_bytes == 0 {
            return Err(invalid("source.max_record_bytes", "must be at least 1"));
        }
        let g = &s.generator;
        if s.kind == SourceKind::Generator {
            if self.generator_dim() == 0 || g.components == 0 {
                return Err(invalid(
                    "source.generator",
                    "dim and components must be at least 1",
                ));
            }
            if !(g.rate >= 0.0 && g.rate.is_finite()) {
                return Err(invalid(
                    "source.generator.rate",
                    "must be a finite number >= 0",
                ));
            }
            if !(0.0..1.0).contains(&g.outlier_fraction) {
                return Err(invalid(
                    "source.generator.outlier_fraction",
                    "must be in [0, 1)",
                ));
            }
        }
        Ok(())
    }

    fn validate_estimator(&self) -> Result<(), ConfigError> {
        let e = &self.estimator;
        if self.model.components == 0 {
            return Err(invalid("model.components", "must be at least 1"));
        }
        if !(self.model.reg_covar >= 0.0 && self.model.reg_covar.is_finite()) {
            return Err(invalid("model.reg_covar", "must be a finite number >= 0"));
        }
        if e.batch_size == 0 {
            return Err(invalid("estimator.batch_size", "must be at least 1"));
        }
        if e.half_life.is_nan() || e.half_life <= 0.0 {
            return Err(invalid(
                "estimator.half_life",
                "must be > 0 (inf never forgets)",
            ));
        }
        if !(e.stepwise_alpha > 0.5 && e.stepwise_alpha <= 1.0) {
            return Err(invalid("estimator.stepwise_alpha", "must be in (0.5, 1]"));
        }
        if e.warmup_points < self.model.components {
            return Err(invalid(
                "estimator.warmup_points",
                "must be at least model.components",
            ));
        }
        if !(0.0..0.5).contains(&e.min_weight) {
            return Err(invalid("estimator.min_weight", "must be in [0, 0.5)"));
        }
        Ok(())
    }

    fn validate_outputs(&self) -> Result<(), ConfigError> {
        let snap = &self.snapshot;
        if snap.dir.as_os_str().is_empty() {
            return Err(invalid("snapshot.dir", "must not be empty"));
        }
        if snap.keep == 0 {
            return Err(invalid("snapshot.keep", "must be at least 1"));
        }
        if !(snap.every_seconds >= 0.0 && snap.every_seconds.is_finite()) {
            return Err(invalid(
                "snapshot.every_seconds",
                "must be a finite number >= 0",
            ));
        }
        let q = self.scores.anomaly_quantile;
        if !(q > 0.0 && q < 0.5) {
            return Err(invalid("scores.anomaly_quantile", "must be in (0, 0.5)"));
        }
        if self.scores.anomaly_window < 100 {
            return Err(invalid(
                "scores.anomaly_window",
                "must be at least 100 points",
            ));
        }
        sink_needs(
            "scores",
            self.scores.sink,
            &self.scores.path,
            &self.scores.topic,
        )?;
        if self.dead_letter.sink == SinkKind::Stdout {
            return Err(invalid("dead_letter.sink", "must be none, file or kafka"));
        }
        sink_needs(
            "dead_letter",
            self.dead_letter.sink,
            &self.dead_letter.path,
            &self.dead_letter.topic,
        )?;
        if !(self.log.status_every_seconds >= 0.0 && self.log.status_every_seconds.is_finite()) {
            return Err(invalid(
                "log.status_every_seconds",
                "must be a finite number >= 0",
            ));
        }
        Ok(())
    }

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
            // With anomaly trimming, the warm-up also leaves out its least likely
            // points: at least 1 %, or the anomaly quantile when that is larger.
            warmup_trim: if e.trim_anomalies {
                self.scores.anomaly_quantile.max(0.01)
            } else {
                0.0
            },
        }
    }
}

fn sink_needs(
    section: &'static str,
    sink: SinkKind,
    path: &Path,
    topic: &str,
) -> Result<(), ConfigError> {
    let key = |k: &str| -> &'static str {
        match (section, k) {
            ("scores", "path") => "scores.path",
            ("scores", _) => "scores.topic",
            (_, "path") => "dead_letter.path",
            _ => "dead_letter.topic",
        }
    };
    match sink {
        SinkKind::File if path.as_os_str().is_empty() => Err(invalid(
            key("path"),
            format!("is required when {section}.sink = \"file\""),
        )),
        SinkKind::Kafka if topic.trim().is_empty() => Err(invalid(
            key("topic"),
            format!("is required when {section}.sink = \"kafka\""),
        )),
        _ => Ok(()),
    }
}

/// Parses a command-line or environment value as a TOML value (numbers, `inf`,
/// booleans, arrays, inline tables, quoted strings), else takes it as a string.
fn parse_value(raw: &str) -> Value {
    toml::from_str::<BTreeMap<String, toml::Value>>(&format!("v = {raw}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .and_then(|v| Value::serialize(v).ok())
        .unwrap_or_else(|| Value::from(raw.to_string()))
}

/// One configuration layer, named for error messages ("from the environment").
struct Layer {
    name: String,
    dict: Dict,
}

impl figment::Provider for Layer {
    fn metadata(&self) -> figment::Metadata {
        figment::Metadata::named(self.name.clone())
    }

    fn data(&self) -> Result<figment::value::Map<figment::Profile, Dict>, figment::Error> {
        Ok(figment::Profile::Default.collect(self.dict.clone()))
    }
}

/// Nests `value` under `path` (section, key, ...).
fn nested(path: &[String], value: Value) -> Dict {
    let mut dict = Dict::new();
    match path {
        [] => {}
        [last] => {
            dict.insert(last.clone(), value);
        }
        [first, rest @ ..] => {
            dict.insert(first.clone(), Value::from(nested(rest, value)));
        }
    }
    dict
}

/// `section.key=value`; under `kafka.properties` the rest of the name is one
/// librdkafka property, dots included (`kafka.properties.security.protocol=SSL`).
fn set_layer(set: &str) -> Result<Dict, ConfigError> {
    let (name, raw) = set
        .split_once('=')
        .ok_or_else(|| ConfigError::BadSet(set.to_string()))?;
    let path = key_path(name.trim(), '.');
    if path.len() < 2 || path.iter().any(|p| p.is_empty()) {
        return Err(ConfigError::BadSet(set.to_string()));
    }
    let value = if path.len() == 3 && path[0] == "kafka" && path[1] == "properties" {
        Value::from(raw.to_string())
    } else {
        parse_value(raw.trim())
    };
    Ok(nested(&path, value))
}

fn key_path(name: &str, sep: char) -> Vec<String> {
    let parts: Vec<&str> = name.split(sep).collect();
    match parts.as_slice() {
        ["kafka", "properties", rest @ ..] if !rest.is_empty() => {
            vec!["kafka".into(), "properties".into(), rest.join(".")]
        }
        _ => parts.iter().map(|p| p.to_string()).collect(),
    }
}

/// `GMM_STREAM__SECTION__KEY=value` (names lower-cased; deeper tables with more
/// `__`). Kafka properties: `GMM_STREAM__KAFKA__PROPERTIES__SASL_USERNAME` sets
/// `sasl.username` (underscores become dots).
fn env_layer(env: &[(String, String)]) -> Result<Dict, ConfigError> {
    let mut layer = Dict::new();
    for (name, raw) in env {
        let Some(rest) = name.strip_prefix(ENV_PREFIX) else {
            continue;
        };
        let lower = rest.to_lowercase();
        let parts: Vec<&str> = lower.split("__").collect();
        let (path, value) = match parts.as_slice() {
            ["kafka", "properties", prop] => (
                vec!["kafka".into(), "properties".into(), prop.replace('_', ".")],
                Value::from(raw.clone()),
            ),
            _ => (
                parts.iter().map(|p| p.to_string()).collect::<Vec<_>>(),
                parse_value(raw.trim()),
            ),
        };
        if path.len() < 2 || path.iter().any(|p| p.is_empty()) {
            return Err(ConfigError::Load(format!(
                "environment variable {name} does not name a key (GMM_STREAM__SECTION__KEY)"
            )));
        }
        merge_dict(&mut layer, nested(&path, value));
    }
    Ok(layer)
}

fn merge_dict(into: &mut Dict, from: Dict) {
    for (k, v) in from {
        match (into.get_mut(&k), v) {
            (Some(Value::Dict(_, a)), Value::Dict(_, b)) => merge_dict(a, b),
            (_, v) => {
                into.insert(k, v);
            }
        }
    }
}

/// figment's error, as one sentence that names the key and where it came from.
fn describe(e: figment::Error) -> String {
    e.into_iter()
        .map(|err| {
            let key = if err.path.is_empty() {
                String::new()
            } else {
                format!("{}: ", err.path.join("."))
            };
            let origin = err
                .metadata
                .as_ref()
                .map(|m| match &m.source {
                    Some(source) => format!(" (from {} {source})", m.name),
                    None => format!(" (from {})", m.name),
                })
                .unwrap_or_default();
            // A TOML syntax error spans lines; the log wants one.
            let kind = err.kind.to_string();
            let kind = kind.split_whitespace().collect::<Vec<_>>().join(" ");
            format!("{key}{kind}{origin}")
        })
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn file(text: &str) -> tempfile::NamedTempFile {
        let mut f = tempfile::Builder::new()
            .suffix(".toml")
            .tempfile()
            .expect("temp file");
        f.write_all(text.as_bytes()).expect("write");
        f
    }

    fn load(
        text: Option<&str>,
        env: &[(&str, &str)],
        sets: &[&str],
    ) -> Result<Config, ConfigError> {
        let f = text.map(file);
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
        Config::load_from(f.as_ref().map(|f| f.path()), &env, &sets)
    }

    #[test]
    fn defaults_are_valid_and_run_the_generator() {
        let c = load(None, &[], &[]).expect("defaults");
        assert_eq!(c, Config::default());
        assert_eq!(c.source.kind, SourceKind::Generator);
    }

    #[test]
    fn layers_apply_in_order_file_env_set() {
        let text = "[model]\ncomponents = 5\n[estimator]\nbatch_size = 100\nhalf_life = 500\n";
        let c = load(
            Some(text),
            &[
                ("GMM_STREAM__MODEL__COMPONENTS", "6"),
                ("GMM_STREAM__ESTIMATOR__SCHEDULE", "stepwise"),
            ],
            &["model.components=7", "kafka.topics=[\"a\", \"b\"]"],
        )
        .expect("loads");
        assert_eq!(c.model.components, 7);
        assert_eq!(c.estimator.batch_size, 100);
        assert_eq!(c.estimator.half_life, 500.0);
        assert_eq!(c.estimator.schedule, ScheduleKind::Stepwise);
        assert_eq!(c.kafka.topics, vec!["a".to_string(), "b".to_string()]);
    }

    #[test]
    fn unknown_keys_are_errors_that_name_them() {
        let err = load(Some("[source]\nfromat = \"csv\"\n"), &[], &[]).expect_err("unknown");
        let msg = err.to_string();
        assert!(msg.contains("fromat"), "{msg}");
        let err = load(None, &[], &["estimator.batchsize=3"]).expect_err("unknown");
        assert!(err.to_string().contains("batchsize"), "{err}");
        let err = load(None, &[("GMM_STREAM__NOPE__X", "1")], &[]).expect_err("unknown");
        assert!(err.to_string().contains("nope"), "{err}");
        assert!(matches!(
            load(None, &[], &["components=3"]),
            Err(ConfigError::BadSet(_))
        ));
    }

    #[test]
    fn file_errors_name_the_file_on_one_line() {
        let f = file("[source]\nformat = \n");
        let err = Config::load_from(Some(f.path()), &[], &[]).expect_err("syntax");
        let msg = err.to_string();
        assert!(msg.contains(&f.path().display().to_string()), "{msg}");
        assert!(!msg.contains('\n'), "{msg}");
        let f = file("[source]\nfromat = \"csv\"\n");
        let err = Config::load_from(Some(f.path()), &[], &[]).expect_err("unknown");
        assert!(
            err.to_string().contains(&f.path().display().to_string()),
            "{err}"
        );
    }

    #[test]
    fn invalid_values_name_their_key() {
        let cases = [
            ("estimator.batch_size=0", "estimator.batch_size"),
            ("estimator.stepwise_alpha=0.4", "estimator.stepwise_alpha"),
            ("scores.anomaly_quantile=0.7", "scores.anomaly_quantile"),
            ("scores.sink=file", "scores.path"),
            ("snapshot.keep=0", "snapshot.keep"),
            ("source.kind=file", "source.path"),
            ("model.covariance_type=round", "covariance_type"),
            ("estimator.half_life=-3", "estimator.half_life"),
        ];
        for (set, key) in cases {
            let err = load(None, &[], &[set]).expect_err(set);
            assert!(err.to_string().contains(key), "{set}: {err}");
        }
        let err = load(
            None,
            &[],
            &[
                "source.kind=file",
                "source.path=x.bin",
                "source.format=f64le",
            ],
        )
        .expect_err("dim");
        assert!(err.to_string().contains("source.dim"), "{err}");
    }

    #[test]
    fn kafka_properties_keep_their_dotted_names() {
        let c = load(
            Some("[kafka.properties]\n\"socket.timeout.ms\" = \"5000\"\n"),
            &[("GMM_STREAM__KAFKA__PROPERTIES__SASL_USERNAME", "me")],
            &["kafka.properties.security.protocol=SASL_SSL"],
        )
        .expect("loads");
        let p = &c.kafka.properties;
        assert_eq!(p.get("socket.timeout.ms").map(String::as_str), Some("5000"));
        assert_eq!(p.get("sasl.username").map(String::as_str), Some("me"));
        assert_eq!(
            p.get("security.protocol").map(String::as_str),
            Some("SASL_SSL")
        );
    }

    #[test]
    fn half_life_inf_never_forgets_and_stepwise_t0_defaults_to_warmup_batches() {
        let c = load(None, &[], &["estimator.half_life=inf"]).expect("inf");
        assert!(matches!(
            c.online_settings().schedule,
            Schedule::Decay {
                half_life: None,
                ..
            }
        ));
        let c = load(
            None,
            &[],
            &["estimator.schedule=stepwise", "estimator.batch_size=500"],
        )
        .expect("stepwise");
        assert_eq!(
            c.online_settings().schedule,
            Schedule::Stepwise {
                alpha: 0.7,
                t0: 4.0
            }
        );
    }

    #[test]
    fn a_missing_file_is_reported() {
        let err = Config::load_from(Some(Path::new("/nonexistent/gmm.toml")), &[], &[])
            .expect_err("missing");
        assert!(err.to_string().contains("/nonexistent/gmm.toml"), "{err}");
    }
}

#[cfg(test)]
mod shipped_files {
    use super::*;

    fn shipped(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("config")
            .join(name)
    }

    #[test]
    fn default_toml_documents_exactly_the_built_in_defaults() {
        let c = Config::load_from(Some(&shipped("default.toml")), &[], &[]).expect("loads");
        assert_eq!(c, Config::default());
        // And every key is in the file: the same key paths as the defaults.
        let text = std::fs::read_to_string(shipped("default.toml")).expect("read");
        let file: toml::Table = toml::from_str(&text).expect("parses");
        let defaults = toml::Table::try_from(Config::default()).expect("serializes");
        assert_eq!(key_paths(&file, ""), key_paths(&defaults, ""));
    }

    fn key_paths(table: &toml::Table, prefix: &str) -> Vec<String> {
        let mut out = Vec::new();
        for (k, v) in table {
            let path = format!("{prefix}{k}");
            match v {
                toml::Value::Table(t) if k != "properties" => {
                    out.extend(key_paths(t, &format!("{path}.")))
                }
                _ => out.push(path),
            }
        }
        out.sort();
        out
    }

    #[test]
    fn demo_toml_is_valid() {
        let c = Config::load_from(Some(&shipped("demo.toml")), &[], &[]).expect("loads");
        assert_eq!(c.source.kind, SourceKind::Generator);
    }
}
