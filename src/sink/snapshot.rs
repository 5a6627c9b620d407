//! Snapshots on disk (`docs/reference.md`, "Snapshots"): written atomically, the
//! last `keep` kept, the newest valid one found again on start.
//!
//! A snapshot is written with [`AtomicFile`] (a temporary file in the snapshot
//! directory, fsynced, renamed to its final name, the directory fsynced), so that a
//! crash at any instant (kill -9, power loss) leaves every final-named file either
//! absent or complete. Older snapshots are deleted only after the new one is
//! durable. Stale temporary files of a crashed run are removed by
//! [`SnapshotStore::open`].
//!
//! Final names sort by the model's progress:
//! `snapshot-{points_seen:020}-{model_version:020}.{json|bin}`.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use gmm_io::{Encoding, FormatError, ModelFile};

use super::atomic_file::{sync_dir, Access, AtomicFile, CommitError};
use super::{KafkaMessage, SinkError, SinkRecord};
use crate::telemetry::Chain;

const PREFIX: &str = "snapshot-";
/// [`AtomicFile`]'s temporary names for snapshots: `.snapshot-…tmp`.
const TEMP_PREFIX: &str = ".snapshot-";
const TEMP_SUFFIX: &str = ".tmp";

/// The snapshots in one directory.
#[derive(Clone, Debug)]
pub struct SnapshotStore {
    dir: PathBuf,
    keep: usize,
    encoding: Encoding,
}

/// A snapshot that could not be loaded, and why (for a warning).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SkippedSnapshot {
    pub path: PathBuf,
    pub reason: String,
}

/// What [`SnapshotStore::load_newest`] found.
#[derive(Clone, Debug, Default)]
pub struct LoadOutcome {
    /// The newest snapshot that loads and validates.
    pub newest: Option<(PathBuf, ModelFile)>,
    /// Newer snapshots that did not, newest first.
    pub skipped: Vec<SkippedSnapshot>,
}

impl SnapshotStore {
    /// A store over `dir` keeping the last `keep` snapshots (at least one), writing
    /// in `encoding`. Touches nothing on disk.
    pub fn new(dir: impl Into<PathBuf>, keep: usize, encoding: Encoding) -> Self {
        Self {
            dir: dir.into(),
            keep: keep.max(1),
            encoding,
        }
    }

    /// As [`SnapshotStore::new`], then removes the temporary files a crashed run
    /// left behind. Call once at start-up, before anything writes into the
    /// directory.
    pub fn open(
        dir: impl Into<PathBuf>,
        keep: usize,
        encoding: Encoding,
    ) -> Result<Self, SinkError> {
        let store = Self::new(dir, keep, encoding);
        store.remove_stale_temp_files()?;
        Ok(store)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Removes `.snapshot-*.tmp` files (a write interrupted by a crash) and returns
    /// how many. A missing directory has none.
    pub fn remove_stale_temp_files(&self) -> Result<usize, SinkError> {
        let mut removed = 0;
        for name in self.file_names()? {
            if name.starts_with(TEMP_PREFIX) && name.ends_with(TEMP_SUFFIX) {
                let path = self.dir.join(&name);
                match fs::remove_file(&path) {
                    Ok(()) => removed += 1,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => {
                        return Err(SinkError::io(format!("cannot remove {}", path.display()))(
                            e,
                        ))
                    }
                }
            }
        }
        Ok(removed)
    }

    /// Writes `model` as a new snapshot, durably, then deletes the snapshots beyond
    /// the last `keep`. Returns the new snapshot's path.
    ///
    /// A snapshot with the same points seen and model version as an existing one
    /// replaces it (atomically, like any other).
    pub fn write(&self, model: &ModelFile) -> Result<PathBuf, SinkError> {
        let ext = match self.encoding {
            Encoding::Json => "json",
            Encoding::Binary => "bin",
        };
        let bytes = model.encode_checked(self.encoding)?;
        self.ensure_dir()?;
        let name = format!(
            "{PREFIX}{:020}-{:020}.{ext}",
            model.points_seen, model.model_version
        );
        let path = self.dir.join(name);
        self.write_atomically(&path, &bytes)?;
        self.prune();
        Ok(path)
    }

    /// Temporary file, fsync, rename, fsync of the directory.
    fn write_atomically(&self, path: &Path, bytes: &[u8]) -> Result<(), SinkError> {
        let failed = || format!("cannot write the snapshot {}", path.display());
        let mut file = AtomicFile::create(path, Access::Owner).map_err(SinkError::io(failed()))?;
        file.write_all(bytes).map_err(SinkError::io(failed()))?;
        // On failure the temporary file is dropped, which deletes it.
        file.commit().map_err(|e| match e {
            CommitError::Write(e) => SinkError::io(failed())(e),
            CommitError::SyncDir(e) => sync_dir_failed(&self.dir)(e),
        })
    }

    /// Creates the directory when missing, and makes its entry durable too.
    fn ensure_dir(&self) -> Result<(), SinkError> {
        if self.dir.is_dir() {
            return Ok(());
        }
        fs::create_dir_all(&self.dir).map_err(SinkError::io(format!(
            "cannot create the snapshot directory {}",
            self.dir.display()
        )))?;
        let parent = super::atomic_file::parent_dir(&self.dir);
        sync_dir(parent).map_err(sync_dir_failed(parent))
    }

    /// Deletes the oldest snapshots beyond `keep`. A failure is only logged: the
    /// new snapshot is durable already, and a surplus old file is harmless. The
    /// deletions are not fsynced for the same reason: undone by a crash, they leave
    /// an extra old snapshot.
    fn prune(&self) {
        let snapshots = match self.snapshots() {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!("cannot list old snapshots to prune: {}", Chain(&e));
                return;
            }
        };
        let surplus = snapshots.len().saturating_sub(self.keep);
        for path in &snapshots[..surplus] {
            if let Err(e) = fs::remove_file(path) {
                if e.kind() != io::ErrorKind::NotFound {
                    tracing::warn!("cannot remove the old snapshot {}: {e}", path.display());
                }
            }
        }
    }

