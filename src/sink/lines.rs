//! The one NDJSON writer of the project: records as lines of JSON, to stdout or
//! appended to a file (the daemon's scores and dead letters), and `score`'s output.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::Path;

use super::{SinkError, SinkRecord};

/// Large enough that a write reaches the OS every few thousand records.
const BUFFER_BYTES: usize = 256 * 1024;

/// Writes `record` as one line: its JSON and a newline.
pub fn write_line<R: SinkRecord + ?Sized>(out: &mut impl Write, record: &R) -> io::Result<()> {
    record.write_json(&mut *out)?;
    out.write_all(b"\n")
}

/// NDJSON lines to stdout or a file, buffered.
pub struct LineWriter {
    out: BufWriter<Box<dyn Write + Send>>,
    /// What the records are ("scores", "dead letters"), for error messages.
    what: &'static str,
    /// "stdout" or the file's path, for error messages.
    target: String,
    written: u64,
}

impl LineWriter {
    pub fn stdout(what: &'static str) -> Self {
        Self::from_writer(io::stdout(), what, "stdout")
    }

    /// Appends to `path`, creating it (not its directory) when missing; a torn
    /// last line left by a killed run is cut first.
    pub fn append(path: &Path, what: &'static str) -> Result<Self, SinkError> {
        let file = open_append_whole_lines(path, what)?;
        Ok(Self::from_writer(file, what, path.display().to_string()))
    }

    /// Writes to any `Write`; `target` names it in error messages.
    pub fn from_writer(
        out: impl Write + Send + 'static,
        what: &'static str,
        target: impl Into<String>,
    ) -> Self {
        Self {
            out: BufWriter::with_capacity(BUFFER_BYTES, Box::new(out)),
            what,
            target: target.into(),
            written: 0,
        }
    }

    pub fn write<R: SinkRecord + ?Sized>(&mut self, record: &R) -> Result<(), SinkError> {
        write_line(&mut self.out, record).map_err(|e| self.error(e))?;
        self.written += 1;
        Ok(())
    }

    /// Hands everything written so far to the OS (not an fsync).
    pub fn flush(&mut self) -> Result<(), SinkError> {
        self.out.flush().map_err(|e| self.error(e))
    }

    /// Records written since the writer was made.
    pub fn written(&self) -> u64 {
        self.written
    }

    fn error(&self, source: io::Error) -> SinkError {
        SinkError::Io {
            action: format!("cannot write {} to {}", self.what, self.target),
            source,
        }
    }
}

/// Opens an NDJSON file for appending, creating it when missing, and first cuts a
/// torn last line: a process killed (kill -9) while its buffered writer had handed
/// the OS only part of a record leaves one, and the next record appended would be
/// glued to it. The cut record is never lost: the writers flush whole records
/// before every snapshot, so a torn one was written after the last snapshot, and
/// its point is read and written again on restart.
fn open_append_whole_lines(path: &Path, what: &str) -> Result<File, SinkError> {
    let failed = || format!("cannot open the {what} file {}", path.display());
    let mut file = OpenOptions::new()
        .create(true)
        .read(true)
        .append(true)
        .open(path)
        .map_err(SinkError::io(failed()))?;
    let len = file.metadata().map_err(SinkError::io(failed()))?.len();
    let whole = whole_lines_len(&mut file, len).map_err(SinkError::io(failed()))?;
    if whole < len {
        file.set_len(whole).map_err(SinkError::io(failed()))?;
        tracing::warn!(
            path = %path.display(),
            bytes = len - whole,
            "cut a torn last line (the previous run was killed while writing it)"
        );
    }
    Ok(file)
}

/// The length of the file up to and including its last newline (0 without one).
fn whole_lines_len(file: &mut File, len: u64) -> io::Result<u64> {
    const STEP: u64 = 64 * 1024;
    let mut end = len;
    let mut buf = vec![0u8; STEP as usize];
    while end > 0 {
        let start = end.saturating_sub(STEP);
        let part = &mut buf[..(end - start) as usize];
        file.seek(SeekFrom::Start(start))?;
        file.read_exact(part)?;
        if let Some(i) = part.iter().rposition(|&b| b == b'\n') {
            // A file ending with its newline is whole: nothing to cut.
            return Ok(start + i as u64 + 1);
        }
        end = start;
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    /// A record whose JSON is given.
    struct Raw(&'static str);

    impl SinkRecord for Raw {
        fn write_json<W: Write>(&self, mut out: W) -> io::Result<()> {
            out.write_all(self.0.as_bytes())
        }
    }

    fn reopen(text: &[u8]) -> Vec<u8> {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("out.ndjson");
        std::fs::write(&path, text).expect("write");
        let mut writer = LineWriter::append(&path, "test records").expect("open");
        writer.write(&Raw("{\"next\":1}")).expect("append");
        writer.flush().expect("flush");
        std::fs::read(&path).expect("read")
    }

    #[test]
    fn a_torn_last_line_is_cut_before_appending() {
        assert_eq!(reopen(b"{\"a\":1}\n{\"b\":"), b"{\"a\":1}\n{\"next\":1}\n");
        assert_eq!(reopen(b"{\"b\":"), b"{\"next\":1}\n");
        // A torn line longer than the backwards read step.
        let mut long = b"{\"a\":1}\n".to_vec();
        long.extend(std::iter::repeat_n(b'x', 200_000));
        assert_eq!(reopen(&long), b"{\"a\":1}\n{\"next\":1}\n");
    }

    #[test]
    fn whole_files_are_appended_to_untouched() {
        assert_eq!(reopen(b""), b"{\"next\":1}\n");
        assert_eq!(reopen(b"{\"a\":1}\n"), b"{\"a\":1}\n{\"next\":1}\n");
    }

    /// A `Write` whose bytes the test can read while the writer holds it.
    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0
                .lock()
                .map_err(|_| io::Error::other("poisoned"))?
                .extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    struct Broken;

    impl Write for Broken {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            Err(io::Error::new(io::ErrorKind::BrokenPipe, "pipe closed"))
        }
        fn flush(&mut self) -> io::Result<()> {
            Err(io::Error::new(io::ErrorKind::BrokenPipe, "pipe closed"))
        }
    }

    #[test]
    fn records_reach_the_writer_on_flush_one_per_line() {
        let out = Shared::default();
        let mut writer = LineWriter::from_writer(out.clone(), "scores", "test");
        writer.write(&Raw("{\"a\":1}")).expect("write");
        writer.write(&Raw("[2]")).expect("write");
        assert!(out.0.lock().expect("lock").is_empty(), "buffered");
        writer.flush().expect("flush");
        assert_eq!(&out.0.lock().expect("lock")[..], b"{\"a\":1}\n[2]\n");
        assert_eq!(writer.written(), 2);
    }

    #[test]
    fn failures_name_the_records_and_the_target() {
        let mut writer = LineWriter::from_writer(Broken, "scores", "stdout");
        writer.write(&Raw("{}")).expect("buffered");
        let err = writer.flush().expect_err("broken pipe");
        assert_eq!(err.to_string(), "cannot write scores to stdout");
        let dir = tempfile::tempdir().expect("temp dir");
        let err = LineWriter::append(&dir.path().join("no/such/dir"), "dead letters")
            .err()
            .expect("missing directory");
        assert!(err.to_string().contains("no/such/dir"), "{err}");
    }
}
