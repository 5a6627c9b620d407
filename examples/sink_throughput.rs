//! Rough per-point costs of the daemon's leaf stages, single-threaded:
//! score-record serialization, the anomaly threshold, and the generator.
//! `cargo run --release --example sink_throughput -- [points]`.

use std::error::Error;
use std::time::Instant;

use gmm_model::anomaly::AnomalyThreshold;
use gmm_model::{points_from_rows, EvalRequest, Scored};
use gmm_stream::sink::{KafkaPosition, LineWriter, ScoreRecord, Sink, SinkError};
use gmm_stream::source::{Generator, GeneratorConfig};

fn main() -> Result<(), Box<dyn Error>> {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    for (dim, components) in [(2, 3), (16, 8)] {
        let config = GeneratorConfig {
            components,
            outlier_fraction: 0.01,
            ..GeneratorConfig::default()
        };
        let mut generator = Generator::new(&config, dim)?;
        let mut flat = Vec::with_capacity(n * dim);
        let started = Instant::now();
        generator.next_points(n, &mut flat);
        report(&format!("generator d={dim} K={components}"), n, started);

        let truth = generator.truth_at(0)?;
        let evaluation = truth.evaluate(points_from_rows(&flat, dim)?, EvalRequest::ALL)?;
        let scored = Scored {
            model_version: 12,
            evaluation,
        };
        let log_density = scored.evaluation.log_density.clone();

        let started = Instant::now();
        let mut threshold = AnomalyThreshold::new(0.001, 100_000)?;
        for batch in log_density.chunks(1024) {
            threshold.observe_batch(batch);
        }
        report("anomaly threshold q=0.001 w=100k", n, started);

        let mut sink = Sink::lines(LineWriter::from_writer(std::io::sink(), "scores", "sink"));
        let started = Instant::now();
        write_scored(&mut sink, &scored, threshold.threshold(), None)?;
        sink.flush()?;
        report(
            &format!("score records K={components} (discarded)"),
            n,
            started,
        );

        let positions: Vec<KafkaPosition> = (0..n as i64)
            .map(|offset| KafkaPosition {
                topic: "points",
                partition: 3,
                offset,
            })
            .collect();
        let path = std::env::temp_dir().join("gmm-stream-scores-bench.ndjson");
        let mut sink = Sink::lines(LineWriter::append(&path, "scores")?);
        let started = Instant::now();
        write_scored(&mut sink, &scored, threshold.threshold(), Some(&positions))?;
        sink.flush()?;
        let bytes = std::fs::metadata(&path)?.len();
        report(
            &format!(
                "score records K={components} + kafka to a file ({} B/record)",
                bytes as usize / n
            ),
            n,
            started,
        );
        std::fs::remove_file(&path)?;
    }
    Ok(())
}

/// What the daemon's output stage does with a scored batch.
fn write_scored(
    sink: &mut Sink,
    scored: &Scored,
    threshold: Option<f64>,
    positions: Option<&[KafkaPosition]>,
) -> Result<(), SinkError> {
    for j in 0..scored.evaluation.log_density.len() {
        let mut record = ScoreRecord::from_evaluation(&scored.evaluation, j, threshold)
            .by_model(scored.model_version);
        record.kafka = positions.and_then(|p| p.get(j).copied());
        sink.write(&record)?;
    }
    Ok(())
}

fn report(what: &str, n: usize, started: Instant) {
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "{what:55} {:>7.2} M points/s ({:.0} ns/point)",
        n as f64 / seconds / 1e6,
        seconds * 1e9 / n as f64
    );
}
