//! Where `fit` and `score` read points from: the shared input options, the format
//! chosen from the file name, and an incremental reader so that `score` can stream.

use std::fs::File;
use std::io::{self, BufRead, BufReader};
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};

use anyhow::Context;
use gmm_io::{
    DecodeConfig, Decoder, Format, Location, ReadError, Record, RecordReader, Reject, RejectReason,
};

use super::error::CliError;
use super::values;

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

    /// Skip invalid points (wrong dimension, non-finite, beyond ±1e100, unparseable,
    /// or one the model cannot score) and report how many, instead of stopping at
    /// the first with exit code 2
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
            max_abs: None,
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

    /// Opens the input. A missing or unreadable file is bad input (exit 2): the user
    /// named something that cannot be read.
    pub fn open(&self) -> Result<Box<dyn BufRead>, CliError> {
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

/// Reads points incrementally, with the rules of [`gmm_io::read_all`]
/// (same messages): the first invalid point is an error unless invalid points are
/// skipped, and an input without any valid point is an error.
pub struct PointReader {
    records: RecordReader<Box<dyn BufRead>>,
    decoder: Decoder,
    name: String,
    skip_invalid: bool,
    skipped: usize,
    points: usize,
    rejects: Vec<Reject>,
    /// When tracked: the record of every point of the last [`PointReader::fill`],
    /// and its index in the record when the record gave several.
    origins: Option<Vec<(Location, Option<usize>)>>,
}

impl PointReader {
    pub fn new(args: &InputArgs, model_dim: Option<usize>) -> Result<Self, CliError> {
        let name = args.name();
        let decoder = Decoder::new(args.decode_config(model_dim))
            .map_err(|e| CliError::bad_input(anyhow::Error::new(e).context(name.clone())))?;
        // One point per binary record, so that record numbers are point numbers.
        let framing = decoder.framing(NonZeroUsize::MIN);
        Ok(Self {
            records: RecordReader::new(args.open()?, framing),
            decoder,
            name,
            skip_invalid: args.skip_invalid,
            skipped: 0,
            points: 0,
            rejects: Vec::new(),
            origins: None,
        })
    }

    /// Remembers where each point of a fill came from (see [`PointReader::invalid`]).
    pub fn track_origins(mut self) -> Self {
        self.origins = Some(Vec::new());
        self
    }

    /// The error for point `j` of the last fill, found invalid after reading (the
    /// model cannot score it), named by its record as a decoder's reject would be.
    pub fn invalid(&self, j: usize, reason: RejectReason, detail: &str) -> ReadError {
        let (location, index) = self
            .origins
            .as_ref()
            .and_then(|o| o.get(j).copied())
            .unwrap_or((Location::Record(self.points as u64), None));
        let mut reject = Reject::new(reason, detail);
        reject.index = index;
        ReadError::Invalid {
            name: self.name.clone(),
            location,
            reject,
        }
    }

    /// Counts points dropped after reading, with `--skip-invalid`.
    pub fn skip(&mut self, n: usize) {
        self.skipped += n;
    }

    /// Appends points (row-major) to `out` until it holds `max_points` more or the
    /// input ends. Returns the number appended; 0 means the input is exhausted.
    pub fn fill(&mut self, out: &mut Vec<f64>, max_points: usize) -> Result<usize, ReadError> {
        let mut added = 0;
        if let Some(origins) = self.origins.as_mut() {
            origins.clear();
        }
        while added < max_points {
            let record = self.records.next_record().map_err(|error| ReadError::Io {
                name: self.name.clone(),
                error,
            })?;
            let Some(record) = record else { break };
            let location = record.location;
            let got = absorb(
                record,
                &mut self.decoder,
                out,
                &mut self.rejects,
                self.skip_invalid,
                &self.name,
            )?;
            if let Some(origins) = self.origins.as_mut() {
                origins.extend((0..got).map(|i| (location, (got > 1).then_some(i))));
            }
            added += got;
            self.skipped += self.rejects.len();
            self.rejects.clear();
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
        self.decoder.dim()
    }

    pub fn skips_invalid(&self) -> bool {
        self.skip_invalid
    }

    /// Invalid points skipped so far.
    pub fn skipped(&self) -> usize {
        self.skipped
    }

    pub fn name(&self) -> &str {
        &self.name
    }
}

/// Decodes one record into `out`; without `skip_invalid`, its first reject is the
/// error (named by the record's location).
fn absorb(
    record: Record<'_>,
    decoder: &mut Decoder,
    out: &mut Vec<f64>,
    rejects: &mut Vec<Reject>,
    skip_invalid: bool,
    name: &str,
) -> Result<usize, ReadError> {
    let added = match record.payload {
        Ok(bytes) => decoder.decode(bytes, out, rejects),
        Err(reject) => {
            rejects.push(reject);
            0
        }
    };
    if !skip_invalid {
        if let Some(reject) = rejects.drain(..).next() {
            return Err(ReadError::Invalid {
                name: name.to_owned(),
                location: record.location,
                reject,
            });
        }
    }
    for reject in rejects.iter() {
        tracing::debug!(input = name, location = %record.location, "skipped: {}", reject.detail);
    }
    Ok(added)
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
pub fn report_skipped(reader: &PointReader) {
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
