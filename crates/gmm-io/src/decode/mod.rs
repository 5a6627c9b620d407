//! Turns records (csv/json lines, binary chunks, Kafka message values) into points.
//!
//! A [`Decoder`] is stateful: it remembers whether a csv header was seen, which
//! columns it picked, and the dimension learned from the first accepted point.
//! Points it accepts are appended row-major to a caller's `Vec<f64>`; every point it
//! refuses (or record it cannot use at all) becomes a [`Reject`] with a reason.
//!
//! Rules worth knowing:
//! - Every point: the configured or learned dimension, all coordinates finite
//!   ("nan"/"inf" in text parse, then are rejected as non-finite) and within the
//!   bound on magnitudes ([`DecodeConfig::max_abs`]; `1e308` is finite but
//!   rejected as out of range). A rejected point never fixes the dimension.
//! - csv: fields are trimmed and may be quoted; blank lines are skipped. The first
//!   non-blank line is a header when none of its fields is a number; it is consumed,
//!   not rejected, and rows must then have its number of columns. `fields` pick
//!   columns by exact (trimmed, unquoted) name and need a header. Unpicked columns
//!   are not parsed, so they may hold text. A record holding several lines (a Kafka
//!   message) gives one point per line.
//! - json: `[]` is an empty block (no point, no reject); a block may mix arrays and
//!   objects; an array is positional even when `fields` are configured. JSON has no
//!   NaN, and a number that overflows f64 makes the whole record unparseable.
//! - Binary: a record must hold one or more whole points.

mod binary;
mod csv;
mod csv_fields;
mod json;
mod shape;
#[cfg(test)]
mod tests;

use std::collections::HashSet;
use std::num::NonZeroUsize;

use serde::{Deserialize, Serialize};
use thiserror::Error;

pub use self::csv::clean as clean_csv_line;
pub use crate::reject::{Reject, RejectReason};

use self::binary::Float;
use self::csv::CsvDecoder;
use self::shape::Shape;
use crate::format::Format;
use crate::records::{Framing, DEFAULT_MAX_RECORD_BYTES};

/// Largest accepted `dim`: an f64 point of this size fills the default maximum
/// record, and bounding it keeps binary record sizes far from overflow.
pub const MAX_DIM: usize = DEFAULT_MAX_RECORD_BYTES / 8;

/// What the input looks like: `source.format`, `source.dim`, `source.fields`,
/// `source.max_abs_value`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DecodeConfig {
    pub format: Format,
    /// Coordinates per point. Required for binary formats; for csv/json, learned
    /// from the first accepted point when absent.
    #[serde(default)]
    pub dim: Option<usize>,
    /// csv column names or JSON object keys to take, in order, as the coordinates.
    #[serde(default)]
    pub fields: Option<Vec<String>>,
    /// Points with a coordinate of larger magnitude are rejected (`out_of_range`).
    /// None, and any bound above it, means [`gmm_model::MAX_ABS_COORDINATE`]:
    /// beyond it squares and sums of coordinates could overflow.
    #[serde(default)]
    pub max_abs: Option<f64>,
}

impl DecodeConfig {
    /// A configuration with no `dim` and no `fields`.
    pub fn new(format: Format) -> Self {
        DecodeConfig {
            format,
            dim: None,
            fields: None,
            max_abs: None,
        }
    }
}

/// A decoding configuration that cannot work, whatever the data.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum DecodeConfigError {
    #[error("format {format} needs `dim`, since raw floats do not say how many make a point")]
    MissingDim { format: Format },

    #[error("`dim` must be at least 1")]
    ZeroDim,

    #[error("the bound on coordinates must be a number > 0, got {0}")]
    MaxAbs(f64),

    #[error("`dim` is {0}, more than the supported maximum of {MAX_DIM}")]
    DimTooLarge(usize),

    #[error("`fields` cannot be used with format {format}, whose points have no field names")]
    FieldsWithBinary { format: Format },

    #[error("`fields` is empty; name the columns to use, or leave it out to use all columns")]
    EmptyFields,

    #[error("field \"{0}\" is listed twice in `fields`")]
    DuplicateField(String),

    #[error("`dim` is {dim} but {n_fields} `fields` are listed; they must agree")]
    DimFieldsMismatch { dim: usize, n_fields: usize },
}

/// Decodes records of one format into points; see the module documentation.
pub struct Decoder {
    format: Format,
    shape: Shape,
    codec: Codec,
}

enum Codec {
    // Boxed: csv-core's parser tables would make every Decoder large.
    Csv(Box<CsvDecoder>),
    Json { wanted: Option<Vec<String>> },
    Binary { float: Float, dim: usize },
}