    /// The snapshots in the directory, oldest first (by points seen, then model
    /// version). A missing directory has none.
    pub fn snapshots(&self) -> Result<Vec<PathBuf>, SinkError> {
        let mut found: Vec<((u64, u64), String)> = self
            .file_names()?
            .into_iter()
            .filter_map(|name| parse_name(&name).map(|key| (key, name)))
            .collect();
        found.sort();
        Ok(found
            .into_iter()
            .map(|(_, name)| self.dir.join(name))
            .collect())
    }

    /// Loads the newest snapshot that reads and validates, skipping (and reporting)
    /// newer ones that do not. None when there is no valid snapshot, or no directory.
    pub fn load_newest(&self) -> Result<LoadOutcome, SinkError> {
        let mut outcome = LoadOutcome::default();
        for path in self.snapshots()?.into_iter().rev() {
            match Self::read(&path) {
                Ok(model) => {
                    outcome.newest = Some((path, model));
                    break;
                }
                Err(reason) => outcome.skipped.push(SkippedSnapshot { path, reason }),
            }
        }
        Ok(outcome)
    }

    /// Reads and validates one snapshot; the error is the reason to skip it. The
    /// read is bounded ([`gmm_io::read_model`]) and so is the decoding: a crafted
    /// or damaged file is an error, never an abort.
    pub fn read(path: &Path) -> Result<ModelFile, String> {
        let bytes = fs::File::open(path)
            .map_err(|e| e.to_string())
            .and_then(|f| gmm_io::read_model(f).map_err(|e| e.to_string()))?;
        ModelFile::from_bytes(&bytes).map_err(|e| Chain(&e).to_string())
    }

    /// Names of the directory's entries (not UTF-8 names are none of ours).
    fn file_names(&self) -> Result<Vec<String>, SinkError> {
        let listing = format!("cannot list the snapshot directory {}", self.dir.display());
        let entries = match fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(SinkError::io(listing)(e)),
        };
        let mut names = Vec::new();
        for entry in entries {
            let entry = entry.map_err(SinkError::io(listing.clone()))?;
            if let Ok(name) = entry.file_name().into_string() {
                names.push(name);
            }
        }
        Ok(names)
    }
}

/// `(points_seen, model_version)` of a final snapshot name, else None.
fn parse_name(name: &str) -> Option<(u64, u64)> {
    let stem = name
        .strip_suffix(".json")
        .or_else(|| name.strip_suffix(".bin"))?;
    let (points, version) = stem.strip_prefix(PREFIX)?.split_once('-')?;
    let digits = |s: &str| s.len() == 20 && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(points) || !digits(version) {
        return None;
    }
    Some((points.parse().ok()?, version.parse().ok()?))
}

fn sync_dir_failed(dir: &Path) -> impl FnOnce(io::Error) -> SinkError {
    SinkError::io(format!("cannot sync the directory {}", dir.display()))
}

/// A snapshot as published to Kafka: keyed by the model's name, its value the
/// JSON model without the estimator's state (consumers of the topic want the
/// parameters).
pub struct PublishedModel<'a> {
    pub name: &'a str,
    json: Vec<u8>,
}

impl<'a> PublishedModel<'a> {
    pub fn new(name: &'a str, snapshot: &ModelFile) -> Result<Self, FormatError> {
        let mut public = snapshot.clone();
        // Consumers of the topic want the parameters, not the estimator state.
        public.state = None;
        public.anomaly_state = None;
        if let Some(v) = public.extensions.variational.as_mut() {
            v.state = None;
        }
        // A group member's state records stay on disk; which member published the
        // model, and under which epoch, goes with it.
        if let Some(g) = public.extensions.group.as_mut() {
            g.records.clear();
        }
        Ok(Self {
            name,
            json: public.to_json()?,
        })
    }
}

impl SinkRecord for PublishedModel<'_> {
    fn write_json<W: Write>(&self, mut out: W) -> io::Result<()> {
        out.write_all(&self.json)
    }

    fn kafka_message<'m>(&'m self, _scratch: &'m mut Vec<u8>) -> KafkaMessage<'m> {
        KafkaMessage {
            key: Some(self.name.into()),
            payload: &self.json,
            headers: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests;
