//! Property tests: random finite points, encoded in each format, decode back
//! bit-for-bit, through the framing and the decoder together.

use std::io::BufReader;
use std::num::NonZeroUsize;

use proptest::prelude::*;
use serde_json::{json, Map, Value};

use super::*;

/// Any finite f64, both signs, subnormals and zeros included.
fn finite() -> impl Strategy<Value = f64> {
    use prop::num::f64::{NEGATIVE, NORMAL, POSITIVE, SUBNORMAL, ZERO};
    POSITIVE | NEGATIVE | NORMAL | SUBNORMAL | ZERO
}

/// Between 1 and 20 points of one dimension between 1 and 6.
fn points() -> impl Strategy<Value = Vec<Vec<f64>>> {
    (1usize..7)
        .prop_flat_map(|dim| prop::collection::vec(prop::collection::vec(finite(), dim), 1..20))
}

fn bits(values: &[f64]) -> Vec<u64> {
    values.iter().map(|v| v.to_bits()).collect()
}

fn flat(points: &[Vec<f64>]) -> Vec<f64> {
    points.concat()
}

fn config(format: Format, dim: Option<usize>, fields: Option<Vec<String>>) -> DecodeConfig {
    DecodeConfig {
        format,
        dim,
        fields,
        max_abs: None,
    }
}

fn column_names(dim: usize) -> Vec<String> {
    (0..dim).map(|i| format!("c{i}")).collect()
}

/// Each of Rust's shortest round-trip notations, which the csv parser must all read.
fn format_number(value: f64, style: u8) -> String {
    match style % 4 {
        0 => format!("{value}"),
        1 => format!("{value:?}"),
        2 => format!("{value:e}"),
        _ => format!("{value:E}"),
    }
}

#[derive(Debug, Clone)]
struct CsvStyle {
    header: bool,
    crlf: bool,
    padded: bool,
    blank_lines: bool,
    notation: u8,
}

fn csv_style() -> impl Strategy<Value = CsvStyle> {
    (
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        any::<u8>(),
    )
        .prop_map(|(header, crlf, padded, blank_lines, notation)| CsvStyle {
            header,
            crlf,
            padded,
            blank_lines,
            notation,
        })
}

fn encode_csv(points: &[Vec<f64>], style: &CsvStyle) -> Vec<u8> {
    let newline = if style.crlf { "\r\n" } else { "\n" };
    let separator = if style.padded { " , " } else { "," };
    let mut text = String::new();
    if style.header {
        text += &column_names(points[0].len()).join(separator);
        text += newline;
    }
    for (i, point) in points.iter().enumerate() {
        let fields: Vec<String> = point
            .iter()
            .enumerate()
            .map(|(j, &v)| format_number(v, style.notation.wrapping_add((i + j) as u8)))
            .collect();
        text += &fields.join(separator);
        text += newline;
        if style.blank_lines && i % 3 == 0 {
            text += newline;
        }
    }
    text.into_bytes()
}

fn encode_json_lines(points: &[Vec<f64>], block_size: usize) -> Vec<u8> {
    let mut text = String::new();
    for chunk in points.chunks(block_size) {
        let line = if block_size == 1 {
            serde_json::to_string(&chunk[0])
        } else {
            serde_json::to_string(chunk)
        };
        text += &line.unwrap();
        text += "\n";
    }
    text.into_bytes()
}

fn encode_json_objects(points: &[Vec<f64>], names: &[String]) -> Vec<u8> {
    let mut text = String::new();
    for point in points {
        let mut object: Map<String, Value> = names
            .iter()
            .zip(point)
            .map(|(name, &v)| (name.clone(), json!(v)))
            .collect();
        object.insert("label".into(), json!("ignored"));
        text += &Value::Object(object).to_string();
        text += "\n";
    }
    text.into_bytes()
}

/// Frames and decodes a binary stream with several points per record, through a
/// small buffer; returns the points and the rejects.
fn decode_binary(
    input: &[u8],
    format: Format,
    dim: usize,
    points_per_record: usize,
    capacity: usize,
) -> (Vec<f64>, Vec<Reject>) {
    let mut decoder = Decoder::new(config(format, Some(dim), None)).unwrap();
    let per_record = NonZeroUsize::new(points_per_record).unwrap();
    let mut records = RecordReader::new(
        BufReader::with_capacity(capacity, input),
        decoder.framing(per_record),
    );
    let (mut out, mut rejects) = (Vec::new(), Vec::new());
    while let Some(record) = records.next_record().unwrap() {
        match record.payload {
            Ok(bytes) => {
                decoder.decode(bytes, &mut out, &mut rejects);
            }
            Err(reject) => rejects.push(reject),
        }
    }
    (out, rejects)
}

