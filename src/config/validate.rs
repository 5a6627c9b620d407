//! Checking every value, with errors that name the key.

use std::path::Path;

use super::{invalid, Config, ConfigError, SinkKind, SourceKind};
use crate::source::generator::{self, GeneratorError};
use gmm_io::Format;
use gmm_model::MAX_ABS_COORDINATE;

/// The longest timeout accepted, in milliseconds: a day.
const MAX_TIMEOUT_MS: u64 = 86_400_000;

/// The longest interval accepted between snapshots or status lines: a year.
const MAX_INTERVAL_SECONDS: f64 = 31_536_000.0;

/// The most points in a mini-batch (each batch is held whole, with its scores).
pub const MAX_BATCH_SIZE: usize = 1 << 20;

/// The most points buffered for the warm-up's batch fit.
pub const MAX_WARMUP_POINTS: usize = 10_000_000;

/// The longest window of the anomaly threshold, in points.
pub const MAX_ANOMALY_WINDOW: usize = 100_000_000;

impl Config {
    /// Checks every value; the first problem is reported with its key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.validate_source()?;
        self.validate_estimator()?;
        self.validate_outputs()?;
        self.validate_http()?;
        self.online_settings()
            .check()
            .map_err(|e| invalid("estimator", e.to_string()))
    }

    /// The state topic and static membership (docs/scale-out.md).
    fn validate_group(&self) -> Result<(), ConfigError> {
        let k = &self.kafka;
        let bad_name =
            |s: &str| s.trim() != s || s.chars().any(|c| c.is_control() || c.is_whitespace());
        if bad_name(&k.group_instance_id) {
            return Err(invalid(
                "kafka.group_instance_id",
                "must not contain spaces or control characters",
            ));
        }
        if k.properties.contains_key("group.instance.id") && !k.group_instance_id.is_empty() {
            return Err(invalid(
                "kafka.group_instance_id",
                "is also set as kafka.properties.\"group.instance.id\": set it once",
            ));
        }
        if k.state_topic.is_empty() {
            return Ok(());
        }
        if bad_name(&k.state_topic) || k.state_topic.len() > 249 {
            return Err(invalid(
                "kafka.state_topic",
                "must be a Kafka topic name (no spaces, at most 249 characters)",
            ));
        }
        if self.source.kind != SourceKind::Kafka {
            return Err(invalid(
                "kafka.state_topic",
                "needs source.kind = \"kafka\" (the group shares the model of its input partitions)",
            ));
        }
        if k.topics.iter().any(|t| t == &k.state_topic) {
            return Err(invalid(
                "kafka.state_topic",
                "must not be one of kafka.topics",
            ));
        }
        if self.estimator.schedule == super::ScheduleKind::Stepwise {
            return Err(invalid(
                "kafka.state_topic",
                "needs estimator.schedule = \"decay\": stepwise EM follows one sequence of batches, which the members do not share",
            ));
        }
        if k.state_wait_ms > 600_000 {
            return Err(invalid("kafka.state_wait_ms", "must be at most 600000"));
        }
        Ok(())
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
        self.validate_group()?;
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
        if !(s.max_abs_value > 0.0 && s.max_abs_value <= MAX_ABS_COORDINATE) {
            return Err(invalid(
                "source.max_abs_value",
                format!("must be a number in (0, {MAX_ABS_COORDINATE:e}]"),
            ));
        }
        if s.kind == SourceKind::Generator {
            generator::validate(&s.generator, self.generator_dim()).map_err(|e| match e {
                GeneratorError::Invalid { key, reason } => invalid(key, reason),
                other => invalid("source.generator", other.to_string()),
            })?;
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
        if !(1..=MAX_BATCH_SIZE).contains(&e.batch_size) {
            return Err(invalid(
                "estimator.batch_size",
                format!("must be from 1 to {MAX_BATCH_SIZE}"),
            ));
        }
        if !(1..=MAX_TIMEOUT_MS).contains(&e.batch_timeout_ms) {
            return Err(invalid(
                "estimator.batch_timeout_ms",
                format!("must be from 1 to {MAX_TIMEOUT_MS} (a day)"),
            ));
        }
        if e.warmup_points > MAX_WARMUP_POINTS {
            return Err(invalid(
                "estimator.warmup_points",
                format!("must be at most {MAX_WARMUP_POINTS}"),
            ));
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
        interval("snapshot.every_seconds", snap.every_seconds)?;
        let q = self.scores.anomaly_quantile;
        if !(q > 0.0 && q < 0.5) {
            return Err(invalid("scores.anomaly_quantile", "must be in (0, 0.5)"));
        }
        if !(100..=MAX_ANOMALY_WINDOW).contains(&self.scores.anomaly_window) {
            return Err(invalid(
                "scores.anomaly_window",
                format!("must be from 100 to {MAX_ANOMALY_WINDOW} points"),
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
        interval("log.status_every_seconds", self.log.status_every_seconds)
    }
}

/// A period in seconds: 0 (off) up to a year.
fn interval(key: &'static str, seconds: f64) -> Result<(), ConfigError> {
    if (0.0..=MAX_INTERVAL_SECONDS).contains(&seconds) {
        Ok(())
    } else {
        Err(invalid(
            key,
            format!("must be a number of seconds from 0 (off) to {MAX_INTERVAL_SECONDS} (a year)"),
        ))
    }
}

impl Config {
    fn validate_http(&self) -> Result<(), ConfigError> {
        let h = &self.http;
        if h.listen.is_empty() {
            return Ok(());
        }
        let loopback = is_loopback(&h.listen).map_err(|reason| invalid("http.listen", reason))?;
        if !loopback && h.token.is_empty() && !h.allow_unauthenticated {
            return Err(invalid(
                "http.listen",
                format!(
                    "{} can be reached from other hosts, but no token guards /model and \
                     /score: set http.token (or GMM_STREAM_HTTP_TOKEN), listen on \
                     127.0.0.1, or set http.allow_unauthenticated = true",
                    h.listen
                ),
            ));
        }
        if h.max_body_bytes == 0 {
            return Err(invalid("http.max_body_bytes", "must be at least 1"));
        }
        for (key, value) in [
            ("http.max_connections", h.max_connections),
            ("http.max_score_points", h.max_score_points),
            ("http.max_concurrent_scores", h.max_concurrent_scores),
        ] {
            if value == 0 {
                return Err(invalid(key, "must be at least 1"));
            }
        }
        for (key, ms) in [
            ("http.header_timeout_ms", h.header_timeout_ms),
            ("http.request_timeout_ms", h.request_timeout_ms),
            ("http.shutdown_timeout_ms", h.shutdown_timeout_ms),
        ] {
            if !(1..=MAX_TIMEOUT_MS).contains(&ms) {
                return Err(invalid(
                    key,
                    format!("must be from 1 to {MAX_TIMEOUT_MS} (a day)"),
                ));
            }
        }
        Ok(())
    }
}

/// Whether a `host:port` listen address is a loopback one (`localhost` counts;
/// any other host name does not); an error says why it is not `host:port`.
fn is_loopback(listen: &str) -> Result<bool, String> {
    if let Ok(addr) = listen.parse::<std::net::SocketAddr>() {
        return Ok(addr.ip().is_loopback());
    }
    let example = "expected host:port, e.g. 127.0.0.1:9464 or [::1]:9464";
    let (host, port) = listen
        .rsplit_once(':')
        .ok_or_else(|| format!("\"{listen}\" is not an address: {example}"))?;
    if port.parse::<u16>().is_err() {
        return Err(format!(
            "the port of \"{listen}\" is not a number from 0 to 65535: {example}"
        ));
    }
    let name_like = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '.';
    if host.is_empty() || !host.chars().all(name_like) {
        return Err(format!(
            "\"{host}\" is neither an IP address nor a host name: {example}"
        ));
    }
    Ok(host.eq_ignore_ascii_case("localhost"))
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
