//! Reads a whole finite input into memory, for the offline commands (`fit`, `score`).

use std::io::{self, BufRead};
use std::num::NonZeroUsize;

use thiserror::Error;

use crate::decode::{DecodeConfig, DecodeConfigError, Decoder, Reject};
use crate::records::{Location, RecordReader};

/// Every point of an input, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    /// `len() * dim` coordinates, point after point.
    pub values: Vec<f64>,
    pub dim: usize,
    /// Invalid points (or unusable records) skipped under `skip_invalid`.
    pub skipped: usize,
}

impl Dataset {
    /// Number of points.
    pub fn len(&self) -> usize {
        self.values.len() / self.dim.max(1)
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }
}

/// Why an input could not be read; each message is one sentence naming the input.
#[derive(Debug, Error)]
pub enum ReadError {
    #[error(transparent)]
    Config(#[from] DecodeConfigError),

    // The I/O error is in the message, not chained as a source, so that the
    // sentence is printed whole exactly once.
    #[error("{name}: cannot read the input: {error}")]
    Io { name: String, error: io::Error },

    #[error("{name}: {location}{}: {}", point_in_record(reject), reject.detail)]
    Invalid {
        name: String,
        location: Location,
        reject: Reject,
    },

    #[error("{name}: {}", no_points(*skipped))]
    Empty { name: String, skipped: usize },
}

impl ReadError {
    /// True when the input or the settings are at fault (exit code 2), false for a
    /// failure to read (exit code 1).
    pub fn is_bad_input(&self) -> bool {
        !matches!(self, ReadError::Io { .. })
    }
}

fn point_in_record(reject: &Reject) -> String {
    reject
        .index
        .map(|index| format!(", point {}", index + 1))
        .unwrap_or_default()
}

fn no_points(skipped: usize) -> String {
    match skipped {
        0 => "the input holds no points".to_owned(),
        1 => "the input holds no valid points (1 invalid point skipped)".to_owned(),
        n => format!("the input holds no valid points ({n} invalid points skipped)"),
    }
}

/// Reads and decodes all of `reader`. Without `skip_invalid` the first invalid point
/// is an error naming `source_name`, the line (or binary record) and the reason; with
/// it, invalid points are counted in [`Dataset::skipped`]. An input without any
/// valid point is an error.
pub fn read_all<R: BufRead>(
    reader: R,
    config: DecodeConfig,
    skip_invalid: bool,
    source_name: &str,
) -> Result<Dataset, ReadError> {
    let mut decoder = Decoder::new(config)?;
    let mut records = RecordReader::new(reader, decoder.framing(NonZeroUsize::MIN));
    let (mut values, mut rejects, mut skipped) = (Vec::new(), Vec::new(), 0);
    loop {
        let record = records.next_record().map_err(|error| ReadError::Io {
            name: source_name.to_owned(),
            error,
        })?;
        let Some(record) = record else { break };
        match record.payload {
            Ok(bytes) => {
                decoder.decode(bytes, &mut values, &mut rejects);
            }
            Err(reject) => rejects.push(reject),
        }
        if !skip_invalid {
            if let Some(reject) = rejects.drain(..).next() {
                return Err(ReadError::Invalid {
                    name: source_name.to_owned(),
                    location: record.location,
                    reject,
                });
            }
        }
        skipped += rejects.len();
        rejects.clear();
    }
    match decoder.dim() {
        Some(dim) if !values.is_empty() => Ok(Dataset {
            values,
            dim,
            skipped,
        }),
        _ => Err(ReadError::Empty {
            name: source_name.to_owned(),
            skipped,
        }),
    }
}

#[cfg(test)]
mod tests {
    use std::io::{BufReader, Read};

    use super::*;
    use crate::format::Format;

    fn config(format: Format, dim: Option<usize>) -> DecodeConfig {
        DecodeConfig {
            format,
            dim,
            fields: None,
            max_abs: None,
        }
    }

    fn read(input: &[u8], config: DecodeConfig, skip_invalid: bool) -> Result<Dataset, ReadError> {
        read_all(input, config, skip_invalid, "data")
    }

