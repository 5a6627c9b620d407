//! Per-point score records (CONTRACT "Scores (daemon)") and their NDJSON writer.
//!
//! One line per absorbed point:
//! `{"log_density", "cluster", "responsibilities", "anomaly", "threshold",
//! "model_version"}`, plus `"topic", "partition", "offset"` for Kafka input.
//! Floats are written in their shortest form that parses back to the same f64.
//! `threshold` is null (and `anomaly` false) until the running quantile has seen
//! enough points; a log-density of −∞ (a point too far for f64) is written as null.
//!
//! This runs for every point, so a record borrows its data and is serialized
//! straight into the writer's buffer: no allocation per point.

use std::io::{self, BufWriter, Write};
use std::path::Path;

use serde::ser::{SerializeStruct, Serializer};
use serde::Serialize;

use crate::config::{ScoresConfig, SinkKind};
use gmm_model::anomaly::is_anomaly;
use gmm_model::{Evaluation, Scored};

use super::SinkError;

/// Large enough that a write reaches the OS every few thousand records.
const BUFFER_BYTES: usize = 256 * 1024;

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
    /// The version of the model that scored the point.
    pub model_version: u64,
    pub kafka: Option<KafkaPosition<'a>>,
}

impl<'a> ScoreRecord<'a> {
    /// The record of point `j` of an evaluation made with log-densities and
    /// responsibilities; the anomaly flag follows from `threshold`.
    pub fn from_evaluation(
        evaluation: &'a Evaluation,
        j: usize,
        model_version: u64,
        threshold: Option<f64>,
    ) -> Self {
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
            model_version,
            kafka: None,
        }
    }

    /// Appends the record's JSON (no newline) to `out`, e.g. for a Kafka message.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        // Serializing plain numbers, strings and bools into a Vec cannot fail.
        let _ = serde_json::to_writer(out, self);
    }
}

impl Serialize for ScoreRecord<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let fields = if self.kafka.is_some() { 9 } else { 6 };
        let mut s = serializer.serialize_struct("ScoreRecord", fields)?;
        s.serialize_field("log_density", &self.log_density)?;
        s.serialize_field("cluster", &self.cluster)?;
        s.serialize_field("responsibilities", self.responsibilities)?;
        s.serialize_field("anomaly", &self.anomaly)?;
        s.serialize_field("threshold", &self.threshold)?;
        s.serialize_field("model_version", &self.model_version)?;
        if let Some(k) = &self.kafka {
            s.serialize_field("topic", k.topic)?;
            s.serialize_field("partition", &k.partition)?;
            s.serialize_field("offset", &k.offset)?;
        }
        s.end()
    }
}

/// Writes score records as NDJSON to stdout or a file (appending), buffered.
pub struct ScoresWriter {
    out: BufWriter<Box<dyn Write + Send>>,
    /// "stdout" or the file's path, for error messages.
    target: String,
    written: u64,
}

impl ScoresWriter {
    /// The writer the `scores` section asks for: Some for `stdout` and `file`, None
    /// for `none` and for `kafka` (which the Kafka producer serves with
    /// [`ScoreRecord::write_json`]).
    pub fn open(config: &ScoresConfig) -> Result<Option<Self>, SinkError> {
        match config.sink {
            SinkKind::Stdout => Ok(Some(Self::stdout())),
            SinkKind::File => Self::append(&config.path).map(Some),
            SinkKind::None | SinkKind::Kafka => Ok(None),
        }
    }

    pub fn stdout() -> Self {
        Self::from_writer(io::stdout(), "stdout")
    }

    /// Appends to `path`, creating it (not its directory) when missing; a torn
    /// last line left by a killed run is cut first.
    pub fn append(path: &Path) -> Result<Self, SinkError> {
        let file = super::open_append_whole_lines(path, "scores file")?;
        Ok(Self::from_writer(file, path.display().to_string()))
    }

    /// Writes to any `Write`; `target` names it in error messages.
    pub fn from_writer(out: impl Write + Send + 'static, target: impl Into<String>) -> Self {
        Self {
            out: BufWriter::with_capacity(BUFFER_BYTES, Box::new(out)),
            target: target.into(),
            written: 0,
        }
    }

    pub fn write(&mut self, record: &ScoreRecord<'_>) -> Result<(), SinkError> {
        let written = serde_json::to_writer(&mut self.out, record)
            .map_err(io::Error::from)
            .and_then(|()| self.out.write_all(b"\n"));
        written.map_err(|e| self.error(e))?;
        self.written += 1;
        Ok(())
    }

    /// Writes the records of a scored batch. `kafka`, when given, holds each
    /// point's position (as many as points).
    pub fn write_scored(
        &mut self,
        scored: &Scored,
        threshold: Option<f64>,
        kafka: Option<&[KafkaPosition<'_>]>,
    ) -> Result<(), SinkError> {
        let evaluation = &scored.evaluation;
        for j in 0..evaluation.log_density.len() {
            let mut record =
                ScoreRecord::from_evaluation(evaluation, j, scored.model_version, threshold);
            record.kafka = kafka.and_then(|positions| positions.get(j).copied());
            self.write(&record)?;
        }
        Ok(())
    }

    /// Hands everything written so far to the OS (not an fsync). The pipeline
    /// calls this before each snapshot, so that scores are at least once.
    pub fn flush(&mut self) -> Result<(), SinkError> {
        self.out.flush().map_err(|e| self.error(e))
    }

    /// Records written since the writer was made.
    pub fn records_written(&self) -> u64 {
        self.written
    }

    fn error(&self, source: io::Error) -> SinkError {
        SinkError::Io {
            action: format!("cannot write scores to {}", self.target),
            source,
        }
    }
}

#[cfg(test)]
mod tests;
