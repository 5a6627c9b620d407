//! What a running source hands to the pipeline: decoded points in chunks, with one
//! mark per consumed record (rejected records included) saying where the next unread
//! record starts. Batches are cut at record boundaries, so the position after every
//! batch is exact and a restart resumes with the first point not yet absorbed.

use std::sync::Arc;

use gmm_io::Positions;
use gmm_io::Reject;

/// Points (or records) per chunk, for every source: large enough to amortise
/// channel traffic, small enough that a chunk never holds much more than a batch.
pub const CHUNK_POINTS: usize = 1024;

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

impl Origin {
    /// Moves `positions` past the record this origin describes. A source only
    /// produces its own kind of origin, so a mismatch leaves `positions` alone.
    pub fn advance(&self, positions: &mut Positions) {
        match self {
            Origin::Next(next) => positions.advance_to(*next),
            Origin::Kafka {
                topic,
                partition,
                offset,
            } => positions.advance_kafka(topic, *partition, *offset),
        }
    }
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

    /// Whether the chunk should be sent: [`CHUNK_POINTS`] points of `dim`
    /// coordinates, or as many records.
    pub fn is_full(&self, dim: usize) -> bool {
        self.values.len() >= CHUNK_POINTS * dim || self.marks.len() >= CHUNK_POINTS
    }
}

/// Answered once everything sent before a [`SourceMsg::Flush`] is absorbed, in a
/// durable snapshot, and committed.
pub type Ack = std::sync::mpsc::SyncSender<()>;

pub enum SourceMsg {
    Chunk(Chunk),
    /// Absorb everything so far, snapshot and commit, then answer (Kafka: before
    /// partitions are revoked).
    Flush(Ack),
    /// A finite source is exhausted: absorb what remains and stop.
    End,
}
