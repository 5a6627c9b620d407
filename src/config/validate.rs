//! Checking every value, with errors that name the key.

use std::path::Path;

use super::{invalid, Config, ConfigError, SinkKind, SourceKind};
use gmm_io::Format;

impl Config {
    /// Checks every value; the first problem is reported with its key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.validate_source()?;
        self.validate_estimator()?;
        self.validate_outputs()?;
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
