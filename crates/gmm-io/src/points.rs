//! The one path from records to points, which every reader of input takes: the
//! daemon's file and Kafka sources, `fit`, `score` and `plot`. A
//! [`RecordDecoder`] turns one framed record (or the framing's refusal of it) into
//! points and rejects; what to do with the rejects is the caller's: the daemon
//! sends them to its dead letters, the offline commands stop at the first or
//! count them ([`PointReader`], [`read_all`]).

use std::io::{self, BufRead};
use std::num::NonZeroUsize;

use thiserror::Error;

use crate::decode::{DecodeConfig, DecodeConfigError, Decoder, Reject};
use crate::records::{Location, RecordReader};

/// Decodes records into points; see the module documentation.
pub struct RecordDecoder {
    decoder: Decoder,
    rejects: Vec<Reject>,
}

impl RecordDecoder {
    pub fn new(config: DecodeConfig) -> Result<Self, DecodeConfigError> {
        Ok(Self {
            decoder: Decoder::new(config)?,
            rejects: Vec::new(),
        })
    }

    /// Decodes one record into `out` (row-major) and returns the number of points
    /// it added. `payload` is the record's bytes, or why the framing could not
    /// produce them (a line over the size limit, a truncated binary record), which
    /// is the record's one reject. The record's rejects are then in
    /// [`RecordDecoder::rejects`], until the next record.
    pub fn decode(&mut self, payload: Result<&[u8], Reject>, out: &mut Vec<f64>) -> usize {
        self.rejects.clear();
        match payload {
            Ok(bytes) => self.decoder.decode(bytes, out, &mut self.rejects),
            Err(reject) => {
                self.rejects.push(reject);
                0
            }
        }
    }

    /// The rejects of the last record decoded, in order.
    pub fn rejects(&self) -> &[Reject] {
        &self.rejects
    }

    /// Takes the rejects of the last record decoded.
    pub fn take_rejects(&mut self) -> std::vec::Drain<'_, Reject> {
        self.rejects.drain(..)
    }

    /// The decoder, e.g. for its dimension or its framing.
    pub fn decoder(&self) -> &Decoder {
        &self.decoder
    }

    /// The decoder, e.g. to show it a csv header before resuming a file.
    pub fn decoder_mut(&mut self) -> &mut Decoder {
        &mut self.decoder
    }
}

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

/// Why an input could not be read; each message names the input.
#[derive(Debug, Error)]
pub enum ReadError {
    #[error(transparent)]
    Config(#[from] DecodeConfigError),

    #[error("{name}: cannot read the input")]
    Io {
        name: String,
        #[source]
        error: io::Error,
    },

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

/// Reads the points of a finite input, incrementally (so that `score` can stream):
/// without `skip_invalid` the first invalid point is an error naming the input, the
/// line (or binary record) and the reason; with it, invalid points are counted
/// ([`PointReader::skipped`]) and logged at debug level. An input without any
/// valid point is an error.
pub struct PointReader<R: BufRead> {
    records: RecordReader<R>,
    decoder: RecordDecoder,
    name: String,
    skip_invalid: bool,
    skipped: usize,
    points: usize,
}

impl<R: BufRead> PointReader<R> {
    /// Reads `reader`, named `name` in messages, through `decoder`. Binary records
    /// hold one point each, so that record numbers are point numbers.
    pub fn new(
        reader: R,
        decoder: RecordDecoder,
        skip_invalid: bool,
        name: impl Into<String>,
    ) -> Self {
        let framing = decoder.decoder().framing(NonZeroUsize::MIN);
        Self {
            records: RecordReader::new(reader, framing),
            decoder,
            name: name.into(),
            skip_invalid,
            skipped: 0,
            points: 0,
        }
    }

    /// Appends points (row-major) to `out` until it holds `max_points` more or the
    /// input ends. Returns the number appended; 0 means the input is exhausted.
    pub fn fill(&mut self, out: &mut Vec<f64>, max_points: usize) -> Result<usize, ReadError> {
        let mut added = 0;
        while added < max_points {
            let record = self.records.next_record().map_err(|error| ReadError::Io {
                name: self.name.clone(),
                error,
            })?;
            let Some(record) = record else { break };
            added += self.decoder.decode(record.payload, out);
            let mut rejects = self.decoder.take_rejects();
            if !self.skip_invalid {
                if let Some(reject) = rejects.next() {
                    return Err(ReadError::Invalid {
                        name: self.name.clone(),
                        location: record.location,
                        reject,
                    });
                }
            }
            for reject in rejects {
                self.skipped += 1;
                tracing::debug!(input = %self.name, location = %record.location, "skipped: {}", reject.detail);
            }
        }
        self.points += added;
        if added == 0 && self.points == 0 {
            return Err(ReadError::Empty {
                name: self.name.clone(),
                skipped: self.skipped,
            });
        }
        Ok(added)
    }

    /// Every remaining point, row-major.
    pub fn read_to_end(&mut self) -> Result<Vec<f64>, ReadError> {
        let mut out = Vec::new();
        self.fill(&mut out, usize::MAX)?;
        Ok(out)
    }

    /// The dimension of the points (known once one was read).
    pub fn dim(&self) -> Option<usize> {
        self.decoder.decoder().dim()
    }

    /// Invalid points skipped so far.
    pub fn skipped(&self) -> usize {
        self.skipped
    }

    pub fn name(&self) -> &str {
        &self.name
    }
}

/// Reads and decodes all of `reader`, with the rules of [`PointReader`].
pub fn read_all<R: BufRead>(
    reader: R,
    config: DecodeConfig,
    skip_invalid: bool,
    source_name: &str,
) -> Result<Dataset, ReadError> {
    let decoder = RecordDecoder::new(config)?;
    let mut points = PointReader::new(reader, decoder, skip_invalid, source_name);
    let values = points.read_to_end()?;
    // A reader that returned points knows their dimension.
    let dim = points.dim().unwrap_or(1);
    Ok(Dataset {
        values,
        dim,
        skipped: points.skipped(),
    })
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
        assert_eq!(err.to_string(), "-: cannot read the input");
        let cause = std::error::Error::source(&err).map(|e| e.to_string());
        assert_eq!(cause.as_deref(), Some("device unplugged"));
        assert!(!err.is_bad_input());
    }
}
