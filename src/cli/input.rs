//! Where `fit`, `score` and `plot` read points from: the shared input options, the
//! format chosen from the file name, and gmm-io's incremental reader (so that
//! `score` can stream).

use std::fs::File;
use std::io::{self, BufRead, BufReader};
use std::path::{Path, PathBuf};

use anyhow::Context;
use gmm_io::{DecodeConfig, Format, PointReader, ReadError, RecordDecoder, RejectReason};

use super::error::CliError;
use super::values;

/// The points of an input, read a chunk at a time.
pub type Points = PointReader<Box<dyn BufRead>>;

/// Bytes read from a file at a time: large enough that records rarely span a
/// refill (which costs a copy), small enough not to matter.
const READ_BUFFER: usize = 256 * 1024;

/// The input options shared by `fit` and `score`.
#[derive(Debug, clap::Args)]
pub struct InputArgs {
    /// The points: a file, or - for stdin
    #[arg(long, short = 'i', value_name = "PATH|-")]
    pub input: PathBuf,

    /// How points are encoded [default: from the file extension: .csv, .json/.ndjson/.jsonl,
    /// .f64/.f64le, .f32/.f32le; csv for stdin and other names]
    #[arg(long, value_name = "FORMAT", value_parser = values::data_format())]
    pub format: Option<Format>,

    /// Coordinates per point; required for f64le and f32le unless a model gives it
    /// (score, fit --init-model); checked for csv and json
    #[arg(long, value_name = "D", value_parser = values::positive)]
    pub dim: Option<usize>,

    /// csv columns (by header name) or JSON object keys to use as coordinates, in order
    #[arg(long, value_name = "A,B,...", value_delimiter = ',')]
    pub fields: Option<Vec<String>>,

    /// Skip invalid points (wrong dimension, non-finite, unparseable) and report how
    /// many, instead of stopping at the first with exit code 2
    #[arg(long)]
    pub skip_invalid: bool,
}

impl InputArgs {
    pub fn is_stdin(&self) -> bool {
        self.input.as_os_str() == "-"
    }

    /// How the input is named in messages.
    pub fn name(&self) -> String {
        if self.is_stdin() {
            "stdin".to_owned()
        } else {
            self.input.display().to_string()
        }
    }

    pub fn format(&self) -> Format {
        self.format
            .or_else(|| {
                (!self.is_stdin())
                    .then(|| format_for_path(&self.input))
                    .flatten()
            })
            .unwrap_or(Format::Csv)
    }

    /// The decoding settings; `model_dim` (from `score`'s model) fills in `dim`.
    pub fn decode_config(&self, model_dim: Option<usize>) -> DecodeConfig {
        DecodeConfig {
            format: self.format(),
            dim: self.dim.or(model_dim),
            fields: self.fields.clone(),
        }
    }

    /// Checks `--dim` and `--fields` against the dimension of a model, before reading.
    pub fn check_against_model(&self, model: &str, d: usize) -> Result<(), CliError> {
        if let Some(dim) = self.dim.filter(|&dim| dim != d) {
            return Err(CliError::bad_input_msg(format!(
                "--dim {dim} disagrees with the model {model}, which has {d} features"
            )));
        }
        if let Some(n) = self.fields.as_ref().map(Vec::len).filter(|&n| n != d) {
            return Err(CliError::bad_input_msg(format!(
                "--fields names {n} fields but the model {model} has {d} features"
            )));
        }
        Ok(())
    }

    /// The points of the input; `model_dim` (from a model) fills in `dim`.
    pub fn reader(&self, model_dim: Option<usize>) -> Result<Points, CliError> {
        let name = self.name();
        let decoder = RecordDecoder::new(self.decode_config(model_dim))
            .map_err(|e| CliError::bad_input(anyhow::Error::new(e).context(name.clone())))?;
        let input = self.open()?;
        Ok(PointReader::new(input, decoder, self.skip_invalid, name))
    }

    /// Opens the input. A missing or unreadable file is bad input (exit 2): the user
    /// named something that cannot be read.
    fn open(&self) -> Result<Box<dyn BufRead>, CliError> {
        if self.is_stdin() {
            return Ok(Box::new(io::stdin().lock()));
        }
        let name = self.name();
        if self.input.is_dir() {
            return Err(CliError::bad_input_msg(format!(
                "{name}: is a directory, not a file of points"
            )));
        }
        let file = File::open(&self.input)
            .with_context(|| format!("{name}: cannot open the input"))
            .map_err(CliError::bad_input)?;
        Ok(Box::new(BufReader::with_capacity(READ_BUFFER, file)))
    }
}

/// The format a file name suggests, if any.
pub fn format_for_path(path: &Path) -> Option<Format> {
    let ext = path.extension()?.to_str()?.to_ascii_lowercase();
    match ext.as_str() {
        "csv" => Some(Format::Csv),
        "json" | "ndjson" | "jsonl" => Some(Format::Json),
        "f64" | "f64le" => Some(Format::F64le),
        "f32" | "f32le" => Some(Format::F32le),
        _ => None,
    }
}

/// A read error, with the model's dimension added when a point has the wrong one
/// (the reader only knows the number it expected, not where it came from).
pub fn explain_dim(error: ReadError, model: Option<(&str, usize)>) -> CliError {
    match (&error, model) {
        (ReadError::Invalid { reject, .. }, Some((name, d)))
            if reject.reason == RejectReason::Dimension =>
        {
            CliError::bad_input_msg(format!("{error} (the model {name} has {d} features)"))
        }
        _ => error.into(),
    }
}

/// Reports skipped points; a skipped point is worth a warning even with `--quiet`.
pub fn report_skipped(reader: &Points) {
    match reader.skipped() {
        0 => {}
        1 => eprintln!(
            "gmm-stream: warning: {}: skipped 1 invalid point",
            reader.name()
        ),
        n => eprintln!(
            "gmm-stream: warning: {}: skipped {n} invalid points",
            reader.name()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_follow_the_extension() {
        let f = |p: &str| format_for_path(Path::new(p));
        assert_eq!(f("a.csv"), Some(Format::Csv));
        assert_eq!(f("a.CSV"), Some(Format::Csv));
        assert_eq!(f("a.ndjson"), Some(Format::Json));
        assert_eq!(f("dir.v2/a.jsonl"), Some(Format::Json));
        assert_eq!(f("a.f64"), Some(Format::F64le));
        assert_eq!(f("a.f32le"), Some(Format::F32le));
        assert_eq!(f("a.txt"), None);
        assert_eq!(f("noext"), None);
    }
}
