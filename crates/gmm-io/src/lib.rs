//! What crosses gmm-stream's process boundary, as bytes: the model file and the
//! snapshot (the same format), the source positions a snapshot records, and the
//! decoding of input records (csv, json, f64le, f32le) into points.
//!
//! No sockets, no async: callers hand in bytes or a `BufRead` and get values back.
//! [`read_all`] reads a finite input; the daemon's sources frame their streams
//! with [`RecordReader`] or take Kafka message values, and all of them turn records
//! into points through [`Decoder`].

pub mod decode;
mod extensions;
mod format;
mod group_info;
mod model_file;
mod positions;
mod read_all;
pub mod records;
mod reject;
pub mod state;

pub use decode::{DecodeConfig, DecodeConfigError, Decoder, MAX_DIM};
pub use extensions::{BayesianInfo, Extensions, OnlineVariationalInfo, Values, EFFECTIVE_WEIGHT};
pub use format::{Format, UnknownFormat};
pub use group_info::GroupInfo;
pub use model_file::{
    BatchInfo, CovarianceValues, Encoding, EstimatorInfo, FormatError, ModelFile, FORMAT_NAME,
    FORMAT_VERSION,
};
pub use positions::{KafkaOffsets, Positions};
pub use read_all::{read_all, Dataset, ReadError};
pub use records::{Framing, Location, Record, RecordReader, DEFAULT_MAX_RECORD_BYTES};
pub use reject::{Reject, RejectReason};
