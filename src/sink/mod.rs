//! Where the daemon's output goes: snapshots of the model ([`snapshot`]), per-point
//! score records ([`scores`]) and rejected input ([`dead_letter`]). Plain blocking
//! I/O; the pipeline calls these from its own tasks or threads.

pub mod dead_letter;
pub mod scores;
pub mod snapshot;

use std::io;

use thiserror::Error;

use crate::model::FormatError;

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
