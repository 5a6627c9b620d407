//! The names of the input data formats (`--format`, `source.format`).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// How points are encoded in a file, on stdin or in a Kafka message value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// One point per line, numbers separated by commas, optional header line.
    Csv,
    /// `[x1, ..., xd]`, `[[...], [...]]` or an object picked by `fields`.
    Json,
    /// Raw little-endian 64-bit floats, `dim` per point.
    F64le,
    /// Raw little-endian 32-bit floats, `dim` per point.
    F32le,
}

impl Format {
    pub const ALL: [Format; 4] = [Format::Csv, Format::Json, Format::F64le, Format::F32le];

    pub fn as_str(self) -> &'static str {
        match self {
            Format::Csv => "csv",
            Format::Json => "json",
            Format::F64le => "f64le",
            Format::F32le => "f32le",
        }
    }

    /// Bytes per coordinate of a binary format; `None` for the text formats.
    pub fn float_width(self) -> Option<usize> {
        match self {
            Format::Csv | Format::Json => None,
            Format::F64le => Some(8),
            Format::F32le => Some(4),
        }
    }

    pub fn is_binary(self) -> bool {
        self.float_width().is_some()
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("unknown data format \"{0}\"; expected csv, json, f64le or f32le")]
pub struct UnknownFormat(pub String);

impl FromStr for Format {
    type Err = UnknownFormat;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Format::ALL
            .into_iter()
            .find(|format| format.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| UnknownFormat(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_through_display_and_from_str() {
        for format in Format::ALL {
            assert_eq!(format.to_string().parse::<Format>(), Ok(format));
        }
        assert_eq!("F64LE".parse::<Format>(), Ok(Format::F64le));
    }

    #[test]
    fn unknown_name_is_refused_with_the_choices() {
        let err = "parquet".parse::<Format>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown data format \"parquet\"; expected csv, json, f64le or f32le"
        );
    }

    #[test]
    fn serde_uses_the_lowercase_names() {
        for format in Format::ALL {
            let json = serde_json::to_string(&format).unwrap();
            assert_eq!(json, format!("\"{format}\""));
            assert_eq!(serde_json::from_str::<Format>(&json).unwrap(), format);
        }
        assert!(serde_json::from_str::<Format>("\"F64le\"").is_err());
    }
}
