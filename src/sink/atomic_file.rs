//! The one way this project writes a file whole or not at all: the model files of
//! `fit`, the outputs of `score`, `sample` and `plot`, and the daemon's snapshots.
//!
//! The bytes go to a temporary file next to the target (so the rename stays within
//! one file system), named `.{target}.XXXXXX.tmp` so that a leftover is
//! recognisable; it is flushed and fsynced, renamed over the target, and the
//! directory is fsynced so that the rename itself survives a crash. A failed or
//! interrupted write leaves the previous file (or none), never half a file.
//!
//! What is at the path decides what "the target" is (docs/reference.md, "Output
//! files"): a symbolic link is followed, and the file it leads to is replaced (the
//! link stays a link); a path that is neither a regular file nor missing (a
//! character device such as /dev/null or /dev/full, a FIFO, a socket) is opened and
//! written in place, as a shell redirect would, since renaming over it would
//! replace the device with a file.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use tempfile::NamedTempFile;

/// Bytes buffered before they reach the temporary file.
const BUFFER_BYTES: usize = 256 * 1024;

/// Links followed before a path is refused as a loop (Linux's own limit).
const MAX_LINKS: usize = 40;

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
    sink: Sink,
    path: PathBuf,
}

enum Sink {
    /// A temporary file renamed over `target` (the path, or where its links lead).
    Replace {
        temp: BufWriter<NamedTempFile>,
        target: PathBuf,
    },
    /// A device or a FIFO, written as it is.
    InPlace(BufWriter<File>),
}

impl AtomicFile {
    /// Creates the temporary file in the directory of the target (see the module's
    /// documentation), or opens a device or FIFO for writing.
    pub fn create(path: &Path, access: Access) -> io::Result<Self> {
        let target = resolve_links(path)?;
        let sink = match std::fs::metadata(&target) {
            Ok(meta) if !meta.is_file() && !meta.is_dir() => {
                let file = OpenOptions::new().write(true).open(&target)?;
                Sink::InPlace(BufWriter::with_capacity(BUFFER_BYTES, file))
            }
            _ => Sink::Replace {
                temp: BufWriter::with_capacity(BUFFER_BYTES, temp_beside(&target, access)?),
                target,
            },
        };
        Ok(Self {
            sink,
            path: path.to_owned(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Flushes, fsyncs and renames the file into place, then fsyncs its directory
    /// (a device or FIFO is only flushed). Dropped without a commit, the temporary
    /// file is deleted.
    pub fn commit(self) -> Result<(), CommitError> {
        let (temp, target) = match self.sink {
            Sink::InPlace(mut file) => return file.flush().map_err(CommitError::Write),
            Sink::Replace { temp, target } => (temp, target),
        };
        let temp = temp
            .into_inner()
            .map_err(|e| CommitError::Write(e.into_error()))?;
        temp.as_file().sync_all().map_err(CommitError::Write)?;
        temp.persist(&target)
            .map_err(|e| CommitError::Write(e.error))?;
        sync_dir(parent_dir(&target)).map_err(CommitError::SyncDir)
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match &mut self.sink {
            Sink::Replace { temp, .. } => temp.write(buf),
            Sink::InPlace(file) => file.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match &mut self.sink {
            Sink::Replace { temp, .. } => temp.flush(),
            Sink::InPlace(file) => file.flush(),
        }
    }
}

/// The temporary file for `target`, in its directory.
fn temp_beside(target: &Path, access: Access) -> io::Result<NamedTempFile> {
    let name = target
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
    builder.tempfile_in(parent_dir(target))
}

/// Where `path` leads once every symbolic link on it (the last component's, and
/// those of the links' own targets) is followed; a dangling link leads to the
/// file it names, which is then created.
fn resolve_links(path: &Path) -> io::Result<PathBuf> {
    let mut current = path.to_owned();
    for _ in 0..MAX_LINKS {
        match std::fs::symlink_metadata(&current) {
            Ok(meta) if meta.file_type().is_symlink() => {
                let link = std::fs::read_link(&current)?;
                current = parent_dir(&current).join(link);
            }
            _ => return Ok(current),
        }
    }
    Err(io::Error::other(format!(
        "{}: more than {MAX_LINKS} symbolic links to follow",
        path.display()
    )))
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

    #[cfg(unix)]
    #[test]
    fn a_symlink_stays_a_link_and_its_target_is_replaced() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(dir.path().join("real")).expect("mkdir");
        let target = dir.path().join("real/model.json");
        std::fs::write(&target, b"old").expect("write");
        let link = dir.path().join("link.json");
        std::os::unix::fs::symlink("real/model.json", &link).expect("symlink");
        let mut f = AtomicFile::create(&link, Access::Plain).expect("create");
        f.write_all(b"new").expect("write");
        f.commit().expect("commit");
        let meta = std::fs::symlink_metadata(&link).expect("lstat");
        assert!(meta.file_type().is_symlink());
        assert_eq!(std::fs::read(&target).expect("read"), b"new");
        // The temporary file was next to the target, and is gone.
        assert_eq!(
            std::fs::read_dir(dir.path().join("real"))
                .expect("ls")
                .count(),
            1
        );
        // A dangling link: the file it names is created.
        let dangling = dir.path().join("dangling");
        std::os::unix::fs::symlink("real/new.csv", &dangling).expect("symlink");
        let mut f = AtomicFile::create(&dangling, Access::Plain).expect("create");
        f.write_all(b"1\n").expect("write");
        f.commit().expect("commit");
        assert_eq!(
            std::fs::read(dir.path().join("real/new.csv")).expect("read"),
            b"1\n"
        );
        assert!(std::fs::symlink_metadata(&dangling)
            .expect("lstat")
            .file_type()
            .is_symlink());
        // A loop is an error, not a hang.
        let a = dir.path().join("a");
        std::os::unix::fs::symlink("b", &a).expect("symlink");
        std::os::unix::fs::symlink("a", dir.path().join("b")).expect("symlink");
        assert!(AtomicFile::create(&a, Access::Plain).is_err());
    }

    #[cfg(unix)]
    #[test]
    fn a_character_device_is_written_in_place() {
        let null = Path::new("/dev/null");
        let mut f = AtomicFile::create(null, Access::Plain).expect("create");
        f.write_all(b"discarded").expect("write");
        f.commit().expect("commit");
        use std::os::unix::fs::FileTypeExt;
        let meta = std::fs::metadata(null).expect("stat");
        assert!(meta.file_type().is_char_device());
        let mut f = AtomicFile::create(Path::new("/dev/full"), Access::Plain).expect("create");
        f.write_all(b"no room").expect("buffered");
        match f.commit() {
            Err(CommitError::Write(e)) => assert_eq!(e.raw_os_error(), Some(28), "{e}"),
            other => panic!("expected ENOSPC, got {:?}", other.err()),
        }
    }
}
