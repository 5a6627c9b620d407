//! The `file` and `stdin` sources: a thread that reads records, decodes them and
//! sends chunks into the pipeline. Files resume at a byte offset; stdin cannot be
//! resumed and always starts where the stream is.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Seek, SeekFrom};
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};

use thiserror::Error;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::chunk::{Chunk, Origin, RecordMark, Rejected, SourceMsg};
use gmm_io::{DecodeConfig, DecodeConfigError, Format, RecordDecoder, RecordReader};

const READ_BUFFER: usize = 1 << 20;

#[derive(Debug, Error)]
pub enum SourceError {
    #[error("cannot open {path}")]
    Open {
        path: PathBuf,
        #[source]
        error: io::Error,
    },
    #[error("cannot read {name}")]
    Read {
        name: String,
        #[source]
        error: io::Error,
    },
    #[error(transparent)]
    Decode(#[from] DecodeConfigError),
    #[error("cannot resume {path} at byte {offset}: the file is only {len} bytes long (was it replaced?)")]
    BeyondEnd {
        path: PathBuf,
        offset: u64,
        len: u64,
    },
}

impl SourceError {
    /// The settings or the input are at fault (exit status 2), not the system.
    pub fn is_bad_input(&self) -> bool {
        !matches!(self, Self::Read { .. })
    }
}

pub struct FileSource {
    /// None reads stdin.
    pub path: Option<PathBuf>,
    pub decode: DecodeConfig,
    /// Byte offset (files) to start at.
    pub start: u64,
    pub max_record_bytes: usize,
}

impl FileSource {
    fn name(&self) -> String {
        self.path
            .as_ref()
            .map_or_else(|| "stdin".to_string(), |p| p.display().to_string())
    }

    /// Reads until the input ends (then sends `End`), the pipeline goes away, or
    /// `cancel` fires. Runs on its own thread: reads block.
    pub fn run(
        self,
        tx: mpsc::Sender<SourceMsg>,
        cancel: CancellationToken,
    ) -> Result<(), SourceError> {
        let mut decoder = RecordDecoder::new(self.decode.clone())?;
        match &self.path {
            Some(path) => {
                let file = self.open_at(path, &mut decoder)?;
                let reader = BufReader::with_capacity(READ_BUFFER, file);
                self.pump(reader, decoder, &tx, &cancel)
            }
            None => {
                let stdin = io::stdin();
                let reader = BufReader::with_capacity(READ_BUFFER, stdin.lock());
                self.pump(reader, decoder, &tx, &cancel)
            }
        }
    }

    /// Opens the file at the resume offset. A csv file's header (or its absence)
    /// is read from its start first, since reading starts past it.
    fn open_at(&self, path: &Path, decoder: &mut RecordDecoder) -> Result<File, SourceError> {
        let open = |p: &Path| {
            File::open(p).map_err(|error| SourceError::Open {
                path: p.to_path_buf(),
                error,
            })
        };
        let mut file = open(path)?;
        if self.start == 0 {
            return Ok(file);
        }
        let len = file
            .metadata()
            .map_err(|error| SourceError::Read {
                name: self.name(),
                error,
            })?
            .len();
        if self.start > len {
            return Err(SourceError::BeyondEnd {
                path: path.to_path_buf(),
                offset: self.start,
                len,
            });
        }
        if decoder.decoder().format() == Format::Csv {
            self.prime_csv_header(open(path)?, decoder)?;
        }
        file.seek(SeekFrom::Start(self.start))
            .map_err(|error| SourceError::Read {
                name: self.name(),
                error,
            })?;
        Ok(file)
    }

    /// Shows the decoder the file's header, or its absence, as reading from the
    /// start would have: the first non-blank line before the resume offset that
    /// the framing yields. Not only for `fields`: without it, the first line read
    /// after the offset is taken for a header when none of it is a number, and a
    /// bad line there would then set the width of every row after it.
    fn prime_csv_header(&self, file: File, decoder: &mut RecordDecoder) -> Result<(), SourceError> {
        let framing = decoder.decoder().framing(NonZeroUsize::MIN);
        let mut records = RecordReader::new(BufReader::new(file), framing)
            .with_max_record_bytes(self.max_record_bytes);
        loop {
            let record = records.next_record().map_err(|error| SourceError::Read {
                name: self.name(),
                error,
            })?;
            let Some(record) = record else {
                return Ok(());
            };
            if record.start >= self.start {
                return Ok(());
            }
            // An over-long line is refused by the framing before any decoding,
            // so it never is the header; nor is a blank line.
            let Ok(line) = record.payload else {
                continue;
            };
            let line = line.trim_ascii();
            if gmm_io::decode::clean_csv_line(line).is_empty() {
                continue;
            }
            // A header that cannot serve the configured fields leaves every row
            // refused, each saying why; nothing to report here.
            let _ = decoder.decoder_mut().prime_header(line);
            return Ok(());
        }
    }