    fn message(input: &[u8], config: DecodeConfig) -> String {
        read(input, config, false).unwrap_err().to_string()
    }

    fn f64_bytes(values: &[f64]) -> Vec<u8> {
        values.iter().flat_map(|v| v.to_le_bytes()).collect()
    }

    #[test]
    fn reads_a_csv_file_with_a_header() {
        let data = read(b"x,y\n1,2\n3,4\n", config(Format::Csv, None), false).unwrap();
        assert_eq!(data.values, [1.0, 2.0, 3.0, 4.0]);
        assert_eq!((data.dim, data.len(), data.skipped), (2, 2, 0));
    }

    #[test]
    fn the_first_bad_point_names_the_input_the_line_and_the_reason() {
        let csv = config(Format::Csv, None);
        assert_eq!(
            message(b"1,2\n1,2,3\n", csv.clone()),
            "data: line 2: point has 3 coordinates, expected 2"
        );
        assert_eq!(
            message(b"x,y\n1,2\n1,2,3\n", csv.clone()),
            "data: line 3: row has 3 columns, the header has 2"
        );
        assert_eq!(
            message(b"1,2\n\n1,nan\n", csv),
            "data: line 3: coordinate 2 is NaN"
        );
        assert_eq!(
            message(b"[1,2]\n[[3,4],[\"5\",6]]\n", config(Format::Json, None)),
            "data: line 2, point 2: coordinate 1 is a string, not a number"
        );
    }

    #[test]
    fn binary_errors_name_the_record() {
        let f64le = config(Format::F64le, Some(2));
        let nan = f64_bytes(&[1.0, 2.0, f64::NAN, 4.0]);
        assert_eq!(
            message(&nan, f64le.clone()),
            "data: record 2: coordinate 1 is NaN"
        );
        let truncated = f64_bytes(&[1.0, 2.0, 3.0]);
        assert_eq!(
            message(&truncated, f64le),
            "data: record 2: truncated record: 8 bytes, expected 16"
        );
    }

    #[test]
    fn skip_invalid_counts_what_it_skips() {
        let input = b"1,2\nx\n3,4,5\n6,inf\n7,8\n";
        let data = read(input, config(Format::Csv, None), true).unwrap();
        assert_eq!(data.values, [1.0, 2.0, 7.0, 8.0]);
        assert_eq!(data.skipped, 3);

        let truncated = f64_bytes(&[1.0, 2.0, 3.0]);
        let data = read(&truncated, config(Format::F64le, Some(2)), true).unwrap();
        assert_eq!((data.values.len(), data.skipped), (2, 1));
    }

    #[test]
    fn an_input_without_points_is_an_error() {
        let csv = config(Format::Csv, None);
        assert_eq!(message(b"", csv.clone()), "data: the input holds no points");
        assert_eq!(
            message(b"x,y\n\n", csv.clone()),
            "data: the input holds no points"
        );
        let err = read(b"nan\ninf\n", csv, true).unwrap_err();
        assert_eq!(
            err.to_string(),
            "data: the input holds no valid points (2 invalid points skipped)"
        );
        assert!(err.is_bad_input());
        assert_eq!(
            message(b"", config(Format::F32le, Some(3))),
            "data: the input holds no points"
        );
    }

    #[test]
    fn bad_settings_are_reported_before_reading() {
        let err = read(b"1,2\n", config(Format::F64le, None), false).unwrap_err();
        assert!(matches!(
            err,
            ReadError::Config(DecodeConfigError::MissingDim { .. })
        ));
        assert!(err.is_bad_input());
    }

    struct Broken;

    impl Read for Broken {
        fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
            Err(io::Error::other("device unplugged"))
        }
    }

    #[test]
    fn a_read_failure_is_not_bad_input() {
        let err = read_all(
            BufReader::new(Broken),
            config(Format::Csv, None),
            false,
            "-",
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "-: cannot read the input: device unplugged"
        );
        assert!(!err.is_bad_input());
    }
}