proptest! {
    #[test]
    fn csv_round_trips_exactly(points in points(), style in csv_style(), use_fields in any::<bool>()) {
        let dim = points[0].len();
        let fields = (style.header && use_fields).then(|| column_names(dim));
        let input = encode_csv(&points, &style);
        let data = read_all(&input[..], config(Format::Csv, None, fields), false, "csv").unwrap();
        prop_assert_eq!(data.dim, dim);
        prop_assert_eq!(bits(&data.values), bits(&flat(&points)));
    }

    #[test]
    fn json_points_and_blocks_round_trip_exactly(points in points(), block_size in 1usize..5) {
        let input = encode_json_lines(&points, block_size);
        let data = read_all(&input[..], config(Format::Json, None, None), false, "json").unwrap();
        prop_assert_eq!(data.dim, points[0].len());
        prop_assert_eq!(bits(&data.values), bits(&flat(&points)));
    }

    #[test]
    fn json_objects_round_trip_exactly(points in points(), reversed in any::<bool>()) {
        let dim = points[0].len();
        let mut names = column_names(dim);
        let input = encode_json_objects(&points, &names);
        // Fields pick coordinates in the configured order, whatever the key order.
        if reversed {
            names.reverse();
        }
        let data = read_all(&input[..], config(Format::Json, None, Some(names)), false, "json").unwrap();
        let expected: Vec<f64> = points
            .iter()
            .flat_map(|p| if reversed { p.iter().rev().copied().collect() } else { p.clone() })
            .collect();
        prop_assert_eq!(bits(&data.values), bits(&expected));
    }

    #[test]
    fn f64le_round_trips_exactly(points in points(), per_record in 1usize..5, capacity in 1usize..200) {
        let dim = points[0].len();
        let input: Vec<u8> = flat(&points).iter().flat_map(|v| v.to_le_bytes()).collect();
        let data = read_all(&input[..], config(Format::F64le, Some(dim), None), false, "f64le").unwrap();
        prop_assert_eq!(bits(&data.values), bits(&flat(&points)));

        let (out, rejects) = decode_binary(&input, Format::F64le, dim, per_record, capacity);
        // Only a short last record can fail, and only when the count does not divide.
        let whole = points.len() / per_record * per_record;
        prop_assert_eq!(rejects.len(), usize::from(whole < points.len()));
        prop_assert_eq!(bits(&out), bits(&flat(&points[..whole])));
    }

    #[test]
    fn f32le_round_trips_exactly(
        values in prop::collection::vec(any::<f32>().prop_filter("finite", |v| v.is_finite()), 1..60),
        dim in 1usize..5,
    ) {
        let whole = values.len() / dim * dim;
        prop_assume!(whole > 0);
        let input: Vec<u8> = values[..whole].iter().flat_map(|v| v.to_le_bytes()).collect();
        let data = read_all(&input[..], config(Format::F32le, Some(dim), None), false, "f32le").unwrap();
        let expected: Vec<f64> = values[..whole].iter().map(|&v| f64::from(v)).collect();
        prop_assert_eq!(bits(&data.values), bits(&expected));
    }

    #[test]
    fn binary_non_finite_values_reject_exactly_their_points(
        points in points(),
        poison in prop::collection::vec((any::<prop::sample::Index>(), any::<bool>()), 0..5),
        per_record in 1usize..5,
    ) {
        let dim = points[0].len();
        let mut values = flat(&points);
        for (index, nan) in &poison {
            let at = index.index(values.len());
            values[at] = if *nan { f64::NAN } else { f64::NEG_INFINITY };
        }
        let input: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        let whole = points.len() / per_record * per_record;
        let (out, rejects) = decode_binary(&input, Format::F64le, dim, per_record, 64);
        let kept: Vec<f64> = values[..whole * dim]
            .chunks(dim)
            .filter(|p| p.iter().all(|v| v.is_finite()))
            .flatten()
            .copied()
            .collect();
        let non_finite = rejects.iter().filter(|r| r.reason == RejectReason::NonFinite).count();
        prop_assert_eq!(non_finite, whole - kept.len() / dim);
        prop_assert_eq!(bits(&out), bits(&kept));
    }
}
