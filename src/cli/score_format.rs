//! The records of `score`, as NDJSON or CSV: the daemon's score records
//! ([`ScoreRecord`]), without the model version.

use std::io::{self, Write};

use gmm_model::Evaluation;
use gmm_stream::sink::{write_line, ScoreRecord};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ScoreFormat {
    /// One JSON object per line
    Ndjson,
    /// A header line, then comma-separated values
    Csv,
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
        for j in 0..eval.log_density.len() {
            let record = ScoreRecord::from_evaluation(eval, j, self.threshold);
            match self.format {
                ScoreFormat::Ndjson => write_line(out, &record)?,
                ScoreFormat::Csv => write_csv(out, &record)?,
            }
        }
        Ok(())
    }
}

/// `{:?}` prints an f64 in the shortest form that parses back to the same value.
fn write_csv(out: &mut impl Write, record: &ScoreRecord<'_>) -> io::Result<()> {
    write!(out, "{:?},{}", record.log_density, record.cluster)?;
    for r in record.responsibilities {
        write!(out, ",{r:?}")?;
    }
    if record.threshold.is_some() {
        write!(out, ",{}", record.anomaly)?;
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
