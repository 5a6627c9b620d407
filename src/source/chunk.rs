//! What a running source hands to the pipeline: decoded points in chunks, with one
//! mark per consumed record (rejected records included) saying where the next unread
//! record starts. Batches are cut at record boundaries, so the position after every
//! batch is exact and a restart resumes with the first point not yet absorbed.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use crate::model::Positions;
use crate::source::Reject;

/// Where the record after this one starts.
#[derive(Clone, Debug, PartialEq)]
pub enum Origin {
    /// Files: the byte offset just past the record. Stdin and the generator: the
    /// index of the next point.
    Next(u64),
    /// A Kafka message.
    Kafka {
        topic: Arc<str>,
        partition: i32,
        offset: i64,
    },
}

/// The end of one consumed record within a chunk.
#[derive(Clone, Debug, PartialEq)]
pub struct RecordMark {
    /// Points decoded so far in the chunk, this record's included.
    pub points_end: usize,
    pub origin: Origin,
}

/// A record (or one point of it) that could not be used.
#[derive(Clone, Debug)]
pub struct Rejected {
    /// Why, and which point of the record when it holds several.
    pub reject: Reject,
    /// Where, for people: "line 17", "record 3, point 2".
    pub location: String,
    /// Byte offset of the record in a file or stdin.
    pub start: Option<u64>,
    pub line: Option<u64>,
    /// The original bytes, for the dead-letter sink.
    pub payload: Vec<u8>,
    pub origin: Origin,
}

/// A run of decoded records.
#[derive(Clone, Debug, Default)]
pub struct Chunk {
    /// Row-major points.
    pub values: Vec<f64>,
    pub marks: Vec<RecordMark>,
    pub rejects: Vec<Rejected>,
}

impl Chunk {
    pub fn is_empty(&self) -> bool {
        self.marks.is_empty() && self.rejects.is_empty()
    }
}

pub enum SourceMsg {
    Chunk(Chunk),
    /// A finite source is exhausted: absorb what remains and stop.
    End,
}

/// The position of the next unread point, advanced record by record.
#[derive(Clone, Debug, PartialEq)]
pub enum PositionTracker {
    File { path: String, offset: u64 },
    Stdin { points: u64 },
    Generator { index: u64 },
    Kafka(BTreeMap<String, BTreeMap<i32, i64>>),
}

impl PositionTracker {
    pub fn file(path: &Path, offset: u64) -> Self {
        Self::File {
            path: path.display().to_string(),
            offset,
        }
    }

    /// Moves past the record that `origin` describes.
    pub fn advance(&mut self, origin: &Origin) {
        match (self, origin) {
            (Self::File { offset, .. }, Origin::Next(next)) => *offset = *next,
            (Self::Stdin { points }, Origin::Next(next)) => *points = *next,
            (Self::Generator { index }, Origin::Next(next)) => *index = *next,
            (
                Self::Kafka(map),
                Origin::Kafka {
                    topic,
                    partition,
                    offset,
                },
            ) => {
                map.entry(topic.to_string())
                    .or_default()
                    .insert(*partition, offset + 1);
            }
            // A source only produces its own kind of origin.
            _ => {}
        }
    }

    pub fn positions(&self) -> Positions {
        match self {
            Self::File { path, offset } => Positions::File {
                path: path.clone(),
                offset: *offset,
            },
            Self::Stdin { points } => Positions::Stdin { points: *points },
            Self::Generator { index } => Positions::Generator { index: *index },
            Self::Kafka(map) => Positions::Kafka(map.clone()),
        }
    }
}
