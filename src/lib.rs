//! gmm-stream: a streaming Gaussian-mixture estimator.
//!
//! The mathematics is the `gmm_model` crate and the file and record formats are
//! `gmm_io`; this crate holds the thin layers that move points in and models out,
//! each using only those listed before it (`tests/layers.rs` checks it):
//!
//! - [`telemetry`]: counters, the one table of metrics, status lines;
//! - [`kafka`]: what the Kafka source and sinks share;
//! - [`source`] and [`sink`]: where points come from and where output goes;
//! - [`config`]: the configuration as written, and [`plan`]: resolved once;
//! - [`http`]: the HTTP API over the counters and the published model;
//! - [`daemon`]: the pipeline's stages, composed with the HTTP server.
//!
//! `docs/architecture.md` draws the floors.

pub mod telemetry;

pub mod kafka;

pub mod sink;
pub mod source;
pub mod state_topic;

pub mod config;
pub mod plan;

pub mod http;

pub mod daemon;

pub use gmm_io as io;
pub use gmm_model as model;