    fn pump<R: BufRead>(
        &self,
        reader: R,
        mut decoder: RecordDecoder,
        tx: &mpsc::Sender<SourceMsg>,
        cancel: &CancellationToken,
    ) -> Result<(), SourceError> {
        let one = NonZeroUsize::MIN;
        let first_line = (self.start == 0).then_some(1);
        let mut records = RecordReader::new(reader, decoder.decoder().framing(one))
            .starting_at(self.start, first_line)
            .with_max_record_bytes(self.max_record_bytes);
        // Stdin positions count points, files count bytes.
        let mut stdin_index = 0u64;
        let is_stdin = self.path.is_none();
        let mut chunk = Chunk::default();
        loop {
            // Checked once per chunk, not per record: the token takes a lock, and
            // a chunk is read in well under a millisecond.
            if chunk.marks.is_empty() && cancel.is_cancelled() {
                return Ok(());
            }
            let record = records.next_record().map_err(|error| SourceError::Read {
                name: self.name(),
                error,
            })?;
            let Some(record) = record else {
                break;
            };
            // The bytes a dead letter keeps: the record's, or what the framing
            // held of a record it refused.
            let bytes = *record.payload.as_ref().unwrap_or(&record.held);
            let added = decoder.decode(record.payload, &mut chunk.values);
            stdin_index += added as u64;
            let origin = if is_stdin {
                Origin::Next(stdin_index)
            } else {
                Origin::Next(record.end)
            };
            // Locations are formatted only for rejects: most records have none.
            for reject in decoder.take_rejects() {
                let location = match reject.index {
                    Some(i) => format!("{}, point {}", record.location, i + 1),
                    None => record.location.to_string(),
                };
                chunk.rejects.push(Rejected {
                    reject,
                    location,
                    start: Some(record.start),
                    line: record.location.line(),
                    payload: bytes.to_vec(),
                    origin: origin.clone(),
                });
            }
            let dim = decoder.decoder().dim().unwrap_or(1);
            chunk.marks.push(RecordMark {
                points_end: chunk.values.len() / dim,
                origin,
            });
            if chunk.is_full(dim) && !send(tx, std::mem::take(&mut chunk)) {
                return Ok(());
            }
        }
        if !chunk.is_empty() && !send(tx, chunk) {
            return Ok(());
        }
        let _ = tx.blocking_send(SourceMsg::End);
        Ok(())
    }
}

/// False when the pipeline is gone (shutting down).
fn send(tx: &mpsc::Sender<SourceMsg>, chunk: Chunk) -> bool {
    tx.blocking_send(SourceMsg::Chunk(chunk)).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use gmm_io::{Format, RejectReason};

    /// Reads `text` (csv, 2-d) from byte `start` as the daemon resumes a file:
    /// the points and the reject reasons.
    fn resume(text: &str, start: usize) -> (Vec<f64>, Vec<RejectReason>) {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("points.csv");
        std::fs::write(&path, text).expect("write");
        let mut decode = DecodeConfig::new(Format::Csv);
        decode.dim = Some(2);
        let source = FileSource {
            path: Some(path),
            decode,
            start: start as u64,
            max_record_bytes: 64,
        };
        let (tx, mut rx) = mpsc::channel(64);
        source.run(tx, CancellationToken::new()).expect("reads");
        let (mut points, mut reasons) = (Vec::new(), Vec::new());
        while let Ok(msg) = rx.try_recv() {
            if let SourceMsg::Chunk(c) = msg {
                points.extend(c.values);
                reasons.extend(c.rejects.iter().map(|r| r.reject.reason));
            }
        }
        (points, reasons)
    }

    #[test]
    fn a_header_like_bad_line_read_first_after_a_resume_is_still_a_bad_line() {
        // Before, the first line read after the offset could become the header:
        // "x,y" was swallowed and then, as a header of another width, would have
        // refused every row after it.
        let text = "1,2\n3,4\nx,y\n5,6\n";
        let (points, reasons) = resume(text, text.find("x,y").expect("there"));
        assert_eq!(points, [5.0, 6.0]);
        assert_eq!(reasons, [RejectReason::Parse]);
    }

    #[test]
    fn the_header_is_found_past_blank_and_over_long_first_lines() {
        let long = "9".repeat(100);
        // The header is the first non-blank line the framing yields: here "a,b".
        let text = format!("\n  \n{long}\na,b\n1,2\n3,4\n");
        let (points, reasons) = resume(&text, text.find("3,4").expect("there"));
        assert_eq!(points, [3.0, 4.0]);
        assert!(reasons.is_empty());
        // Resuming right after a header-less file's first row.
        let text = "1,2\na,b\n3,4\n";
        let (points, reasons) = resume(text, 4);
        assert_eq!(points, [3.0, 4.0]);
        assert_eq!(reasons, [RejectReason::Parse]);
    }
}
