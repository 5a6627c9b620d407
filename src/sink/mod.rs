//! Where the daemon's output goes: snapshots of the model ([`snapshot`]), per-point
//! score records ([`scores`]) and rejected input ([`dead_letter`]). Plain blocking
//! I/O; the pipeline calls these from its own tasks or threads.

pub mod dead_letter;
pub mod kafka;
pub mod scores;
pub mod snapshot;

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom};
use std::path::Path;

use thiserror::Error;

use gmm_io::FormatError;

pub use dead_letter::{DeadLetter, DeadLetterPosition, DeadLetterWriter};
pub use scores::{KafkaPosition, ScoreRecord, ScoresWriter};
pub use snapshot::{LoadOutcome, SkippedSnapshot, SnapshotStore};

/// The sinks' error: what was being done (naming the file), and why it failed.
#[derive(Debug, Error)]
pub enum SinkError {
    #[error("{action}: {source}")]
    Io {
        action: String,
        #[source]
        source: io::Error,
    },
    #[error("cannot encode the snapshot: {0}")]
    Encode(#[from] FormatError),
}

impl SinkError {
    /// Wraps an I/O error with what was being done: `cannot write /x/y`.
    pub(crate) fn io(action: impl Into<String>) -> impl FnOnce(io::Error) -> SinkError {
        let action = action.into();
        move |source| SinkError::Io { action, source }
    }
}

/// Opens an NDJSON file (scores, dead letters) for appending, creating it when
/// missing, and first cuts a torn last line: a process killed (kill -9) while its
/// buffered writer had handed the OS only part of a record leaves one, and the
/// next record appended would be glued to it. The cut record is never lost: the
/// writers flush whole records before every snapshot, so a torn one was written
/// after the last snapshot, and its point is read and written again on restart.
pub(crate) fn open_append_whole_lines(path: &Path, what: &str) -> Result<File, SinkError> {
    let failed = || format!("cannot open the {what} {}", path.display());
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
mod append_tests {
    use super::*;

    fn reopen(text: &[u8]) -> Vec<u8> {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("out.ndjson");
        std::fs::write(&path, text).expect("write");
        let mut file = open_append_whole_lines(&path, "test file").expect("open");
        io::Write::write_all(&mut file, b"{\"next\":1}\n").expect("append");
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
}
