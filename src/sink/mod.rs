//! Where the daemon's output goes, behind one interface: a [`Sink`] takes records
//! (score records, dead letters, published snapshots) and writes each one as an
//! NDJSON line to stdout or a file ([`lines`]), or as a message to a Kafka topic
//! ([`kafka`]). Snapshots are also written to disk, atomically ([`snapshot`],
//! [`atomic_file`]). Plain blocking I/O; the pipeline calls these from its own
//! thread.

pub mod atomic_file;
pub mod dead_letter;
pub mod kafka;
pub mod lines;
pub mod scores;
pub mod snapshot;

use std::borrow::Cow;
use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::Arc;

use thiserror::Error;

use gmm_io::FormatError;

pub use atomic_file::{AtomicFile, CommitError};
pub use dead_letter::{DeadLetter, DeadLetterPosition};
pub use kafka::{KafkaSink, KafkaSinkError};
pub use lines::{write_line, LineWriter};
pub use scores::{KafkaPosition, ScoreRecord};
pub use snapshot::{LoadOutcome, PublishedModel, SkippedSnapshot, SnapshotStore};

/// The sinks' error: what was being done (naming the file), and why it failed.
#[derive(Debug, Error)]
pub enum SinkError {
    #[error("{action}")]
    Io {
        action: String,
        #[source]
        source: io::Error,
    },
    #[error("cannot encode the snapshot")]
    Encode(#[from] FormatError),
    #[error(transparent)]
    Kafka(#[from] KafkaSinkError),
    #[error("the {what} go to Kafka topic {topic}, but no Kafka producer was made")]
    NoProducer { what: &'static str, topic: String },
}

impl SinkError {
    /// Wraps an I/O error with what was being done: `cannot write /x/y`.
    pub(crate) fn io(action: impl Into<String>) -> impl FnOnce(io::Error) -> SinkError {
        let action = action.into();
        move |source| SinkError::Io { action, source }
    }

    /// The settings are at fault (exit status 2), not the system.
    pub fn is_bad_input(&self) -> bool {
        matches!(self, Self::Kafka(e) if e.is_bad_input())
    }
}

/// Where a sink's records go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    None,
    Stdout,
    /// Appended to, as NDJSON lines.
    File(PathBuf),
    /// A Kafka topic, through the daemon's one producer.
    Kafka(String),
}

/// A record that any sink can carry.
pub trait SinkRecord {
    /// Writes the record as one line of JSON, without the newline.
    fn write_json<W: Write>(&self, out: W) -> io::Result<()>;

    /// The record as a Kafka message. By default: no key, its JSON (written into
    /// `scratch`), no headers.
    fn kafka_message<'a>(&'a self, scratch: &'a mut Vec<u8>) -> KafkaMessage<'a> {
        scratch.clear();
        // Into a Vec, writing can only fail on a value JSON cannot hold, and the
        // records hold none (non-finite floats become null).
        let _ = self.write_json(&mut *scratch);
        KafkaMessage {
            key: None,
            payload: scratch,
            headers: Vec::new(),
        }
    }
}

/// One message for a Kafka topic.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KafkaMessage<'a> {
    pub key: Option<Cow<'a, str>>,
    pub payload: &'a [u8],
    pub headers: Vec<(&'static str, Cow<'a, str>)>,
}

/// One output of the daemon: where one kind of record goes.
pub struct Sink {
    inner: Inner,
}

enum Inner {
    None,
    Lines(LineWriter),
    Kafka {
        producer: Arc<KafkaSink>,
        topic: String,
        scratch: Vec<u8>,
    },
}

impl Sink {
    /// A sink that drops everything.
    pub fn none() -> Self {
        Self { inner: Inner::None }
    }

    /// The sink of `target`, for records of the kind `what` ("scores", "dead
    /// letters"; named in errors). A file is opened for appending now, so a bad
    /// path is reported at start-up; Kafka targets send through `producer`.
    pub fn open(
        target: &Target,
        what: &'static str,
        producer: Option<&Arc<KafkaSink>>,
    ) -> Result<Self, SinkError> {
        let inner = match target {
            Target::None => Inner::None,
            Target::Stdout => Inner::Lines(LineWriter::stdout(what)),
            Target::File(path) => Inner::Lines(LineWriter::append(path, what)?),
            Target::Kafka(topic) => Inner::Kafka {
                producer: producer.cloned().ok_or_else(|| SinkError::NoProducer {
                    what,
                    topic: topic.clone(),
                })?,
                topic: topic.clone(),
                scratch: Vec::with_capacity(256),
            },
        };
        Ok(Self { inner })
    }

    /// A sink writing NDJSON lines with `writer`.
    pub fn lines(writer: LineWriter) -> Self {
        Self {
            inner: Inner::Lines(writer),
        }
    }

    /// True when records are dropped (no need to build them).
    pub fn is_none(&self) -> bool {
        matches!(self.inner, Inner::None)
    }

    pub fn write<R: SinkRecord>(&mut self, record: &R) -> Result<(), SinkError> {
        match &mut self.inner {
            Inner::None => Ok(()),
            Inner::Lines(writer) => writer.write(record),
            Inner::Kafka {
                producer,
                topic,
                scratch,
            } => Ok(producer.send_message(topic, &record.kafka_message(scratch))?),
        }
    }

    /// Hands everything written so far to the OS (files: not an fsync) or to the
    /// broker (Kafka: acknowledged). The pipeline calls this before each snapshot,
    /// so that the records of the points a snapshot holds are never lost.
    pub fn flush(&mut self) -> Result<(), SinkError> {
        match &mut self.inner {
            Inner::None => Ok(()),
            Inner::Lines(writer) => writer.flush(),
            Inner::Kafka { producer, .. } => Ok(producer.flush()?),
        }
    }
}
