//! The records of `score`, as NDJSON or CSV.

use std::io::{self, Write};

use gmm_model::Evaluation;
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ScoreFormat {
    /// One JSON object per line
    Ndjson,
    /// A header line, then comma-separated values
    Csv,
}

/// One NDJSON record (CONTRACT "score").
#[derive(Serialize)]
struct ScoreRecord<'a> {
    log_density: f64,
    cluster: usize,
    responsibilities: &'a [f64],
    #[serde(skip_serializing_if = "Option::is_none")]
    anomaly: Option<bool>,
}

/// Writes the records of evaluated points.
pub struct RecordWriter {
    format: ScoreFormat,
    n_components: usize,
    threshold: Option<f64>,
}

impl RecordWriter {
    pub fn new(format: ScoreFormat, n_components: usize, threshold: Option<f64>) -> Self {
        Self {
            format,
            n_components,
            threshold,
        }
    }

    /// The CSV header; nothing for NDJSON.
    pub fn header(&self, out: &mut impl Write) -> io::Result<()> {
        if self.format == ScoreFormat::Ndjson {
            return Ok(());
        }
        out.write_all(b"log_density,cluster")?;
        for k in 0..self.n_components {
            write!(out, ",resp_{k}")?;
        }
        if self.threshold.is_some() {
            out.write_all(b",anomaly")?;
        }
        out.write_all(b"\n")
    }

    /// One record per point of `eval` (which holds log-densities and
    /// responsibilities), in order.
    pub fn write(&mut self, out: &mut impl Write, eval: &Evaluation) -> io::Result<()> {
        let k = self.n_components;
        // K×n column-major: the responsibilities of point j are contiguous.
        let resp = eval.responsibilities.as_slice();
        for (j, &log_density) in eval.log_density.iter().enumerate() {
            let responsibilities = &resp[j * k..(j + 1) * k];
            let record = ScoreRecord {
                log_density,
                cluster: gmm_model::most_responsible(responsibilities),
                responsibilities,
                anomaly: self.threshold.map(|t| log_density < t),
            };
            match self.format {
                ScoreFormat::Ndjson => write_json(out, &record)?,
                ScoreFormat::Csv => write_csv(out, &record)?,
            }
        }
        Ok(())
    }
}

fn write_json(out: &mut impl Write, record: &ScoreRecord<'_>) -> io::Result<()> {
    serde_json::to_writer(&mut *out, record).map_err(io::Error::from)?;
    out.write_all(b"\n")
}

/// `{:?}` prints an f64 in the shortest form that parses back to the same value.
fn write_csv(out: &mut impl Write, record: &ScoreRecord<'_>) -> io::Result<()> {
    write!(out, "{:?},{}", record.log_density, record.cluster)?;
    for r in record.responsibilities {
        write!(out, ",{r:?}")?;
    }
    if let Some(anomaly) = record.anomaly {
        write!(out, ",{anomaly}")?;
    }
    out.write_all(b"\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use nalgebra::DMatrix;

    fn eval() -> Evaluation {
        Evaluation {
            log_likelihood: 0.0,
            n_points: 2,
            log_density: vec![-1.5, 0.1 + 0.2],
            responsibilities: DMatrix::from_column_slice(2, 2, &[0.25, 0.75, 1.0, 1e-300]),
            stats: None,
            resp_log_resp: 0.0,
        }
    }

    fn render(format: ScoreFormat, threshold: Option<f64>) -> String {
        let mut w = RecordWriter::new(format, 2, threshold);
        let mut out = Vec::new();
        w.header(&mut out).expect("header");
        w.write(&mut out, &eval()).expect("write");
        String::from_utf8(out).expect("utf8")
    }

    #[test]
    fn ndjson_records_round_trip_exactly() {
        let text = render(ScoreFormat::Ndjson, None);
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).expect("json"))
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["cluster"], 1);
        assert_eq!(lines[1]["log_density"].as_f64(), Some(0.1 + 0.2));
        assert_eq!(lines[1]["responsibilities"][1].as_f64(), Some(1e-300));
        assert!(lines[0].get("anomaly").is_none());
    }

    #[test]
    fn csv_has_a_header_and_exact_numbers() {
        let text = render(ScoreFormat::Csv, Some(-1.0));
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "log_density,cluster,resp_0,resp_1,anomaly");
        assert_eq!(lines[1], "-1.5,1,0.25,0.75,true");
        let last: Vec<&str> = lines[2].split(',').collect();
        assert_eq!(last[0].parse::<f64>().ok(), Some(0.1 + 0.2));
        assert_eq!(last[3].parse::<f64>().ok(), Some(1e-300));
        assert_eq!((last[1], last[4]), ("0", "false"));
    }
}
