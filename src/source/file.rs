//! The `file` and `stdin` sources: a thread that reads records, decodes them and
//! sends chunks into the pipeline. Files resume at a byte offset; stdin cannot be
//! resumed and always starts where the stream is.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom};
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};

use thiserror::Error;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::chunk::{Chunk, Origin, RecordMark, Rejected, SourceMsg};
use super::{DecodeConfig, DecodeConfigError, Decoder, RecordReader};

/// Points per chunk: large enough to amortise channel traffic, small enough that a
/// chunk never holds much more than a batch.
const CHUNK_POINTS: usize = 1024;
const READ_BUFFER: usize = 1 << 20;

#[derive(Debug, Error)]
pub enum SourceError {
    #[error("cannot open {path}: {error}")]
    Open { path: PathBuf, error: io::Error },
    #[error("cannot read {name}: {error}")]
    Read { name: String, error: io::Error },
    #[error("{0}")]
    Decode(#[from] DecodeConfigError),
    #[error("cannot resume {path} at byte {offset}: the file is only {len} bytes long (was it replaced?)")]
    BeyondEnd {
        path: PathBuf,
        offset: u64,
        len: u64,
    },
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
        let mut decoder = Decoder::new(self.decode.clone())?;
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

    /// Opens the file at the resume offset. A csv header picked by `fields` is read
    /// from the file's first line, since reading starts past it.
    fn open_at(&self, path: &Path, decoder: &mut Decoder) -> Result<File, SourceError> {
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
        if self.decode.fields.is_some() && !decoder.format().is_binary() {
            let mut first = Vec::new();
            BufReader::new(open(path)?)
                .take(self.max_record_bytes as u64)
                .read_until(b'\n', &mut first)
                .map_err(|error| SourceError::Read {
                    name: self.name(),
                    error,
                })?;
            let line = first.strip_suffix(b"\n").unwrap_or(&first);
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            // A first line that is not a header leaves nothing to prime; the rows
            // will then be rejected one by one, which says why.
            let _ = decoder.prime_header(line);
        }
        file.seek(SeekFrom::Start(self.start))
            .map_err(|error| SourceError::Read {
                name: self.name(),
                error,
            })?;
        Ok(file)
    }

    fn pump<R: BufRead>(
        &self,
        reader: R,
        mut decoder: Decoder,
        tx: &mpsc::Sender<SourceMsg>,
        cancel: &CancellationToken,
    ) -> Result<(), SourceError> {
        let one = NonZeroUsize::MIN;
        let first_line = (self.start == 0).then_some(1);
        let mut records = RecordReader::new(reader, decoder.framing(one))
            .starting_at(self.start, first_line)
            .with_max_record_bytes(self.max_record_bytes);
        // Stdin positions count points, files count bytes.
        let mut stdin_index = 0u64;
        let is_stdin = self.path.is_none();
        let mut chunk = Chunk::default();
        let mut scratch = Vec::new();
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
            let before = chunk.values.len();
            let (start, origin_end) = (record.start, record.end);
            let line = record.location.line();
            let location = record.location;
            match record.payload {
                Ok(bytes) => {
                    let mut rejects = Vec::new();
                    decoder.decode(bytes, &mut chunk.values, &mut rejects);
                    for r in rejects {
                        scratch.push((r, bytes.to_vec()));
                    }
                }
                Err(reject) => scratch.push((reject, Vec::new())),
            }
            let dim = decoder.dim().unwrap_or(1);
            let added = (chunk.values.len() - before) / dim;
            stdin_index += added as u64;
            let origin = if is_stdin {
                Origin::Next(stdin_index)
            } else {
                Origin::Next(origin_end)
            };
            // Locations are formatted only for rejects: most records have none.
            for (reject, payload) in scratch.drain(..) {
                let location = match reject.index {
                    Some(i) => format!("{location}, point {}", i + 1),
                    None => location.to_string(),
                };
                chunk.rejects.push(Rejected {
                    reject,
                    location,
                    start: Some(start),
                    line,
                    payload,
                    origin: origin.clone(),
                });
            }
            chunk.marks.push(RecordMark {
                points_end: chunk.values.len() / dim,
                origin,
            });
            let full =
                chunk.values.len() >= CHUNK_POINTS * dim || chunk.marks.len() >= CHUNK_POINTS;
            if full && !send(tx, std::mem::take(&mut chunk)) {
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
