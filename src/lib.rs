//! gmm-stream: a streaming Gaussian-mixture estimator.
//!
//! The mathematics is the `gmm_model` crate and the file and record formats are
//! `gmm_io`; this crate holds the thin layers that move points in and models out:
//! configuration, sources, the daemon's pipeline, sinks and the HTTP server.
//! `docs/architecture.md` draws the floors.

pub mod config;
pub mod daemon;
pub mod http;
pub mod kafka;
pub mod sink;
pub mod source;
pub mod state_topic;

pub use gmm_io as io;
pub use gmm_model as model;
