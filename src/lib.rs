//! gmm-stream: a streaming Gaussian-mixture estimator.
//!
//! [`model`] holds the mathematics (pure numerics); the other modules are the thin
//! layers that move points in and models out.

pub mod config;
pub mod daemon;
pub mod http;
pub mod kafka;
pub mod model;
pub mod sink;
pub mod source;
