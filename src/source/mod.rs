//! Where points come from: the input data formats ([`decode`]), the framing of byte
//! streams into positioned records ([`records`]), [`read_all`] for the offline
//! commands, and the built-in synthetic stream ([`generator`]).

pub mod chunk;
pub mod decode;
pub mod file;
mod format;
pub mod generator;
mod read_all;
pub mod records;

pub use decode::{DecodeConfig, DecodeConfigError, Decoder, Reject, RejectReason, MAX_DIM};
pub use format::{Format, UnknownFormat};
pub use generator::{Generator, GeneratorError};
pub use read_all::{read_all, Dataset, ReadError};
pub use records::{Framing, Location, Record, RecordReader, DEFAULT_MAX_RECORD_BYTES};

#[cfg(test)]
mod roundtrip_tests;
