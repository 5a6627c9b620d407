//! Per-point score records (`docs/reference.md`, "Scores"): the one record type of
//! the daemon's scores sink, of `POST /score`, and of `score`.
//!
//! The daemon's records (those with a `model_version`):
//! `{"log_density", "cluster", "responsibilities", "anomaly", "threshold",
//! "model_version"}`, plus `"topic", "partition", "offset"` for Kafka input.
//! `threshold` is null (and `anomaly` false) until the running quantile has seen
//! enough points. `score`'s records: `{"log_density", "cluster",
//! "responsibilities"}`, plus `"anomaly"` when the model carries a threshold.
//! Floats are written in their shortest form that parses back to the same f64; a
//! log-density of −∞ (a point too far for f64) is written as null.
//!
//! This runs for every point, so a record borrows its data and is serialized
//! straight into the writer's buffer: no allocation per point.

use std::borrow::Cow;
use std::io::{self, Write};

use serde::ser::{SerializeStruct, Serializer};
use serde::Serialize;

use gmm_model::anomaly::is_anomaly;
use gmm_model::Evaluation;

use super::{KafkaMessage, SinkRecord};

/// The Kafka position of a scored point.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KafkaPosition<'a> {
    pub topic: &'a str,
    pub partition: i32,
    pub offset: i64,
}

/// One point's score record.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ScoreRecord<'a> {
    pub log_density: f64,
    /// The most responsible component (the first, on a tie).
    pub cluster: usize,
    pub responsibilities: &'a [f64],
    pub anomaly: bool,
    pub threshold: Option<f64>,
    /// The version of the model that scored the point: set by the daemon, whose
    /// records then always carry `anomaly` and `threshold`.
    pub model_version: Option<u64>,
    pub kafka: Option<KafkaPosition<'a>>,
}

impl<'a> ScoreRecord<'a> {
    /// The record of point `j` of an evaluation made with log-densities and
    /// responsibilities; the anomaly flag follows from `threshold`.
    pub fn from_evaluation(evaluation: &'a Evaluation, j: usize, threshold: Option<f64>) -> Self {
        let k = evaluation.responsibilities.nrows();
        // Column-major K×n: point j's responsibilities are contiguous.
        let responsibilities = evaluation
            .responsibilities
            .as_slice()
            .get(j * k..(j + 1) * k)
            .unwrap_or(&[]);
        let log_density = evaluation.log_density.get(j).copied().unwrap_or(f64::NAN);
        Self {
            log_density,
            cluster: gmm_model::most_responsible(responsibilities),
            responsibilities,
            anomaly: is_anomaly(log_density, threshold),
            threshold,
            model_version: None,
            kafka: None,
        }
    }

    /// The same record, as scored by version `model_version` of the daemon's model.
    pub fn by_model(mut self, model_version: u64) -> Self {
        self.model_version = Some(model_version);
        self
    }
}

impl Serialize for ScoreRecord<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let flags = match (self.model_version, self.threshold) {
            (Some(_), _) => 3,
            (None, Some(_)) => 1,
            (None, None) => 0,
        };
        let position = if self.kafka.is_some() { 3 } else { 0 };
        let mut s = serializer.serialize_struct("ScoreRecord", 3 + flags + position)?;
        s.serialize_field("log_density", &self.log_density)?;
        s.serialize_field("cluster", &self.cluster)?;
        s.serialize_field("responsibilities", self.responsibilities)?;
        if flags > 0 {
            s.serialize_field("anomaly", &self.anomaly)?;
        }
        if let Some(version) = self.model_version {
            s.serialize_field("threshold", &self.threshold)?;
            s.serialize_field("model_version", &version)?;
        }
        if let Some(k) = &self.kafka {
            s.serialize_field("topic", k.topic)?;
            s.serialize_field("partition", &k.partition)?;
            s.serialize_field("offset", &k.offset)?;
        }
        s.end()
    }
}

impl SinkRecord for ScoreRecord<'_> {
    fn write_json<W: Write>(&self, out: W) -> io::Result<()> {
        serde_json::to_writer(out, self).map_err(io::Error::from)
    }

    /// Keyed by the source partition, so that a partition's scores stay in order.
    fn kafka_message<'m>(&'m self, scratch: &'m mut Vec<u8>) -> KafkaMessage<'m> {
        scratch.clear();
        // Numbers, strings and bools into a Vec: serialization cannot fail.
        let _ = self.write_json(&mut *scratch);
        KafkaMessage {
            key: self
                .kafka
                .map(|k| Cow::Owned(format!("{}:{}", k.topic, k.partition))),
            payload: scratch,
            headers: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests;
