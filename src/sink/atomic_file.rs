//! The one way this project writes a file whole or not at all: the model files of
//! `fit`, the outputs of `score`, `sample` and `plot`, and the daemon's snapshots.
//!
//! The bytes go to a temporary file next to the target (so the rename stays within
//! one file system), named `.{target}.XXXXXX.tmp` so that a leftover is
//! recognisable; it is flushed and fsynced, renamed over the target, and the
//! directory is fsynced so that the rename itself survives a crash. A failed or
//! interrupted write leaves the previous file (or none), never half a file.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use tempfile::NamedTempFile;

/// Bytes buffered before they reach the temporary file.
const BUFFER_BYTES: usize = 256 * 1024;

/// Who may read the finished file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// As a plainly created file: 0666 less the umask.
    Plain,
    /// The owner only (0600): snapshots, which hold the estimator's whole state.
    Owner,
}

/// Why [`AtomicFile::commit`] failed.
#[derive(Debug)]
pub enum CommitError {
    /// The file could not be completed: nothing was put in place.
    Write(io::Error),
    /// The file is complete and in place, but its directory could not be synced:
    /// the rename might not survive a power loss.
    SyncDir(io::Error),
}

/// A file being written; it appears at its path only on [`AtomicFile::commit`].
pub struct AtomicFile {
    temp: BufWriter<NamedTempFile>,
    path: PathBuf,
}

impl AtomicFile {
    /// Creates the temporary file in the directory of `path`.
    pub fn create(path: &Path, access: Access) -> io::Result<Self> {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let prefix = format!(".{name}.");
        let mut builder = tempfile::Builder::new();
        builder.prefix(&prefix).suffix(".tmp");
        #[cfg(unix)]
        if access == Access::Plain {
            use std::os::unix::fs::PermissionsExt;
            // tempfile's default is owner-only; the umask still applies.
            builder.permissions(std::fs::Permissions::from_mode(0o666));
        }
        #[cfg(not(unix))]
        let _ = access;
        let temp = builder.tempfile_in(parent_dir(path))?;
        Ok(Self {
            temp: BufWriter::with_capacity(BUFFER_BYTES, temp),
            path: path.to_owned(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Flushes, fsyncs and renames the file into place, then fsyncs its directory.
    /// Dropped without a commit, the temporary file is deleted.
    pub fn commit(self) -> Result<(), CommitError> {
        let temp = self
            .temp
            .into_inner()
            .map_err(|e| CommitError::Write(e.into_error()))?;
        temp.as_file().sync_all().map_err(CommitError::Write)?;
        temp.persist(&self.path)
            .map_err(|e| CommitError::Write(e.error))?;
        sync_dir(parent_dir(&self.path)).map_err(CommitError::SyncDir)
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

/// The directory a file lives in: its parent, or `.` for a bare name.
pub fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Makes a directory's entries (a rename, a new file) durable.
#[cfg(unix)]
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Elsewhere the standard library cannot open a directory to sync it; a rename is
/// then as durable as the file system makes it.
#[cfg(not(unix))]
pub fn sync_dir(_dir: &Path) -> io::Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_appears_before_commit_and_the_whole_file_after() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("out.csv");
        let mut f = AtomicFile::create(&path, Access::Plain).expect("create");
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
        let mut f = AtomicFile::create(&path, Access::Owner).expect("create");
        f.write_all(b"half").expect("write");
        drop(f);
        assert_eq!(std::fs::read(&path).expect("read"), b"old");
        assert_eq!(std::fs::read_dir(dir.path()).expect("ls").count(), 1);
    }

    #[cfg(unix)]
    #[test]
    fn access_sets_who_may_read() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let mode = |access, name: &str| {
            let path = dir.path().join(name);
            AtomicFile::create(&path, access)
                .and_then(|f| f.commit().map_err(|_| io::Error::other("commit")))
                .expect("written");
            std::fs::metadata(&path).expect("stat").permissions().mode() & 0o777
        };
        assert_eq!(mode(Access::Owner, "private"), 0o600);
        let plain = dir.path().join("created");
        File::create(&plain).expect("create");
        let umasked = std::fs::metadata(&plain)
            .expect("stat")
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode(Access::Plain, "plain"), umasked);
    }
}