impl Decoder {
    pub fn new(config: DecodeConfig) -> Result<Self, DecodeConfigError> {
        validate(&config)?;
        let DecodeConfig {
            format,
            dim,
            fields,
            max_abs,
        } = config;
        let dim = dim.or(fields.as_ref().map(Vec::len));
        let binary = |float| match dim {
            Some(dim) => Ok(Codec::Binary { float, dim }),
            None => Err(DecodeConfigError::MissingDim { format }),
        };
        let codec = match format {
            Format::Csv => Codec::Csv(Box::new(CsvDecoder::new(fields))),
            Format::Json => Codec::Json { wanted: fields },
            Format::F64le => binary(Float::F64)?,
            Format::F32le => binary(Float::F32)?,
        };
        let mut shape = Shape::new(dim);
        if let Some(max_abs) = max_abs {
            shape.set_max_abs(max_abs);
        }
        Ok(Decoder {
            format,
            shape,
            codec,
        })
    }

    /// Decodes one record: a csv/json line without its newline (a csv record may
    /// also hold several lines, as a Kafka message can), a whole Kafka message
    /// value, or a binary record. Appends accepted points row-major to `out`, pushes
    /// one [`Reject`] per refused point or unusable record, and returns the number
    /// of points appended. Blank text records yield nothing and no reject.
    pub fn decode(
        &mut self,
        record: &[u8],
        out: &mut Vec<f64>,
        rejects: &mut Vec<Reject>,
    ) -> usize {
        match &mut self.codec {
            Codec::Csv(csv) => csv.decode(record, &mut self.shape, out, rejects),
            Codec::Json { wanted } => {
                json::decode(record, wanted.as_deref(), &mut self.shape, out, rejects)
            }
            Codec::Binary { float, dim } => {
                binary::decode(*float, *dim, record, &mut self.shape, out, rejects)
            }
        }
    }

    /// The largest coordinate magnitude accepted.
    pub fn max_abs(&self) -> f64 {
        self.shape.max_abs()
    }

    /// The dimension of points: configured, or learned from the first accepted point.
    pub fn dim(&self) -> Option<usize> {
        self.shape.dim()
    }

    pub fn format(&self) -> Format {
        self.format
    }

    /// How a byte stream of this format splits into records: lines for csv/json;
    /// chunks of `points_per_record` whole points for binary formats.
    pub fn framing(&self, points_per_record: NonZeroUsize) -> Framing {
        match self.codec {
            Codec::Binary { float, dim } => {
                let bytes = points_per_record.get().saturating_mul(dim * float.width());
                NonZeroUsize::new(bytes).map_or(Framing::Lines, Framing::Fixed)
            }
            Codec::Csv(_) | Codec::Json { .. } => Framing::Lines,
        }
    }

    /// Expects a csv header again, as at the start of a new file. The learned
    /// dimension is kept. No effect on other formats.
    pub fn reset_header(&mut self) {
        if let Codec::Csv(csv) = &mut self.codec {
            csv.reset_header();
        }
    }

    /// For resuming a csv file past its start: gives the decoder the file's first
    /// non-blank line, which is taken as the header if it is one (or as proof that
    /// there is none) and never decoded as a point. Errs if that header cannot serve
    /// the configured `fields`; rows will then be refused for the same reason.
    /// No effect on other formats.
    pub fn prime_header(&mut self, first_line: &[u8]) -> Result<(), Reject> {
        match &mut self.codec {
            Codec::Csv(csv) => csv.prime_header(first_line),
            Codec::Json { .. } | Codec::Binary { .. } => Ok(()),
        }
    }
}

fn validate(config: &DecodeConfig) -> Result<(), DecodeConfigError> {
    let format = config.format;
    if let Some(max_abs) = config.max_abs {
        if max_abs.is_nan() || max_abs <= 0.0 {
            return Err(DecodeConfigError::MaxAbs(max_abs));
        }
    }
    match config.dim {
        Some(0) => return Err(DecodeConfigError::ZeroDim),
        Some(dim) if dim > MAX_DIM => return Err(DecodeConfigError::DimTooLarge(dim)),
        _ => {}
    }
    if format.is_binary() && config.fields.is_some() {
        return Err(DecodeConfigError::FieldsWithBinary { format });
    }
    if format.is_binary() && config.dim.is_none() {
        return Err(DecodeConfigError::MissingDim { format });
    }
    let Some(fields) = &config.fields else {
        return Ok(());
    };
    if fields.is_empty() {
        return Err(DecodeConfigError::EmptyFields);
    }
    let mut seen = HashSet::new();
    if let Some(twice) = fields.iter().find(|name| !seen.insert(name.as_str())) {
        return Err(DecodeConfigError::DuplicateField(twice.clone()));
    }
    match config.dim {
        Some(dim) if dim != fields.len() => Err(DecodeConfigError::DimFieldsMismatch {
            dim,
            n_fields: fields.len(),
        }),
        _ => Ok(()),
    }
}
