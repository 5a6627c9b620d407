//! `gmm-stream run`: the long-running pipeline.
//!
//! ```text
//! source ──► batcher ──► estimator ──► output (scores, snapshots, dead letters)
//! ```
//! Stages are joined by bounded channels, so memory stays flat whatever the input
//! rate; EM runs on its own thread, off the async reactor. One cancellation token
//! stops everything: the source stops reading, the partial batch is dropped (the
//! last snapshot's positions still point at it), the final snapshot is written.

pub mod batcher;
pub mod signals;
pub mod status;
