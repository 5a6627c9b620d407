//! What crosses gmm-stream's process boundary, as bytes: the model file and the
//! snapshot (the same format), the source positions a snapshot records, and the
//! decoding of input records (csv, json, f64le, f32le) into points.
//!
//! No sockets, no async: callers hand in bytes or a `BufRead` and get values back.
//! Streams are framed into records by [`RecordReader`] (Kafka message values are
//! records as they come), and every reader turns records into points through
//! [`RecordDecoder`]: the daemon's sources, and [`PointReader`] / [`read_all`] for
//! a finite input.

pub mod decode;
mod extensions;
mod file_identity;
mod format;
mod group_info;
mod model_file;
mod points;
mod positions;
pub mod records;
mod reject;
pub mod state;
mod stream_file;

pub use decode::{DecodeConfig, DecodeConfigError, Decoder, MAX_DIM};
pub use extensions::{BayesianInfo, Extensions, OnlineVariationalInfo, Values, EFFECTIVE_WEIGHT};
pub use file_identity::FileIdentity;
pub use format::{Format, UnknownFormat};
pub use group_info::GroupInfo;
pub use model_file::bounded::{read_model, ReadModelError, MAX_MODEL_BYTES};
pub use model_file::{
    BatchInfo, CovarianceValues, Encoding, EstimatorInfo, FormatError, ModelFile, FORMAT_NAME,
    FORMAT_VERSION,
};
pub use points::{read_all, Dataset, PointReader, ReadError, RecordDecoder};
pub use positions::{KafkaOffsets, Positions};
pub use records::{Framing, Location, Record, RecordReader, DEFAULT_MAX_RECORD_BYTES};
pub use reject::{Reject, RejectReason};
