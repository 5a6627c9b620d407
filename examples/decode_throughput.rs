//! Rough decode throughput of the input formats, on in-memory data:
//! `cargo run --release --example decode_throughput -- [points] [dim]`.

use std::error::Error;
use std::io::BufReader;
use std::num::NonZeroUsize;
use std::time::Instant;

use gmm_io::{read_all, DecodeConfig, Decoder, Format, RecordReader};

fn main() -> Result<(), Box<dyn Error>> {
    let mut args = std::env::args().skip(1);
    let n: usize = args
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let dim: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(16);
    let values: Vec<f64> = (0..n * dim).map(|i| (i as f64).sin() * 1e3).collect();

    let binary: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    let mut config = DecodeConfig::new(Format::F64le);
    config.dim = Some(dim);
    for capacity in [8 * 1024, 1 << 20] {
        let started = Instant::now();
        let mut decoder = Decoder::new(config.clone())?;
        let mut records = RecordReader::new(
            BufReader::with_capacity(capacity, &binary[..]),
            decoder.framing(NonZeroUsize::MIN),
        );
        let (mut out, mut rejects) = (Vec::with_capacity(1 << 16), Vec::new());
        let mut total = 0;
        while let Some(record) = records.next_record()? {
            if let Ok(bytes) = record.payload {
                total += decoder.decode(bytes, &mut out, &mut rejects);
            }
            if out.len() >= 1 << 16 {
                out.clear();
            }
        }
        report(
            &format!("f64le, buffer {capacity}"),
            total,
            binary.len(),
            started,
        );
    }

    let csv: String = values
        .chunks(dim)
        .map(|p| {
            p.iter()
                .map(|v| v.to_string())
                .collect::<Vec<_>>()
                .join(",")
                + "\n"
        })
        .collect();
    let started = Instant::now();
    let data = read_all(csv.as_bytes(), DecodeConfig::new(Format::Csv), false, "csv")?;
    report("csv read_all", data.len(), csv.len(), started);

    let json: String = values
        .chunks(dim)
        .map(|p| serde_json::to_string(p).map(|line| line + "\n"))
        .collect::<Result<_, _>>()?;
    let started = Instant::now();
    let data = read_all(
        json.as_bytes(),
        DecodeConfig::new(Format::Json),
        false,
        "json",
    )?;
    report("json read_all", data.len(), json.len(), started);
    Ok(())
}

fn report(what: &str, points: usize, bytes: usize, started: Instant) {
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "{what}: {points} points in {seconds:.3} s, {:.1} M points/s, {:.0} MB/s",
        points as f64 / seconds / 1e6,
        bytes as f64 / seconds / 1e6
    );
}
