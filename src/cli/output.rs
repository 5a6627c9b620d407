//! Where commands write: stdout, or a file replaced atomically.
//!
//! A file is written to a temporary file in the same directory, flushed to disk and
//! renamed over the target, then the directory is synced: a failed or interrupted
//! run leaves the previous file (or none), never half a file.
//!
//! Exit codes: an output directory that does not exist, or an output path that is a
//! directory, is bad usage (2), checked before any work is done; failing to create
//! or write the file (permissions, a full disk) is a failure (1).

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;
use tempfile::NamedTempFile;

use super::error::CliError;

/// A file being written; it appears at its path only on [`AtomicFile::commit`].
pub struct AtomicFile {
    temp: BufWriter<NamedTempFile>,
    path: PathBuf,
}

impl AtomicFile {
    /// Creates the temporary file next to `path`, so that the final rename stays
    /// within one file system.
    pub fn create(path: &Path) -> Result<Self, CliError> {
        let dir = check_target(path)?;
        let prefix = temp_prefix(path);
        let temp = temp_builder(&prefix)
            .tempfile_in(&dir)
            .with_context(|| format!("{}: cannot create the output", path.display()))
            .map_err(CliError::failure)?;
        Ok(Self {
            temp: BufWriter::with_capacity(256 * 1024, temp),
            path: path.to_owned(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Flushes, syncs and renames the file into place, then syncs the directory so
    /// that the rename itself survives a crash.
    pub fn commit(self) -> Result<(), CliError> {
        let name = self.path.display().to_string();
        let fail = |e: io::Error| {
            CliError::failure(anyhow::Error::new(e).context(format!("{name}: cannot write")))
        };
        let temp = self.temp.into_inner().map_err(|e| fail(e.into_error()))?;
        temp.as_file().sync_all().map_err(fail)?;
        temp.persist(&self.path).map_err(|e| fail(e.error))?;
        if let Err(e) = sync_dir(&self.path) {
            // The file is complete and in place; only its durability across a power
            // loss is in doubt, which is worth a warning, not a failed command.
            tracing::warn!("{name}: cannot sync the directory: {e}");
        }
        Ok(())
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.temp.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.temp.flush()
    }
}

/// The directory the output goes to, once it is known to exist; an output path that
/// cannot be a file is bad usage.
fn check_target(path: &Path) -> Result<PathBuf, CliError> {
    let name = path.display();
    if path.is_dir() {
        return Err(CliError::bad_input_msg(format!(
            "{name}: is a directory; name the output file"
        )));
    }
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    };
    if !dir.is_dir() {
        return Err(CliError::bad_input_msg(format!(
            "{name}: the output directory {} does not exist",
            dir.display()
        )));
    }
    Ok(dir)
}

/// A hidden temporary name derived from the target's, so a leftover is recognisable.
fn temp_prefix(path: &Path) -> String {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    format!(".{name}.")
}

/// Temporary files with the permissions a plainly created file would get
/// (tempfile's default is owner-only).
fn temp_builder(prefix: &str) -> tempfile::Builder<'_, 'static> {
    let mut builder = tempfile::Builder::new();
    builder.prefix(prefix).suffix(".tmp");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        // The umask still applies, as for any new file.
        builder.permissions(std::fs::Permissions::from_mode(0o666));
    }
    builder
}

fn sync_dir(path: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        File::open(dir)?.sync_all()?;
    }
    #[cfg(not(unix))]
    let _ = path;
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
    fn nothing_appears_before_commit_and_the_whole_file_after() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("out.csv");
        let mut f = AtomicFile::create(&path).expect("create");
        f.write_all(b"1,2\n").expect("write");
        assert!(!path.exists());
        f.commit().expect("commit");
        assert_eq!(std::fs::read(&path).expect("read"), b"1,2\n");
        let leftovers = std::fs::read_dir(dir.path()).expect("ls").count();
        assert_eq!(leftovers, 1, "the temporary file is gone");
    }

    #[test]
    fn an_abandoned_file_leaves_nothing_behind() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("model.json");
        std::fs::write(&path, b"old").expect("write");
        let mut f = AtomicFile::create(&path).expect("create");
        f.write_all(b"half").expect("write");
        drop(f);
        assert_eq!(std::fs::read(&path).expect("read"), b"old");
        assert_eq!(std::fs::read_dir(dir.path()).expect("ls").count(), 1);
    }

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
