//! Where the daemon's points come from: files and stdin ([`file`]), Kafka
//! ([`kafka`]) and the built-in synthetic stream ([`generator`]), each sending
//! positioned chunks ([`chunk`]) down a bounded channel. Decoding records into
//! points is `gmm_io`'s ([`gmm_io::RecordDecoder`]). Each source takes its own
//! settings, not the configuration.

pub mod chunk;
pub mod file;
pub mod generator;
pub mod kafka;

pub use generator::{Generator, GeneratorConfig, GeneratorError};
