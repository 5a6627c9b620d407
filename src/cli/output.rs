//! Where commands write: stdout, or a file replaced atomically (the project's one
//! atomic writer, `gmm_stream::sink::atomic_file`): a failed or interrupted run
//! leaves the previous file (or none), never half a file.
//!
//! Exit codes: an output directory that does not exist, or an output path that is a
//! directory, is bad usage (2), checked before any work is done; failing to create
//! or write the file (permissions, a full disk) is a failure (1).

use std::io::{self, BufWriter, Write};
use std::path::Path;

use anyhow::Context;
use gmm_stream::sink::atomic_file::{self, Access, CommitError};

use super::error::CliError;

/// A file being written; it appears at its path only on [`AtomicFile::commit`].
pub struct AtomicFile(atomic_file::AtomicFile);

impl AtomicFile {
    /// Checks the target, then creates the temporary file next to it.
    pub fn create(path: &Path) -> Result<Self, CliError> {
        check_target(path)?;
        atomic_file::AtomicFile::create(path, Access::Plain)
            .with_context(|| format!("{}: cannot create the output", path.display()))
            .map(Self)
            .map_err(CliError::failure)
    }

    pub fn path(&self) -> &Path {
        self.0.path()
    }

    /// Puts the whole file in place (see [`atomic_file::AtomicFile::commit`]).
    pub fn commit(self) -> Result<(), CliError> {
        let name = self.path().display().to_string();
        match self.0.commit() {
            Ok(()) => Ok(()),
            Err(CommitError::Write(e)) => Err(CliError::failure(
                anyhow::Error::new(e).context(format!("{name}: cannot write")),
            )),
            // The file is complete and in place; only its durability across a
            // power loss is in doubt, which is worth a warning, not a failed command.
            Err(CommitError::SyncDir(e)) => {
                tracing::warn!("{name}: cannot sync the directory: {e}");
                Ok(())
            }
        }
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

/// An output path that cannot be a file, or whose directory does not exist, is
/// bad usage, reported before any work is done.
fn check_target(path: &Path) -> Result<(), CliError> {
    let name = path.display();
    if path.is_dir() {
        return Err(CliError::bad_input_msg(format!(
            "{name}: is a directory; name the output file"
        )));
    }
    let dir = atomic_file::parent_dir(path);
    if !dir.is_dir() {
        return Err(CliError::bad_input_msg(format!(
            "{name}: the output directory {} does not exist",
            dir.display()
        )));
    }
    Ok(())
}

/// `--output PATH|-` of `score` and `sample`.
pub enum Output {
    Stdout(BufWriter<io::Stdout>),
    File(AtomicFile),
}

impl Output {
    /// `-` is stdout; anything else a file, created now so that a bad path is
    /// reported before the work.
    pub fn open(path: &Path) -> Result<Self, CliError> {
        if path.as_os_str() == "-" {
            Ok(Self::Stdout(BufWriter::with_capacity(
                256 * 1024,
                io::stdout(),
            )))
        } else {
            Ok(Self::File(AtomicFile::create(path)?))
        }
    }

    fn name(&self) -> String {
        match self {
            Self::Stdout(_) => "stdout".to_owned(),
            Self::File(f) => f.path().display().to_string(),
        }
    }

    /// The command-level error for a failed write.
    pub fn write_error(&self, error: io::Error) -> CliError {
        write_failure(&self.name(), matches!(self, Self::Stdout(_)), error)
    }

    /// Flushes stdout, or puts the file in place.
    pub fn finish(self) -> Result<(), CliError> {
        match self {
            Self::Stdout(mut w) => w.flush().map_err(|e| write_failure("stdout", true, e)),
            Self::File(f) => f.commit(),
        }
    }
}

/// Exit 1, except a closed stdout (the reader stopped early, as `| head` does),
/// which ends the command quietly.
fn write_failure(name: &str, stdout: bool, error: io::Error) -> CliError {
    if stdout && error.kind() == io::ErrorKind::BrokenPipe {
        return CliError::output_closed();
    }
    CliError::failure(anyhow::Error::new(error).context(format!("{name}: cannot write")))
}

impl Write for Output {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Self::Stdout(w) => w.write(buf),
            Self::File(f) => f.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Self::Stdout(w) => w.flush(),
            Self::File(f) => f.flush(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_directory_is_bad_usage() {
        let dir = tempfile::tempdir().expect("tempdir");
        let err = AtomicFile::create(&dir.path().join("nope/m.json"))
            .err()
            .expect("refused");
        assert_eq!(err.exit_code(), std::process::ExitCode::from(2));
        assert!(err.to_string().contains("does not exist"), "{err}");
        let err = AtomicFile::create(dir.path()).err().expect("refused");
        assert!(err.to_string().contains("is a directory"), "{err}");
    }
}
